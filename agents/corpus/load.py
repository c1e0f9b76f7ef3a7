"""Loading the packaged corpus: the split files in ``agents/data`` and :func:`load_corpus`."""

from __future__ import annotations

import gzip
from collections.abc import Iterator
from pathlib import Path

from story_env.errors import ConfigError, MissingFileError, did_you_mean

DATA_DIR = Path(__file__).resolve().parent.parent / "data"
"""Where the packaged corpus files live (``agents/data``, beside this package)."""

SPLITS: tuple[str, ...] = ("train", "validation")
"""The split names :func:`load_corpus` accepts."""

SPLIT_FILES: dict[str, str] = {
    "train": "stories-train.txt.gz",
    "validation": "stories-validation.txt.gz",
}
"""File name of each split inside :data:`DATA_DIR`: gzipped UTF-8, one story per line."""


def corpus_path(split: str, data_dir: Path | None = None) -> Path:
    """Path of a packaged split.

    Args:
        split: ``"train"`` or ``"validation"``.
        data_dir: Override the folder (default: :data:`DATA_DIR`).

    Returns:
        The ``.txt.gz`` path.

    Raises:
        ConfigError: For an unknown split name (a ``ValueError``).
    """
    if split not in SPLIT_FILES:
        raise ConfigError(
            f"unknown split {split!r}.{did_you_mean(split, SPLITS)} Choose one of "
            f"{', '.join(SPLITS)}"
        )
    return (data_dir or DATA_DIR) / SPLIT_FILES[split]


def iter_corpus(split: str, data_dir: Path | None = None) -> Iterator[str]:
    """Yield the stories of a packaged split, one at a time.

    Args:
        split: ``"train"`` or ``"validation"``.
        data_dir: Override the folder (default: :data:`DATA_DIR`).

    Yields:
        Stories (one line each, without the newline).

    Raises:
        ConfigError: For an unknown split name (a ``ValueError``).
        MissingFileError: If the corpus file is missing (a ``FileNotFoundError``).
    """
    path = corpus_path(split, data_dir)
    if not path.is_file():
        raise MissingFileError(
            f"corpus split {split!r} file {str(path)!r} is missing; build it with "
            "`python -m story_env.agents.corpus build` and `finalize`, or reinstall the package"
        )
    with gzip.open(path, "rt", encoding="utf-8") as fh:
        for line in fh:
            line = line.rstrip("\n")
            if line:
                yield line


def load_corpus(split: str, data_dir: Path | None = None) -> list[str]:
    """Load a packaged split of the story corpus.

    Args:
        split: ``"train"`` or ``"validation"``.
        data_dir: Override the folder (default: :data:`DATA_DIR`).

    Returns:
        The stories, one string each.

    Raises:
        ConfigError: For an unknown split name (a ``ValueError``).
        MissingFileError: If the corpus file is missing (a ``FileNotFoundError``).
    """
    return list(iter_corpus(split, data_dir))


def read_stories(path: str | Path | None, split: str) -> list[str]:
    """Stories, one per line, from ``path`` (``.txt`` or ``.txt.gz``), or the packaged
    ``split`` when ``path`` is ``None``.

    Raises:
        ConfigError: ``path`` is not a file.
    """
    if path is None:
        return load_corpus(split)
    file = Path(path)
    if not file.is_file():
        raise ConfigError(f"corpus file {str(path)!r} does not exist")
    opener = gzip.open if file.suffix == ".gz" else open
    with opener(file, "rt", encoding="utf-8") as fh:
        return [line.strip() for line in fh if line.strip()]
