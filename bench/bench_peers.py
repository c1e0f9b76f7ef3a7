"""Our PPO and our ``grpo`` against plain TRL ``GRPOTrainer`` on the same work.

    OMP_NUM_THREADS=1 python bench/bench_peers.py [--tokens 20000] [--repeats 3] [--threads 1]
        [--systems ppo,ppo_story,ppo_story2,grpo,trl,trl2] [--judge lm] [--json FILE]
        [--teacher lm --teacher-kwargs '{"dtype": "bfloat16"}' --judge lm:gemma]
    python bench/bench_peers.py --pool FILE [FILE ...]

The systems train the same student (``tiny``) against the same teacher (``heuristic``;
``--teacher`` and ``--teacher-kwargs`` choose another, e.g. the demo's ``lm``) on the
paper's prompt (``story_env.prompts.PAPER_PROMPT``), with KL coefficient 0.01,
learning rate 1e-4, stories of at most 90 tokens and a budget of ``--tokens`` completion
tokens (end-of-story tokens included), run a, b, c, a, b, c... (``--repeats`` rounds,
seed ``--seed + round``):

* ``ppo``: ``story_env.run.training.train`` with PPO, 16 envs, ``n_steps`` 64,
  ``batch_size`` 512, ``n_epochs`` 2 (whole rollouts: the budget rounds up to 1,024);
* ``ppo_story``: ``StoryPPO``, the default algorithm (no critic: each token gets its
  story's grade standardised over the rollout's stories, less its own KL; GRPO's
  signal, ``story_env.agents.rl.story_ppo``), ``n_steps`` 90 (one story length: a slot whose
  story ends waits for the next rollout, so each rollout is 16 whole stories) and one
  minibatch of the whole rollout: 16 stories per optimisation step, as TRL's 16
  completions per step, gradients clipped at TRL's norm 1.0, one pass (its default, as
  TRL's);
* ``ppo_story2``: the same with two passes over each rollout (``n_epochs`` 2);
* ``grpo``: the same ``train`` with our TRL plugin (16 completions per step, groups of 8);
* ``trl``: TRL's ``GRPOTrainer`` used directly, as a TRL user would: the tiny student
  loaded with transformers from its folder, ``teacher_reward_function("heuristic")`` as
  the reward, 16 completions per step, groups of 8, ``beta`` 0.01, no vLLM, stopped by a
  callback once the budget is spent. Set as our plugin sets it: float32
  (``bf16=False``), constant learning rate, no activation checkpointing (TRL's default
  trades compute for memory, which a 4M-parameter model does not need), no checkpoints;
* ``trl2``: the same with ``num_iterations`` 2: each batch of completions serves two
  optimisation steps, as each rollout serves ``ppo``'s and ``ppo_story2``'s two epochs
  (the comparison "at an equal number of optimisation passes per token").

Printed per system (mean over repeats): tokens/s (training wall time, model building
excluded, as ``train`` reports it) with its range; where the time went, timed by
wrapping methods (exclusive: a nested call's time counts once, in its own phase):

* rollout: ``collect_rollouts`` (SB3) or ``GRPOTrainer._prepare_inputs`` (TRL:
  ``generate`` plus the batch's bookkeeping);
* reference: ``ReferenceVecEnv._reference_logp`` (one cached token per step, the
  per-step mode) and ``ReferenceVecEnv.rollout_logps`` (one teacher-forced pass per
  rollout, what training without masks uses), or the
  ``_get_per_token_logps_and_entropies`` calls on TRL's ``ref_model``;
* teacher: the teacher's ``score``;
* update: ``PPO.train`` or ``GRPOTrainer.training_step`` (forward and backward);
* checkpoint: ``RunCallback.save`` or ``Trainer._save_checkpoint``;
* other: the rest of the wall time (the optimizer step of TRL, SB3's and the Trainer's
  loops, the PPO run's warm-start story wave apart from its teacher and reference calls).

and the teacher's gain: mean teacher score of the run's first and last 32 stories (its
story log; TRL's graded completions in order), and that difference per 100 stories
between the two windows' centres. ``--judge lm`` (or ``lm:gemma``...) also grades those
stories with a held-out judge (``story_env.run.judging.parse_judge``); without it the
held-out judge is not measured. ``--json FILE`` writes the table and every run;
``--pool`` reads such files (of different seeds) and prints the gains over all their runs
per system, and each system's difference from the first one's (also from the common
start: every run's last window against the mean first window of all runs), trains
nothing.
Without TRL installed the ``grpo`` and ``trl`` rows are skipped (one line says so).
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import importlib.util
import json
import math
import os
import statistics
import sys
import tempfile
import time
import warnings
from collections import defaultdict
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

SYSTEMS = {
    "ppo": "ours, PPO (2 epochs)",
    "ppo_story": "ours, PPO, story advantage (the default, 1 epoch)",
    "ppo_story2": "ours, PPO, story advantage (2 epochs)",
    "grpo": "ours, grpo (TRL plugin)",
    "trl": "TRL GRPOTrainer, plain",
    "trl2": "TRL GRPOTrainer, num_iterations 2",
}
PHASES = ("rollout", "reference", "teacher", "update", "checkpoint", "other")
WINDOW = 32  # stories at each end of a run for the gain
TEACHER, STUDENT, KL_COEF, LR, NUM_ENVS, GROUP, MAX_NEW = "heuristic", "tiny", 0.01, 1e-4, 16, 8, 90
#: The reward: a registered teacher's name and its factory's keyword arguments (--teacher).
TeacherSpec = tuple[str, dict[str, Any]]
PPO_KWARGS = {"n_steps": 64, "batch_size": 512, "n_epochs": 2, "learning_rate": LR}
# one rollout = one story length in every env, one minibatch: GRPO's 16 stories per step;
# gradients clipped at TRL's norm (1.0; SB3's default is 0.5)
STORY_KWARGS = {
    "n_steps": MAX_NEW,
    "batch_size": NUM_ENVS * MAX_NEW,
    "n_epochs": 1,
    "learning_rate": LR,
    "max_grad_norm": 1.0,
}
OURS = {  # system -> algorithm, algo_kwargs
    "ppo": ("ppo", PPO_KWARGS),
    "ppo_story": ("ppo_story", STORY_KWARGS),
    "ppo_story2": ("ppo_story", {**STORY_KWARGS, "n_epochs": 2}),
    "grpo": ("grpo", {"learning_rate": LR, "num_generations": GROUP}),
}
TRL_MISSING = (
    "TRL is not installed: the grpo and TRL GRPOTrainer rows are skipped "
    "(pip install 'storytelling[trl]')"
)


class PhaseTimer:
    """Exclusive seconds per phase of wrapped calls: a nested call counts in its own phase."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)
        self._children: list[float] = []  # time spent in wrapped calls below each open call

    def wrap(self, fn: Callable, phase: str | Callable[..., str]) -> Callable:
        timer = self

        @functools.wraps(fn)
        def timed(*args: Any, **kwargs: Any) -> Any:
            name = phase(*args, **kwargs) if callable(phase) else phase
            timer._children.append(0.0)
            start = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                spent = time.perf_counter() - start
                timer.seconds[name] += spent - timer._children.pop()
                if timer._children:
                    timer._children[-1] += spent

        return timed

    @contextlib.contextmanager
    def patch(self, owner: type, attr: str, phase: str | Callable[..., str]) -> Iterator[None]:
        """Time ``owner.attr`` (a method) as ``phase`` while the context is open."""
        own = attr in owner.__dict__
        original = owner.__dict__.get(attr)
        setattr(owner, attr, self.wrap(getattr(owner, attr), phase))
        try:
            yield
        finally:
            if own:
                setattr(owner, attr, original)
            else:
                delattr(owner, attr)

    def breakdown(self, wall_s: float) -> dict[str, float]:
        out = {p: float(self.seconds.get(p, 0.0)) for p in PHASES if p != "other"}
        out["other"] = max(0.0, wall_s - sum(out.values()))
        return out


