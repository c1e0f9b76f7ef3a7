"""transformers' weight-loading progress bars, shown only where a command shows progress.

``from_pretrained`` draws a "Loading weights" bar for every model it loads (and
``save_pretrained`` a "Writing model shards" one). The models here are small and local
(a fraction of a second to a few seconds) and load deep inside env and policy
construction, so by default these bars stay off. A command whose progress is on
(``storytelling train`` without ``--no-progress``) allows them for its duration with
``loading_bars(True)``; every load and save wraps the transformers call in
``weight_io()``, which applies that choice through transformers' own switch
(``transformers.utils.logging.disable_progress_bar``) and restores the switch after.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextvars import ContextVar

_SHOW_BARS: ContextVar[bool] = ContextVar("storytelling_loading_bars", default=False)


@contextlib.contextmanager
def loading_bars(enabled: bool) -> Iterator[None]:
    """Show (or hide) weight-loading bars for models loaded inside this block.

    Args:
        enabled: Whether ``weight_io()`` blocks inside show transformers' bars.
    """
    token = _SHOW_BARS.set(enabled)
    try:
        yield
    finally:
        _SHOW_BARS.reset(token)


@contextlib.contextmanager
def weight_io() -> Iterator[None]:
    """Wrap a ``from_pretrained`` / ``save_pretrained`` call: its bars follow
    ``loading_bars`` (off by default).

    transformers' global progress-bar switch is set for the block and restored after,
    so a caller that turned bars off (or on) keeps its choice.
    """
    from transformers.utils import logging as hf_logging

    was = hf_logging.is_progress_bar_enabled()
    want = _SHOW_BARS.get() and was  # never turn on bars the user turned off
    if want == was:
        yield
        return
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.enable_progress_bar()
