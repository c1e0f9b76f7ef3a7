"""Compare algorithms on the same task: every algorithm x seed trained, then evaluated.

``compare`` writes a table (``results.md``, with each algorithm's interquartile mean over
seeds and the probability of improvement of each pair), ``results.json`` and learning
curves (``curves.png``).
"""

from __future__ import annotations

import dataclasses
import functools
import json
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from story_env.arguments import EVAL_STORIES, MAX_STORIES
from story_env.errors import ConfigError
from story_env.registry import get_algorithm
from story_env.run.algorithms import accepts_kwarg, check_algo_kwargs, policy_class_for
from story_env.run.config import TrainConfig
from story_env.run.diversity import MIN_MAUVE_STORIES, check_mauve, table_lines
from story_env.run.evaluation import evaluate, learning_curve
from story_env.run.judging import JudgeSpec, resolve_judges
from story_env.run.plots import figure
from story_env.run.stats import SEEDS_CI_METHOD, improvement_ci, iqm_ci
from story_env.run.training import train
from story_env.run_folder import CHECKPOINT_META, write_atomic
from story_env.run_owner import check_out

logger = logging.getLogger(__name__)


def compare(
    base: TrainConfig,
    algorithms: Sequence[str],
    seeds: Sequence[int],
    out_dir: str | Path,
    *,
    eval_stories: int = EVAL_STORIES,
    resume: bool = False,
    progress: bool = True,
    judges: Sequence[JudgeSpec | str] | None = None,
    mauve: bool = True,
) -> str:
    """Train every algorithm x seed on the same task; write ``results.md``,
    ``results.json`` and ``curves.png``.

    Each trained policy and the untrained student are graded by the training teacher and
    by the held-out ``judges`` (default: ``story_env.run.judging.default_judges``). Below
    the per-seed table: each algorithm's interquartile mean over seeds per grader with its
    stratified bootstrap interval, and the probability of improvement of each pair
    (``seed_statistics``); then each run's diversity and distribution beside real
    stories of the same lengths (``story_env.run.diversity``; ``mauve=False`` leaves
    MAUVE out); ``results.json`` holds the same figures.

    Returns:
        The table (``results.md``'s text).
    """
    check_compare_plan(algorithms, seeds, eval_stories)
    if mauve and eval_stories >= MIN_MAUVE_STORIES:
        check_mauve()  # before hours of training, not after
    judge_specs = resolve_judges(judges, base.teacher, base.teacher_kwargs)
    out = check_out(out_dir)
    configs = {name: _config_for(base, name) for name in algorithms}
    for name, config in configs.items():  # fail fast on an impossible combination
        policy_class_for(name, get_algorithm(name), config)
        check_algo_kwargs(name, get_algorithm(name), config.algo_kwargs)
        for seed in seeds:
            dataclasses.replace(config, seed=seed)  # each seed in range
    out.mkdir(parents=True, exist_ok=True)
    task = functools.partial(  # every evaluation on the shared task, by the same graders
        evaluate,
        student=base.student,
        teacher=base.teacher,
        stories=eval_stories,
        num_envs=base.num_envs,
        max_new_tokens=base.max_new_tokens,
        student_kwargs=base.student_kwargs,
        prompts=base.env.prompts,
        prompt_file=base.env.prompt_file,
        teacher_kwargs=base.teacher_kwargs,
        judges=judge_specs,
        progress=progress,
        mauve=mauve,
    )
    rows = []
    for name in algorithms:
        for seed in seeds:
            run = out / f"{name}-seed{seed}"
            config = dataclasses.replace(configs[name], seed=seed)
            summary = train(
                config, run, resume=resume and (run / CHECKPOINT_META).exists(), progress=progress
            )
            eval_seed = (10_000 + seed) % 2**32
            ev = (
                _finished_eval(run, eval_stories, eval_seed, judge_specs, mauve) if resume else None
            )
            if ev is None:  # not evaluated yet, or trained further since
                ev = task(seed=eval_seed, checkpoint=run)
                ev["checkpoint_steps"] = _checkpoint_steps(run)
                write_atomic(run / "eval.json", json.dumps(ev, indent=2), "run evaluation")
            rows.append((name, seed, ev, summary["wall_s"], summary["tokens_per_s"]))
    start = task(seed=10_000)
    labels = [j.label for j in judge_specs]
    lines = _table_head(base, configs, start, labels, eval_stories)
    for name, seed, ev, wall, tps in rows:
        judged = "".join(f" {_judge_total(ev, k)} |" for k in labels)
        lines.append(
            f"| {name} | {seed} | {_fmt(ev['teacher_score'])} |{judged} {wall:,.0f} | {tps:,.1f} |"
        )
    graders = {"teacher": "teacher", **{f"judge {k}": k for k in labels}}
    stats = seed_statistics(rows, list(algorithms), graders)
    lines += ["", *_seed_statistics_lines(stats)]
    lines += ["", *_diversity_lines(start, rows)]
    table = "\n".join(lines) + "\n"
    (out / "results.md").write_text(table)
    record = {"student": base.student, "teacher": base.teacher, "steps": base.steps}
    record.update(_record(eval_stories, start, rows, labels), **stats)
    write_atomic(out / "results.json", json.dumps(record, indent=2) + "\n", "compare results")
    _plot(out, algorithms, seeds)
    return table


