"""Stories graded per second by each teacher, one at a time and batched.

    python bench/bench_teachers.py --teachers heuristic hf llamacpp api --stories 16

Stories come from the calibration set (repeated to ``--stories``, each made unique so
no cache or prefix trick across stories helps). Every teacher grades one warm-up story
first (model loading is reported separately). "unbatched" sends one story per call with
one request in flight; "batched" sends all stories in one call with ``--batch-size``
stories per backend batch (slots / concurrency for llamacpp and api). The api teacher
talks HTTP to a llama.cpp server started in this process on the SmolLM2 GGUF, with the
same answer grammar as ``llamacpp`` constrained (sent as a request field).

``--calibrate`` also grades the calibration set with each teacher (batched settings)
and prints the per-dimension rank correlations, as ``storytelling calibrate`` does.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from typing import Any

from story_env.registry import create_teacher
from story_env.teacher import StoryRequest
from story_env.teachers.calibrate import load_calibration


def _requests(n: int) -> list[StoryRequest]:
    base = [s for s in load_calibration() if s.kind != "bad"]
    return [
        StoryRequest(base[i % len(base)].prompt, f"{base[i % len(base)].story} ({i})")
        for i in range(n)
    ]


def _api_kwargs(batch: int) -> dict[str, Any]:
    import xllamacpp

    from story_env.teachers.hf import SMOLLM2_GGUF, smollm2_folder

    global _SERVER
    if _SERVER is None:
        params = xllamacpp.CommonParams()
        params.model.path = os.path.join(smollm2_folder(), SMOLLM2_GGUF)
        params.n_parallel = 8
        params.n_ctx = 8 * 1024
        params.port = 0
        params.hostnames = ["127.0.0.1"]
        _SERVER = xllamacpp.Server(params)
    url = f"{_SERVER.listening_address.rstrip('/')}/v1"
    from story_env.teachers.llamacpp import ANSWER_GRAMMAR

    return {
        "base_url": url,
        "model": "smollm2",
        "temperature": 0.0,
        "concurrency": batch,
        "extra_body": {"grammar": ANSWER_GRAMMAR},
    }


_SERVER: Any = None

SETTINGS = {
    "heuristic": lambda b: {},
    "hf": lambda b: {"mode": "probability", "batch_size": b},
    "hf-generate": lambda b: {"mode": "generate", "batch_size": b},
    "llamacpp": lambda b: {"constrained": True, "n_parallel": b, "batch_size": b},
    "api": lambda b: {**_api_kwargs(b), "batch_size": b},
}


def bench(name: str, n: int, batch: int) -> dict[str, float]:
    """Time one teacher; returns load seconds and stories/s unbatched and batched."""
    teacher_name = name.split("-")[0]
    requests = _requests(n)
    rates = {}
    for label, size in (("unbatched", 1), ("batched", batch)):
        start = time.perf_counter()
        teacher = create_teacher(teacher_name, **SETTINGS[name](size))
        teacher.score([StoryRequest(requests[0].prompt, "A warm-up story about a cat and a hat.")])
        rates["load_s" if label == "unbatched" else "load_again_s"] = time.perf_counter() - start
        start = time.perf_counter()
        if label == "unbatched":
            for r in requests:
                teacher.score([r])
        else:
            teacher.score(requests)
        rates[label] = n / (time.perf_counter() - start)
    return rates


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--teachers", nargs="+", default=list(SETTINGS), choices=list(SETTINGS))
    parser.add_argument("--stories", type=int, default=16)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--calibrate", action="store_true", help="also print calibration")
    args = parser.parse_args()
    print(f"cores: {os.cpu_count()}  command: python {' '.join(sys.argv)}")
    print(
        f"| teacher | load s | unbatched stories/s | batched ({args.batch_size}) stories/s | speedup |"
    )
    print("|---|---|---|---|---|")
    for name in args.teachers:
        r = bench(name, args.stories, args.batch_size)
        print(
            f"| {name} | {r['load_s']:.1f} | {r['unbatched']:.2f} | {r['batched']:.2f} "
            f"| {r['batched'] / r['unbatched']:.1f}x |",
            flush=True,
        )
    if args.calibrate:
        from story_env.teachers.calibrate import calibrate, format_report, load_calibration

        stories = load_calibration()
        for name in args.teachers:
            teacher = create_teacher(name.split("-")[0], **SETTINGS[name](args.batch_size))
            print(f"\n[{name}]")
            print(format_report(calibrate(teacher, stories), len(stories)), flush=True)


if __name__ == "__main__":
    main()
