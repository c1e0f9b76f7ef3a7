"""Reproduce the paper's data-efficiency experiment at this machine's scale.

Stages, each resumable (a finished stage is recorded and skipped next time):

1. ``pretrain``: one next-word-prediction run of the tiny architecture that writes a
   checkpoint at every budget of the ladder (as the paper checkpoints by words seen).
2. ``references``: real validation stories and the same stories word-shuffled, graded
   by the teacher and the held-out judges: the ladder's two reference rows.
3. ``start/<budget>``: each checkpoint before RL: the teacher's and judges' grades of
   its stories at fixed seeds, three of them as samples, and the probes.
4. ``rl/<budget>-seed<s>``: RL (``rl.algorithm``) from each checkpoint against the
   teacher, for the same interactive word budget (prompt words + teacher words), at
   several seeds; graded and probed again after.
5. ``control/<budget>-seed<s>``: the same RL with the random-reward teacher, from the
   control budgets, at every seed.
6. ``audit/<stage>``: the stories of every start and run evaluation written again (same
   seeds, same stories) and measured: words per story, the grade of ``AUDIT_JUDGE`` (a
   rule-based judge of another kind than the likelihood graders) and the held-out
   judges' grades under the code as it is when the audit runs (a judge mended after
   the runs, e.g. a new ``lm`` calibration, grades the same stories again).
7. ``results.md``, ``ladder.md``, ``results.json``, ``curves.png``: the paper-style
   tables, the "NWP words equivalent" of the RL gain, the probes before and after, the
   ladder (``story_env.run.reproduce_report``).
"""

from __future__ import annotations

import ctypes
import json
import multiprocessing
import os
import shutil
import signal
import sys
import time
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from pathlib import Path
from typing import Any

from story_env.agents.corpus.load import read_stories
from story_env.agents.pretraining.pretrain import (
    PretrainConfig,
    checkpoint_name,
    pretrain,
)
from story_env.agents.probes import PROBES
from story_env.errors import ConfigError
from story_env.run.diversity import MIN_MAUVE_STORIES, check_mauve
from story_env.run.evaluation import evaluate
from story_env.run.judging import JudgeSpec, judge_totals
from story_env.run.probing import probe
from story_env.run.reproduce_audit import AUDIT_JUDGE, audit
from story_env.run.reproduce_config import (
    ReproConfig,
    smoke_config,
    upgrade_flat,
)
from story_env.run.reproduce_references import references
from story_env.run.reproduce_report import nwp_equivalent, write_report
from story_env.run.training import train
from story_env.run_folder import (
    CHECKPOINT,
    CHECKPOINT_META,
    CONFIG,
    check_resume,
    read_config,
    write_atomic,
    write_config,
)

#: prctl's option that signals a process when its parent ends (linux/prctl.h).
PR_SET_PDEATHSIG = 1
#: Seed of the evaluation stories (the same before and after RL, at every budget).
EVAL_SEED = 10_000
#: What to do after a failed write is fixed: a rerun keeps every finished stage.
REPRO_AGAIN = "run the same reproduce command again (finished stages are kept)"
#: Seed of the probe items (the same items before and after RL).
PROBE_SEED = 0


def plan(config: ReproConfig) -> list[str]:
    """Stage names, in order; each audit right after its stage, while the run's weights
    (kept out of git) are still on the machine."""
    budgets = sorted(config.budgets)
    runs = [f"start/{b}" for b in budgets]
    runs += [f"rl/{b}-seed{s}" for b in budgets for s in config.seeds]
    runs += [f"control/{b}-seed{s}" for b in config.controls for s in config.seeds]
    return ["pretrain", "references", *(x for s in runs for x in _with_audit(config, s))]


def _with_audit(config: ReproConfig, stage: str) -> list[str]:
    return [stage, f"audit/{stage}"] if config.audit else [stage]


def _kind(stage: str) -> str:
    """The estimate's key of a stage: ``pretrain``, ``references``, ``start``, ``rl`` or
    ``audit``."""
    kind = stage.split("/")[0]
    return "rl" if kind == "control" else kind