def _table_head(
    base: TrainConfig,
    configs: Mapping[str, TrainConfig],
    start: Mapping[str, Any],
    labels: Sequence[str],
    eval_stories: int,
) -> list[str]:
    """``results.md`` above the per-seed rows: the task, the grades before training, the
    settings per algorithm and the table's head."""
    return [
        f"Student `{base.student}`, teacher `{base.teacher}`, {base.steps:,} env steps (tokens) per run, "
        f"{base.num_envs} envs, max_new_tokens {base.max_new_tokens}; teacher score in [0, 1] over "
        f"{eval_stories} stories at fixed seeds (mean [95% CI]).",
        "",
        f"Before training (the pretrained student): teacher {_fmt(start['teacher_score'])}"
        + "".join(f"; judge {k} {_judge_total(start, k)}" for k in labels),
        "",
        "The held-out judges grade the same stories as the teacher and were never the reward.",
        "",
        "Settings per algorithm (shared `algo_kwargs` an algorithm does not take are left out): "
        + "; ".join(f"{n} {_settings(c)}" for n, c in configs.items()),
        "",
        "| algorithm | seed | final teacher score | "
        + "".join(f"judge {k} | " for k in labels)
        + "wall time (s) | tokens/s |",
        "|---|---|---|" + "---|" * len(labels) + "---|---|",
    ]


def _checkpoint_steps(run: Path) -> int:
    return int(json.loads((run / CHECKPOINT_META).read_text())["steps"])


def _finished_eval(
    run: Path, stories: int, seed: int, judges: Sequence[JudgeSpec], mauve: bool
) -> dict[str, Any] | None:
    """A resumed comparison's evaluation of ``run`` as ``eval.json`` holds it, if it
    graded the checkpoint as it is now with the same stories, seed and judges (and
    MAUVE if asked); else ``None``: the run is evaluated again."""
    try:
        ev = json.loads((run / "eval.json").read_text())
    except (OSError, ValueError):
        return None
    same = (
        isinstance(ev, dict)
        and ev.get("checkpoint_steps") == _checkpoint_steps(run)
        and ev.get("stories") == stories
        and ev.get("seed") == seed
        and sorted(ev.get("judges", {})) == sorted(j.label for j in judges)
        and "diversity" in ev
        and (ev["diversity"]["mauve"] is not None or not mauve or stories < MIN_MAUVE_STORIES)
    )
    return ev if same else None


def _record(
    eval_stories: int,
    start: Mapping[str, Any],
    rows: Sequence[tuple[str, int, Mapping[str, Any], float, float]],
    labels: Sequence[str],
) -> dict[str, Any]:
    """The per-run part of ``results.json``: the grades before training and of each run."""
    return {
        "eval_stories": eval_stories,
        "before": {
            "teacher": list(start["teacher_score"]),
            **_judge_means(start, labels),
            "diversity": _diversity(start),
        },
        "real_stories": _diversity(start)["reference"],
        "runs": [
            {
                "algorithm": name,
                "seed": seed,
                "teacher": list(ev["teacher_score"]),
                **_judge_means(ev, labels),
                "wall_s": wall,
                "tokens_per_s": tps,
                "diversity": _diversity(ev),
            }
            for name, seed, ev, wall, tps in rows
        ],
    }


def _diversity(ev: Mapping[str, Any]) -> dict[str, Any]:
    """An evaluation's diversity figures (``story_env.run.diversity``)."""
    return dict(ev["diversity"])


