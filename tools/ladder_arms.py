"""Two arms of the paper's experiment side by side: the rungs both ran (maintainers).

Each folder is a finished (or partly finished) ``storytelling reproduce`` output whose RL
arm used another algorithm on the same students (same pretraining recipe and seed). For
each rung both arms trained from, and each grader both recorded, the table gives each
arm's start -> end (mean over seeds, (min..max) of the end, (gain)) and the NWP
equivalent of the end score on one start-of-RL curve, by default the first folder's (the
same curve for both arms, so the equivalents compare)::

    python tools/ladder_arms.py results/reproduction results/reproduction-story
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from story_env.run.reproduce_report import TEACHER, nwp_equivalent, start_end


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


def table(folders: Sequence[Path], curve_folder: Path) -> str:
    """The markdown table of the rungs every folder ran, one row per rung and arm."""
    arms = [(_algorithm(f), _runs(f)) for f in folders]
    graders = [TEACHER]
    for name in arms[0][1][next(iter(arms[0][1]))].get("judges_end", {}):
        graders.append(name)
    curves = {g: _curve(curve_folder, g) for g in graders}
    kinds = sorted({k.split("-seed")[0] for _, runs in arms for k in runs})
    shared = [k for k in kinds if all(any(r.startswith(k + "-") for r in runs) for _, runs in arms)]
    shared.sort(key=lambda k: (k.startswith("control"), int(k.split("/")[1])))
    head = ["rung", "arm"]
    for g in graders:
        head += [f"{g}: start -> end (gain)", "NWP equivalent"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for kind in shared:
        budget = int(kind.split("/")[1])
        label = f"{budget:,}" + (" + random-reward control" if kind.startswith("control") else "")
        for algorithm, runs in arms:
            rows = [r for k, r in runs.items() if k.startswith(kind + "-")]
            seeds = f"{len(rows)} seed" + ("s" if len(rows) != 1 else "")
            cells = [label, f"`{algorithm}` ({seeds})"]
            for g in graders:
                cells += list(_cell(rows, g, None if "control" in kind else curves[g]))
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
    args = parser.parse_args(argv)
    print(table(args.folders, args.curve or args.folders[0]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
