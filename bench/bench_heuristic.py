"""Heuristic teacher throughput: stories/s for batches of ~90-word stories.

Usage: python bench/bench_heuristic.py [--stories N] [--repeats R]

Builds N varied stories reproducibly (seed stories with shuffled, dropped, repeated and
renamed sentences, cut to at most 90 words), then times ``HeuristicTeacher.score`` in one
process for several batch sizes. Prints the core count, the exact command, the cold rate
(empty word cache) and, per batch size, the best wall-clock and CPU-time rates over R
repeats. The CPU-time rate is the one to compare on a shared or busy machine.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import time

from story_env.prompts import PAPER_PROMPT
from story_env.teacher import StoryRequest
from story_env.teachers import heuristic
from story_env.teachers.heuristic import HeuristicTeacher

SEED_STORIES: tuple[tuple[str, ...], ...] = (
    (
        "there lived a girl named Rosa who could talk to birds.",
        "The birds told her stories about faraway places.",
        "One cold winter, the birds were too hungry to sing.",
        "Rosa asked the villagers to help her.",
        "Together they built little wooden houses and filled them with seeds.",
        "Soon the birds were singing again, louder than ever.",
        "Rosa laughed as they flew around her head.",
        "The village was never quiet again.",
    ),
    (
        "there was a small cloud named Puff.",
        "Puff wanted to be big and dark like the storm clouds.",
        "He puffed himself up as much as he could, but he stayed small and white.",
        "One hot day, the flowers in the meadow began to droop.",
        "The big clouds were busy far away.",
        "Puff floated over the meadow and gave all the rain he had.",
        "The flowers lifted their heads and thanked him.",
        "Puff learned that even a small cloud can do big things.",
    ),
    (
        "an old lighthouse keeper lived alone on a rocky island.",
        "Every night he climbed the stairs and lit the great lamp.",
        "One stormy night, the lamp would not light.",
        "The keeper heard a ship's horn in the dark.",
        "He grabbed his lantern and waved it from the window.",
        "The ship turned away from the rocks just in time.",
        "The next morning, the sailors rowed to the island with a new lamp.",
        "After that, the keeper was never lonely again.",
    ),
    (
        "there lived a proud lion named Rex.",
        "He thought he did not need anyone.",
        "One day, he got his paw stuck in a hunter's net.",
        'He roared for help, but the big animals were afraid, and a deer said, "Run!"',
        "A tiny mouse heard him and came running.",
        "She chewed through the ropes until the lion was free.",
        "Rex bowed his head and thanked her.",
        "From that day on, the lion and the mouse were best friends.",
    ),
)
NAMES = ("Rosa", "Puff", "Rex", "Lily", "Tom", "Mia", "Ben", "Zara", "Omar", "Nina")
EXTRA_SENTENCES = (
    "The wind whispered through the tall green grass.",
    "A silver moon rose slowly over the quiet hills.",
    "Nobody knew that a secret door was hidden behind the old oak.",
    "The little stars twinkled like tiny lanterns.",
)


def make_stories(count: int, seed: int = 0) -> list[str]:
    """Build ``count`` varied stories of at most 90 words, reproducibly from ``seed``."""
    rng = random.Random(seed)
    stories: list[str] = []
    for _ in range(count):
        sentences = list(rng.choice(SEED_STORIES))
        kind = rng.randrange(5)
        if kind == 1:
            rng.shuffle(sentences)
        elif kind == 2:
            del sentences[rng.randrange(1, len(sentences))]
        elif kind == 3:
            i = rng.randrange(len(sentences))
            sentences[i:i] = [sentences[i]] * rng.randint(1, 3)
        sentences.insert(rng.randrange(1, len(sentences)), rng.choice(EXTRA_SENTENCES))
        text = " ".join(sentences)
        for name in NAMES[:4]:
            text = text.replace(name, rng.choice(NAMES))
        stories.append(" ".join(text.split()[:90]))
    return stories


def rate(
    teacher: HeuristicTeacher, requests: list[StoryRequest], batch: int
) -> tuple[float, float]:
    """Return (wall-clock, CPU-time) stories/s for one pass in batches of ``batch``."""
    wall, cpu = time.perf_counter(), time.process_time()
    for start in range(0, len(requests), batch):
        teacher.score(requests[start : start + batch])
    return len(requests) / (time.perf_counter() - wall), len(requests) / (time.process_time() - cpu)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--stories", type=int, default=4000, help="stories per timed pass")
    parser.add_argument("--repeats", type=int, default=3, help="timed passes per batch size")
    args = parser.parse_args()
    print(f"cores: {os.cpu_count()}  command: python {' '.join(sys.argv)}")

    stories = make_stories(args.stories)
    lengths = [len(s.split()) for s in stories]
    print(
        f"{len(stories)} stories, {sum(lengths) / len(lengths):.1f} words on average "
        f"(min {min(lengths)}, max {max(lengths)}), single process"
    )
    requests = [StoryRequest(prompt=PAPER_PROMPT, story=s) for s in stories]
    teacher = HeuristicTeacher()
    heuristic._word_info.cache_clear()
    wall, cpu = rate(teacher, requests, 256)
    print(f"cold word cache, batch 256: {wall:8,.0f} stories/s wall  {cpu:8,.0f} stories/s CPU")
    for batch in (1, 16, 64, 256):
        results = [rate(teacher, requests, batch) for _ in range(args.repeats)]
        wall, cpu = max(r[0] for r in results), max(r[1] for r in results)
        print(f"batch {batch:4d}: {wall:8,.0f} stories/s wall  {cpu:8,.0f} stories/s CPU")


if __name__ == "__main__":
    main()
