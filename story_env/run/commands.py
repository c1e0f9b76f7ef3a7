"""The run layer's subcommands: ``plugins``, ``play``, ``train``, ``eval``, ``compare``,
``reproduce``.

Each ``add_<name>(parser)`` adds a command's arguments and its ``cmd_<name>`` runner;
``story_env.plugins.commands`` registers them through the ``storytelling_register_commands`` hook.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from story_env.arguments import count, json_object, name_list, pick, positive_int, seed, seed_list
from story_env.errors import StorytellingError

# flag name -> TrainConfig field; only flags the user gave override the config file
_FIELDS = {
    "algorithm": "algorithm",
    "student": "student",
    "teacher": "teacher",
    "steps": "steps",
    "word_budget": "word_budget",
    "num_envs": "num_envs",
    "max_new_tokens": "max_new_tokens",
    "length_bonus": "length_bonus",
    "kl_coef": "kl_coef",
    "kl_target": "kl_target",
    "kl_per_story": "kl_per_story",
    "advantage": "advantage",
    "top_p": "top_p",
    "top_k": "top_k",
    "seed": "seed",
    "checkpoint_every": "checkpoint_every",
    "teacher_fallback": "teacher_fallback",
    "teacher_timeout": "teacher_timeout_s",
    "algo_kwargs": "algo_kwargs",
    "student_kwargs": "student_kwargs",
    "teacher_kwargs": "teacher_kwargs",
}


def cmd_plugins(args: argparse.Namespace) -> int:
    """Print every registered teacher, student, algorithm and command with its provider."""
    from story_env.registry import registry
    from story_env.run.algorithms import refusal_reason

    reg = registry()
    for kind in ("teacher", "student", "algorithm", "command"):
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
        **pick(args, "teacher", "teacher_kwargs", "max_new_tokens", "length_bonus"),
        **pick(args, student="agent", student_kwargs="agent_kwargs"),
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


def add_plugins(p: argparse.ArgumentParser) -> None:
    p.set_defaults(func=cmd_plugins)


def add_play(p: argparse.ArgumentParser) -> None:
    p.add_argument("--teacher", default="heuristic", help="teacher name (default: heuristic)")
    p.add_argument("--agent", default="ngram", help="student agent name (default: ngram)")
    p.add_argument("--episodes", type=int, default=5, help="stories to write (default: 5)")
    p.add_argument("--seed", type=seed, default=0, help="random seed (default: 0)")
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


def _config(args: argparse.Namespace) -> Any:
    from story_env.run.config import TrainConfig

    given = {
        field: getattr(args, flag)
        for flag, field in _FIELDS.items()
        if getattr(args, flag, None) is not None
    }
    if args.config:
        return TrainConfig.from_file(args.config, **given)
    return TrainConfig(**given)


def _add_run_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", help="JSON file of TrainConfig fields; flags override it")
    p.add_argument("--algorithm", help="registered algorithm (default: ppo)")
    p.add_argument("--student", help="student name or model folder (default: tiny)")
    p.add_argument("--teacher", help="teacher name (default: heuristic)")
    p.add_argument(
        "--steps",
        type=count,
        help="env steps (tokens) to train (default: 20000); the run stops at the end of the "
        "rollout that reaches it, less than one rollout (n_steps x num_envs) past it",
    )
    p.add_argument("--word-budget", type=count, help="stop at this many interactive words")
    p.add_argument("--num-envs", type=int, help="stories written at once (default: 8)")
    p.add_argument("--max-new-tokens", type=int, help="story length limit (default: 90)")
    p.add_argument("--length-bonus", type=float, help="the paper's b (default: 0)")
    p.add_argument("--kl-coef", type=float, help="KL shaping coefficient (default: 0)")
    p.add_argument("--kl-target", type=float, help="adapt kl_coef toward this KL per token")
    p.add_argument(
        "--kl-per-story",
        action="store_true",
        default=None,
        help="charge each story's KL at its mean rate for max_new_tokens tokens, so the "
        "penalty does not favour short stories (default: per token)",
    )
    p.add_argument(
        "--advantage",
        choices=("gae", "story"),
        help="gae: critic and GAE, KL in the rewards (default); story: no critic, each "
        "token gets its story's standardised grade less its own KL (GRPO's signal)",
    )
    p.add_argument("--top-p", type=float, help="MaskablePPO: reference nucleus mask")
    p.add_argument("--top-k", type=int, help="MaskablePPO: reference top-k mask")
    p.add_argument("--seed", type=seed, help="seed (default: 0)")
    p.add_argument("--checkpoint-every", type=count, help="env steps between checkpoints")
    p.add_argument("--algo-kwargs", type=json_object, help="e.g. '{\"learning_rate\": 1e-5}'")
    p.add_argument("--student-kwargs", type=json_object)
    p.add_argument("--teacher-kwargs", type=json_object)
    p.add_argument(
        "--teacher-fallback",
        type=float,
        help="reward in [0, 1] for a story the teacher fails to grade, flagged in the log "
        "(default: a failed grade stops the run)",
    )
    p.add_argument(
        "--teacher-timeout",
        type=float,
        help="seconds a teacher batch may take before its stories count as failed grades",
    )
    p.add_argument("--no-progress", action="store_true")


def cmd_train(args: argparse.Namespace) -> int:
    from story_env.loading import loading_bars
    from story_env.run.training import train

    config = _config(args)
    with loading_bars(not args.no_progress):
        summary = train(config, args.out, resume=args.resume, progress=not args.no_progress)
    if args.json == "-":
        print(json.dumps(summary, indent=2))
        return 0
    if args.json:
        Path(args.json).write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    print(train_summary(summary, config, Path(args.out)))
    return 0


def train_summary(summary: dict[str, Any], config: Any, out: Path) -> str:
    """The few lines ``storytelling train`` ends with: what ran, the grade before and
    after (the run's first and last ``num_envs`` logged stories), and what to run next."""
    from story_env.run_folder import STORIES

    grades: list[float] = []
    log = out / STORIES
    if log.exists():
        with log.open(encoding="utf-8") as fh:
            for line in fh:
                score = json.loads(line).get("teacher_score")
                if score is not None:  # a failed grade is logged as null
                    grades.append(float(score))
    wall = float(summary.get("wall_s", 0.0))
    lines = [
        f"trained {config.algorithm} on {config.student} against {config.teacher}: "
        f"{summary['steps']:,} tokens, {summary['stories']:,} stories in "
        f"{_duration(wall)} ({summary.get('tokens_per_s', 0.0):,.0f} tokens/s)"
    ]
    if grades:
        n = min(config.num_envs, len(grades))
        first, last = sum(grades[:n]) / n, sum(grades[-n:]) / n
        lines.append(
            f"teacher score ({config.teacher}): {first:.3f} over the first {n} stories, "
            f"{last:.3f} over the last {n} (training samples, not an evaluation)"
        )
    files = sorted(f.name + "/" * f.is_dir() for f in out.iterdir() if not f.name.startswith("."))
    lines.append(f"run folder: {out} ({', '.join(files)})")
    lines.append(f"evaluate:   {eval_command(config, out)}")
    return "\n".join(lines)


def eval_command(config: Any, out: Path) -> str:
    """The ``storytelling eval`` line that scores the run in ``out`` on its own task."""
    import shlex

    words = ["storytelling", "eval", "--checkpoint", str(out)]
    # the run's student, teacher and story length, where they differ from eval's defaults
    for flag, value, default in (
        ("--student", config.student, "tiny"),
        ("--teacher", config.teacher, "heuristic"),
        ("--max-new-tokens", config.max_new_tokens, 90),
    ):
        if value != default:
            words += [flag, str(value)]
    return shlex.join([*words, "--stories", "64"])


def _duration(seconds: float) -> str:
    """``4.23`` -> ``"4.2 s"``, ``75.2`` -> ``"1 min 15 s"``, ``3725`` -> ``"1 h 2 min"``."""
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min" if hours else f"{minutes} min {secs} s"


def cmd_eval(args: argparse.Namespace) -> int:
    from story_env.run.evaluation import evaluate

    result = evaluate(
        **pick(args, "student", "checkpoint", "teacher", "teacher_kwargs", "stories", "seed"),
        **pick(args, "num_envs", "max_new_tokens", "top_p", "top_k"),
        judges=[] if args.no_judge else args.judge,
    )
    what = args.checkpoint or f"student {args.student or 'tiny'} (untrained policy)"
    print(f"{what}: {result['stories']} stories, seed {args.seed}")
    words = result["words"]
    print(f"  words per story {words[0]:.1f}  95% CI [{words[1]:.1f}, {words[2]:.1f}]")
    print(f"  teacher {result['teacher']} (the reward):")
    for key, value in result.items():
        if isinstance(value, tuple) and key != "words":
            print(f"    {key:14s} {value[0]:.3f}  95% CI [{value[1]:.3f}, {value[2]:.3f}]")
    for label, judged in result["judges"].items():
        failed = f", {judged['failed']} not graded" if judged["failed"] else ""
        print(f"  held-out judge {label}{failed}:")
        for key, value in judged.items():
            if isinstance(value, tuple):
                print(f"    {key:14s} {value[0]:.3f}  95% CI [{value[1]:.3f}, {value[2]:.3f}]")
    if result.get("ci_method"):
        print(f"  (CI: {result['ci_method']})")
    for i, story in enumerate(result["samples"], 1):
        print(f"  sample {i}: {story.strip()[:300]}")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(result, fh, indent=2)
    return 0


def _add_judge_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--judge",
        action="append",
        metavar="NAME[:MODEL|:JSON]",
        help="held-out judge grading the same stories (repeatable), e.g. lm:gemma or "
        '\'lm:{"model": "smollm2"}\'; default: lm on a model the reward does not use',
    )
    p.add_argument("--no-judge", action="store_true", help="grade with the teacher only")


