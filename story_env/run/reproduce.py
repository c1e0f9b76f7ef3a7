"""Reproduce the paper's data-efficiency experiment at this machine's scale.

Stages, each resumable (a finished stage leaves ``done.json`` and is skipped next time):

1. ``pretrain``: one next-word-prediction run of the tiny architecture that writes a
   checkpoint at every budget of the ladder (as the paper checkpoints by words seen).
2. ``rl/<budget>-seed<s>``: PPO from each checkpoint against the same teacher, for the
   same interactive word budget (prompt words + teacher words), at several seeds;
   the teacher score is measured before and after on fixed evaluation seeds.
3. ``control``: the same RL with the random-reward teacher from one checkpoint.
4. ``results.md`` / ``results.json`` / ``curves.png``: the paper-style table, the
   "NWP words equivalent" of the RL gain, and both curves.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np

from agents.corpus.load import read_stories
from agents.pretraining.pretrain import ModelConfig, PretrainConfig, checkpoint_name, pretrain
from story_env.errors import ConfigError
from story_env.run.config import TrainConfig
from story_env.run.evaluation import evaluate
from story_env.run.judging import resolve_judges
from story_env.run.plots import figure
from story_env.run.training import train
from story_env.run_folder import (
    CONFIG,
    check_resume,
    public_config,
    read_config,
    write_atomic,
    write_config,
)


@dataclass(frozen=True)
class ReproConfig:
    """The experiment's settings (saved as ``config.json``).

    Attributes:
        budgets: Pretraining word budgets (checkpoints of one run), at least 5 spanning >= 20x.
        interactive_words: RL budget per run, counted as the paper counts.
        seeds: RL seeds per checkpoint.
        teacher: The grading teacher (RL reward and evaluation).
        judges: Held-out judges grading the same evaluation stories (``NAME``,
            ``NAME:MODEL`` or ``NAME:{json}``); ``None`` = the default held-out judge.
        control_budget: Checkpoint the random-reward control starts from (default: the middle).
        eval_stories: Stories per evaluation (fixed seeds, same for before and after).
        num_envs: Stories written at once during RL.
        max_new_tokens: Story length limit.
        algo_kwargs: PPO settings.
        kl_coef: KL shaping coefficient toward the starting checkpoint.
        model: The student architecture.
        pretrain_batch_size: Sequences per pretraining step.
        pretrain_block_size: Tokens per pretraining sequence.
        train_file: Stories to pretrain on (one per line); default the packaged corpus.
        val_file: Validation stories; default the packaged corpus.
    """

    budgets: tuple[int, ...] = (25_000, 50_000, 100_000, 200_000, 500_000, 1_000_000)
    interactive_words: int = 20_000
    seeds: tuple[int, ...] = (0, 1)
    teacher: str = "heuristic"
    judges: tuple[str, ...] | None = None
    control_budget: int | None = None
    eval_stories: int = 64
    num_envs: int = 8
    max_new_tokens: int = 90
    algo_kwargs: dict[str, Any] = field(
        default_factory=lambda: {
            "n_steps": 64,
            "batch_size": 256,
            "n_epochs": 2,
            "learning_rate": 3e-5,
        }
    )
    kl_coef: float = 0.01
    model: ModelConfig = field(default_factory=ModelConfig)
    pretrain_batch_size: int = 16
    pretrain_block_size: int = 128
    train_file: str | None = None
    val_file: str | None = None

    def __post_init__(self) -> None:
        budgets = sorted(self.budgets)
        if len(budgets) < 2 or budgets[0] < 1:
            raise ConfigError(
                f"budgets must be at least two positive word counts, got {self.budgets}"
            )
        if self.control_budget is not None and self.control_budget not in budgets:
            raise ConfigError(
                f"control_budget {self.control_budget} is not one of the budgets {budgets}"
            )

    @classmethod
    def from_json(cls, path: str | Path) -> ReproConfig:
        """Read a config file: a JSON object of these fields (``model`` as an object)."""
        data = json.loads(Path(path).read_text())
        if not isinstance(data, dict):
            raise ConfigError(f"{path} must hold a JSON object of ReproConfig fields")
        unknown = sorted(set(data) - {f.name for f in fields(cls)})
        if unknown:
            raise ConfigError(
                f"{path}: unknown fields {unknown}; known: {[f.name for f in fields(cls)]}"
            )
        if isinstance(data.get("model"), dict):
            data["model"] = ModelConfig(**data["model"])
        for key in ("budgets", "seeds", "judges"):
            if data.get(key) is not None:
                data[key] = tuple(data[key])
        return cls(**data)

    @property
    def control(self) -> int:
        budgets = sorted(self.budgets)
        return self.control_budget or budgets[len(budgets) // 2]


def _rl_config(config: ReproConfig, student: str, teacher: str, seed: int) -> TrainConfig:
    # steps is a ceiling: the interactive word budget ends the run
    words_per_story = 16 + 3
    steps = int(config.interactive_words / words_per_story * config.max_new_tokens * 2)
    return TrainConfig(
        algorithm="ppo",
        student=student,
        teacher=teacher,
        steps=steps,
        word_budget=config.interactive_words,
        num_envs=config.num_envs,
        max_new_tokens=config.max_new_tokens,
        kl_coef=config.kl_coef,
        seed=seed,
        checkpoint_every=max(512, steps // 10),
        algo_kwargs=dict(config.algo_kwargs),
    )


def plan(config: ReproConfig) -> list[str]:
    """Stage names, in order."""
    stages = ["pretrain"]
    stages += [f"rl/{b}-seed{s}" for b in sorted(config.budgets) for s in config.seeds]
    stages += [f"control/{config.control}-seed{config.seeds[0]}"]
    return stages


def estimate(
    config: ReproConfig, tokens_per_s_pretrain: float, steps_per_s_rl: float
) -> dict[str, float]:
    """Seconds each kind of stage should take, from measured rates."""
    tokens_per_word = 1.3
    pretrain_s = max(config.budgets) * tokens_per_word / tokens_per_s_pretrain
    rl_steps = _rl_config(config, "x", config.teacher, 0).steps / 2  # typical: half the ceiling
    rl_s = rl_steps / steps_per_s_rl
    return {
        "pretrain": pretrain_s,
        "rl": rl_s,
        "total": pretrain_s + rl_s * (len(plan(config)) - 1),
    }


def run(
    config: ReproConfig,
    out_dir: str | Path,
    *,
    progress: bool = True,
    log: Callable[[str], None] = print,
    rates: tuple[float, float] | None = None,
) -> dict[str, Any]:
    """Run (or resume) the whole experiment and write its results."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    # the run folder's guard: an experiment resumes only with the settings it began with
    settings = public_config(asdict(config))
    if (out / CONFIG).exists():
        check_resume(read_config(out), settings, out, fix="start anew with another --out")
    else:
        write_config(out, settings)
    if rates is not None:
        est = estimate(config, *rates)
        log(
            f"estimate: pretraining {est['pretrain'] / 60:.1f} min, each RL run {est['rl'] / 60:.1f} min, "
            f"{len(plan(config)) - 1} RL runs, total {est['total'] / 60:.0f} min"
        )
    timings = _load(out / "timings.json", {})
    _pretrain_stage(config, out / "pretrain", timings, out, progress, log)
    results = _load(out / "results.json", {})
    for stage in plan(config)[1:]:
        if stage not in results:
            started = time.perf_counter()
            results[stage] = _rl_stage(config, stage, out, progress, log)
            timings[stage] = time.perf_counter() - started
            _save(out / "results.json", results)
            _save(out / "timings.json", timings)

    table = write_report(config, results, timings, out)
    return {"results": results, "timings": timings, "table": table}


