"""Grow a corpus in sealed parts and commit each part to git as it is sealed (maintainers).

Takes the flags of ``python -m story_env.agents.corpus grow``; after each sealed part it
commits the work directory's parts and records (nothing else), so a stopped session
loses at most the session in progress. The packaged corpus grew this way in
``tools/corpus_work``::

    python tools/grow_corpus.py --work-dir tools/corpus_work --target-words 2500000 \\
        --seed 1 --max-tokens 320 --workers 8 --servers 2 --n-threads 1 \\
        --session-minutes 15 --no-progress
    python -m story_env.agents.corpus finalize --out-dir tools/corpus_work \\
        --data-dir agents/data
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from gitcommit import GitError, check_repository, commit_paths

from story_env.agents.corpus import BASE_FILE, BUILD_FILE, PARTS_DIR, SESSIONS_FILE
from story_env.agents.corpus.cli import main as corpus_main
from story_env.run_folder import read_config

logger = logging.getLogger("story_env.agents.corpus")

GITIGNORE = (
    "# The live work file, the lock and half-written files of `tools/grow_corpus.py`;\n"
    "# the sealed parts, build.json, sessions.jsonl and a frozen base are committed.\n"
    "raw.jsonl\n.lock\n*.tmp\n"
)
"""The ``.gitignore`` put in a work directory that has none."""


def commit_progress(work_dir: Path, message: str) -> None:
    """Commit the work directory's sealed parts and records (nothing else) to git.

    Stages ``parts/`` and the build's records (``build.json``, ``sessions.jsonl``, a
    frozen base's files, and a ``.gitignore`` for the live work file and the lock, written
    if missing) and commits only those paths.

    Raises:
        GitError: git failed.
    """
    if not (work_dir / ".gitignore").exists():
        (work_dir / ".gitignore").write_text(GITIGNORE, encoding="utf-8")
    names = [".gitignore", PARTS_DIR, BUILD_FILE, SESSIONS_FILE]
    if (work_dir / BASE_FILE).exists():
        base = read_config(work_dir, BASE_FILE)
        names += [BASE_FILE, str(base["file"])] + ([base["datasheet"]] if base["datasheet"] else [])
    names = [n for n in names if (work_dir / n).exists()]
    if not commit_paths(work_dir, names, message):
        logger.info("[corpus] nothing new to commit")


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``grow`` with a commit after each sealed part; the exit status of the command."""
    args = list(sys.argv[1:] if argv is None else argv)
    where = argparse.ArgumentParser(add_help=False)
    where.add_argument("--work-dir", type=Path)
    work_dir = where.parse_known_args(args)[0].work_dir
    if work_dir is not None:
        try:
            check_repository(work_dir)
        except GitError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2

    def commit(part: Path, note: str) -> None:
        name = part.name.split(".")[0]
        commit_progress(
            part.parent.parent,
            f"Corpus growth, committed in parts so a stop loses nothing: {name}, {note}",
        )

    return corpus_main(["grow", *args], on_part=commit)


if __name__ == "__main__":
    sys.exit(main())