def cmd_compare(args: argparse.Namespace) -> int:
    from story_env.run.evaluation import compare

    table = compare(
        _config(args),
        args.algorithms,
        args.seeds,
        args.out,
        eval_stories=args.eval_stories,
        resume=args.resume,
        progress=not args.no_progress,
        judges=[] if args.no_judge else args.judge,
    )
    print(table)
    print(f"wrote {args.out}/results.md and {args.out}/curves.png")
    return 0


def add_train(p: argparse.ArgumentParser) -> None:
    _add_run_flags(p)
    p.add_argument(
        "--out", required=True, help="run folder: config, checkpoint, stories.jsonl, tensorboard"
    )
    p.add_argument("--resume", action="store_true", help="continue the run in --out")
    p.add_argument(
        "--json",
        nargs="?",
        const="-",
        metavar="FILE",
        help="print the run's summary as JSON instead of the human summary; "
        "with FILE, write the JSON there and print the human summary",
    )
    p.set_defaults(func=cmd_train)


def add_eval(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--checkpoint", help="a `storytelling train` run folder (default: the untrained student)"
    )
    p.add_argument("--student", help="student (default: the run's own student, else tiny)")
    p.add_argument(
        "--teacher", help="teacher name (default: the run's own teacher, else heuristic)"
    )
    p.add_argument("--teacher-kwargs", type=json_object)
    _add_judge_flags(p)
    p.add_argument("--stories", type=int, default=64)
    p.add_argument("--seed", type=seed, default=0)
    p.add_argument("--num-envs", type=int, default=16)
    p.add_argument(
        "--max-new-tokens", type=int, help="story length (default: the run's own, else 90)"
    )
    p.add_argument(
        "--top-p",
        type=float,
        help="untrained student: sample inside its own nucleus (as MaskablePPO)",
    )
    p.add_argument("--top-k", type=int, help="untrained student: sample inside its own top k")
    p.add_argument("--json", help="also write the result to this file")
    p.set_defaults(func=cmd_eval)