def estimate(
    config: ReproConfig,
    tokens_per_s_pretrain: float,
    steps_per_s_rl: float,
    stories_per_s_eval: float = 0.5,
    items_per_s_probe: float = 30.0,
) -> dict[str, float]:
    """Seconds each kind of stage should take, from measured rates.

    Args:
        config: The experiment.
        tokens_per_s_pretrain: Pretraining tokens per second.
        steps_per_s_rl: RL env steps (tokens) per second.
        stories_per_s_eval: Evaluation stories written and graded by the teacher and every
            judge per second (the reference stories are only graded: an upper bound).
        items_per_s_probe: Probe items (a good and a bad text each) scored per second.

    Returns:
        ``pretrain``; ``references``; ``start`` (one checkpoint's evaluation and probes);
        ``rl`` (one RL or control run: training, evaluation, probes); ``audit`` (one
        evaluation again, graded by the judges and the rule-based judge, not the teacher:
        about half an evaluation); ``total`` (every stage of ``plan``).
    """
    tokens_per_word = 1.3
    evaluation = config.eval_stories / stories_per_s_eval
    probes = config.probe_pairs * len(PROBES) / items_per_s_probe
    # at most every story at full length (the ceiling of ReproConfig.rl_config is twice that)
    rl_steps = config.rl_config("x", False, 0).steps / 2
    est = {
        "pretrain": max(config.budgets) * tokens_per_word / tokens_per_s_pretrain,
        "references": 2 * evaluation,
        "start": evaluation + probes,
        "rl": rl_steps / steps_per_s_rl + evaluation + probes,
        "audit": evaluation / 2,
    }
    est["total"] = sum(est[_kind(stage)] for stage in plan(config))
    return est


def _log_plan(
    config: ReproConfig,
    out: Path,
    rates: Sequence[float],
    log: Callable[[str], None],
    jobs: int = 1,
) -> None:
    """Say before it starts what each stage still to run will take."""
    est = estimate(config, *rates)
    todo = [stage for stage in plan(config) if not _done(config, out, stage)]
    groups: dict[str, list[str]] = {}
    for stage in todo:
        groups.setdefault(stage.split("/")[0], []).append(stage)
    total = sum(est[_kind(stage)] for stage in todo)
    names = ("pretraining tokens/s", "RL steps/s", "evaluation stories/s", "probe items/s")
    given = ", ".join(f"{n} {r:g}" for n, r in zip(names[: len(rates)], rates, strict=True))
    log(
        f"plan: {len(todo)} of {len(plan(config))} stages to run, about {total / 60:,.0f} min "
        f"(estimated from {given})"
    )
    for group, stages in groups.items():
        shown = ", ".join(stages) if len(stages) <= 3 else f"{stages[0]} .. {stages[-1]}"
        log(f"  {len(stages):3d} x {est[_kind(group)] / 60:6.1f} min  {shown}")
    if jobs > 1:
        log(f"  (minutes one by one; the stages after pretraining run {jobs} at a time)")


def _guard(config: ReproConfig, out: Path) -> None:
    """The run folder's guard: an experiment resumes only with the settings it began with
    (a folder of the earlier flat form is read as ``upgrade_flat`` says); a new folder
    gets ``config.json``."""
    settings = config.to_dict()
    if not (out / CONFIG).exists():
        write_config(out, settings)
        return
    saved = read_config(out)
    if "control_budget" in saved:
        raise ConfigError(
            f"{out} was started by an earlier `storytelling reproduce` (one random-reward "
            "control, `control_budget`, and no probes or ladder); it cannot be resumed by "
            "this one: start anew with another --out (its results stay readable as they are)"
        )
    saved = upgrade_flat(saved)
    if isinstance(saved.get("rl"), dict):  # a TrainConfig field added since: its default
        saved["rl"] = {**ReproConfig().to_dict()["rl"], **saved["rl"]}
    defaults = ReproConfig().to_dict()
    check_resume(saved, settings, out, fix="start anew with another --out", defaults=defaults)