def _pretrain_stage(
    config: ReproConfig,
    pre: Path,
    timings: dict[str, float],
    out: Path,
    progress: bool,
    log: Callable[[str], None],
) -> None:
    """Stage 1: one pretraining run with a checkpoint at every budget of the ladder."""
    if not (pre / "done.json").exists():
        started = time.perf_counter()
        budgets = sorted(config.budgets)
        pconf = PretrainConfig(
            words=budgets[-1],
            save_at=tuple(budgets[:-1]),
            block_size=config.pretrain_block_size,
            batch_size=config.pretrain_batch_size,
            model=config.model,
        )
        log(f"stage pretrain: {budgets[-1]:,} words, checkpoints at {budgets}")
        pretrain(
            pconf,
            read_stories(config.train_file, "train"),
            read_stories(config.val_file, "validation"),
            pre,
            resume=(pre / "state.pt").exists(),
            progress=progress,
            log=log,
        )
        timings["pretrain"] = timings.get("pretrain", 0.0) + time.perf_counter() - started
        write_atomic(pre / "done.json", "{}", "pretraining stage marker")
        _save(out / "timings.json", timings)


def _rl_stage(
    config: ReproConfig, stage: str, out: Path, progress: bool, log: Callable[[str], None]
) -> dict[str, Any]:
    """Stages 2 and 3: PPO from one checkpoint (or with the random-reward control), with
    the teacher's and the judges' grades before and after."""
    kind, name = stage.split("/")
    budget, seed = (int(x) for x in name.split("-seed"))
    student = str(out / "pretrain" / checkpoint_name(budget))
    teacher = "random" if kind == "control" else config.teacher
    run_dir = out / kind / name
    log(
        f"stage {stage}: PPO from the {budget:,}-word checkpoint, teacher {teacher}, "
        f"{config.interactive_words:,} interactive words"
    )
    ev = {
        "student": student,
        "teacher": config.teacher,
        "stories": config.eval_stories,
        "num_envs": config.num_envs,
        "max_new_tokens": config.max_new_tokens,
        "seed": 10_000,
        "judges": resolve_judges(config.judges, config.teacher, {}),
    }
    # a checkpoint's starting score is the same for every seed: measure it once
    starts = _load(out / "starts.json", {})
    if str(budget) not in starts:
        starts[str(budget)] = _scores(evaluate(**ev))
        _save(out / "starts.json", starts)
    before = starts[str(budget)]
    summary = train(
        _rl_config(config, student, teacher, seed),
        run_dir,
        resume=(run_dir / "checkpoint.json").exists(),
        progress=progress,
    )
    after = _scores(evaluate(checkpoint=run_dir, **ev))
    return {
        "budget": budget,
        "seed": seed,
        "teacher": teacher,
        "start": before["teacher"][0],
        "end": after["teacher"][0],
        "end_ci": after["teacher"][1:],
        "start_ci": before["teacher"][1:],
        "judges_start": before["judges"],
        "judges_end": after["judges"],
        "interactive_words": summary["interactive_words"],
        "rl_steps": summary["steps"],
    }


