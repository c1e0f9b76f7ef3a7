"""One home for the figures the run layer writes (learning curves, the reproduction)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from story_env.errors import DependencyMissingError


@contextmanager
def figure(path: Path, size: tuple[float, float]) -> Iterator[Any]:
    """Draw on the axes this yields; the figure is written to ``path`` (PNG) and closed.

    Uses matplotlib's file-only backend, so it works without a display.

    Raises:
        DependencyMissingError: matplotlib is not installed (with the extra to install).
    """
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise DependencyMissingError(
            "plots need matplotlib: pip install 'storytelling[plots]'"
        ) from exc
    fig, ax = plt.subplots(figsize=size)
    try:
        yield ax
        fig.tight_layout()
        fig.savefig(path, dpi=120)
    finally:
        plt.close(fig)
