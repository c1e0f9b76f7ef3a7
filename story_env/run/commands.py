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

from story_env.arguments import (
    EVAL_STORIES,
    count,
    json_object,
    name_list,
    pick,
    positive_int,
    seed,
    seed_list,
)
from story_env.errors import ConfigError, StorytellingError

_JSON_HELP = "also write the result as JSON to FILE; with '-', print the JSON instead of the text"


def _json_out(args: argparse.Namespace, result: Any) -> bool:
    """Write ``result`` where ``--json`` says; True if it replaced the text output."""
    target = getattr(args, "json", None)
    if not target:
        return False
    text = json.dumps(result, indent=2, default=str)
    if target == "-":
        print(text)
        return True
    from story_env.run_folder import write_atomic

    path = Path(target)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, text + "\n", "--json file", "run the command again")
    return False


def _json_beside_run(args: argparse.Namespace, run: str | None) -> None:
    """Refuse a ``--json`` file inside the run folder ``run``, before any work: a run
    folder holds only the run's own files, so a later ``train --resume`` would refuse it.

    Raises:
        ConfigError: The file would land in the run folder under a name no run writes.
    """
    from story_env.run_owner import RUN_FILES

    target = getattr(args, "json", None)
    if not target or target == "-" or not run:
        return
    path, folder = Path(target).resolve(), Path(run).resolve()
    if path.parent == folder and path.name not in RUN_FILES:
        raise ConfigError(
            f"--json {target!r} is inside the run folder {run!r}, which holds only the run's "
            f"own files (a later --resume would refuse the folder); write it beside the "
            f"folder, e.g. --json {str(Path(run).with_suffix('')) + '.json'!r}"
        )


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
        **pick(args, "student", "student_kwargs"),
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
        f"\n== {len(finished)} stories | teacher {args.teacher} | student {args.student} | "
        f"seed {args.seed}"
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
    p.add_argument(
        "--student", default="ngram", help="student name or model folder (default: ngram)"
    )
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
    p.add_argument(
        "--student-kwargs", type=json_object, default={}, help="JSON object for the student"
    )
    p.add_argument("--quiet", action="store_true", help="print only the summary")
    p.set_defaults(func=cmd_play)


def _config(args: argparse.Namespace) -> Any:
    """The run's ``TrainConfig``: the config file (if any) with the flags given over it."""
    from story_env.run.config import TrainConfig, settings

    given = {
        f.name: getattr(args, f.name)
        for f, _, _ in settings()
        if getattr(args, f.name, None) is not None
    }
    if args.config:
        return TrainConfig.from_file(args.config, **given)
    return TrainConfig(**given)


def _add_run_flags(p: argparse.ArgumentParser, *, algorithm: bool = True) -> None:
    """``--config`` and a flag per ``TrainConfig`` setting (``add_config_flags``)."""
    from story_env.run.config import add_config_flags

    p.add_argument("--config", help="JSON file of TrainConfig fields; flags override it")
    add_config_flags(p, exclude=() if algorithm else ("algorithm",))
    p.add_argument("--no-progress", action="store_true", help="no progress bars")


def cmd_train(args: argparse.Namespace) -> int:
    from story_env.run.processes import is_main_process
    from story_env.run.training import train

    config = _config(args)
    _json_beside_run(args, args.out)
    summary = train(config, args.out, resume=args.resume, progress=not args.no_progress)
    if not is_main_process():
        return 0  # a multi-process run: rank 0 reports it
    if _json_out(args, summary):
        return 0
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
    return shlex.join([*words, "--stories", str(EVAL_STORIES)])


def _duration(seconds: float) -> str:
    """``4.23`` -> ``"4.2 s"``, ``75.2`` -> ``"1 min 15 s"``, ``3725`` -> ``"1 h 2 min"``."""
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min" if hours else f"{minutes} min {secs} s"