def _scores(evaluation: dict[str, Any]) -> dict[str, Any]:
    """The teacher's and each judge's total (mean and 95% CI) of one evaluation."""
    return {
        "teacher": list(evaluation["teacher_score"]),
        "judges": {k: list(v["total"]) for k, v in evaluation["judges"].items() if "total" in v},
    }


def _load(path: Path, default: Any) -> Any:
    return json.loads(path.read_text()) if path.exists() else default


def _save(path: Path, data: Any) -> None:
    write_atomic(path, json.dumps(data, indent=2), path.name)


def nwp_equivalent(
    budgets: Sequence[float], start_scores: Sequence[float], score: float
) -> float | None:
    """Pretraining words at which the pretraining curve reaches ``score``.

    The curve is the mean start-of-RL score per budget, interpolated linearly in
    log(words) between neighbouring budgets, after making it non-decreasing (running
    maximum). ``None`` if the score is above the whole curve (beyond the ladder).
    """
    b = np.log(np.asarray(budgets, dtype=float))
    s = np.maximum.accumulate(np.asarray(start_scores, dtype=float))
    if score <= s[0]:
        return float(budgets[0])
    if score > s[-1]:
        return None
    k = int(np.searchsorted(s, score))
    lo, hi = k - 1, k
    frac = 0.0 if s[hi] == s[lo] else (score - s[lo]) / (s[hi] - s[lo])
    return float(math.exp(b[lo] + frac * (b[hi] - b[lo])))


def write_report(
    config: ReproConfig, results: dict[str, Any], timings: dict[str, float], out: Path
) -> str:
    """The paper-style table, the NWP-equivalent figure and the plot."""
    budgets = sorted(config.budgets)
    rows, starts, ends = [], [], []
    for b in budgets:
        runs = [r for k, r in results.items() if k.startswith(f"rl/{b}-")]
        if not runs:
            continue
        s = np.array([r["start"] for r in runs])
        e = np.array([r["end"] for r in runs])
        starts.append(float(s.mean()))
        ends.append(float(e.mean()))
        rows.append((b, s, e))
    lines = [
        f"Teacher `{config.teacher}` score in [0, 1] (x9 = the paper's 0..9 sum), mean over "
        f"{config.eval_stories} stories at fixed seeds, before and after {config.interactive_words:,} "
        f"interactive words of PPO; in parentheses the range (min..max) over seeds "
        f"{list(config.seeds)}. NWP words equivalent: the pretraining words at which the "
        "start-of-RL curve (running maximum, interpolated linearly in log words) reaches "
        "the end score.",
        "",
        "| pretrained words | start of RL | end of RL | gain | NWP words equivalent of the end score |",
        "|---|---|---|---|---|",
    ]
    done_budgets = [b for b, _, _ in rows]
    for b, s, e in rows:
        equiv = nwp_equivalent(done_budgets, starts, float(e.mean()))
        equiv_txt = (
            f"{equiv:,.0f} ({equiv - b:+,.0f})" if equiv is not None else f"> {done_budgets[-1]:,}"
        )
        lines.append(
            f"| {b:,} | {s.mean():.3f} ({s.min():.3f}..{s.max():.3f}) | {e.mean():.3f} "
            f"({e.min():.3f}..{e.max():.3f}) | {e.mean() - s.mean():+.3f} | {equiv_txt} |"
        )
    lines += _judge_lines(rows_by_budget(results, budgets))
    controls = [r for k, r in results.items() if k.startswith("control/")]
    for r in controls:
        lines.append(
            f"| {r['budget']:,} + random-reward control | {r['start']:.3f} | {r['end']:.3f} | "
            f"{r['end'] - r['start']:+.3f} | |"
        )
    lines += [
        "",
        "Wall time per stage (s): " + ", ".join(f"{k} {v:,.0f}" for k, v in timings.items()),
    ]
    table = "\n".join(lines) + "\n"
    (out / "results.md").write_text(table)
    if rows:
        _plot(out, done_budgets, starts, ends, [(r["budget"], r["end"]) for r in controls])
    return table


