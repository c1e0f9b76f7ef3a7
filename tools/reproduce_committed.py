"""Run ``storytelling reproduce`` and commit its folder to git after each stage (maintainers).

Takes the flags of ``storytelling reproduce``. After each stage the report so far is
written and the folder is committed (what its ``.gitignore`` allows: results, logs and
tables, not weights), so a stopped session loses at most the stage in progress; the
run itself resumes from its folder with or without this script::

    python tools/reproduce_committed.py --config examples/reproduce/paper-ladder.json \\
        --out results/reproduction --no-progress
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from gitcommit import GitError, check_repository, commit_paths

from story_env.errors import StorytellingError
from story_env.run.commands import add_reproduce, cmd_reproduce


def stage_committer(out: Path) -> Callable[[str], None]:
    """The ``on_stage`` callback that commits ``out`` after a stage."""

    def commit(note: str) -> None:
        commit_paths(out, ["."], f"reproduce {out.name}: {note}, committed as it goes")

    return commit


def commit_report(out: Path) -> bool:
    """Commit the finished experiment's report (``False``: the last stage's commit had it)."""
    return commit_paths(out, ["."], f"reproduce {out.name}: report of the finished experiment")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the reproduction with a commit after each stage; the exit status."""
    parser = argparse.ArgumentParser(prog="python tools/reproduce_committed.py")
    add_reproduce(parser)
    args = parser.parse_args(argv)
    out = Path(args.out)
    try:
        check_repository(out)
        status = cmd_reproduce(args, on_stage=stage_committer(out))
        commit_report(out)
    except (GitError, StorytellingError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return status


if __name__ == "__main__":
    sys.exit(main())
