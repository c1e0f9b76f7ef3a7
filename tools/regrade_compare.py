"""A comparison's statistics again from its runs' ``eval.json`` files (maintainers).

``storytelling compare --resume`` re-grades a run whose evaluation is out of date, which
needs the run's checkpoint; results/ keeps evaluations in git but not weights. When some
runs of a committed comparison are retrained (a changed default) and the others'
checkpoints are gone, this recomputes ``compare``'s figures from the evaluations as they
are: each algorithm's interquartile mean over seeds per grader with its stratified
bootstrap interval, the probability of improvement of each pair
(``story_env.run.comparison.seed_statistics``), each algorithm's mean diversity (and the
seeds' range) over the seeds that recorded it, and in ``pooled_diversity`` the diversity
of all its seeds' stories as one set, with intervals over stories
(``story_env.run.diversity.diversity``, no MAUVE)::

    python tools/regrade_compare.py results/compare_defaults \\
        --algorithms ppo_story,grpo,ppo --judges lm:gemma

It prints the figures and writes them to ``statistics.json`` in the folder.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from story_env.run.comparison import seed_statistics

DIVERSITY = (
    "distinct_1",
    "distinct_2",
    "distinct_3",
    "compression_ratio",
    "top_opening_share",
    "mauve",
)


def load_runs(folder: Path, algorithms: Sequence[str]) -> list[tuple[str, int, dict, float, float]]:
    """``(algorithm, seed, evaluation, 0, 0)`` for every ``ALGORITHM-seedN/eval.json``."""
    rows = []
    for name in algorithms:
        runs = sorted(
            (int(path.parent.name.rsplit("seed", 1)[1]), path)
            for path in folder.glob(f"{name}-seed*/eval.json")
        )
        if not runs:
            raise SystemExit(f"error: no {name}-seed*/eval.json in {folder}")
        rows += [(name, seed, json.loads(p.read_text("utf-8")), 0.0, 0.0) for seed, p in runs]
    return rows


def mean_diversity(rows: Sequence[tuple[str, int, dict, float, float]]) -> dict[str, Any]:
    """Each algorithm's mean of each diversity figure over the seeds that recorded it, and
    in ``range`` the lowest and highest seed's (MAUVE only where it was measured)."""
    out: dict[str, Any] = {}
    for name in dict.fromkeys(r[0] for r in rows):
        figures = [r[2]["diversity"] for r in rows if r[0] == name and "diversity" in r[2]]
        out[name] = {"seeds": len(figures)}
        for key in DIVERSITY:
            values = [f[key][0] for f in figures if f.get(key) is not None]
            if values:
                out[name][key] = statistics.fmean(values)
                out[name].setdefault("range", {})[key] = [min(values), max(values)]
    return out


def pooled_diversity(rows: Sequence[tuple[str, int, dict, float, float]]) -> dict[str, Any]:
    """Each algorithm's stories over all its seeds as one set: each figure of
    ``DIVERSITY`` but MAUVE as ``[value, low, high]``; ``{"stories": 0}`` when a run kept
    no stories (an evaluation from before they were recorded)."""
    from story_env.run.diversity import diversity

    out: dict[str, Any] = {}
    for name in dict.fromkeys(r[0] for r in rows):
        runs = [r[2] for r in rows if r[0] == name]
        if not all(run.get("texts") for run in runs):
            out[name] = {"stories": 0}
            continue
        figures = diversity([t for run in runs for t in run["texts"]], mauve=False)
        out[name] = {"stories": figures["stories"]} | {
            key: figures[key] for key in (*DIVERSITY[:-1], "top_opening")
        }
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python tools/regrade_compare.py")
    parser.add_argument("folder", type=Path, help="a storytelling compare --out folder")
    parser.add_argument("--algorithms", required=True, help="comma-separated, in table order")
    parser.add_argument("--judges", default="", help="comma-separated judge labels, e.g. lm:gemma")
    args = parser.parse_args(argv)
    algorithms = [a for a in args.algorithms.split(",") if a]
    judges = [j for j in args.judges.split(",") if j]
    rows = load_runs(args.folder, algorithms)
    graders = {"teacher": "teacher", **{f"judge {j}": j for j in judges}}
    result = seed_statistics(rows, algorithms, graders) | {
        "diversity": mean_diversity(rows),
        "pooled_diversity": pooled_diversity(rows),
    }
    text = json.dumps(result, indent=2) + "\n"
    (args.folder / "statistics.json").write_text(text, encoding="utf-8")
    print(text, end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
