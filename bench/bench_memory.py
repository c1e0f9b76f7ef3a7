"""Peak memory of a short PPO training run, per student.

Usage: python bench/bench_memory.py [--students tiny smollm2] [--steps 256] [--num-envs 8]

Each student trains in its own child process (`storytelling train`, KL shaping on, so the
frozen reference copy counts too) and the child's peak resident set size is read from
the kernel (``getrusage(RUSAGE_CHILDREN)`` after it exits). Prints the core count, the
command, and per student: peak RSS, steps, wall time.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def peak_of_child(cmd: list[str]) -> tuple[float, float]:
    """Run ``cmd`` and return (peak RSS of that child in MiB, wall seconds)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    started = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - started
    if done.returncode:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{done.stderr[-2000:]}")
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss  # KiB on Linux
    if peak <= before:  # the maximum over children: an earlier child was bigger
        print("  (note: an earlier child used more; figure is a lower bound)")
    return peak / 1024, wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--students", nargs="+", default=["tiny", "smollm2"])
    parser.add_argument("--steps", type=int, default=256)
    parser.add_argument("--num-envs", type=int, default=8)
    args = parser.parse_args()
    print(f"cores: {os.cpu_count()}  command: python {' '.join(sys.argv)}")
    exe = str(Path(sys.executable).with_name("storytelling"))
    # smallest first: RUSAGE_CHILDREN reports the maximum over all children so far
    for student in args.students:
        with tempfile.TemporaryDirectory() as out:
            n_steps = max(1, args.steps // args.num_envs)
            kwargs = {"n_steps": n_steps, "batch_size": args.num_envs * n_steps, "n_epochs": 1}
            cmd = [
                exe, "train", "--algorithm", "ppo", "--student", student, "--teacher", "heuristic",
                "--steps", str(args.steps), "--num-envs", str(args.num_envs), "--kl-coef", "0.01",
                "--algo-kwargs", json.dumps(kwargs), "--out", out, "--no-progress",
            ]  # fmt: skip
            peak, wall = peak_of_child(cmd)
            summary = json.loads((Path(out) / "checkpoint.json").read_text())
        print(
            f"{student:10s} peak RSS {peak:8,.0f} MiB   {summary['steps']:,} steps   "
            f"wall {wall:6.1f} s"
        )


if __name__ == "__main__":
    main()
