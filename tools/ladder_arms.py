"""Two arms of the paper's experiment side by side: the rungs both ran (maintainers).

Each folder is a finished (or partly finished) ``storytelling reproduce`` output whose RL
arm used another algorithm on the same students (same pretraining recipe and seed). For
each rung both arms trained from, and each grader both recorded, the table gives each
arm's start -> end (mean over seeds, (min..max) of the end, (gain)) and the NWP
equivalent of the end score on one start-of-RL curve, by default the first folder's (the
same curve for both arms, so the equivalents compare)::

    python tools/ladder_arms.py results/reproduction results/reproduction-story [--diversity]

``--diversity`` adds two columns, what RL did to the variety of each arm's stories, read
from the training logs (``rl/*/stories.jsonl``, ``control/*/stories.jsonl``: every arm
writes them, where only some ran the audit with its evaluation stories): distinct-3 and
the share of the most common two-word opening of each run's first and last ``--window``
stories, mean over seeds, (min..max) of the last window.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from story_env.run.diversity import distinct_n, top_opening
from story_env.run.reproduce_report import TEACHER, nwp_equivalent, start_end

WINDOW = 64  # training stories at each end of a run


def _runs(folder: Path) -> dict[str, Any]:
    path = folder / "results.json"
    if not path.is_file():
        raise SystemExit(f"error: {path} does not exist: is {folder} a reproduce folder?")
    return json.loads(path.read_text())


def _algorithm(folder: Path) -> str:
    config = json.loads((folder / "config.json").read_text())
    return config.get("rl", {}).get("algorithm", "ppo")


def _curve(folder: Path, grader: str) -> tuple[list[int], list[float]] | None:
    """The start-of-RL curve of ``grader`` over the folder's rungs (mean of each start)."""
    starts = json.loads((folder / "starts.json").read_text())
    budgets = sorted(int(b) for b in starts)
    scores = []
    for b in budgets:
        entry = starts[str(b)]
        value = entry["teacher"] if grader == TEACHER else entry["judges"].get(grader)
        if value is None:
            return None
        scores.append(value[0])
    return budgets, scores


def _cell(runs: list[dict[str, Any]], grader: str, curve) -> tuple[str, str]:
    pairs = start_end(runs, grader)
    if pairs is None:
        return "not graded", ""
    start, end = pairs.T
    cell = (
        f"{start.mean():.3f} -> {end.mean():.3f} ({end.min():.3f}..{end.max():.3f}) "
        f"({end.mean() - start.mean():+.3f})"
    )
    if curve is None:
        return cell, ""
    words = nwp_equivalent(*curve, float(end.mean()))
    return cell, (f"> {curve[0][-1]:,}" if words is None else f"{words:,.0f}")


def _shared_rungs(arms: Sequence[tuple[str, dict[str, Any]]]) -> list[str]:
    """The run kinds (``rl/<budget>``, ``control/<budget>``) every arm ran, in order."""
    kinds = sorted({k.split("-seed")[0] for _, runs in arms for k in runs})
    shared = [k for k in kinds if all(any(r.startswith(k + "-") for r in runs) for _, runs in arms)]
    return sorted(shared, key=lambda k: (k.startswith("control"), int(k.split("/")[1])))


def _label(kind: str) -> str:
    budget = int(kind.split("/")[1])
    return f"{budget:,}" + (" + random-reward control" if kind.startswith("control") else "")


def table(folders: Sequence[Path], curve_folder: Path, window: int | None = None) -> str:
    """The markdown table of the rungs every folder ran, one row per rung and arm; with
    ``window``, two columns more: the training logs' diversity (``_diversity_cells``)."""
    arms = [(f, _algorithm(f), _runs(f)) for f in folders]
    graders = [TEACHER]
    first_runs = arms[0][2]
    for name in first_runs[next(iter(first_runs))].get("judges_end", {}):
        graders.append(name)
    curves = {g: _curve(curve_folder, g) for g in graders}
    head = ["rung", "arm"]
    for g in graders:
        head += [f"{g}: start -> end (gain)", "NWP equivalent"]
    if window is not None:
        head += [
            f"distinct-3, first -> last {window}",
            f"top opening share, first -> last {window}",
        ]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for kind in _shared_rungs([(a, r) for _, a, r in arms]):
        for folder, algorithm, runs in arms:
            keys = sorted(k for k in runs if k.startswith(kind + "-"))
            seeds = f"{len(keys)} seed" + ("s" if len(keys) != 1 else "")
            cells = [_label(kind), f"`{algorithm}` ({seeds})"]
            rows = [runs[k] for k in keys]
            for g in graders:
                cells += list(_cell(rows, g, None if "control" in kind else curves[g]))
            if window is not None:
                cells += _diversity_cells([folder / k / "stories.jsonl" for k in keys], window)
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _log_figures(log: Path, window: int) -> tuple[float, float, float, float]:
    """Distinct-3 of a training log's first and last ``window`` stories, then their
    top-opening shares."""
    rows = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
    if len(rows) < 2 * window:
        raise SystemExit(f"error: {log} holds {len(rows)} stories, fewer than 2 x {window}")
    first = [r["story"] for r in rows[:window]]
    last = [r["story"] for r in rows[-window:]]
    d3 = [distinct_n(stories, 3) for stories in (first, last)]
    d3 = [float("nan") if d is None else d for d in d3]
    return d3[0], d3[1], top_opening(first)[1], top_opening(last)[1]


def _diversity_cells(logs: Sequence[Path], window: int) -> list[str]:
    """Distinct-3 and top-opening share of the logs' first -> last ``window`` stories:
    mean over the runs, (min..max) of the last."""
    figures = np.array([_log_figures(log, window) for log in logs])
    return [
        f"{start.mean():.3f} -> {end.mean():.3f} ({end.min():.3f}..{end.max():.3f})"
        for start, end in ((figures[:, 0], figures[:, 1]), (figures[:, 2], figures[:, 3]))
    ]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python tools/ladder_arms.py", description=__doc__)
    parser.add_argument("folders", nargs="+", type=Path, help="reproduce output folders")
    parser.add_argument(
        "--curve",
        type=Path,
        default=None,
        help="the folder whose start-of-RL curve gives the NWP equivalents (default: the first)",
    )
    parser.add_argument(
        "--diversity",
        action="store_true",
        help="two columns more: the training logs' distinct-3 and top-opening share, first -> last",
    )
    parser.add_argument(
        "--window", type=int, default=WINDOW, help=f"stories at each end of a log ({WINDOW})"
    )
    args = parser.parse_args(argv)
    if args.window < 1:
        parser.error(f"--window {args.window}: give at least one story")
    window = args.window if args.diversity else None
    print(table(args.folders, args.curve or args.folders[0], window))
    return 0


if __name__ == "__main__":
    sys.exit(main())
