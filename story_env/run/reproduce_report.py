"""The reproduction's report: ``results.md`` (the paper-style tables), ``ladder.md`` (the
student ladder) and ``curves.png``.

Every figure is read from the stage files of ``story_env.run.reproduce``:
``results.json`` (RL and control runs), ``starts.json`` (each checkpoint before RL),
``references.json`` (real and word-shuffled stories), ``audit.json`` (each evaluation
written again: words per story, the rule-based judge, the judges regraded), each
checkpoint's ``pretraining.json`` and each RL run's training log (``stories.jsonl``).
Nothing is measured here, and a figure that is missing is said to be missing, never
filled in.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from story_env.agents.pretraining.pretrain import checkpoint_name
from story_env.agents.probes.entity import PHENOMENON as ENTITY_TRACKING
from story_env.run.plots import figure
from story_env.run.reproduce_audit import AUDIT_JUDGE
from story_env.run.reproduce_diversity import diversity_lines
from story_env.run_folder import STORIES

if TYPE_CHECKING:
    from story_env.run.reproduce import ReproConfig

#: The grader key of the training teacher (judges are keyed by their labels).
TEACHER = "teacher"
#: Words of each sample shown in ladder.md.
SAMPLE_WORDS = 60
#: The pooled row of the formal phenomena in a probe report.
FORMAL = "formal mean"
#: Stories at each end of a training log that the within-length gain compares.
LOG_END_STORIES = 256
#: Width in words of the story-length bins of the within-length gain.
LENGTH_BIN_WORDS = 10
#: A length bin counts only with at least this many stories at both ends of the log.
MIN_BIN_STORIES = 5


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


def halfway(top: float, shuffled: float, real: float) -> str:
    """The ladder's goal, said plainly: does the top checkpoint's total lie at least
    halfway between word-shuffled stories' and real stories'?"""
    mid = (shuffled + real) / 2
    verdict = f"met, by {top - mid:.3f}" if top >= mid else f"missed, by {mid - top:.3f}"
    way = (
        f" (it lies {(top - shuffled) / (real - shuffled):.2f} of the way from shuffled to real)"
        if real != shuffled
        else ""
    )
    return (
        f"{top:.3f} against the halfway mark {mid:.3f} between word-shuffled "
        f"({shuffled:.3f}) and real stories ({real:.3f}): {verdict}{way}"
    )


def write_report(
    config: ReproConfig, results: dict[str, Any], timings: dict[str, float], out: Path
) -> str:
    """Write ``results.md``, ``ladder.md`` and ``curves.png``; return ``results.md``."""
    rows = rows_by_budget(results, sorted(config.budgets))
    lines = _teacher_lines(config, rows)
    lines += _judge_lines(rows)
    lines += _control_lines(config, results)
    lines += _length_lines(results)
    lines += _log_length_lines(config, results, out)
    lines += audit_lines(config, results, _load(out / "audit.json"))
    lines += diversity_lines(config, _load(out / "audit.json"))
    lines += _probe_lines(config, results)
    lines += [
        "",
        "The ladder (perplexity, grades and three samples per checkpoint, against real and "
        "word-shuffled stories, and the halfway goal): [ladder.md](ladder.md).",
        *_timing_lines(timings),
    ]
    table = "\n".join(lines) + "\n"
    (out / "results.md").write_text(table)
    (out / "ladder.md").write_text(ladder(config, out))
    if rows:
        budgets = [runs[0]["budget"] for runs in rows]
        starts = [float(np.mean([r["start"] for r in runs])) for runs in rows]
        ends = [float(np.mean([r["end"] for r in runs])) for runs in rows]
        controls = [(r["budget"], r["end"]) for k, r in results.items() if k.startswith("control/")]
        _plot(out, budgets, starts, ends, controls)
    return table


def _timing_lines(timings: dict[str, float]) -> list[str]:
    """Wall time per kind of stage (each stage's own is in ``timings.json``)."""
    kinds: dict[str, list[float]] = {}
    for stage, seconds in timings.items():
        kinds.setdefault(stage.split("/")[0], []).append(seconds)
    lines = [
        "",
        "Wall time per stage (each stage's own in timings.json):",
        "",
        "| stage | runs | each (s, min..max) | in all (min) |",
        "|---|---|---|---|",
    ]
    for kind, secs in kinds.items():
        lines.append(
            f"| {kind} | {len(secs)} | {min(secs):,.0f}..{max(secs):,.0f} | {sum(secs) / 60:,.1f} |"
        )
    total = sum(timings.values())
    return [*lines, f"| all | {len(timings)} | | {total / 60:,.1f} |"]


def rows_by_budget(results: dict[str, Any], budgets: Sequence[int]) -> list[list[dict]]:
    """The RL results of each budget (seeds together), budgets with none left out."""
    rows = [[r for k, r in results.items() if k.startswith(f"rl/{b}-")] for b in budgets]
    return [r for r in rows if r]


def _grade(run: dict[str, Any], grader: str, when: str) -> float | None:
    """A run's total by ``grader`` (``TEACHER`` or a judge's label) at ``when`` (start/end);
    ``None`` if that judge graded none of its stories."""
    if grader == TEACHER:
        return run[when]
    value = run.get(f"judges_{when}", {}).get(grader)
    return None if value is None else value[0]


def start_end(runs: Sequence[dict[str, Any]], grader: str) -> np.ndarray | None:
    """(runs, 2): each run's start and end total by ``grader``; ``None`` if there is no
    run or one of them was not graded."""
    pairs = [(_grade(r, grader, "start"), _grade(r, grader, "end")) for r in runs]
    if not pairs or any(v is None for pair in pairs for v in pair):
        return None
    return np.array(pairs, dtype=float)


def _spread(values: Sequence[float], digits: int = 3, sign: str = "") -> str:
    """Mean and (min..max) over seeds (``sign="+"``: with their signs, for gains)."""
    v = np.asarray(values, dtype=float)
    f = f"{sign}.{digits}f"
    return f"{v.mean():{f}} ({v.min():{f}}..{v.max():{f}})"


def _ci(value: Sequence[float] | None) -> str:
    return "not graded" if value is None else f"{value[0]:.3f} [{value[1]:.3f}, {value[2]:.3f}]"


def _teacher_lines(config: ReproConfig, rows: list[list[dict]]) -> list[str]:
    """The paper's table under the teacher that was the reward."""
    lines = [
        f"Teacher `{config.teacher}` score in [0, 1] (x9 = the paper's 0..9 sum), mean over "
        f"{config.eval_stories} stories at fixed seeds, before and after {config.interactive_words:,} "
        f"interactive words of `{config.rl.algorithm}`; in parentheses the range (min..max) over seeds "
        f"{list(config.seeds)}. NWP words equivalent: the pretraining words at which the "
        "start-of-RL curve (running maximum, interpolated linearly in log words) reaches "
        "the end score.",
        "",
        "| pretrained words | start of RL | end of RL | gain | NWP words equivalent of the end score |",
        "|---|---|---|---|---|",
    ]
    budgets = [runs[0]["budget"] for runs in rows]
    starts = [float(np.mean([r["start"] for r in runs])) for runs in rows]
    for b, s0, runs in zip(budgets, starts, rows, strict=True):
        e = np.array([r["end"] for r in runs])
        equiv = nwp_equivalent(budgets, starts, float(e.mean()))
        eq = f"{equiv:,.0f} ({equiv - b:+,.0f})" if equiv is not None else f"> {budgets[-1]:,}"
        lines.append(f"| {b:,} | {s0:.3f} | {_spread(e)} | {e.mean() - s0:+.3f} | {eq} |")
    return lines


def _judge_lines(rows: list[list[dict]]) -> list[str]:
    """The held-out judges' table: the same stories, graded by models never the reward."""
    labels = sorted({k for runs in rows for r in runs for k in r.get("judges_end", {})})
    lines: list[str] = []
    for label in labels:
        have = [runs for runs in rows if start_end(runs, label) is not None]
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
            lines.append(f"| {b:,} | {s0:.3f} | {_spread(e)} | {e.mean() - s0:+.3f} | {eq} |")
    return lines


def _control_lines(config: ReproConfig, results: dict[str, Any]) -> list[str]:
    """The random-reward control per budget, under the teacher and every judge, beside the
    same grader's gain with the teacher's reward."""
    controls = [r for k, r in results.items() if k.startswith("control/")]
    if not controls:
        return []
    lines = [
        "",
        "Random-reward control: the same RL with the `random` teacher as the reward, at "
        "every seed; its stories graded by the teacher and the held-out judges as above. "
        "Mean (min..max) over seeds; beside it the same grader's mean gain with the "
        "teacher's reward from the same checkpoint.",
        "",
        "| pretrained words | grader | start of RL | end of RL | gain | gain with the teacher's reward |",
        "|---|---|---|---|---|---|",
    ]
    graders = [TEACHER, *(spec.label for spec in config.judge_specs)]
    for b in sorted({r["budget"] for r in controls}):
        runs = [r for r in controls if r["budget"] == b]
        taught = [r for k, r in results.items() if k.startswith(f"rl/{b}-")]
        for grader in graders:
            name = f"teacher `{config.teacher}`" if grader == TEACHER else f"judge `{grader}`"
            row = f"| {b:,} + random-reward control | {name} |"
            control = start_end(runs, grader)
            if control is None:
                lines.append(f"{row} not graded | | | |")
                continue
            start, end = control[:, 0].mean(), control[:, 1]
            reward = start_end(taught, grader)
            ref = "no run" if reward is None else f"{np.mean(reward[:, 1] - reward[:, 0]):+.3f}"
            lines.append(
                f"{row} {start:.3f} | {_spread(end)} | {end.mean() - start:+.3f} | {ref} |"
            )
    return lines


def _length_lines(results: dict[str, Any]) -> list[str]:
    """Words per evaluation story before and after RL, per budget (RL runs and controls
    apart): a grader's taste for short or long text shows here first."""
    groups: dict[tuple[str, int], list[dict]] = {}
    for key, r in results.items():
        if r.get("words_start") and r.get("words_end"):
            groups.setdefault((key.split("/")[0], r["budget"]), []).append(r)
    if not groups:
        return []
    lines = [
        "",
        "Words per story of the same evaluation stories, start of RL -> end, mean "
        "(min..max) over seeds.",
        "",
        "| pretrained words | words per story: start -> end |",
        "|---|---|",
    ]
    for (kind, b), runs in sorted(groups.items(), key=lambda kv: (kv[0][0] != "rl", kv[0][1])):
        end = _spread([r["words_end"][0] for r in runs], 1)
        label = f"{b:,}" if kind == "rl" else f"{b:,} + random-reward control"
        lines.append(f"| {label} | {runs[0]['words_start'][0]:.1f} -> {end} |")
    return lines


def within_length_gain(
    first: Sequence[tuple[int, float]],
    last: Sequence[tuple[int, float]],
    width: int = LENGTH_BIN_WORDS,
    least: int = MIN_BIN_STORIES,
) -> tuple[float, float] | None:
    """A grade's gain from ``first`` to ``last`` stories (each ``(words, grade)``) at a
    fixed story length: the difference of the mean grades within each bin of ``width``
    words that holds at least ``least`` stories at both ends, averaged with the bins'
    story counts as weights. Returns it and the share of all stories in those bins;
    ``None`` if no bin holds enough (the lengths did not overlap)."""
    bins: dict[int, tuple[list[float], list[float]]] = {}
    for end, stories in enumerate((first, last)):
        for words, grade in stories:
            bins.setdefault(int(words) // width, ([], []))[end].append(float(grade))
    kept = [(a, b) for a, b in bins.values() if len(a) >= least and len(b) >= least]
    if not kept:
        return None
    weights = np.array([len(a) + len(b) for a, b in kept], dtype=float)
    gains = np.array([np.mean(b) - np.mean(a) for a, b in kept])
    return float(gains @ weights / weights.sum()), float(weights.sum() / (len(first) + len(last)))


def _log_length_lines(config: ReproConfig, results: dict[str, Any], out: Path) -> list[str]:
    """The teacher's gain over each RL run's training log, as logged and at a fixed story
    length: whether the reward rose with the stories' length or beside it."""
    n = LOG_END_STORIES
    per_budget: dict[int, list[tuple[float, float, float, float, float]]] = {}
    for key, run in results.items():
        path = out / key / STORIES
        if not key.startswith("rl/") or not path.exists():
            continue
        with open(path) as fh:
            graded = [
                (int(r["words"]), float(r["teacher_score"]))
                for r in map(json.loads, fh)
                if r.get("teacher_score") is not None
            ]
        if len(graded) < 2 * n:
            continue
        first, last = graded[:n], graded[-n:]
        within = within_length_gain(first, last)
        if within is None:
            continue
        raw = float(np.mean([g for _, g in last]) - np.mean([g for _, g in first]))
        words = (np.mean([w for w, _ in first]), np.mean([w for w, _ in last]))
        per_budget.setdefault(run["budget"], []).append((*words, raw, *within))
    if not per_budget:
        return []
    lines = [
        "",
        f"The teacher `{config.teacher}`'s grade over each RL run's training log (the reward "
        f"as logged), its first {n} stories against its last {n}: the gain as logged and at "
        f"a fixed story length (the gain within {LENGTH_BIN_WORDS}-word bins of story length "
        f"holding {MIN_BIN_STORIES} or more stories at both ends, weighted by their "
        "stories). A gain that disappears within length is the reward paying for length. "
        "Mean (min..max) over seeds.",
        "",
        f"| pretrained words | words per story, first -> last {n} | teacher gain as logged "
        "| teacher gain within length | stories in the compared bins |",
        "|---|---|---|---|---|",
    ]
    for b in sorted(per_budget):
        v = np.array(per_budget[b])
        lines.append(
            f"| {b:,} | {v[:, 0].mean():.1f} -> {v[:, 1].mean():.1f} | {_spread(v[:, 2], sign='+')} | "
            f"{_spread(v[:, 3], sign='+')} | {v[:, 4].mean():.0%} |"
        )
    return lines


def audit_lines(config: ReproConfig, results: dict[str, Any], audit: dict[str, Any]) -> list[str]:
    """The audit (``audit.json``): words per story before and after RL, the rule-based
    judge, and each held-out judge regraded under the code of the audit, start -> end:
    the check that a gain is not a grader's taste for short, plain text."""
    groups: dict[tuple[str, int], list[dict]] = {}
    for key, r in results.items():
        if key in audit and f"start/{r['budget']}" in audit:
            groups.setdefault((key.split("/")[0], r["budget"]), []).append(audit[key])
    if not groups:
        return []
    # the rule-based judge has its own column even when it is also one of the judges
    labels = [spec.label for spec in config.judge_specs if spec.label != AUDIT_JUDGE]
    versions = next(iter(audit.values())).get("versions", {})
    lines = [
        "",
        "Audit: each evaluation written again at the same seeds (`audit.json`: the "
        "stories themselves, so any judge can grade them again). Words per story; the "
        f"rule-based `{AUDIT_JUDGE}` judge (never the reward; a story needs 30 words for "
        "full marks); and the held-out judges grading the same stories under the grading "
        f"code of the audit ({', '.join(f'{k} {v}' for k, v in versions.items())}), start "
        "-> end, mean (min..max) over seeds.",
        "",
        "| pretrained words | words per story: start -> end | "
        + " | ".join(f"`{name}`: start -> end" for name in (AUDIT_JUDGE, *labels))
        + " |",
        "|---|---|" + "---|" * (1 + len(labels)),
    ]
    for (kind, b), ends in sorted(groups.items(), key=lambda kv: (kv[0][0] != "rl", kv[0][1])):
        start = audit[f"start/{b}"]
        cells = [f"{start['words'][0]:.1f} -> {_spread([e['words'][0] for e in ends], 1)}"]
        for grader in (AUDIT_JUDGE, *labels):
            s0 = start[grader] if grader == AUDIT_JUDGE else start.get("judges", {}).get(grader)
            e = [
                x[grader] if grader == AUDIT_JUDGE else x.get("judges", {}).get(grader)
                for x in ends
            ]
            if s0 is None or any(v is None for v in e):
                cells.append("not graded")
                continue
            e1 = [v[0] for v in e]
            cells.append(f"{s0[0]:.3f} -> {_spread(e1)} ({np.mean(e1) - s0[0]:+.3f})")
        label = f"{b:,}" if kind == "rl" else f"{b:,} + random-reward control"
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return lines


def _probe_lines(config: ReproConfig, results: dict[str, Any]) -> list[str]:
    """Probe accuracy before and after RL per budget (formal phenomena pooled, and entity
    tracking apart), then per probe over every run with the teacher's reward."""
    probed = [r for r in results.values() if "probes_end" in r]
    if not probed:
        return []
    lines = [
        "",
        f"Probes (`storytelling probe`, {config.probe_pairs} items per probe, the same items "
        "before and after RL): accuracy of the formal phenomena pooled and of entity "
        "tracking (the paper's one gain), start of RL -> end, mean (min..max) over seeds.",
        "",
        "| pretrained words | formal: start | formal: end | change | entity tracking: start "
        "| entity tracking: end | change |",
        "|---|---|---|---|---|---|---|",
    ]
    groups: dict[tuple[str, int], list[dict]] = {}
    for key, r in results.items():
        if "probes_end" in r:
            groups.setdefault((key.split("/")[0], r["budget"]), []).append(r)
    # the runs with the teacher's reward first, then the controls; budgets in order
    for (kind, b), runs in sorted(groups.items(), key=lambda kv: (kv[0][0] != "rl", kv[0][1])):
        cells = []
        for name in (FORMAL, ENTITY_TRACKING):
            if name not in runs[0]["probes_start"]:
                cells += ["not probed", "", ""]
                continue
            s0 = runs[0]["probes_start"][name][0]
            e = [r["probes_end"][name][0] for r in runs]
            cells += [f"{s0:.3f}", _spread(e), f"{np.mean(e) - s0:+.3f}"]
        label = f"{b:,}" if kind == "rl" else f"{b:,} + random-reward control"
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    taught = [r for k, r in results.items() if k.startswith("rl/") and "probes_end" in r]
    if taught:
        lines += [
            "",
            f"Per probe, mean over the {len(taught)} runs with the teacher's reward (every "
            "budget and seed):",
            "",
            "| probe | start of RL | end of RL | change |",
            "|---|---|---|---|",
        ]
        for name in taught[0]["probes_start"]:
            s = np.mean([r["probes_start"][name][0] for r in taught])
            e = np.mean([r["probes_end"][name][0] for r in taught])
            lines.append(f"| {name} | {s:.3f} | {e:.3f} | {e - s:+.3f} |")
    return lines


def _load(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text()) if path.exists() else {}


def ladder(config: ReproConfig, out: Path) -> str:
    """``ladder.md``: per checkpoint the words seen, validation perplexity, the teacher's
    and judges' totals before RL and three samples; the real and word-shuffled reference
    rows; the halfway goal under each judge."""
    starts, refs = _load(out / "starts.json"), _load(out / "references.json")
    labels = [spec.label for spec in config.judge_specs]
    budgets = [b for b in sorted(config.budgets) if str(b) in starts]
    n_refs = refs.get("real", {}).get("stories", 0)
    lines = [
        "# The student ladder",
        "",
        "Per pretraining checkpoint: words seen, epochs and validation perplexity (measured "
        "by pretraining), and the totals in [0, 1] of its stories before RL "
        f"({config.eval_stories} at fixed seeds; mean [95% CI]) under the teacher "
        f"`{config.teacher}` and the held-out judges. The reference rows are graded by the "
        f"same teacher and judges: {n_refs} real validation stories (the second half of the "
        "split, cut to about 80 words) and the same stories with each sentence's words "
        f"shuffled (seed {refs.get('seed', 'n/a')}).",
        "",
        "| pretrained words | words seen | epochs | validation perplexity | "
        f"teacher `{config.teacher}` |" + "".join(f" judge `{label}` |" for label in labels),
        "|---|---|---|---|---|" + "---|" * len(labels),
    ]
    for b in budgets:
        meta = _load(out / "pretrain" / checkpoint_name(b) / "pretraining.json")
        seen = f"{meta['words_seen']:,}" if "words_seen" in meta else "not recorded"
        epochs = f"{meta['epochs']:.2f}" if "epochs" in meta else "not recorded"
        ppl = f"{meta['val_perplexity']:.1f}" if "val_perplexity" in meta else "not recorded"
        grades = [starts[str(b)]["teacher"], *(starts[str(b)]["judges"].get(k) for k in labels)]
        lines.append(
            f"| {b:,} | {seen} | {epochs} | {ppl} | " + " | ".join(map(_ci, grades)) + " |"
        )
    for key, title in (
        ("real", "real validation stories"),
        ("shuffled", "the same, words shuffled"),
    ):
        if key in refs:
            grades = [refs[key]["teacher"], *(refs[key]["judges"].get(k) for k in labels)]
            lines.append(f"| {title} | | | | " + " | ".join(map(_ci, grades)) + " |")
    lines += ["", *_halfway_lines(budgets, starts, refs, labels)]
    lines += [
        "",
        f"## Samples (the first three stories of each evaluation before RL, cut at {SAMPLE_WORDS} words)",
    ]
    for b in budgets:
        lines += ["", f"### {b:,} words", ""]
        for k, story in enumerate(starts[str(b)].get("samples", []), start=1):
            words = story.split()
            cut = " ".join(words[:SAMPLE_WORDS]) + (" ..." if len(words) > SAMPLE_WORDS else "")
            lines.append(f"{k}. {cut or '(empty story)'}")
    return "\n".join(lines) + "\n"


def _halfway_lines(
    budgets: list[int], starts: dict[str, Any], refs: dict[str, Any], labels: list[str]
) -> list[str]:
    """The halfway goal under each held-out judge, or why it cannot be read."""
    if not labels:
        return ["Halfway goal: not read (no held-out judge was configured)."]
    if not budgets or "real" not in refs:
        return ["Halfway goal: not read yet (the checkpoints or the reference rows are missing)."]
    lines = []
    for label in labels:
        top = starts[str(budgets[-1])]["judges"].get(label)
        real, shuffled = refs["real"]["judges"].get(label), refs["shuffled"]["judges"].get(label)
        head = f"Halfway goal under judge `{label}`, top checkpoint ({budgets[-1]:,} words): "
        if top is None or real is None or shuffled is None:
            lines.append(head + "not read (the judge graded none of one set's stories).")
        else:
            lines.append(head + halfway(top[0], shuffled[0], real[0]) + ".")
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
            ax.plot(x, y, "kx", markersize=9, label="random-reward control (end, each seed)")
        ax.set_xscale("log")
        ax.set_xticks(budgets, [f"{b:,}" for b in budgets], rotation=30)
        ax.minorticks_off()
        ax.set_xlabel("pretraining words seen")
        ax.set_ylabel("teacher score")
        ax.legend()
        ax.set_title("Interactive learning vs more next-word prediction")


__all__ = [
    "diversity_lines",
    "halfway",
    "ladder",
    "nwp_equivalent",
    "rows_by_budget",
    "within_length_gain",
    "write_report",
]
