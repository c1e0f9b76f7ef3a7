"""The command line, ``python -m agents.corpus build|finalize|stats``."""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path

from agents.corpus.dataset import finalize
from agents.corpus.generate import WORK_FILE, _Tally, build, read_work_file
from agents.corpus.load import DATA_DIR
from agents.corpus.prompts import GenerationSettings


def _parser() -> argparse.ArgumentParser:
    from agents import corpus  # the description is the package docstring's first line

    p = argparse.ArgumentParser(
        prog="python -m agents.corpus", description=corpus.__doc__.split("\n")[0]
    )
    sub = p.add_subparsers(dest="cmd", required=True)
    d = GenerationSettings()
    b = sub.add_parser("build", help="generate stories (resumable)")
    b.add_argument("--out-dir", type=Path, required=True, help="work directory")
    b.add_argument("--target-words", type=int, default=1_000_000, help="clean words to reach")
    b.add_argument("--workers", type=int, default=8, help="concurrent requests = n_parallel")
    b.add_argument("--seed", type=int, default=0)
    b.add_argument("--n-threads", type=int, default=2, help="llama.cpp CPU threads per server")
    b.add_argument("--servers", type=int, default=1, help="in-process llama.cpp servers")
    b.add_argument("--max-stories", type=int, default=None, help="stop at this many raw stories")
    b.add_argument("--max-minutes", type=float, default=None, help="stop this session after")
    b.add_argument("--temperature", type=float, default=d.temperature)
    b.add_argument("--top-p", type=float, default=d.top_p)
    b.add_argument("--top-k", type=int, default=d.top_k)
    b.add_argument("--min-p", type=float, default=d.min_p)
    b.add_argument("--repeat-penalty", type=float, default=d.repeat_penalty)
    b.add_argument("--repeat-last-n", type=int, default=d.repeat_last_n)
    b.add_argument("--max-tokens", type=int, default=d.max_tokens)
    b.add_argument("--no-progress", action="store_true", help="no progress bar")
    f = sub.add_parser("finalize", help="filter, deduplicate, split and write the corpus")
    f.add_argument("--out-dir", type=Path, required=True, help="work directory of `build`")
    f.add_argument("--data-dir", type=Path, default=DATA_DIR, help="where to write the corpus")
    s = sub.add_parser("stats", help="print the counts of a work directory")
    s.add_argument("--out-dir", type=Path, required=True)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Run the corpus command line.

    Args:
        argv: Arguments (default: ``sys.argv[1:]``).

    Returns:
        The exit status.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    args = _parser().parse_args(argv)
    command = " ".join(shlex.quote(a) for a in ["python", "-m", "agents.corpus", *argv])
    if args.cmd == "build":
        settings = GenerationSettings(
            temperature=args.temperature,
            top_p=args.top_p,
            top_k=args.top_k,
            min_p=args.min_p,
            repeat_penalty=args.repeat_penalty,
            repeat_last_n=args.repeat_last_n,
            max_tokens=args.max_tokens,
        )
        summary = build(
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
        print(json.dumps(summary, indent=2))
    elif args.cmd == "finalize":
        stats = finalize(args.out_dir, args.data_dir, command=command)
        print(
            json.dumps(
                {k: stats[k] for k in ("total_stories", "total_words", "splits", "reasons")},
                indent=2,
            )
        )
    else:
        tally = _Tally()
        for rec in sorted(read_work_file(args.out_dir / WORK_FILE), key=lambda r: r["index"]):
            tally.add(rec)
        print(
            json.dumps(
                {
                    "raw_stories": tally.raw,
                    "raw_words": tally.raw_words,
                    "kept_stories": tally.kept,
                    "clean_words": tally.clean_words,
                    "completion_tokens": tally.tokens,
                    "reasons": dict(tally.reasons),
                },
                indent=2,
            )
        )
    return 0