def _teacher_class(teacher_spec: TeacherSpec) -> type:
    from story_env.registry import create_teacher
    from story_env.teacher import close_teacher

    teacher = create_teacher(teacher_spec[0], **teacher_spec[1])
    close_teacher(teacher)
    return type(teacher)


@contextlib.contextmanager
def _timed(timer: PhaseTimer, targets: list[tuple[type, str, Any]]) -> Iterator[None]:
    with contextlib.ExitStack() as stack:
        for owner, attr, phase in targets:
            stack.enter_context(timer.patch(owner, attr, phase))
        yield


def _trl_targets(teacher: TeacherSpec) -> list[tuple[type, str, Any]]:
    from trl import GRPOTrainer

    def logps_phase(trainer: Any, model: Any, *_: Any, **__: Any) -> str:
        return "reference" if model is getattr(trainer, "ref_model", None) else "update"

    return [  # _save_checkpoint is transformers' Trainer's, patched on GRPOTrainer
        (GRPOTrainer, "training_step", "update"),
        (GRPOTrainer, "_prepare_inputs", "rollout"),
        (GRPOTrainer, "_get_per_token_logps_and_entropies", logps_phase),
        (GRPOTrainer, "_save_checkpoint", "checkpoint"),
        (_teacher_class(teacher), "score", "teacher"),
    ]


