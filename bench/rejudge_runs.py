"""Re-judge committed training runs: the first and last stories of each run's log, graded
again by held-out judges, beside the grade the run's own teacher gave them (its reward).

A run's gain under its own teacher is only a result if a judge it never saw agrees.

    python bench/rejudge_runs.py results/compare/ppo-seed0 results/compare/ppo-seed1
    python bench/rejudge_runs.py results/reproduction/rl/*-seed0 --judge lm:gemma --judge lm --n 48
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from story_env.run.judging import judge_stories, parse_judge
from story_env.run.stats import mean_ci
from story_env.teacher import StoryRequest


def fmt(ci) -> str:
    return f"{ci[0]:.3f} [{ci[1]:.3f}, {ci[2]:.3f}]"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("runs", nargs="+", help="run folders with a stories.jsonl")
    parser.add_argument("--judge", action="append", help="judge (repeatable); default lm:gemma")
    parser.add_argument("--n", type=int, default=64, help="stories from each end of a log")
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args()
    judges = [parse_judge(j) for j in (args.judge or ["lm:gemma"])]
    labels = [j.label for j in judges]
    print(
        "| run | teacher (reward) | teacher first -> last | "
        + " | ".join(f"{k} first -> last" for k in labels)
        + " |"
    )
    print("|---|---|---|" + "---|" * len(labels))
    out = {}
    for run in map(Path, args.runs):
        rows = [json.loads(x) for x in (run / "stories.jsonl").read_text("utf-8").splitlines()]
        rows = [r for r in rows if r.get("teacher_score") is not None]
        teacher = json.loads((run / "config.json").read_text("utf-8")).get("teacher", "?")
        ends = {"first": rows[: args.n], "last": rows[-args.n :]}
        result = {
            end: {"teacher": mean_ci([r["teacher_score"] for r in rs])} for end, rs in ends.items()
        }
        for end, rs in ends.items():
            judged = judge_stories(judges, [StoryRequest(r["prompt"], r["story"]) for r in rs])
            result[end].update({k: v["total"] for k, v in judged.items()})
        out[str(run)] = result
        cells = [f"{fmt(result['first'][k])} -> {fmt(result['last'][k])}" for k in labels]
        print(
            f"| {run} | {teacher} | {fmt(result['first']['teacher'])} -> "
            f"{fmt(result['last']['teacher'])} | " + " | ".join(cells) + " |",
            flush=True,
        )
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
