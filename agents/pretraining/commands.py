"""Subcommands for students: ``pretrain`` and ``build-student``."""

from __future__ import annotations

import argparse

from story_env.agents.corpus.load import read_stories
from story_env.arguments import count, count_list, pick, positive_float, seed


def cmd_pretrain(args: argparse.Namespace) -> int:
    from story_env.agents.pretraining.pretrain import ModelConfig, PretrainConfig, pretrain

    model = pick(args, "vocab_size", n_layer="layers", n_embd="embd", n_head="heads")
    config = PretrainConfig(
        **pick(args, "words", "save_at", "block_size", "batch_size", "lr", "seed"),
        state_every_steps=args.state_every,
        model=ModelConfig(**model, n_positions=args.positions),
    )
    train = read_stories(args.train_file, "train")
    val = read_stories(args.val_file, "validation")
    result = pretrain(
        config, train, val, args.out, resume=args.resume, progress=not args.no_progress
    )
    print(
        f"done: {result['words_seen']:,} words seen in {result['step']} steps; validation "
        f"perplexity {result['val_perplexity']:.2f}; {result['tokens_per_second']:,.0f} tokens/s; "
        f"checkpoint {result['final_dir']}"
    )
    return 0


def cmd_build_student(args: argparse.Namespace) -> int:
    from story_env.agents.students.tiny import build_tiny

    if args.name != "tiny":
        from story_env.errors import ConfigError

        raise ConfigError(f"only the 'tiny' student is built by the project; got {args.name!r}")
    folder = build_tiny(args.words, rebuild=args.rebuild)
    print(folder)
    if args.rebuild and args.words is None:  # only the recipe's own budget is comparable
        import json

        from story_env.agents.students.tiny import SHIPPED_DIR

        rebuilt = json.loads((folder / "pretraining.json").read_text())["val_perplexity"]
        shipped_file = SHIPPED_DIR / "pretraining.json"
        if shipped_file.is_file():
            shipped = json.loads(shipped_file.read_text())["val_perplexity"]
            print(
                f"validation perplexity: rebuilt {rebuilt:.2f}, shipped {shipped:.2f} "
                f"({100 * (rebuilt / shipped - 1):+.1f}%)"
            )
    return 0


def add_pretrain(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--words",
        type=count,
        required=True,
        help="words seen at the end (e.g. 2e6)",
    )
    p.add_argument(
        "--save-at",
        type=count_list,
        default=(),
        help="comma-separated word counts to checkpoint at",
    )
    p.add_argument("--out", required=True, help="run folder (checkpoints, state, metrics)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out")
    p.add_argument(
        "--train-file", help="stories, one per line (.txt or .txt.gz); default: the packaged corpus"
    )
    p.add_argument(
        "--val-file", help="validation stories, one per line; default: the packaged corpus"
    )
    p.add_argument("--vocab-size", type=int, default=4096)
    p.add_argument("--layers", type=int, default=4)
    p.add_argument("--embd", type=int, default=256)
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--positions", type=int, default=256)
    p.add_argument("--block-size", type=int, default=128)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--lr", type=positive_float, default=1e-3)
    p.add_argument("--seed", type=seed, default=0)
    p.add_argument("--state-every", type=int, default=50, help="steps between resumable states")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=cmd_pretrain)


def add_build_student(p: argparse.ArgumentParser) -> None:
    p.add_argument("name", nargs="?", default="tiny")
    p.add_argument(
        "--words", type=count, default=None, help="pretraining budget (default: the recipe's)"
    )
    p.add_argument(
        "--rebuild",
        action="store_true",
        help="build the default recipe into the cache although its weights ship, and compare "
        "its validation perplexity with the shipped one",
    )
    p.set_defaults(func=cmd_build_student)