def _ppo_targets(name: str, teacher: TeacherSpec) -> list[tuple[type, str, Any]]:
    from story_env.agents.rl.reference import ReferenceVecEnv, RolloutReference
    from story_env.registry import get_algorithm
    from story_env.run.callbacks import RunCallback

    algorithm = get_algorithm(name).load()
    return [
        (algorithm, "collect_rollouts", "rollout"),
        (algorithm, "train", "update"),
        (ReferenceVecEnv, "_reference_logp", "reference"),
        (RolloutReference, "rollout_logps", "reference"),
        (RunCallback, "save", "checkpoint"),
        (_teacher_class(teacher), "score", "teacher"),
    ]


def _read_log(path: Path) -> list[dict[str, Any]]:
    """(prompt, story, teacher_score) of every story in a run's ``stories.jsonl``."""
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return [
        {"prompt": r["prompt"], "story": r["story"], "teacher_score": r["teacher_score"]}
        for r in rows
    ]


def run_ours(
    system: str,
    tokens: int,
    seed: int,
    changes: dict[str, Any] | None = None,
    teacher: TeacherSpec = (TEACHER, {}),
) -> dict[str, Any]:
    """One run of our ``train`` (``ppo``, ``ppo_story`` or ``grpo``) on the shared task.

    ``changes``: ``algo_kwargs`` merged over the system's, ``kl_coef`` in place of
    ``KL_COEF``, ``num_envs`` in place of ``NUM_ENVS`` and ``algorithm`` in place of the
    system's (bench_ppo_settings.py); none for the comparison itself.
    """
    changes = dict(changes or {})
    kl_coef = changes.pop("kl_coef", KL_COEF)
    num_envs = changes.pop("num_envs", NUM_ENVS)
    algorithm, algo_kwargs = OURS[system]
    algorithm = changes.pop("algorithm", algorithm)
    from story_env.prompts import PAPER_PROMPT
    from story_env.run.config import TrainConfig
    from story_env.run.training import train

    algo_kwargs = {**algo_kwargs, **changes}
    config = TrainConfig(
        algorithm=algorithm,
        student=STUDENT,
        teacher=teacher[0],
        teacher_kwargs=teacher[1],
        prompts=(PAPER_PROMPT,),
        max_new_tokens=MAX_NEW,
        num_envs=num_envs,
        kl_coef=kl_coef,
        steps=tokens,
        seed=seed,
        algo_kwargs=algo_kwargs,
    )
    timer = PhaseTimer()
    targets = (
        _ppo_targets(algorithm, teacher) if algorithm.startswith("ppo") else _trl_targets(teacher)
    )
    with tempfile.TemporaryDirectory(prefix=f"bench_peers_{algorithm}_") as out:
        with _timed(timer, targets):
            summary = train(config, out, progress=False)
        stories = _read_log(Path(out) / "stories.jsonl")
    wall = float(summary["wall_s"])
    return {
        "tokens": int(summary["steps"]),
        "wall_s": wall,
        "phases": timer.breakdown(wall),
        "stories": stories,
    }


