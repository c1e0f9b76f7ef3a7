"""Our PPO's learning on bench_peers' task with some settings changed (issue 15).

    python bench/bench_ppo_settings.py [--algo-kwargs JSON] [--kl-coef K] [--num-envs N]
        [--algorithm ppo_story] [--seeds 1 2 3] [--tokens 20000] [--judge lm]

Each seed runs ``bench_peers``' PPO (student ``tiny``, teacher ``heuristic``, the paper's
prompt, 16 envs, ``n_steps`` 64, ``batch_size`` 512, 2 epochs, learning rate 1e-4, KL
coefficient 0.01) with ``--algo-kwargs`` merged over its PPO settings, ``--kl-coef`` in
place of 0.01, ``--num-envs`` in place of 16 and ``--algorithm`` in place of ``ppo``,
one thread. Printed per seed and as a
mean: the teacher's gain per 100 stories (first and last 32 stories of the run, as
bench_peers reports it) and, with ``--judge``, the held-out judge's gain on the same
stories. Compare with ``bench_peers.py``'s TRL GRPOTrainer rows on the same seeds.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import statistics
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--algo-kwargs", type=json.loads, default={}, help="JSON object")
    parser.add_argument("--kl-coef", type=float, default=None, help="default: bench_peers' 0.01")
    parser.add_argument("--num-envs", type=int, default=None, help="default: bench_peers' 16")
    parser.add_argument(
        "--algorithm", choices=("ppo", "ppo_story"), default=None, help="default: ppo"
    )
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--tokens", type=int, default=20_000)
    parser.add_argument("--judge", default=None, help="held-out judge, e.g. lm (default: none)")
    args = parser.parse_args()
    path = Path(__file__).with_name("bench_peers.py")
    spec = importlib.util.spec_from_file_location("bench_peers", path)
    peers = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(peers)  # type: ignore[union-attr]
    if args.judge and (error := peers.not_held_out(args.judge, (peers.TEACHER, {}))):
        parser.error(error)
    os.environ["OMP_NUM_THREADS"] = os.environ["MKL_NUM_THREADS"] = "1"
    import torch

    torch.set_num_threads(1)
    peers._quiet()
    changes = dict(args.algo_kwargs)
    if args.kl_coef is not None:
        changes["kl_coef"] = args.kl_coef
    if args.num_envs is not None:
        changes["num_envs"] = args.num_envs
    if args.algorithm is not None:
        changes["algorithm"] = args.algorithm
    kl = changes.get("kl_coef", peers.KL_COEF)
    envs = changes.get("num_envs", peers.NUM_ENVS)
    shown = {**peers.PPO_KWARGS, **args.algo_kwargs}
    algorithm = changes.get("algorithm", "ppo")
    print(
        f"PPO settings: {shown}, kl_coef {kl}, num_envs {envs}, algorithm {algorithm}, "
        f"seeds {args.seeds}"
    )
    runs = [peers.run_system("ppo", args.tokens, seed, changes) for seed in args.seeds]
    if args.judge:
        peers.judge_runs(runs, args.judge)
    for key in ("teacher_gain", "judge_gain") if args.judge else ("teacher_gain",):
        gains = [
            run[key]["per_100"] for run in runs if (run.get(key) or {}).get("per_100") is not None
        ]
        cells = ", ".join(f"{g:+.3f}" for g in gains)
        mean = f"{statistics.mean(gains):+.3f}" if gains else "-"
        print(f"{key.replace('_', ' ')} per 100 stories, seeds {args.seeds}: {cells} (mean {mean})")


if __name__ == "__main__":
    main()
