"""Model load time: transformers' GGUF load against the converted folder in the user cache.

Usage: python bench/bench_model_load.py [smollm2] [gemma]

For each shipped lm-teacher model, in one process: the seconds of transformers' own load
from the GGUF file (tokenizer and float32 model, de-quantized every time: what every
teacher and judge load cost before), of ``story_env.loading.gguf_folder`` (converts on
first use, then only finds the folder) and of loading that folder (what every load costs
now). Prints the core count and the exact command; wall-clock and CPU seconds, since the
wall clock of a shared machine varies with its load.
"""

from __future__ import annotations

import os
import sys
import time

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer
from transformers.utils import logging as hf_logging

from story_env.loading import gguf_folder
from story_env.teachers.lm import resolve_model


def timed(fn) -> tuple[float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - wall, time.process_time() - cpu


def load(folder: str, **kwargs) -> None:
    AutoTokenizer.from_pretrained(folder, local_files_only=True, **kwargs)
    AutoModelForCausalLM.from_pretrained(
        folder, dtype=torch.float32, local_files_only=True, **kwargs
    )


def main(models: list[str]) -> None:
    hf_logging.disable_progress_bar()
    print(f"cores: {os.cpu_count()}  command: python {' '.join(sys.argv)}")
    print(f"{'model':8s} {'GGUF load':>16s} {'gguf_folder':>16s} {'folder load':>16s}")
    for name in models:
        folder, gguf_file, _ = resolve_model(name)
        assert gguf_file is not None
        before = timed(lambda: load(folder, gguf_file=gguf_file))  # noqa: B023
        find = timed(lambda: gguf_folder(folder, gguf_file))  # noqa: B023
        converted = str(gguf_folder(folder, gguf_file))
        after = timed(lambda: load(converted))  # noqa: B023
        cells = [f"{w:6.1f} s ({c:5.1f} CPU)" for w, c in (before, find, after)]
        print(f"{name:8s} " + " ".join(f"{c:>16s}" for c in cells))


if __name__ == "__main__":
    main(sys.argv[1:] or ["smollm2", "gemma"])
