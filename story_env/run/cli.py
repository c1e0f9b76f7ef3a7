"""The ``storytelling`` command line."""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from collections.abc import Sequence
from typing import Any

import numpy as np

from story_env.errors import StorytellingError

# Modules that add subcommands: each has ``add_command(subparsers)`` and imports its
# heavy dependencies inside the command function, so `storytelling --help` stays fast.
EXTRA_COMMAND_MODULES: tuple[str, ...] = (
    "agents.pretraining.commands",
    "story_env.run.commands",
    "teachers.calibrate",
    "story_env.run.probing",
)


def json_object(text: str) -> dict[str, Any]:
    """argparse type: a JSON object given on the command line."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise argparse.ArgumentTypeError(f"not valid JSON: {text!r} ({exc})") from exc
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(
            f"expected a JSON object like '{{\"seed\": 1}}', got {text!r}"
        )
    return value


def cmd_plugins(args: argparse.Namespace) -> int:
    """Print every registered teacher, student and algorithm with its provider."""
    from story_env.registry import registry
    from story_env.run.training import refusal_reason

    reg = registry()
    for kind in ("teacher", "student", "algorithm"):
        entries = sorted(reg.entries(kind), key=lambda e: e.name)  # type: ignore[arg-type]
        print(f"{kind}s:")
        width = max((len(e.name) for e in entries), default=0)
        for e in entries:
            alias = f" (aliases: {', '.join(e.aliases)})" if e.aliases else ""
            refused = refusal_reason(e.obj) if kind == "algorithm" else None
            mark = f"  REFUSED by `storytelling train`: {refused}" if refused else ""
            print(
                f"  {e.name:<{width}}  [{e.distribution}; plugin {e.plugin}]  "
                f"{e.description}{alias}{mark}"
            )
    return 0


def cmd_play(args: argparse.Namespace) -> int:
    """Let a student agent write stories and print each with the teacher's scores."""
    from story_env.vector import StorytellingVectorEnv, slot_info

    if args.episodes < 1:
        raise StorytellingError(f"--episodes must be >= 1, got {args.episodes}")
    env = StorytellingVectorEnv(
        num_envs=min(args.num_envs, args.episodes),
        teacher=args.teacher,
        student=args.agent,
        student_kwargs=args.agent_kwargs,
        teacher_kwargs=args.teacher_kwargs,
        max_new_tokens=args.max_new_tokens,
        length_bonus=args.length_bonus,
    )
    agent = env.student.make_agent(seed=args.seed)
    obs, _ = env.reset(seed=args.seed)
    finished: list[dict[str, Any]] = []
    while len(finished) < args.episodes:
        actions, _ = agent.predict(obs)
        obs, _, terminated, truncated, infos = env.step(actions)
        for i in np.flatnonzero(terminated | truncated):
            if len(finished) == args.episodes:
                break
            info = slot_info(infos["final_info"], i)
            finished.append(info)
            if not args.quiet:
                _print_story(len(finished), info)
    rewards = np.array([f["reward"] for f in finished])
    print(
        f"\n== {len(finished)} stories | teacher {args.teacher} | agent {args.agent} | seed {args.seed}"
    )
    print(
        f"reward: mean {rewards.mean():.3f}  std {rewards.std():.3f}  min {rewards.min():.3f}  max {rewards.max():.3f}"
    )
    for dim in finished[0]["scores"]:
        values = np.array([f["scores"][dim] for f in finished])
        print(f"{dim}: mean {values.mean():.2f}")
    return 0


def _print_story(n: int, info: dict[str, Any]) -> None:
    scores = "  ".join(f"{k} {v:.2f}" for k, v in info["scores"].items())
    print(f"--- story {n}: reward {info['reward']:.3f}  {scores}")
    print(f"{info['prompt']}{info['story']}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="storytelling", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("plugins", help="list registered teachers, students and algorithms")
    p.set_defaults(func=cmd_plugins)

    p = sub.add_parser("play", help="let an agent write stories and grade them")
    p.add_argument("--teacher", default="heuristic", help="teacher name (default: heuristic)")
    p.add_argument("--agent", default="ngram", help="student agent name (default: ngram)")
    p.add_argument("--episodes", type=int, default=5, help="stories to write (default: 5)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    p.add_argument("--num-envs", type=int, default=8, help="stories written at once (default: 8)")
    p.add_argument(
        "--max-new-tokens", type=int, default=90, help="story length limit (default: 90)"
    )
    p.add_argument("--length-bonus", type=float, default=0.0, help="the paper's b (default: 0)")
    p.add_argument(
        "--teacher-kwargs", type=json_object, default={}, help="JSON object for the teacher"
    )
    p.add_argument("--agent-kwargs", type=json_object, default={}, help="JSON object for the agent")
    p.add_argument("--quiet", action="store_true", help="print only the summary")
    p.set_defaults(func=cmd_play)

    for module_name in EXTRA_COMMAND_MODULES:
        importlib.import_module(module_name).add_command(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``storytelling`` console script.

    The project's errors print as one line (``storytelling: error: ...``) with exit
    status 2; so do file errors (``OSError``: they name the path) that escaped a more
    specific message. A closed output pipe (``storytelling plugins | head -1``) ends
    the command quietly.
    """
    args = build_parser().parse_args(argv)
    try:
        status = int(args.func(args))
        sys.stdout.flush()  # a closed pipe shows here, not in the interpreter's exit flush
        return status
    except BrokenPipeError:
        return _quiet_broken_pipe()
    except StorytellingError as exc:
        print(f"storytelling: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        where = f" {exc.filename!r}" if exc.filename else ""
        print(
            f"storytelling: error: cannot use file{where}: {exc.strerror or exc}; check the "
            "path, its permissions and the free disk space",
            file=sys.stderr,
        )
        return 2


def _quiet_broken_pipe() -> int:
    """The reader of stdout went away: point stdout at /dev/null so exit stays quiet."""
    import os

    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass
    return 141  # 128 + SIGPIPE, as a shell reports a command ended by a closed pipe


if __name__ == "__main__":
    sys.exit(main())