def _diversity_lines(
    start: Mapping[str, Any], rows: Sequence[tuple[str, int, Mapping[str, Any], float, float]]
) -> list[str]:
    """Each run's diversity and distribution beside the student before training and real
    stories cut to the student's lengths."""
    before = start["diversity"]
    table = [
        ("real stories (cut to the student's lengths)", before["reference"]),
        ("before training", before),
        *((f"{name} seed {seed}", ev["diversity"]) for name, seed, ev, _, _ in rows),
    ]
    mauve = (
        f"MAUVE against {before['reference']['stories']} held-out real stories of the same "
        f"lengths (features: {before['mauve_features']})"
        if before["mauve"] is not None
        else f"MAUVE not measured ({before['mauve_note']})"
    )
    return [
        "Diversity and distribution of each evaluation's stories: distinct-n (unique word "
        "n-grams / all), zlib ratio (compressed / raw bytes; lower is more repetitive), the "
        f"share of the most common two-word opening, median words per story; {mauve} "
        f"[{before['ci_method']}].",
        "",
        *table_lines(table),
    ]


def _judge_means(ev: Mapping[str, Any], labels: Sequence[str]) -> dict[str, Any]:
    """``{"judge <label>": [mean, low, high] or None}`` of one evaluation."""
    return {
        f"judge {k}": list(ev["judges"][k]["total"]) if "total" in ev["judges"][k] else None
        for k in labels
    }


def seed_statistics(
    rows: Sequence[tuple[str, int, Mapping[str, Any], float, float]],
    algorithms: Sequence[str],
    graders: Mapping[str, str],
) -> dict[str, Any]:
    """Each algorithm's interquartile mean over seeds per grader, with its stratified
    bootstrap interval, and the probability of improvement of every pair of algorithms
    (Agarwal et al. 2021; ``story_env.run.stats``).

    Args:
        rows: ``(algorithm, seed, evaluation, wall_s, tokens_per_s)`` per run.
        algorithms: The algorithms in table order; each pair is reported once, as
            P(earlier > later).
        graders: Column name -> ``"teacher"`` or a judge's label. A seed a judge graded no
            story of is left out of that judge's figures.

    Returns:
        ``{"ci_method", "iqm": {algorithm: {grader: {"iqm", "ci", "seeds"} or None}},
        "probability_of_improvement": [{"x", "y", grader: {"p", "ci"} or None}]}``.
    """
    scores: dict[str, dict[str, list[float]]] = {a: {g: [] for g in graders} for a in algorithms}
    for name, _, ev, _, _ in rows:
        for column, source in graders.items():
            judged = (
                ev["teacher_score"] if source == "teacher" else ev["judges"][source].get("total")
            )
            if judged is not None:
                scores[name][column].append(float(judged[0]))
    iqms: dict[str, dict[str, Any]] = {}
    for name in algorithms:
        iqms[name] = {}
        for column, values in scores[name].items():
            if values:
                value, low, high = iqm_ci(values)
                iqms[name][column] = {"iqm": value, "ci": [low, high], "seeds": len(values)}
            else:
                iqms[name][column] = None
    pairs = []
    for i, x in enumerate(algorithms):
        for y in algorithms[i + 1 :]:
            pair: dict[str, Any] = {"x": x, "y": y}
            for column in graders:
                a, b = scores[x][column], scores[y][column]
                if a and b:
                    p, low, high = improvement_ci(a, b)
                    pair[column] = {"p": p, "ci": [low, high]}
                else:
                    pair[column] = None
            pairs.append(pair)
    return {"ci_method": SEEDS_CI_METHOD, "iqm": iqms, "probability_of_improvement": pairs}