def add_compare(p: argparse.ArgumentParser) -> None:
    _add_run_flags(p)
    p.add_argument("--algorithms", type=name_list, default="ppo,a2c,trpo,maskable_ppo")
    p.add_argument("--seeds", type=seed_list, default="0,1")
    p.add_argument("--eval-stories", type=positive_int, default=64)
    _add_judge_flags(p)
    p.add_argument("--out", required=True)
    p.add_argument("--resume", action="store_true")
    p.set_defaults(func=cmd_compare)


def cmd_reproduce(args: argparse.Namespace, on_stage: Callable[[str], None] | None = None) -> int:
    """Run ``reproduce``; ``on_stage`` is called after each stage (see ``reproduce.run``)."""
    from story_env.run.reproduce import ReproConfig, run, smoke_config

    if args.smoke:
        from story_env.agents.students.baselines import seed_stories

        path = f"{args.out}/seed_stories.txt"
        Path(args.out).mkdir(parents=True, exist_ok=True)
        Path(path).write_text("\n".join(" ".join(s.split()) for s in seed_stories()) + "\n")
        config = smoke_config(path, path)
    elif args.config:
        config = ReproConfig.from_json(args.config)
    else:
        config = ReproConfig()
    rates = (args.pretrain_rate, args.rl_rate, args.eval_rate, args.probe_rate)
    result = run(config, args.out, progress=not args.no_progress, rates=rates, on_stage=on_stage)
    print(result["table"])
    print(f"wrote {args.out}/results.md, ladder.md, results.json, curves.png")
    return 0


