"""Who owns a run folder: one process at a time, and only a folder that is new, empty or
a run folder of this project (never a folder of someone else's files).

``own_run`` is what ``train`` holds for its lifetime: it checks ``--out``, refuses
foreign files, and takes an OS lock (``fcntl.flock``) on ``LOCK`` in the folder, which
names its holder's PID and ends with its process however that ends.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from collections.abc import Iterator
from pathlib import Path

from story_env.errors import ConfigError, RunFolderError, describe_os_error
from story_env.run_folder import CHECKPOINT, CHECKPOINT_META, CONFIG, STORIES, prepare

#: The run folder's owner: a lock file held (``fcntl.flock``) for a run's lifetime, holding
#: the owner's PID. Its presence also marks the folder as a run folder of this project.
LOCK = ".storytelling.lock"
#: Every name a run folder may hold (the TRL back end's ``trainer``; ``compare``'s
#: ``eval.json``): any other file makes a folder someone else's.
RUN_FILES = frozenset(
    {CONFIG, CHECKPOINT, CHECKPOINT_META, STORIES, LOCK, "tensorboard", "trainer", "eval.json"}
)


def check_out(out_dir: str | os.PathLike[str]) -> Path:
    """``--out`` as a path, refusing an empty one (it would mean the current folder).

    Raises:
        ConfigError: ``out_dir`` is empty or blank, or holds a NUL byte.
    """
    if not str(out_dir).strip():
        raise ConfigError(
            f"--out {str(out_dir)!r} is empty; give the run folder a path, e.g. --out runs/first"
        )
    if "\0" in str(out_dir):
        raise ConfigError(f"--out {str(out_dir)!r} contains a NUL byte; no path can hold one")
    return Path(out_dir)


def _foreign_files(out: Path) -> list[str]:
    """The names in ``out`` that no run of this project writes (empty for a run folder)."""
    names = sorted(p.name for p in out.iterdir())
    ours = {
        n for n in names if n in RUN_FILES or n.endswith(".tmp") or n.startswith(".write-test-")
    }
    foreign = [n for n in names if n not in ours]
    written = [n for n in names if n in RUN_FILES - {LOCK, "tensorboard"}]
    if foreign or not written or LOCK in names:  # only leftovers (.tmp) count as empty
        return foreign
    # a folder written before the lock file existed: a run if its config names one
    try:
        saved = json.loads((out / CONFIG).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        saved = None
    if (out / CHECKPOINT_META).is_file() and isinstance(saved, dict) and "algorithm" in saved:
        return []
    return written


@contextlib.contextmanager
def own_run(out_dir: str | os.PathLike[str]) -> Iterator[Path]:
    """Hold the run folder ``out_dir`` for the duration of the block (one writer per folder).

    ``out_dir`` must be new, empty or a run folder of this project; it is created if
    missing. The lock is an OS lock (``fcntl.flock``) on ``LOCK`` in the folder, so it
    ends with its process however that ends, and a second writer learns the holder's PID.

    Raises:
        ConfigError: ``out_dir`` is empty, or holds files that are not a run's.
        RunFolderError: The folder cannot be written, or another process holds it.
    """
    out = check_out(out_dir)
    prepare(out)
    foreign = _foreign_files(out)
    if foreign:
        shown = ", ".join(foreign[:5]) + (
            f" and {len(foreign) - 5} more" if len(foreign) > 5 else ""
        )
        raise ConfigError(
            f"--out {str(out)!r} holds files that are not a storytelling run's ({shown}); "
            "a run never takes over a folder: choose a new or empty --out"
        )
    with hold(out / LOCK, f"run folder {str(out)!r}"):
        yield out


@contextlib.contextmanager
def hold(path: Path, what: str) -> Iterator[None]:
    """Hold the lock file ``path`` for the block; ``what`` names the folder in messages.

    Raises:
        RunFolderError: The lock file cannot be created, or another process holds it (the
            message names its PID).
    """
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise RunFolderError(
            f"cannot create the lock file {str(path)!r} ({describe_os_error(exc)}); "
            "choose a writable folder"
        ) from exc
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "unknown"
            raise RunFolderError(
                f"{what} is in use by another process (PID {holder}); wait for it to end, "
                "or choose another --out"
            ) from exc
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode("ascii"), 0)
        yield
    finally:
        os.close(fd)  # closing releases the lock