def cmd_eval(args: argparse.Namespace) -> int:
    from story_env.run.evaluation import evaluate
    from story_env.run_folder import CHECKPOINT_META

    if args.checkpoint and (Path(args.checkpoint) / CHECKPOINT_META).is_file():
        _json_beside_run(args, args.checkpoint)  # a run folder's
    shared = ("student", "student_kwargs", "teacher_kwargs", "seed", "num_envs")
    given = {k: getattr(args, k) for k in (*shared, "max_new_tokens")}
    result = evaluate(
        **{k: v for k, v in given.items() if v is not None},
        **pick(args, "checkpoint", "teacher", "stories", "top_p", "top_k"),
        judges=[] if args.no_judge else args.judge,
        progress=False if args.no_progress else None,
        mauve=not args.no_mauve,
    )
    if _json_out(args, result):
        return 0
    what = args.checkpoint or f"student {args.student or 'tiny'} (untrained)"
    print(f"{what}: {result['stories']} stories, seed {result['seed']}")
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
    from story_env.run.diversity import text_lines

    print("  diversity and distribution:")
    for line in text_lines(result["diversity"]):
        print(f"    {line}")
    for i, story in enumerate(result["samples"], 1):
        print(f"  sample {i}: {story.strip()[:300]}")
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
    p.add_argument(
        "--no-mauve",
        action="store_true",
        help="leave MAUVE out of the diversity figures. By default it runs whenever there "
        "are 20 stories or more (it loads SmolLM2-135M and needs "
        "pip install 'storytelling[mauve]')",
    )


def cmd_compare(args: argparse.Namespace) -> int:
    from story_env.run.comparison import compare

    table = compare(
        _config(args),
        args.algorithms,
        args.seeds,
        args.out,
        eval_stories=args.eval_stories,
        resume=args.resume,
        progress=not args.no_progress,
        judges=[] if args.no_judge else args.judge,
        mauve=not args.no_mauve,
    )
    if _json_out(args, json.loads((Path(args.out) / "results.json").read_text("utf-8"))):
        return 0
    print(table)
    print(f"wrote {args.out}/results.md, results.json and curves.png")
    return 0


def add_train(p: argparse.ArgumentParser) -> None:
    _add_run_flags(p)
    p.add_argument(
        "--out", required=True, help="run folder: config, checkpoint, stories.jsonl, tensorboard"
    )
    p.add_argument("--resume", action="store_true", help="continue the run in --out")
    p.add_argument(
        "--json",
        metavar="FILE",
        help=_JSON_HELP,
    )
    p.set_defaults(func=cmd_train)


def add_eval(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--checkpoint", help="a `storytelling train` run folder (default: the untrained student)"
    )
    from story_env.run.config import add_config_flags

    add_config_flags(  # the settings eval shares with a run, declared once in TrainConfig
        p,
        only=("student", "student_kwargs", "teacher_kwargs", "seed", "num_envs", "max_new_tokens"),
    )
    p.add_argument(
        "--teacher", help="teacher name (default: the run's own teacher, else heuristic)"
    )
    _add_judge_flags(p)
    p.add_argument(
        "--stories",
        type=int,
        default=EVAL_STORIES,
        help=f"stories to write (default: {EVAL_STORIES})",
    )
    p.add_argument(
        "--top-p",
        type=float,
        help="untrained student: sample inside its own nucleus (as MaskablePPO)",
    )
    p.add_argument("--top-k", type=int, help="untrained student: sample inside its own top k")
    p.add_argument("--json", metavar="FILE", help=_JSON_HELP)
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=cmd_eval)


def add_compare(p: argparse.ArgumentParser) -> None:
    _add_run_flags(p, algorithm=False)
    p.add_argument(
        "--algorithms",
        type=name_list,
        default="ppo_story,ppo",
        help="comma-separated registered algorithms (default: ppo_story,ppo)",
    )
    p.add_argument(
        "--seeds", type=seed_list, default="0,1", help="comma-separated seeds (default: 0,1)"
    )
    p.add_argument(
        "--eval-stories",
        type=positive_int,
        default=EVAL_STORIES,
        help=f"stories each trained run writes for its evaluation (default: {EVAL_STORIES})",
    )
    _add_judge_flags(p)
    p.add_argument("--out", required=True, help="folder of the comparison: one run per row")
    p.add_argument("--resume", action="store_true", help="continue the runs in --out")
    p.add_argument("--json", metavar="FILE", help=_JSON_HELP)
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
    result = run(
        config,
        args.out,
        progress=not args.no_progress,
        rates=rates,
        on_stage=on_stage,
        jobs=args.jobs,
    )
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
    p.add_argument(
        "--jobs",
        type=int,
        default=1,
        help="stages run at once after pretraining, each in its own process with cores/JOBS "
        "threads (default 1: one by one)",
    )
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
    out.parent.mkdir(parents=True, exist_ok=True)  # the user data folder may not exist yet
    data = {"version": CALIBRATION_VERSION, "models": {}}
    if out.is_file():
        old = json.loads(out.read_text("utf-8"))
        if old.get("version") == CALIBRATION_VERSION:
            data = old
    data["models"][model_id] = entry
    write_atomic(
        out,
        json.dumps(data, indent=2, sort_keys=True) + "\n",
        "lm calibration",
        "run calibrate-lm again",
    )
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