def _seed_statistics_lines(stats: Mapping[str, Any]) -> list[str]:
    """``seed_statistics`` as two markdown tables."""
    iqms: dict[str, dict[str, Any]] = stats["iqm"]
    columns = list(next(iter(iqms.values())))
    lines = [
        "Across seeds: interquartile mean (IQM, the mean of the middle 50% of the seeds' "
        f"scores) [{stats['ci_method']}].",
        "",
        "| algorithm | seeds | " + "".join(f"{c} IQM | " for c in columns).rstrip(),
        "|---|---|" + "---|" * len(columns),
    ]
    for name, per in iqms.items():
        seeds = max((v["seeds"] for v in per.values() if v), default=0)
        cells = "".join(
            f" {_fmt((v['iqm'], *v['ci']))} |" if v else " not graded |" for v in per.values()
        )
        lines.append(f"| {name} | {seeds} |{cells}")
    pairs = stats["probability_of_improvement"]
    if pairs:
        lines += [
            "",
            "Probability of improvement P(X > Y): the chance that a seed of X scores above a "
            "seed of Y (ties count half) [95% CI, the same bootstrap].",
            "",
            "| X | Y | " + "".join(f"{c} P(X > Y) | " for c in columns).rstrip(),
            "|---|---|" + "---|" * len(columns),
        ]
        for pair in pairs:
            cells = "".join(
                f" {_fmt((pair[c]['p'], *pair[c]['ci']))} |" if pair[c] else " not graded |"
                for c in columns
            )
            lines.append(f"| {pair['x']} | {pair['y']} |{cells}")
    return lines


def check_compare_plan(algorithms: Sequence[str], seeds: Sequence[int], eval_stories: int) -> None:
    """A comparison's plan, checked before it trains anything: at least one algorithm and
    seed, none twice (a run would be written twice and listed twice), and at least one
    story to evaluate each run on.

    Raises:
        ConfigError: Naming the flag (``--algorithms``, ``--seeds``, ``--eval-stories``).
    """
    for flag, items in (("--algorithms", list(algorithms)), ("--seeds", list(seeds))):
        if not items:
            raise ConfigError(f"{flag} is empty; give at least one, e.g. {flag} ppo,a2c")
        twice = sorted({str(x) for x in items if items.count(x) > 1})
        if twice:
            raise ConfigError(
                f"{flag} names {', '.join(twice)} more than once; each run must be distinct"
            )
    if (
        isinstance(eval_stories, bool)
        or not isinstance(eval_stories, int)
        or not 1 <= eval_stories <= MAX_STORIES
    ):
        raise ConfigError(
            f"--eval-stories must be a whole number from 1 to {MAX_STORIES}, got "
            f"{eval_stories!r}; e.g. --eval-stories {EVAL_STORIES}"
        )


def _judge_total(ev: Mapping[str, Any], label: str) -> str:
    judged = ev["judges"][label]
    return _fmt(judged["total"]) if "total" in judged else "not graded"


def _config_for(base: TrainConfig, name: str) -> TrainConfig:
    """The shared task for one algorithm: masks only where the algorithm uses them, and
    only the shared ``algo_kwargs`` its constructor takes (A2C has no ``batch_size``)."""
    spec = get_algorithm(name)
    kwargs = {k: v for k, v in base.algo_kwargs.items() if accepts_kwarg(spec, k)}
    config = dataclasses.replace(base, algorithm=name, algo_kwargs=kwargs)
    if not spec.needs_action_masks:
        return dataclasses.replace(config, top_p=None, top_k=None)
    if base.top_p is None and base.top_k is None:
        logger.warning(
            "%s needs action masks: it runs with top_p 0.95 (the reference's nucleus); pass "
            "--top-p or --top-k to choose",
            name,
        )
        return dataclasses.replace(config, top_p=0.95)
    return config


def _settings(config: TrainConfig) -> str:
    parts = [f"{k}={v}" for k, v in sorted(config.algo_kwargs.items())]
    parts += [f"{k}={getattr(config, k)}" for k in ("top_p", "top_k") if getattr(config, k)]
    return "`" + ", ".join(parts) + "`" if parts else "defaults"


def _fmt(ci: tuple[float, float, float]) -> str:
    return f"{ci[0]:.3f} [{ci[1]:.3f}, {ci[2]:.3f}]"


def _plot(out: Path, algorithms: Sequence[str], seeds: Sequence[int]) -> None:
    with figure(out / "curves.png", (7, 4)) as ax:
        for k, name in enumerate(algorithms):
            for j, seed in enumerate(seeds):
                steps, smooth = learning_curve(out / f"{name}-seed{seed}")
                ax.plot(
                    steps,
                    smooth,
                    color=f"C{k}",
                    alpha=0.9 if j == 0 else 0.5,
                    label=name if j == 0 else None,
                )
        ax.set_xlabel("env steps (tokens)")
        ax.set_ylabel("teacher score (moving average)")
        ax.set_title("Storytelling-v0: learning curves")
        ax.legend()
