"""Env throughput: steps/s of Storytelling-v0 with the random agent.

Usage: python bench/bench_env.py [--steps N]
Prints the core count and steps/s for the single env and the vector env with the
heuristic teacher and with the (trivial) random teacher.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

from story_env.env import StorytellingEnv
from story_env.vector import StorytellingVectorEnv


def single(teacher: str, steps: int) -> float:
    env = StorytellingEnv(teacher=teacher)
    rng = np.random.default_rng(0)
    actions = rng.integers(0, 256, size=steps)  # no EOS: every story runs to 90 tokens
    env.reset(seed=0)
    start = time.perf_counter()
    for a in actions:
        _, _, term, trunc, _ = env.step(int(a))
        if term or trunc:
            env.reset()
    return steps / (time.perf_counter() - start)


def vector(teacher: str, steps: int, num_envs: int) -> float:
    env = StorytellingVectorEnv(num_envs=num_envs, teacher=teacher)
    rng = np.random.default_rng(0)
    actions = rng.integers(0, 256, size=(steps // num_envs, num_envs))
    env.reset(seed=0)
    start = time.perf_counter()
    for a in actions:
        env.step(a)
    return actions.size / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=90_000)
    args = parser.parse_args()
    print(f"cores: {os.cpu_count()}  command: python {' '.join(sys.argv)}")
    for teacher in ("random", "heuristic"):
        print(f"single env, {teacher:9s} teacher: {single(teacher, args.steps):10,.0f} steps/s")
        for n in (16, 64):
            rate = vector(teacher, args.steps, n)
            print(f"vector env x{n:<3d} {teacher:9s} teacher: {rate:10,.0f} steps/s")


if __name__ == "__main__":
    main()
