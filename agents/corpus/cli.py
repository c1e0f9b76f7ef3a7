"""The command line, ``python -m story_env.agents.corpus build|grow|finalize|stats|freeze-base``."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from story_env.agents.corpus.dataset import finalize
from story_env.agents.corpus.generate import _Tally, build, corpus_command
from story_env.agents.corpus.growth import OnPart, grow
from story_env.agents.corpus.load import DATA_DIR
from story_env.agents.corpus.prompts import (
    PROMPT_SETS,
    PROMPT_VERSION,
    REQUEST_SETTINGS,
    GenerationSettings,
)
from story_env.agents.corpus.workdir import freeze_base, part_paths, read_base, read_records
from story_env.errors import StorytellingError

DESCRIPTION = (
    "An offline children's-story corpus, written by SmolLM2-135M-Instruct through llama.cpp."
)
"""The parser's description: the first line of the ``story_env.agents.corpus`` docstring."""


def _generation_args(b: argparse.ArgumentParser) -> None:
    """The flags ``build`` and ``grow`` share: resources, seed, prompt set and sampling."""
    b.add_argument("--target-words", type=int, default=1_000_000, help="clean words to reach")
    b.add_argument("--workers", type=int, default=8, help="concurrent requests = n_parallel")
    b.add_argument("--seed", type=int, default=0)
    b.add_argument(
        "--prompt-version",
        type=int,
        default=PROMPT_VERSION,
        choices=sorted(PROMPT_SETS),
        help=f"prompt set (default {PROMPT_VERSION}; set 1 made the v1 corpus)",
    )
    b.add_argument("--n-threads", type=int, default=2, help="llama.cpp CPU threads per server")
    b.add_argument("--servers", type=int, default=1, help="in-process llama.cpp servers")
    defaults = GenerationSettings()
    for name in REQUEST_SETTINGS:  # --temperature, --top-p, ... --max-tokens
        default = getattr(defaults, name)
        b.add_argument(f"--{name.replace('_', '-')}", type=type(default), default=default)
    b.add_argument("--no-progress", action="store_true", help="no progress bar")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m story_env.agents.corpus", description=DESCRIPTION)
    sub = p.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("build", help="generate stories (resumable)")
    b.add_argument("--out-dir", type=Path, required=True, help="work directory")
    _generation_args(b)
    b.add_argument("--max-stories", type=int, default=None, help="stop at this many raw stories")
    b.add_argument("--max-minutes", type=float, default=None, help="stop this session after")
    g = sub.add_parser(
        "grow", help="build in sessions to a target, sealing (and committing) each as a part"
    )
    g.add_argument("--work-dir", type=Path, required=True, help="work directory")
    _generation_args(g)
    g.add_argument("--session-minutes", type=float, default=20.0, help="length of one session")
    g.add_argument("--max-sessions", type=int, default=None, help="stop after this many")
    f = sub.add_parser("finalize", help="filter, deduplicate, split and write the corpus")
    f.add_argument("--out-dir", type=Path, required=True, help="work directory of `build`")
    f.add_argument(
        "--data-dir",
        type=Path,
        required=True,
        help="where to write the corpus (a folder of yours: never the installed package)",
    )
    s = sub.add_parser("stats", help="print the counts of a work directory")
    s.add_argument("--out-dir", type=Path, required=True)
    z = sub.add_parser("freeze-base", help="freeze a finished corpus as a work directory's base")
    z.add_argument("--out-dir", type=Path, required=True, help="work directory")
    z.add_argument(
        "--data-dir", type=Path, default=DATA_DIR, help="the corpus to freeze (read only)"
    )
    z.add_argument("--name", default="v1", help="short name of the base (file prefix)")
    z.add_argument("--prompt-version", type=int, default=1, choices=sorted(PROMPT_SETS))
    return p


def _settings(args: argparse.Namespace) -> GenerationSettings:
    return GenerationSettings(**{name: getattr(args, name) for name in REQUEST_SETTINGS})


def _generation(args: argparse.Namespace, command: str) -> dict[str, Any]:
    """The generation options ``build`` and ``grow`` share, from the command line."""
    return {
        "workers": args.workers,
        "seed": args.seed,
        "settings": _settings(args),
        "n_threads": args.n_threads,
        "servers": args.servers,
        "progress": not args.no_progress,
        "command": command,
        "prompt_version": args.prompt_version,
    }


def _build(args: argparse.Namespace, command: str) -> dict[str, Any]:
    return build(
        args.out_dir,
        args.target_words,
        max_stories=args.max_stories,
        max_minutes=args.max_minutes,
        **_generation(args, command),
    )


def _grow(args: argparse.Namespace, command: str, on_part: OnPart | None) -> dict[str, Any]:
    # one line per session on stdout, for this command only: a handler left on the root
    # logger would outlive the command (and the stream it writes to, under pytest)
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s"))
    log = logging.getLogger("story_env.agents.corpus")
    level = log.level
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    try:
        return _grow_run(args, command, on_part)
    finally:
        log.removeHandler(handler)
        log.setLevel(level)


def _grow_run(args: argparse.Namespace, command: str, on_part: OnPart | None) -> dict[str, Any]:
    return grow(
        args.work_dir,
        args.target_words,
        args.session_minutes,
        on_part=on_part,
        max_sessions=args.max_sessions,
        **_generation(args, command),
    )


def _stats(out_dir: Path) -> dict[str, Any]:
    tally = _Tally()
    tally.add_base(read_base(out_dir)[1])
    for rec in sorted(read_records(out_dir), key=lambda r: r["index"]):
        tally.add(rec)
    return {
        "sealed_parts": len(part_paths(out_dir)),
        "base_stories": tally.base_kept,
        "raw_stories": tally.raw,
        "raw_words": tally.raw_words,
        "kept_stories": tally.kept,
        "clean_words": tally.clean_words,
        "completion_tokens": tally.tokens,
        "reasons": dict(tally.reasons),
    }


def main(argv: Sequence[str] | None = None, *, on_part: OnPart | None = None) -> int:
    """Run the corpus command line.

    Args:
        argv: Arguments (default: ``sys.argv[1:]``).
        on_part: For ``grow``: called after each sealed part (see :func:`grow`).

    Returns:
        The exit status.
    """
    args = _parser().parse_args(argv)
    try:
        _run(args, corpus_command(argv), on_part)
    except StorytellingError as exc:  # a bad value or a refused resume: the message says why
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


def _run(args: argparse.Namespace, command: str, on_part: OnPart | None) -> None:
    if args.cmd == "build":
        print(json.dumps(_build(args, command), indent=2))
    elif args.cmd == "grow":
        print(json.dumps(_grow(args, command, on_part), indent=2))
    elif args.cmd == "freeze-base":
        base = freeze_base(args.out_dir, args.data_dir, args.name, args.prompt_version, command)
        print(json.dumps(base, indent=2))
    elif args.cmd == "finalize":
        stats = finalize(args.out_dir, args.data_dir, command=command)
        keys = ("total_stories", "total_words", "splits", "sources", "all_sources", "reasons")
        print(json.dumps({k: stats[k] for k in keys}, indent=2))
    else:
        print(json.dumps(_stats(args.out_dir), indent=2))