def run(
    config: ReproConfig,
    out_dir: str | Path,
    *,
    progress: bool = True,
    log: Callable[[str], None] = print,
    rates: Sequence[float] | None = None,
    on_stage: Callable[[str], None] | None = None,
    jobs: int = 1,
) -> dict[str, Any]:
    """Run (or resume) the whole experiment and write its results.

    Args:
        config: The experiment.
        out_dir: Its folder (resumed if it holds one started with the same settings).
        progress: Show progress bars.
        log: Where stage messages go.
        rates: The rates of ``estimate`` (2 to 4 of them, in its order): if given, the
            plan of the stages still to run and their estimated time is logged first.
        on_stage: Called after each finished stage, once the report so far is written,
            with a one-line note (``"stage S done in M min (k of n stages)"``); the
            repository's ``tools/reproduce_committed.py`` commits the folder there.
        jobs: Stages run at once after pretraining, each in its own process with
            ``cores // jobs`` threads (``_run_in_processes``); 1 runs them one by one here.
            Their messages then come without progress bars.

    Raises:
        ConfigError: The folder was started with other settings, or by the earlier
            single-control version of this experiment, or ``jobs`` is below 1.
    """
    if not isinstance(jobs, int) or jobs < 1:
        raise ConfigError(
            f"jobs must be a whole number >= 1, got {jobs!r}; 1 runs stages one by one"
        )
    out = Path(out_dir)
    if config.audit and config.eval_stories >= MIN_MAUVE_STORIES:
        check_mauve()  # the audits measure MAUVE: its packages, before hours of stages
    out.mkdir(parents=True, exist_ok=True)
    _guard(config, out)
    if rates is not None:
        _log_plan(config, out, rates, log, jobs)
    timings = _load(out / "timings.json", {})
    for stage in plan(config):
        if jobs > 1 and stage != "pretrain":
            _run_in_processes(config, out, jobs, timings, on_stage)
            break
        if _done(config, out, stage):
            continue
        # a later checkout's rebuild of the weights: its time goes to rebuilds.json
        rebuild = stage == "pretrain" and (out / "pretrain" / "done.json").exists()
        started = time.perf_counter()
        _record(config, out, stage, _compute(config, stage, out, progress, log))
        seconds = 0.0 if rebuild else time.perf_counter() - started
        _finish_stage(config, out, stage, seconds, timings, on_stage)
    results = _load(out / "results.json", {})
    table = write_report(config, results, timings, out)
    return {"results": results, "timings": timings, "table": table}


def _done(config: ReproConfig, out: Path, stage: str) -> bool:
    """Whether ``stage`` finished (its result is on disk)."""
    kind, _, name = stage.partition("/")
    if kind == "pretrain":  # and its weights here: a later session's checkout lacks them
        pre = out / "pretrain"
        return (pre / "done.json").exists() and all(
            (pre / checkpoint_name(b) / "model.safetensors").exists() for b in config.budgets
        )
    if kind == "references":
        return (out / "references.json").exists()
    if kind == "start":
        return name in _load(out / "starts.json", {})
    if kind == "audit":
        return name in _load(out / "audit.json", {})
    return stage in _load(out / "results.json", {})


def _finish_stage(
    config: ReproConfig,
    out: Path,
    stage: str,
    seconds: float,
    timings: dict[str, float],
    on_stage: Callable[[str], None] | None,
) -> None:
    """Count a recorded stage's time; with ``on_stage``, write the report so far and call it."""
    timings[stage] = timings.get(stage, 0.0) + seconds
    _save(out / "timings.json", timings)
    if on_stage is not None:
        write_report(config, _load(out / "results.json", {}), timings, out)
        done = sum(_done(config, out, s) for s in plan(config))
        on_stage(
            f"stage {stage} done in {timings[stage] / 60:.1f} min "
            f"({done} of {len(plan(config))} stages)"
        )