def rows_by_budget(results: dict[str, Any], budgets: Sequence[int]) -> list[list[dict]]:
    """The RL results of each budget (seeds together), budgets with none left out."""
    rows = [[r for k, r in results.items() if k.startswith(f"rl/{b}-")] for b in budgets]
    return [r for r in rows if r]


def _judge_lines(rows: list[list[dict]]) -> list[str]:
    """The held-out judges' table: the same stories, graded by models never the reward."""
    labels = sorted({k for runs in rows for r in runs for k in r.get("judges_end", {})})
    lines: list[str] = []
    for label in labels:
        have = [runs for runs in rows if all(label in r.get("judges_end", {}) for r in runs)]
        if not have:
            continue
        budgets = [runs[0]["budget"] for runs in have]
        starts = [float(np.mean([r["judges_start"][label][0] for r in runs])) for runs in have]
        lines += [
            "",
            f"Held-out judge `{label}` (never the reward), total in [0, 1] on the same stories:",
            "",
            "| pretrained words | start of RL | end of RL | gain | NWP words equivalent |",
            "|---|---|---|---|---|",
        ]
        for b, s0, runs in zip(budgets, starts, have, strict=True):
            e = np.array([r["judges_end"][label][0] for r in runs])
            equiv = nwp_equivalent(budgets, starts, float(e.mean()))
            eq = f"{equiv:,.0f} ({equiv - b:+,.0f})" if equiv is not None else f"> {budgets[-1]:,}"
            lines.append(
                f"| {b:,} | {s0:.3f} | {e.mean():.3f} ({e.min():.3f}..{e.max():.3f}) | "
                f"{e.mean() - s0:+.3f} | {eq} |"
            )
    return lines


def _plot(
    out: Path,
    budgets: list[int],
    starts: list[float],
    ends: list[float],
    controls: list[tuple[int, float]],
) -> None:
    with figure(out / "curves.png", (6, 4)) as ax:
        ax.plot(budgets, starts, "o-", label="after pretraining (start of RL)")
        ax.plot(budgets, ends, "s-", label="after interactive RL (end)")
        if controls:
            x, y = zip(*controls, strict=True)
            ax.plot(x, y, "kx", markersize=9, label="random-reward control (end)")
        ax.set_xscale("log")
        ax.set_xticks(budgets, [f"{b:,}" for b in budgets], rotation=30)
        ax.minorticks_off()
        ax.set_xlabel("pretraining words seen")
        ax.set_ylabel("teacher score")
        ax.legend()
        ax.set_title("Interactive learning vs more next-word prediction")


def smoke_config(train_file: str, val_file: str) -> ReproConfig:
    """Tiny budgets for a test run of the whole pipeline (well under two minutes), with the
    ``random`` teacher as its held-out judge (the columns are filled, nothing is loaded)."""
    return ReproConfig(
        budgets=(500, 1_000, 2_000, 5_000, 10_000),
        interactive_words=200,
        seeds=(0, 1),
        eval_stories=8,
        num_envs=4,
        max_new_tokens=16,
        algo_kwargs={"n_steps": 16, "batch_size": 64, "n_epochs": 1},
        model=ModelConfig(n_layer=1, n_embd=32, n_head=2, n_positions=128, vocab_size=400),
        pretrain_batch_size=4,
        pretrain_block_size=32,
        train_file=train_file,
        val_file=val_file,
        # a judge that costs nothing: the smoke run checks the pipeline, not the stories
        judges=("random",),
    )


__all__ = ["ReproConfig", "estimate", "nwp_equivalent", "plan", "run", "smoke_config"]