def add_reproduce(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", required=True)
    p.add_argument("--config", help="JSON file of ReproConfig fields")
    p.add_argument(
        "--smoke", action="store_true", help="tiny budgets on the seed stories (a test run)"
    )
    p.add_argument(
        "--pretrain-rate", type=float, default=3000.0, help="pretraining tokens/s for the estimate"
    )
    p.add_argument("--rl-rate", type=float, default=100.0, help="RL env steps/s for the estimate")
    p.add_argument(
        "--eval-rate",
        type=float,
        default=0.5,
        help="evaluation stories/s (written, graded by the teacher and every judge) for the estimate",
    )
    p.add_argument("--probe-rate", type=float, default=30.0, help="probe items/s for the estimate")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=cmd_reproduce)


def cmd_calibrate_lm(args: argparse.Namespace) -> int:
    from story_env.agents.corpus import load_corpus
    from story_env.prompts import PAPER_PROMPT
    from story_env.run_folder import write_atomic
    from story_env.teachers.lm import (
        CALIBRATION_VERSION,
        build_calibration,
        resolve_model,
        user_calibration_file,
    )

    stories = load_corpus("validation")
    stories = stories[: len(stories) // 2]  # the first half calibrates; the rest only measures
    if args.stories is not None:
        stories = stories[: args.stories]
    _, _, model_id = resolve_model(args.model)
    print(f"calibrating lm on {model_id}: {len(stories)} held-out stories and 3 corruptions each")
    entry = build_calibration(args.model, stories, PAPER_PROMPT, seed=args.seed)
    out = Path(args.out) if args.out else user_calibration_file()
    data = {"version": CALIBRATION_VERSION, "models": {}}
    if out.is_file():
        old = json.loads(out.read_text("utf-8"))
        if old.get("version") == CALIBRATION_VERSION:
            data = old
    data["models"][model_id] = entry
    write_atomic(out, json.dumps(data, indent=2, sort_keys=True) + "\n", "lm calibration")
    for name in ("fluency", "order_gain", "variety"):
        print(f"  {name:10s} bad {entry[name]['bad']:+.4f}  good {entry[name]['good']:+.4f}")
    print(f"wrote {out}")
    return 0


def add_calibrate_lm(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", default="smollm2", help="smollm2, gemma, or a local model path")
    p.add_argument(
        "--out",
        help="calibration file to write or extend (default: the user calibration in the user "
        "data folder, used instead of the shipped one for the models it holds)",
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the corruptions")
    p.add_argument(
        "--stories",
        type=count,
        help="calibrate on the first N stories of the calibration half (default: all of "
        "it; the committed calibration used 75: a few minutes per model on 2 cores)",
    )
    p.set_defaults(func=cmd_calibrate_lm)
