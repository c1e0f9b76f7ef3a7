"""Training tokens/s of a TRL algorithm in one process and in several (``accelerate launch``).

Usage: python bench/bench_processes.py [--student tiny] [--algorithm grpo] [--steps 3000]
       [--num-envs 4] [--max-new-tokens 32] [--processes 1 2] [--repeats 2]

One thread per process (``OMP_NUM_THREADS=1``). One process runs ``storytelling train``;
N > 1 runs the same command under ``accelerate launch --multi_gpu --num_processes N``
(torchrun's launcher; on a machine without GPUs the processes train on the CPU over
gloo), each process writing ``--num-envs`` completions per step. Rounds are interleaved
(1, 2, 1, 2...). Per run: completion tokens, the run's own training time (rank 0's, from
the first generation to the last checkpoint: no launcher, imports or model loading) and
tokens/s over it, the whole command's wall time, the peak resident memory of the launch
(all its processes together, sampled every 0.2 s), and the core-milliseconds per token
(processes / tokens per second). Prints the cores and the command.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _tree_rss_mib(pid: int) -> float:
    """Resident memory of ``pid`` and all its descendants, in MiB (0 once it is gone)."""
    import psutil

    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.Error:
        return 0.0
    total = 0
    for p in procs:
        try:
            total += p.memory_info().rss
        except psutil.Error:
            continue
    return total / 2**20


def command(processes: int, train_args: list[str]) -> list[str]:
    """``storytelling train`` in one process, or under ``accelerate launch`` in several."""
    bin_dir = Path(sys.executable).parent
    if processes == 1:
        return [str(bin_dir / "storytelling"), "train", *train_args]
    return [
        *(str(bin_dir / "accelerate"), "launch", "--multi_gpu", "--num_processes", str(processes)),
        *("--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no"),
        *("--main_process_port", str(_port()), "-m", "story_env.run.cli", "train", *train_args),
    ]


def run(processes: int, args: argparse.Namespace) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as out:
        train_args = [
            "--algorithm", args.algorithm, "--student", args.student, "--teacher", "heuristic",
            "--steps", str(args.steps), "--num-envs", str(args.num_envs),
            "--max-new-tokens", str(args.max_new_tokens), "--kl-coef", "0.01",
            "--checkpoint-every", str(10 * args.steps), "--seed", "0",
            "--out", out, "--no-progress",
        ]  # fmt: skip
        started = time.perf_counter()
        proc = subprocess.Popen(
            command(processes, train_args),
            env={**os.environ, "OMP_NUM_THREADS": "1"},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        peak = 0.0
        while proc.poll() is None:  # the launch's memory: every process of its tree
            peak = max(peak, _tree_rss_mib(proc.pid))
            time.sleep(0.2)
        wall = time.perf_counter() - started
        if proc.returncode:
            raise SystemExit(f"{processes} process(es) failed:\n{proc.stderr.read()[-3000:]}")
        state = json.loads((Path(out) / "checkpoint.json").read_text())
    rate = state["steps"] / state["wall_s"]
    return {
        "tokens": state["steps"],
        "train_s": state["wall_s"],
        "tokens_per_s": rate,
        "wall_s": wall,
        "peak_mib": peak,
        "core_ms_per_token": 1000 * processes / rate,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--student", default="tiny")
    parser.add_argument("--algorithm", default="grpo")
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--num-envs", type=int, default=4)
    parser.add_argument("--max-new-tokens", type=int, default=32)
    parser.add_argument("--processes", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    print(f"{now}  cores: {os.cpu_count()}  command: python {' '.join(sys.argv)}")
    print(
        "processes | tokens | training s | tokens/s | core-ms/token | wall s (all) | peak RSS MiB"
    )
    for _ in range(args.repeats):
        for processes in args.processes:
            r = run(processes, args)
            print(
                f"{processes} | {r['tokens']:,} | {r['train_s']:.1f} | {r['tokens_per_s']:,.0f} | "
                f"{r['core_ms_per_token']:.1f} | {r['wall_s']:.1f} | {r['peak_mib']:,.0f}",
                flush=True,
            )


if __name__ == "__main__":
    main()
