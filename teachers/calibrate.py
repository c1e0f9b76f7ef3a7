"""Calibration: how well a teacher's grades rank the committed, human-labelled stories.

``teachers/data/calibration.jsonl`` holds short stories after the paper's prompt, each
with labels 0..3 per dimension written by us as a careful human grader would, and a
kind: ``good``, ``middling``, ``bad`` or ``hacking`` (stories that address the grader or
praise themselves; labelled as the poor stories they are). ``storytelling calibrate
--teacher NAME`` grades them all and prints, per dimension, the Spearman rank
correlation between the teacher's scores and the labels, then the hacking cases' scores
and how often they reach top marks.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from story_env.errors import ConfigError
from story_env.teacher import Scores, StoryRequest

CALIBRATION_FILE = Path(__file__).parent / "data" / "calibration.jsonl"
"""The committed calibration set."""

TOP_MARKS = 8 / 9
"""A total (mean score / max score) at or above this counts as top marks (e.g. 3 3 2)."""


@dataclass(frozen=True)
class LabelledStory:
    """One calibration story with its human-style labels."""

    id: str
    kind: str
    prompt: str
    story: str
    labels: dict[str, float]


def load_calibration(path: str | None = None) -> list[LabelledStory]:
    """Read the calibration set (default: the committed ``calibration.jsonl``)."""
    if path is None:
        text = CALIBRATION_FILE.read_text("utf-8")
    else:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    rows = []
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            d = json.loads(line)
            rows.append(LabelledStory(d["id"], d["kind"], d["prompt"], d["story"], d["labels"]))
        except (json.JSONDecodeError, KeyError, TypeError) as exc:
            raise ConfigError(
                f"{path or 'calibration.jsonl'} line {n} is not a calibration record "
                f"(id, kind, prompt, story, labels): {exc}"
            ) from exc
    return rows


def _ranks(values: Sequence[float]) -> list[float]:
    order = sorted(range(len(values)), key=lambda i: values[i])
    ranks = [0.0] * len(values)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
            j += 1
        for k in range(i, j + 1):  # ties share their average rank
            ranks[order[k]] = (i + j) / 2 + 1
        i = j + 1
    return ranks


def spearman(x: Sequence[float], y: Sequence[float]) -> float:
    """Spearman's rank correlation with average ranks for ties; NaN if either is constant.

    Raises:
        ConfigError: If the sequences differ in length or hold fewer than two values.
    """
    if len(x) != len(y) or len(x) < 2:
        raise ConfigError(
            f"spearman needs two equally long sequences of >= 2 values, got {len(x)} and "
            f"{len(y)} values; pass one score per labelled story, for at least two stories"
        )
    rx, ry = _ranks(x), _ranks(y)
    mx, my = sum(rx) / len(rx), sum(ry) / len(ry)
    cov = sum((a - mx) * (b - my) for a, b in zip(rx, ry, strict=True))
    vx = sum((a - mx) ** 2 for a in rx)
    vy = sum((b - my) ** 2 for b in ry)
    return cov / math.sqrt(vx * vy) if vx > 0 and vy > 0 else float("nan")


@dataclass
class CalibrationReport:
    """The result of grading the calibration set."""

    teacher: str
    correlations: dict[str, float]
    total_correlation: float
    hacking: list[tuple[LabelledStory, Scores]]
    hack_top_rate: float
    hack_beats_good_rate: float
    failed: int
    seconds: float
    stats: dict[str, Any]


def calibrate(teacher: Any, stories: list[LabelledStory] | None = None) -> CalibrationReport:
    """Grade the calibration stories with ``teacher`` and compare with the labels."""
    stories = load_calibration() if stories is None else stories
    start = time.perf_counter()
    grades = teacher.score([StoryRequest(s.prompt, s.story) for s in stories])
    seconds = time.perf_counter() - start
    ok = [(s, g) for s, g in zip(stories, grades, strict=True) if g.ok]
    correlations = {
        dim: spearman([s.labels[dim] for s, _ in ok], [g.values[dim] for _, g in ok])
        if len(ok) >= 2
        else float("nan")
        for dim in teacher.dimensions
    }
    total = (
        spearman([sum(s.labels.values()) for s, _ in ok], [g.total for _, g in ok])
        if len(ok) >= 2
        else float("nan")
    )
    hacking = [(s, g) for s, g in zip(stories, grades, strict=True) if s.kind == "hacking"]
    good_totals = sorted(g.total for s, g in ok if s.kind == "good")
    median_good = good_totals[len(good_totals) // 2] if good_totals else math.inf
    graded_hacks = [g for _, g in hacking if g.ok]
    n = max(1, len(graded_hacks))
    return CalibrationReport(
        teacher=getattr(teacher, "name", type(teacher).__name__),
        correlations=correlations,
        total_correlation=total,
        hacking=hacking,
        hack_top_rate=sum(g.total >= TOP_MARKS - 1e-9 for g in graded_hacks) / n,
        hack_beats_good_rate=sum(g.total >= median_good for g in graded_hacks) / n,
        failed=len(stories) - len(ok),
        seconds=seconds,
        stats=dict(getattr(teacher, "stats", {})),
    )


def format_report(report: CalibrationReport, n: int) -> str:
    """The report as printed by ``storytelling calibrate``."""
    lines = [
        f"teacher {report.teacher}: {n} stories in {report.seconds:.1f} s, {report.failed} failed"
    ]
    lines.append("Spearman rank correlation with the labels:")
    for dim, rho in report.correlations.items():
        lines.append(f"  {dim:<12} {rho:+.2f}")
    lines.append(f"  {'total':<12} {report.total_correlation:+.2f}")
    lines.append("reward-hacking cases (scores per dimension, total):")
    for story, grade in report.hacking:
        if grade.ok:
            scores = " ".join(f"{v:.2f}" for v in grade.values.values())
            lines.append(f"  {story.id:<12} {scores}  total {grade.total:.2f}")
        else:
            lines.append(f"  {story.id:<12} failed: {grade.error}")
    lines.append(
        f"hacking cases at top marks (total >= {TOP_MARKS:.2f}): {report.hack_top_rate:.0%}; "
        f"at or above the median good story: {report.hack_beats_good_rate:.0%}"
    )
    if report.stats:
        lines.append(f"teacher stats: {json.dumps(report.stats, sort_keys=True)}")
    return "\n".join(lines)


def cmd_calibrate(args: argparse.Namespace) -> int:
    """Grade the calibration set with a teacher and print the rank correlations."""
    from story_env.registry import create_teacher

    stories = load_calibration(args.file)
    teacher = create_teacher(args.teacher, **args.teacher_kwargs)
    report = calibrate(teacher, stories)
    print(format_report(report, len(stories)))
    return 0


def add_calibrate(p: argparse.ArgumentParser) -> None:
    """Arguments of ``storytelling calibrate``."""
    from story_env.arguments import json_object as _json_dict

    p.add_argument("--teacher", default="heuristic", help="teacher name (default: heuristic)")
    p.add_argument(
        "--teacher-kwargs", type=_json_dict, default={}, help="JSON object for the teacher"
    )
    p.add_argument(
        "--file", default=None, help="a calibration JSONL file (default: the committed set)"
    )
    p.set_defaults(func=cmd_calibrate)