def _compute(
    config: ReproConfig,
    stage: str,
    out: Path,
    progress: bool,
    log: Callable[[str], None],
) -> Any:
    """Run ``stage`` and return what ``_record`` keeps of it (the pretraining run and an
    RL run write their own folders; nothing else is written here)."""
    kind, _, name = stage.partition("/")
    if kind == "pretrain":
        return _pretrain_stage(config, out / "pretrain", progress, log)
    if kind == "references":
        log(f"stage {stage}: real and word-shuffled validation stories, graded")
        teacher = JudgeSpec(config.teacher, dict(config.teacher_kwargs))
        return references(config.val_file, config.eval_stories, teacher, config.judge_specs)
    if kind == "start":
        return _start_stage(config, int(name), out, log)
    if kind == "audit":
        return _audit_stage(config, name, out, log)
    return _rl_stage(config, stage, out, progress, log)


def _record(config: ReproConfig, out: Path, stage: str, value: Any) -> None:
    """Keep a computed stage's result in its file (written by one process only)."""
    kind, _, name = stage.partition("/")
    if kind == "pretrain":
        return
    if kind == "references":
        _save(out / "references.json", value)
        return
    file, key = {"start": ("starts.json", name), "audit": ("audit.json", name)}.get(
        kind, ("results.json", stage)
    )
    data = _load(out / file, {})
    data[key] = value
    _save(out / file, data)
    audited = _load(out / "audit.json", {})
    if kind != "audit" and stage in audited:  # an audit of the run this one replaced
        del audited[stage]
        _save(out / "audit.json", audited)


def _ready(config: ReproConfig, out: Path, stage: str) -> bool:
    """Whether ``stage`` can start: an audit needs its stage (and so its weights, on this
    machine), an RL run or control its checkpoint's start."""
    kind, _, name = stage.partition("/")
    if kind == "audit":
        return _done(config, out, name)
    if kind in ("rl", "control"):
        return _done(config, out, f"start/{name.split('-seed')[0]}")
    return True


def _worker_init(threads: int, parent: int) -> None:
    """A pool process's setup: (on Linux) its end with the run that started it, so a
    killed run leaves no stage writing on alone, then its share of the cores."""
    if sys.platform == "linux":
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
        if os.getppid() != parent:  # it ended before the line above: no signal will come
            os._exit(1)
    import torch

    torch.set_num_threads(threads)


def _stage_worker(config: ReproConfig, stage: str, out: Path) -> tuple[Any, float]:
    """Run one stage in a pool process; its result (for ``_record``) and its seconds."""
    started = time.perf_counter()
    value = _compute(config, stage, out, False, _print)
    return value, time.perf_counter() - started


def _print(message: str) -> None:
    print(message, flush=True)


