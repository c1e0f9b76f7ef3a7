"""Commit a long job's progress to git in parts (maintainer tool, not part of the package).

The library never runs git: a long job (corpus growth, the reproduction) calls back after
each finished part, and the scripts beside this file commit that part here, so a stopped
session loses at most the part in progress.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

RETRIES = 12
"""Tries of a git command that finds another git's ``index.lock`` (5 s apart)."""


class GitError(RuntimeError):
    """A git command failed."""


def git(cwd: Path, *args: str) -> str:
    """Run git in ``cwd`` and return its output, retrying while another git holds the index lock.

    Raises:
        GitError: git failed for another reason, or the lock stayed.
    """
    attempt = 1
    while True:
        done = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=False)
        if done.returncode == 0:
            return done.stdout
        if "index.lock" not in done.stderr or attempt == RETRIES:
            raise GitError(f"`git {' '.join(args)}` in {cwd} failed: {done.stderr.strip()}")
        attempt += 1
        time.sleep(5)


def check_repository(path: Path) -> None:
    """Fail now, not after the first part's hours, if ``path`` is not inside a repository.

    Raises:
        GitError: ``path`` (or, if it does not exist yet, its nearest existing parent) is
            not in one.
    """
    existing = path.absolute()
    while not existing.exists():
        existing = existing.parent
    git(existing, "rev-parse", "--show-toplevel")


def commit_paths(cwd: Path, paths: Sequence[str | Path], message: str) -> bool:
    """Commit ``paths`` (as ``.gitignore`` allows) and nothing else; ``False`` if unchanged.

    Only the given paths are staged and committed (``git commit -- paths``): other staged
    or changed files are left as they are.

    Raises:
        GitError: git failed (e.g. ``cwd`` is not in a repository).
    """
    names = [str(p) for p in paths]
    git(cwd, "add", "--", *names)
    if not git(cwd, "diff", "--cached", "--name-only", "--", *names).strip():
        return False
    git(cwd, "commit", "--quiet", "-m", message, "--", *names)
    return True