def run_trl(
    tokens: int, seed: int, iterations: int = 1, teacher: TeacherSpec = (TEACHER, {})
) -> dict[str, Any]:
    """One run of plain TRL ``GRPOTrainer``, set up as a TRL user would.

    ``iterations`` is TRL's ``num_iterations``: optimisation steps per batch of completions.
    """
    import torch
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback
    from transformers.trainer_callback import PrinterCallback, ProgressCallback
    from trl import GRPOConfig, GRPOTrainer

    from story_env.agents.students.tiny import build_tiny
    from story_env.prompts import PAPER_PROMPT
    from story_env.trl import teacher_reward_function

    stories: list[dict[str, Any]] = []
    spent = [0]

    def graded(infos: list[dict[str, Any]]) -> None:
        for info in infos:
            spent[0] += int(info["tokens"])
            stories.append({k: info[k] for k in ("prompt", "story", "teacher_score")})

    class Budget(TrainerCallback):  # type: ignore[misc]
        def on_step_end(self, args: Any, state: Any, control: Any, **_: Any) -> None:
            control.should_training_stop = spent[0] >= tokens

    folder = build_tiny(progress=False)
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_pretrained(folder)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    reward = teacher_reward_function(
        teacher[0], max_new_tokens=MAX_NEW, on_graded=graded, **teacher[1]
    )
    batches = math.ceil(tokens / NUM_ENVS)  # every completion has at least one token
    timer = PhaseTimer()
    with tempfile.TemporaryDirectory(prefix="bench_peers_trl_") as out:
        args = GRPOConfig(
            output_dir=out,
            per_device_train_batch_size=NUM_ENVS,
            num_generations=GROUP,
            beta=KL_COEF,
            learning_rate=LR,
            lr_scheduler_type="constant",
            max_completion_length=MAX_NEW,
            num_iterations=iterations,
            max_steps=batches * iterations,
            seed=seed,
            use_cpu=True,
            bf16=False,
            activation_checkpointing=False,
            save_strategy="no",
            report_to="none",
            disable_tqdm=True,
        )
        data = Dataset.from_dict({"prompt": [PAPER_PROMPT] * (batches * NUM_ENVS // GROUP)})
        trainer = GRPOTrainer(
            model=model,
            reward_funcs=reward,
            args=args,
            train_dataset=data,
            processing_class=tokenizer,
            callbacks=[Budget()],
        )
        for printer in (PrinterCallback, ProgressCallback):
            trainer.remove_callback(printer)
        with _timed(timer, _trl_targets(teacher)):
            start = time.perf_counter()
            trainer.train()
            wall = time.perf_counter() - start
    reward.close()
    return {"tokens": spent[0], "wall_s": wall, "phases": timer.breakdown(wall), "stories": stories}


def teacher_gain(scores: list[float]) -> dict[str, float | None]:
    """First and last ``WINDOW`` scores' means, and their difference per 100 stories."""
    scores = [s for s in scores if s is not None and not math.isnan(s)]
    if len(scores) < 2 * WINDOW:
        return {"first": None, "last": None, "per_100": None, "stories": len(scores)}
    first = sum(scores[:WINDOW]) / WINDOW
    last = sum(scores[-WINDOW:]) / WINDOW
    per_100 = (last - first) * 100 / (len(scores) - WINDOW)  # windows' centres apart
    return {"first": first, "last": last, "per_100": per_100, "stories": len(scores)}


def not_held_out(judge_text: str, teacher: TeacherSpec) -> str | None:
    """Why ``judge_text`` cannot be the held-out judge of runs rewarded by ``teacher``
    (random, or the reward's teacher on the same model), or None."""
    from story_env.run.judging import parse_judge

    judge = parse_judge(judge_text)
    same_model = dict(judge.kwargs).get("model") == teacher[1].get("model")
    if judge.name == "random" or (judge.name == teacher[0] and same_model):
        return (
            f"--judge {judge_text}: a held-out judge is neither random nor the reward "
            f"(teacher {teacher[0]}); e.g. --judge lm:gemma"
        )
    return None


def judge_runs(runs: list[dict[str, Any]], spec_text: str) -> None:
    """Grade every run's first and last ``WINDOW`` stories with a held-out judge, in one batch."""
    from story_env.registry import create_teacher
    from story_env.run.judging import parse_judge
    from story_env.teacher import StoryRequest, close_teacher

    spec = parse_judge(spec_text)
    judge = create_teacher(spec.name, **dict(spec.kwargs))
    requests, owners = [], []
    for k, run in enumerate(runs):
        picked = run["stories"][:WINDOW] + run["stories"][-WINDOW:]
        if len(run["stories"]) < 2 * WINDOW:
            continue
        requests += [StoryRequest(s["prompt"], s["story"]) for s in picked]
        owners += [k] * len(picked)
    try:
        grades = judge.score(requests) if requests else []
    finally:
        close_teacher(judge)
    per_run: dict[int, list[float | None]] = defaultdict(list)
    for k, grade in zip(owners, grades, strict=True):
        per_run[k].append(float(grade.total) if grade.ok and grade.total is not None else None)
    for k, run in enumerate(runs):
        totals = per_run.get(k, [])
        run["judge"] = spec.label
        run["judge_gain"] = _window_gain(totals, len(run["stories"])) if totals else None


def _window_gain(totals: list[float | None], stories: int) -> dict[str, float | None]:
    """Judge means of the first and last window (failed grades left out), per 100 stories."""
    first = [t for t in totals[:WINDOW] if t is not None]
    last = [t for t in totals[WINDOW:] if t is not None]
    if not first or not last:
        return {"first": None, "last": None, "per_100": None}
    f, l_ = sum(first) / len(first), sum(last) / len(last)
    return {"first": f, "last": l_, "per_100": (l_ - f) * 100 / (stories - WINDOW)}


def summarise(system: str, runs: list[dict[str, Any]]) -> dict[str, Any]:
    """One table row: means over a system's repeats."""

    def mean(values: list[float]) -> float | None:
        values = [v for v in values if v is not None]
        return sum(values) / len(values) if values else None

    speeds = [r["tokens_per_s"] for r in runs]
    row: dict[str, Any] = {
        "system": SYSTEMS[system],
        "key": system,
        "repeats": len(runs),
        "tokens": mean([r["tokens"] for r in runs]),
        "tokens_per_s": mean(speeds),
        "tokens_per_s_range": [min(speeds), max(speeds)],
        "wall_s": mean([r["wall_s"] for r in runs]),
        "phases_s": {p: mean([r["phases"][p] for r in runs]) for p in PHASES},
    }
    for key in ("teacher_gain", "judge_gain"):
        gains = [r.get(key) for r in runs if r.get(key)]
        row[key] = (
            {part: mean([g[part] for g in gains]) for part in ("first", "last", "per_100")}
            if gains
            else None
        )
    return row


def _gain_text(gain: dict[str, Any] | None) -> tuple[str, str]:
    if not gain or gain["per_100"] is None:
        return "too few stories", "-"
    return f"{gain['first']:.3f} -> {gain['last']:.3f}", f"{gain['per_100']:+.4f}"


def print_table(rows: list[dict[str, Any]], judge: str | None) -> None:
    """The rows as a Markdown table (seconds per run, mean over repeats, share of wall)."""
    phases = " | ".join(f"{p} s" for p in PHASES)
    judged = (
        f" | held-out judge ({judge}) first -> last 32 | judge gain / 100 stories" if judge else ""
    )
    print(
        f"| system | tokens/s mean (range) | tokens/run | {phases} | teacher first -> last 32 "
        f"| teacher gain / 100 stories{judged} |"
    )
    print("|---" * (5 + len(PHASES) + (2 if judge else 0)) + "|")
    for row in rows:
        low, high = row["tokens_per_s_range"]
        wall = row["wall_s"]
        cells = [
            row["system"],
            f"{row['tokens_per_s']:,.0f} ({low:,.0f}-{high:,.0f})",
            f"{row['tokens']:,.0f}",
            *(f"{row['phases_s'][p]:.1f} ({row['phases_s'][p] / wall:.0%})" for p in PHASES),
            *_gain_text(row["teacher_gain"]),
        ]
        if judge:
            cells += list(_gain_text(row["judge_gain"]))
        print("| " + " | ".join(cells) + " |")
    for base in (r for r in rows if r["key"] in ("trl", "trl2")):
        for row in rows:
            if not row["key"].startswith("trl"):
                ratio = row["tokens_per_s"] / base["tokens_per_s"]
                print(f"{row['system']}: {ratio:.2f}x {base['system']}'s tokens/s")


def pool(paths: list[Path]) -> list[str]:
    """The runs of several ``--json`` files as one table: per system the seeds, and the
    teacher's and the held-out judge's gain per 100 stories, mean (standard error) over
    the seeds; then each other system's difference from the first system's, with a 95%
    interval (normal; the runs of two systems are independent).

    A second table measures each run's gain from the common start: the mean of every
    run's first window, all systems together (they all start from the same student, so
    their first windows differ by sampling alone, which the start line checks), to the
    run's last window. Its differences between systems are the differences of their last
    windows, free of the first windows' sampling noise."""
    by_system: dict[str, dict[int, dict[str, Any]]] = {}
    for path in paths:
        for run in json.loads(path.read_text())["runs"]:
            seeds = by_system.setdefault(run["system"], {})
            if run["seed"] in seeds:
                raise SystemExit(
                    f"error: {run['system']} seed {run['seed']} is in two runs ({path} and an "
                    "earlier file): pool files of different seeds"
                )
            seeds[run["seed"]] = run
    runs = {system: list(seeds.values()) for system, seeds in by_system.items()}
    lines = _pooled_table(runs, lambda run, key: run[key]["per_100"], "gain / 100 stories")
    starts = {
        key: [r[key]["first"] for rs in runs.values() for r in rs if _has_windows(r, key)]
        for key in ("teacher_gain", "judge_gain")
    }
    if all(len(v) >= 2 for v in starts.values()):
        common = {key: statistics.fmean(v) for key, v in starts.items()}

        def from_start(run: dict[str, Any], key: str) -> float | None:
            if not _has_windows(run, key):
                return None
            stories = run["teacher_gain"]["stories"]
            return (run[key]["last"] - common[key]) * 100 / (stories - WINDOW)

        lines += [
            "",
            "From the common start (teacher {teacher_gain:.4f}, judge {judge_gain:.4f}):".format(
                **common
            ),
        ]
        lines += _pooled_table(runs, from_start, "gain / 100 stories from the common start")
        lines += _differences(
            _figures(runs, lambda run, key: run[key]["first"] if _has_windows(run, key) else None),
            "start",
        )
    return lines


def _has_windows(run: dict[str, Any], key: str) -> bool:
    windows = run.get(key) or {}
    return all(windows.get(part) is not None for part in ("first", "last")) and bool(
        (run.get("teacher_gain") or {}).get("stories")
    )


def _figures(
    runs: dict[str, list[dict[str, Any]]], value: Callable[[dict[str, Any], str], float | None]
) -> dict[str, dict[str, tuple[float, float]]]:
    """Per system and key (teacher_gain, judge_gain): mean and standard error over runs."""
    figures: dict[str, dict[str, tuple[float, float]]] = {}
    for system, system_runs in runs.items():
        for key in ("teacher_gain", "judge_gain"):
            values = [v for r in system_runs if r.get(key) and (v := value(r, key)) is not None]
            if len(values) >= 2:
                se = statistics.stdev(values) / math.sqrt(len(values))
                figures.setdefault(system, {})[key] = (statistics.fmean(values), se)
    return figures


def _pooled_table(
    runs: dict[str, list[dict[str, Any]]],
    value: Callable[[dict[str, Any], str], float | None],
    what: str,
) -> list[str]:
    figures = _figures(runs, value)
    lines = [
        f"| system | seeds | teacher {what} | held-out judge {what} |",
        "|---|---|---|---|",
    ]
    for system, system_runs in runs.items():
        cells = [
            f"{figures[system][k][0]:+.4f} ({figures[system][k][1]:.4f})"
            if k in figures.get(system, {})
            else "not measured"
            for k in ("teacher_gain", "judge_gain")
        ]
        lines.append(
            f"| {SYSTEMS.get(system, system)} | {len(system_runs)} | " + " | ".join(cells) + " |"
        )
    return lines + _differences(figures, "")


def _differences(figures: dict[str, dict[str, tuple[float, float]]], label: str) -> list[str]:
    """Each other system's difference from the first, per key, with its 95% interval."""
    if not figures:
        return []
    first, *others = list(figures)
    lines = []
    for other in others:
        for key, name in (("teacher_gain", "teacher"), ("judge_gain", "held-out judge")):
            if key in figures[first] and key in figures[other]:
                (m1, se1), (m2, se2) = figures[first][key], figures[other][key]
                diff, se = m1 - m2, math.sqrt(se1**2 + se2**2)
                lines.append(
                    f"{name}{' ' + label if label else ''}: {first} - {other} = {diff:+.4f} "
                    f"(standard error {se:.4f}; 95% interval {diff - 1.96 * se:+.4f} to "
                    f"{diff + 1.96 * se:+.4f})"
                )
    return lines


def _parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tokens", type=int, default=20_000, help="completion tokens per run")
    parser.add_argument("--repeats", type=int, default=3, help="interleaved rounds")
    parser.add_argument("--threads", type=int, default=1, help="OMP_NUM_THREADS and torch threads")
    parser.add_argument("--seed", type=int, default=1, help="seed of round 0 (round r: seed + r)")
    parser.add_argument(
        "--systems",
        default="ppo,ppo_story,grpo,trl,trl2",
        help="comma-separated: ppo,ppo_story,grpo,trl,trl2",
    )
    parser.add_argument(
        "--teacher",
        default=TEACHER,
        help=f"the reward: a registered teacher (default {TEACHER}; lm is the demo's)",
    )
    parser.add_argument(
        "--teacher-kwargs",
        type=json.loads,
        default={},
        help='JSON keyword arguments of the teacher, e.g. \'{"dtype": "bfloat16"}\'',
    )
    parser.add_argument(
        "--judge",
        default=None,
        help="held-out judge of the first/last 32 stories (e.g. lm, lm:gemma; not random)",
    )
    parser.add_argument("--json", type=Path, default=None, help="also write the table here")
    parser.add_argument(
        "--pool",
        type=Path,
        nargs="+",
        default=None,
        help="train nothing: pool the runs of these --json files (different seeds) into one table",
    )
    args = parser.parse_args()
    args.systems = [s.strip() for s in args.systems.split(",") if s.strip()]
    unknown = sorted(set(args.systems) - set(SYSTEMS))
    if unknown:
        parser.error(f"unknown systems {unknown}; choose from {', '.join(SYSTEMS)}")
    if not isinstance(args.teacher_kwargs, dict):
        parser.error(f"--teacher-kwargs {args.teacher_kwargs!r}: give a JSON object")
    if args.judge and (error := not_held_out(args.judge, (args.teacher, args.teacher_kwargs))):
        parser.error(error)
    args.teacher = (args.teacher, args.teacher_kwargs)
    if min(args.tokens, args.repeats, args.threads) < 1:
        parser.error("--tokens, --repeats and --threads must be >= 1")
    return args


def _quiet() -> None:
    """No FutureWarnings TRL causes in transformers, no weight-loading bars or notices."""
    from transformers.utils import logging as hf_logging

    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", message=".*attention mask.*")
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()


def run_system(
    system: str,
    tokens: int,
    seed: int,
    changes: dict[str, Any] | None = None,
    teacher: TeacherSpec = (TEACHER, {}),
) -> dict[str, Any]:
    if system.startswith("trl"):
        run = run_trl(tokens, seed, iterations=2 if system == "trl2" else 1, teacher=teacher)
    else:
        run = run_ours(system, tokens, seed, changes, teacher)
    run.update(system=system, seed=seed, tokens_per_s=run["tokens"] / run["wall_s"])
    run["teacher_gain"] = teacher_gain([s["teacher_score"] for s in run["stories"]])
    return run


def main() -> None:
    args = _parse()
    if args.pool:
        print("\n".join(pool(args.pool)))
        return
    os.environ["OMP_NUM_THREADS"] = os.environ["MKL_NUM_THREADS"] = str(args.threads)
    import torch

    torch.set_num_threads(args.threads)
    systems = args.systems
    needs_trl = [s for s in systems if s not in OURS or OURS[s][0] == "grpo"]
    if importlib.util.find_spec("trl") is None and needs_trl:
        print(TRL_MISSING)
        systems = [s for s in systems if s not in needs_trl]
    _quiet()
    from story_env.agents.students.tiny import build_tiny

    build_tiny(progress=False)  # a first use builds it, outside every timed run
    load_before = os.getloadavg()
    print(
        f"cores: {os.cpu_count()}  threads: {torch.get_num_threads()} "
        f"(OMP_NUM_THREADS={os.environ['OMP_NUM_THREADS']})  load average: "
        f"{' '.join(f'{x:.2f}' for x in load_before)}  command: python {' '.join(sys.argv)}"
    )
    runs = []
    for repeat in range(args.repeats):
        for system in systems:
            run = run_system(system, args.tokens, args.seed + repeat, teacher=args.teacher)
            run["repeat"] = repeat
            runs.append(run)
            print(
                f"  round {repeat} {system}: {run['tokens']:,} tokens in {run['wall_s']:.1f} s "
                f"= {run['tokens_per_s']:,.0f} tokens/s, {len(run['stories'])} stories",
                flush=True,
            )
    if args.judge:
        judge_runs(runs, args.judge)
    rows = [summarise(s, [r for r in runs if r["system"] == s]) for s in systems]
    load_after = os.getloadavg()
    print()
    print_table(rows, args.judge)
    if not args.judge:
        print("held-out judge: not measured (--judge lm to measure)")
    print(f"load average after: {' '.join(f'{x:.2f}' for x in load_after)}")
    if args.json:
        report = {
            "command": f"python {' '.join(sys.argv)}",
            "cores": os.cpu_count(),
            "threads": args.threads,
            "load_average": {"before": load_before, "after": load_after},
            "settings": {"tokens": args.tokens, "repeats": args.repeats, "seed": args.seed},
            "rows": rows,
            "runs": [{k: v for k, v in r.items() if k != "stories"} for r in runs],
        }
        args.json.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
