"""Two arms of the paper's experiment side by side: the rungs both ran (maintainers).

Each folder is a finished (or partly finished) ``storytelling reproduce`` output whose RL
arm used another algorithm on the same students (same pretraining recipe and seed). For
each rung both arms trained from, and each grader both recorded, the table gives each
arm's start -> end (mean over seeds, (min..max) of the end, (gain)) and the NWP
equivalent of the end score on one start-of-RL curve, by default the first folder's (the
same curve for both arms, so the equivalents compare)::

    python tools/ladder_arms.py results/reproduction results/reproduction-story [--diversity]

``--diversity`` adds what RL did to the variety of each arm's stories, read from the
training logs (``rl/*/stories.jsonl``, ``control/*/stories.jsonl``: every arm writes
them, where only some ran the audit with its evaluation stories): distinct-3 and the
share of the most common two-word opening of each run's first and last ``--window``
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


def table(folders: Sequence[Path], curve_folder: Path) -> str:
    """The markdown table of the rungs every folder ran, one row per rung and arm."""
    arms = [(_algorithm(f), _runs(f)) for f in folders]
    graders = [TEACHER]
    for name in arms[0][1][next(iter(arms[0][1]))].get("judges_end", {}):
        graders.append(name)
    curves = {g: _curve(curve_folder, g) for g in graders}
    shared = _shared_rungs(arms)
    head = ["rung", "arm"]
    for g in graders:
        head += [f"{g}: start -> end (gain)", "NWP equivalent"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for kind in shared:
        for algorithm, runs in arms:
            rows = [r for k, r in runs.items() if k.startswith(kind + "-")]
            seeds = f"{len(rows)} seed" + ("s" if len(rows) != 1 else "")
            cells = [_label(kind), f"`{algorithm}` ({seeds})"]
            for g in graders:
                cells += list(_cell(rows, g, None if "control" in kind else curves[g]))
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _log_figures(log: Path, window: int) -> tuple[float, float, float, float]:
    """Distinct-3 and top-opening share of a training log's first and last ``window``."""
    rows = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
    if len(rows) < 2 * window:
        raise SystemExit(f"error: {log} holds {len(rows)} stories, fewer than 2 x {window}")
    first = [r["story"] for r in rows[:window]]
    last = [r["story"] for r in rows[-window:]]
    figures = []
    for stories in (first, last):
        d3 = distinct_n(stories, 3)
        figures += [float("nan") if d3 is None else d3, top_opening(stories)[1]]
    return figures[0], figures[2], figures[1], figures[3]


def diversity_table(folders: Sequence[Path], window: int = WINDOW) -> str:
    """Distinct-3 and top-opening share, first -> last ``window`` training stories of
    every run, per rung both arms ran and arm: mean over seeds, (min..max) of the last."""
    arms = [(f, _algorithm(f), _runs(f)) for f in folders]
    lines = [
        f"| rung | arm | distinct-3: first -> last {window} | "
        f"top opening share: first -> last {window} |",
        "|---|---|---|---|",
    ]
    for kind in _shared_rungs([(a, r) for _, a, r in arms]):
        for folder, algorithm, runs in arms:
            keys = sorted(k for k in runs if k.startswith(kind + "-"))
            figures = np.array([_log_figures(folder / k / "stories.jsonl", window) for k in keys])
            cells = [_label(kind), f"`{algorithm}` ({len(keys)} seed{'s' * (len(keys) != 1)})"]
            for start, end in ((figures[:, 0], figures[:, 1]), (figures[:, 2], figures[:, 3])):
                cells.append(
                    f"{start.mean():.3f} -> {end.mean():.3f} ({end.min():.3f}..{end.max():.3f})"
                )
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


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
        help="also the training logs' distinct-3 and top-opening share, first -> last stories",
    )
    parser.add_argument(
        "--window", type=int, default=WINDOW, help=f"stories at each end of a log ({WINDOW})"
    )
    args = parser.parse_args(argv)
    if args.window < 1:
        parser.error(f"--window {args.window}: give at least one story")
    print(table(args.folders, args.curve or args.folders[0]))
    if args.diversity:
        print()
        print(diversity_table(args.folders, args.window))
    return 0


if __name__ == "__main__":
    sys.exit(main())