def _run_in_processes(
    config: ReproConfig,
    out: Path,
    jobs: int,
    timings: dict[str, float],
    on_stage: Callable[[str], None] | None,
) -> None:
    """Run the stages after pretraining ``jobs`` at a time, each in a process of a pool
    (spawned: torch does not fork safely) with ``cores // jobs`` threads, in the plan's
    order as they become ready (``_ready``). This process alone records results, writes
    the report and calls ``on_stage``, as each stage finishes. A failed stage stops new
    ones from starting; the running ones finish and are recorded, then its error is
    raised."""
    threads = max(1, (os.cpu_count() or 1) // jobs)
    error: BaseException | None = None
    running: dict[Future, str] = {}
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(jobs, context, _worker_init, (threads, os.getpid())) as pool:
        while True:
            if error is None:
                todo = [
                    s
                    for s in plan(config)
                    if s != "pretrain" and s not in running.values() and not _done(config, out, s)
                ]
                for stage in [s for s in todo if _ready(config, out, s)][: jobs - len(running)]:
                    running[pool.submit(_stage_worker, config, stage, out)] = stage
            if not running:
                break
            finished, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in finished:
                stage = running.pop(future)
                try:  # a failure here too lets the running stages finish and be recorded
                    value, seconds = future.result()
                    _record(config, out, stage, value)
                    _finish_stage(config, out, stage, seconds, timings, on_stage)
                except Exception as exc:
                    error = error or exc
    if error is not None:
        raise error


def _pretrain_stage(
    config: ReproConfig, pre: Path, progress: bool, log: Callable[[str], None]
) -> None:
    """Stage 1: one pretraining run with a checkpoint at every budget of the ladder."""
    budgets = sorted(config.budgets)
    pconf = PretrainConfig(
        words=budgets[-1],
        save_at=tuple(budgets[:-1]),
        block_size=config.pretrain_block_size,
        batch_size=config.pretrain_batch_size,
        lr=config.pretrain_lr,
        model=config.model,
    )
    log(f"stage pretrain: {budgets[-1]:,} words, checkpoints at {budgets}")
    ppl = {b: pre / checkpoint_name(b) / "pretraining.json" for b in budgets}
    rebuild = (pre / "done.json").exists()  # git kept the records, not the weights
    was = {b: _load(ppl[b], {}).get("val_perplexity") for b in budgets}
    started = time.perf_counter()
    pretrain(
        pconf,
        read_stories(config.train_file, "train"),
        read_stories(config.val_file, "validation"),
        pre,
        resume=(pre / "state.pt").exists(),
        progress=progress,
        log=log,
    )
    if rebuild:  # same seed and data; a difference means the graded stages used others
        now = {b: _load(ppl[b], {})["val_perplexity"] for b in budgets}
        seconds = round(time.perf_counter() - started, 1)  # timings.json keeps the first run's
        entry = {"was": was, "now": now, "seconds": seconds}
        _save(pre / "rebuilds.json", [*_load(pre / "rebuilds.json", []), entry])
        log(f"rebuilt the checkpoints: validation perplexity was {was}, now {now}")
    write_atomic(pre / "done.json", "{}", "pretraining stage marker", REPRO_AGAIN)


def _audit_stage(config: ReproConfig, target: str, out: Path, log: Callable[[str], None]) -> dict:
    """Stage 6: the evaluation of ``target`` (``start/<budget>`` or a run stage) audited."""
    kind, name = target.split("/")
    budget = int(name.split("-seed")[0])
    log(f"stage audit/{target}: its evaluation stories again: words, `{AUDIT_JUDGE}`, judges")
    recorded = _load(out / "starts.json", {})[name]["samples"] if kind == "start" else None
    checkpoint = None if kind == "start" else out / kind / name
    return audit(_eval_kwargs(config, budget, out), checkpoint, recorded)


def _eval_kwargs(config: ReproConfig, budget: int, out: Path) -> dict[str, Any]:
    """One evaluation's settings: the same stories' seeds at every budget, before and after."""
    return {
        "student": str(out / "pretrain" / checkpoint_name(budget)),
        "teacher": config.teacher,
        "teacher_kwargs": dict(config.teacher_kwargs),
        "stories": config.eval_stories,
        "num_envs": config.rl.num_envs,
        "max_new_tokens": config.rl.max_new_tokens,
        "seed": EVAL_SEED,
        "judges": config.judge_specs,
    }


def _start_stage(
    config: ReproConfig, budget: int, out: Path, log: Callable[[str], None]
) -> dict[str, Any]:
    """Stage 3: one checkpoint before RL, graded, sampled and probed (once for every seed)."""
    log(f"stage start/{budget}: the {budget:,}-word checkpoint before RL")
    ev = evaluate(**_eval_kwargs(config, budget, out), mauve=False)  # the audit's
    entry = {**_scores(ev), "samples": list(ev["samples"])}
    if config.probe_pairs:
        entry["probes"] = _probes(config, out / "pretrain" / checkpoint_name(budget))
    return entry


def _follow_move(run_dir: Path, student: str, log: Callable[[str], None]) -> None:
    """Point a run at its checkpoint's new path when the experiment's folder moved (a
    copy elsewhere, another spelling of ``--out``): its ``config.json`` names the student
    by the old path, and the resume guard would refuse the same checkpoint at the new one.
    A student that is not the same checkpoint of this experiment is left for the guard."""
    if not (run_dir / CONFIG).is_file():
        return
    saved = read_config(run_dir)
    old = saved.get("student")
    if (
        old == student
        or not isinstance(old, str)
        or Path(old).parts[-2:] != Path(student).parts[-2:]
    ):
        return
    write_config(run_dir, {**saved, "student": student})
    log(f"{run_dir} began from {old}; the experiment's folder moved: resumes from {student}")


def _rl_stage(
    config: ReproConfig, stage: str, out: Path, progress: bool, log: Callable[[str], None]
) -> dict[str, Any]:
    """Stages 4 and 5: RL from one checkpoint (or with the random-reward control), with
    the teacher's and the judges' grades and the probes before and after."""
    kind, name = stage.split("/")
    budget, seed = (int(x) for x in name.split("-seed"))
    control = kind == "control"
    ev = _eval_kwargs(config, budget, out)
    rl = config.rl_config(ev["student"], control, seed)
    run_dir = out / kind / name
    log(
        f"stage {stage}: {rl.algorithm} from the {budget:,}-word checkpoint, teacher {rl.teacher}, "
        f"{config.interactive_words:,} interactive words"
    )
    before = _load(out / "starts.json", {})[str(budget)]
    if (run_dir / CHECKPOINT_META).exists() and not (run_dir / CHECKPOINT).exists():
        log(f"stage {stage}: {run_dir} has its log but not its weights (git keeps no weights)")
        shutil.rmtree(run_dir)  # an earlier checkout's unfinished run: it starts over
    _follow_move(run_dir, rl.student, lambda text: log(f"stage {stage}: {text}"))
    summary = train(rl, run_dir, resume=(run_dir / CHECKPOINT_META).exists(), progress=progress)
    after = _scores(evaluate(checkpoint=run_dir, **ev, mauve=False))  # the audit's
    result = {
        "budget": budget,
        "seed": seed,
        "teacher": rl.teacher,
        "start": before["teacher"][0],
        "end": after["teacher"][0],
        "end_ci": after["teacher"][1:],
        "start_ci": before["teacher"][1:],
        "judges_start": before["judges"],
        "judges_end": after["judges"],
        "words_start": before.get("words"),  # absent from starts graded before it was kept
        "words_end": after["words"],
        "interactive_words": summary["interactive_words"],
        "rl_steps": summary["steps"],
    }
    if config.probe_pairs:
        result["probes_start"] = before["probes"]
        result["probes_end"] = _probes(config, run_dir)
    return result


def _probes(config: ReproConfig, target: Path) -> dict[str, list[float]]:
    """Accuracy and 95% CI of every probe and of the pooled rows, the same items each time."""
    report = probe(checkpoint=target, pairs=config.probe_pairs, seed=PROBE_SEED)
    rows = [*report.probes, report.formal, report.mean]
    return {r.name: [r.accuracy, r.ci_low, r.ci_high] for r in rows if r is not None}


def _scores(evaluation: dict[str, Any]) -> dict[str, Any]:
    """The teacher's and each judge's total and the words per story (each its mean and
    95% CI) of one evaluation, and its stories' diversity (``story_env.run.diversity``)."""
    return {
        "teacher": list(evaluation["teacher_score"]),
        "judges": judge_totals(evaluation["judges"]),
        "words": list(evaluation["words"]),
        "diversity": evaluation["diversity"],
    }


def _load(path: Path, default: Any) -> Any:
    return json.loads(path.read_text()) if path.exists() else default


def _save(path: Path, data: Any) -> None:
    write_atomic(path, json.dumps(data, indent=2), path.name, REPRO_AGAIN)


__all__ = [
    "ReproConfig",
    "estimate",
    "nwp_equivalent",
    "plan",
    "run",
    "smoke_config",
]
