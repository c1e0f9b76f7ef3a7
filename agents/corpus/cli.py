"""The command line, ``python -m agents.corpus build|finalize|stats``."""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from agents.corpus.dataset import finalize
from agents.corpus.generate import WORK_FILE, _Tally, build, corpus_command, read_work_file
from agents.corpus.load import DATA_DIR
from agents.corpus.prompts import REQUEST_SETTINGS, GenerationSettings

DESCRIPTION = (
    "An offline children's-story corpus, written by SmolLM2-135M-Instruct through llama.cpp."
)
"""The parser's description: the first line of the ``agents.corpus`` docstring."""


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m agents.corpus", description=DESCRIPTION)
    sub = p.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("build", help="generate stories (resumable)")
    b.add_argument("--out-dir", type=Path, required=True, help="work directory")
    b.add_argument("--target-words", type=int, default=1_000_000, help="clean words to reach")
    b.add_argument("--workers", type=int, default=8, help="concurrent requests = n_parallel")
    b.add_argument("--seed", type=int, default=0)
    b.add_argument("--n-threads", type=int, default=2, help="llama.cpp CPU threads per server")
    b.add_argument("--servers", type=int, default=1, help="in-process llama.cpp servers")
    b.add_argument("--max-stories", type=int, default=None, help="stop at this many raw stories")
    b.add_argument("--max-minutes", type=float, default=None, help="stop this session after")
    defaults = GenerationSettings()
    for name in REQUEST_SETTINGS:  # --temperature, --top-p, ... --max-tokens
        default = getattr(defaults, name)
        b.add_argument(f"--{name.replace('_', '-')}", type=type(default), default=default)
    b.add_argument("--no-progress", action="store_true", help="no progress bar")
    f = sub.add_parser("finalize", help="filter, deduplicate, split and write the corpus")
    f.add_argument("--out-dir", type=Path, required=True, help="work directory of `build`")
    f.add_argument("--data-dir", type=Path, default=DATA_DIR, help="where to write the corpus")
    s = sub.add_parser("stats", help="print the counts of a work directory")
    s.add_argument("--out-dir", type=Path, required=True)
    return p


def _build(args: argparse.Namespace, command: str) -> dict[str, Any]:
    settings = GenerationSettings(**{name: getattr(args, name) for name in REQUEST_SETTINGS})
    return build(
        args.out_dir,
        args.target_words,
        workers=args.workers,
        seed=args.seed,
        settings=settings,
        n_threads=args.n_threads,
        servers=args.servers,
        max_stories=args.max_stories,
        max_minutes=args.max_minutes,
        progress=not args.no_progress,
        command=command,
    )


def _stats(out_dir: Path) -> dict[str, Any]:
    tally = _Tally()
    for rec in sorted(read_work_file(out_dir / WORK_FILE), key=lambda r: r["index"]):
        tally.add(rec)
    return {
        "raw_stories": tally.raw,
        "raw_words": tally.raw_words,
        "kept_stories": tally.kept,
        "clean_words": tally.clean_words,
        "completion_tokens": tally.tokens,
        "reasons": dict(tally.reasons),
    }


def main(argv: Sequence[str] | None = None) -> int:
    """Run the corpus command line.

    Args:
        argv: Arguments (default: ``sys.argv[1:]``).

    Returns:
        The exit status.
    """
    args = _parser().parse_args(argv)
    command = corpus_command(argv)
    if args.cmd == "build":
        print(json.dumps(_build(args, command), indent=2))
    elif args.cmd == "finalize":
        stats = finalize(args.out_dir, args.data_dir, command=command)
        keys = ("total_stories", "total_words", "splits", "reasons")
        print(json.dumps({k: stats[k] for k in keys}, indent=2))
    else:
        print(json.dumps(_stats(args.out_dir), indent=2))
    return 0
