"""Which teachers can tell a story from a damaged copy of it? Contrast pairs per judge.

For every offline teacher (heuristic, random, hf, lm on SmolLM2, lm on Gemma): held-out
corpus stories (the validation split's second half, never used to calibrate) against
their own sentence shuffle, sentences spliced from six other stories, and their words
shuffled inside each sentence. Prints the share of pairs ordered right (original graded
strictly higher; ties count as wrong), each set's mean total with a 95% CI, and
stories/s batched and one at a time. Also grades two sets of student stories taken from
the committed runs: the tiny student's first stories (results/compare, before PPO
changed it) and the first stories of the reproduction's smallest and largest
pretraining budgets (results/reproduction/rl, at the start of RL).

    python bench/bench_judges.py                       # every offline teacher
    python bench/bench_judges.py --teachers lm lm:gemma --stories 40
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from story_env.agents.corpus import load_corpus
from story_env.prompts import PAPER_PROMPT
from story_env.registry import create_teacher
from story_env.run.judging import JudgeSpec, parse_judge
from story_env.run.stats import mean_ci
from story_env.teacher import StoryRequest
from story_env.teachers.contrasts import CORRUPTIONS, contrast_sets

ROOT = Path(__file__).resolve().parent.parent


def logged_stories(pattern: str, first: int) -> list[StoryRequest]:
    """The first ``first`` stories of each committed run folder matching ``pattern``."""
    out = []
    for run in sorted(ROOT.glob(pattern)):
        lines = (run / "stories.jsonl").read_text("utf-8").splitlines()[:first]
        out += [StoryRequest(r["prompt"], r["story"]) for r in map(json.loads, lines)]
    return out


def grade(teacher, requests: list[StoryRequest]) -> list[float]:
    scores = teacher.score(requests)
    bad = [s.error for s in scores if not s.ok]
    if bad:
        raise SystemExit(f"{teacher!r} failed to grade {len(bad)} stories: {bad[0]}")
    return [float(s.total) for s in scores]


def fmt(ci) -> str:
    return f"{ci[0]:.3f} [{ci[1]:.3f}, {ci[2]:.3f}]"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--teachers", nargs="+", default=["heuristic", "random", "hf", "lm", "lm:gemma"]
    )
    parser.add_argument("--stories", type=int, default=75, help="held-out stories (max 75)")
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args()

    held_out = load_corpus("validation")
    held_out = held_out[len(held_out) // 2 :][: args.stories]
    sets = contrast_sets(held_out, seed=1)
    requests = {k: [StoryRequest(PAPER_PROMPT, " " + t) for t in v] for k, v in sets.items()}
    requests["tiny, untrained"] = logged_stories("results/compare/ppo-seed*", 32)
    requests["repro smallest (100k words)"] = logged_stories(
        "results/reproduction/rl/100000-seed*", 32
    )
    requests["repro largest (10M words)"] = logged_stories(
        "results/reproduction/rl/10000000-seed*", 32
    )
    results = {}
    for text in args.teachers:
        spec: JudgeSpec = parse_judge(text)
        teacher = create_teacher(spec.name, **dict(spec.kwargs))
        row: dict = {"totals": {}, "ordered": {}}
        t0 = time.perf_counter()
        totals = {k: grade(teacher, reqs) for k, reqs in requests.items()}
        n_graded = sum(len(r) for r in requests.values())
        row["stories_per_s_batched"] = n_graded / (time.perf_counter() - t0)
        one = requests["original"][:8]  # no cache unless asked: each is graded afresh
        t0 = time.perf_counter()
        for r in one:
            grade(teacher, [r])
        row["stories_per_s_one_at_a_time"] = len(one) / (time.perf_counter() - t0)
        for k, values in totals.items():
            row["totals"][k] = mean_ci(values)
        for k in CORRUPTIONS:
            pairs = list(zip(totals["original"], totals[k], strict=True))
            row["ordered"][k] = sum(a > b for a, b in pairs) / len(pairs)
        results[spec.label] = row
        print(f"\n## {spec.label}", flush=True)
        for k in CORRUPTIONS:
            print(f"  original > {k:16s} {row['ordered'][k]:.1%} of {len(held_out)} pairs")
        for k, ci in row["totals"].items():
            print(f"  total {k:28s} {fmt(ci)}")
        print(
            f"  {row['stories_per_s_batched']:.2f} stories/s batched, "
            f"{row['stories_per_s_one_at_a_time']:.2f} one at a time"
        )
    print(
        "\n| judge | orig > sent. shuffle | orig > splice | orig > word shuffle | "
        "original | sent. shuffle | splice | word shuffle | tiny untrained | "
        "repro 25k | repro 600k | stories/s batched | one at a time |"
    )
    print("|---" * 13 + "|")
    for label, row in results.items():
        o, t = row["ordered"], row["totals"]
        cells = [f"{o[k]:.0%}" for k in CORRUPTIONS]
        cells += [f"{t[k][0]:.3f}" for k in ("original", *CORRUPTIONS)]
        cells += [
            fmt(t[k])
            for k in ("tiny, untrained", "repro smallest (100k words)", "repro largest (10M words)")
        ]
        cells += [
            f"{row['stories_per_s_batched']:.1f}",
            f"{row['stories_per_s_one_at_a_time']:.1f}",
        ]
        print(f"| {label} | " + " | ".join(cells) + " |")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
