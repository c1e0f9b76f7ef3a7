"""GRPO through TRL on the embedded default student ``tiny``: train, kill, resume, eval, compare.

Slow job: the first use builds ``tiny`` (about 5 minutes on 2 cores, then cached).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

pytestmark = pytest.mark.slow

BUDGET = 3000


def _train_cmd(out, *extra):
    return [
        sys.executable,
        "-m",
        "story_env.run.cli",
        "train",
        "--algorithm",
        "grpo",
        "--student",
        "tiny",
        "--steps",
        str(BUDGET),
        "--num-envs",
        "4",
        "--max-new-tokens",
        "32",
        "--checkpoint-every",
        "256",
        "--kl-coef",
        "0.05",
        "--out",
        str(out),
        "--no-progress",
        *extra,
    ]


def test_grpo_trains_tiny_resumes_after_sigkill_and_evaluates(tmp_path):
    pytest.importorskip("trl")
    from story_env.agents.students.tiny import build_tiny

    build_tiny(progress=False)  # outside the timed run
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(
        _train_cmd(tmp_path), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    meta = tmp_path / "checkpoint.json"
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:
        if meta.exists() and json.loads(meta.read_text())["steps"] >= 256:
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    killed = json.loads(meta.read_text())
    assert killed["steps"] < BUDGET, "the run finished before the kill; make it longer"
    assert (tmp_path / killed["checkpoint"] / "model.safetensors").is_file()

    done = subprocess.run(
        _train_cmd(tmp_path, "--resume"), env=env, capture_output=True, text=True, check=True
    )
    state = json.loads(meta.read_text())
    assert state["steps"] >= BUDGET and state["wall_s"] > killed["wall_s"]
    assert "Warning" not in done.stderr and "Loading weights" not in done.stderr, done.stderr
    rows = [json.loads(line) for line in (tmp_path / "stories.jsonl").read_text().splitlines()]
    assert len(rows) == state["stories"]
    assert [r["story_index"] for r in rows] == list(range(1, len(rows) + 1))
    steps = [r["step"] for r in rows]
    assert steps == sorted(steps) and steps[-1] == state["steps"]
    assert all(0.0 <= r["reward"] <= 1.0 and r["teacher_error"] is None for r in rows)
    assert rows[-1]["interactive_words"] == state["interactive_words"]
    checkpoints = sorted(p.name for p in (tmp_path / "trainer").iterdir() if p.is_dir())
    assert checkpoints == [state["checkpoint"].rsplit("/", 1)[1]]  # older ones removed
    trainer_state = json.loads((tmp_path / state["checkpoint"] / "trainer_state.json").read_text())
    killed_step = int(killed["checkpoint"].rsplit("-", 1)[1])
    assert trainer_state["global_step"] > killed_step  # continued, not restarted
    if (tmp_path / "tensorboard").exists():
        assert list((tmp_path / "tensorboard").rglob("events.out.tfevents.*"))

    evaluated = subprocess.run(
        [
            sys.executable,
            "-m",
            "story_env.run.cli",
            "eval",
            "--checkpoint",
            str(tmp_path),
            "--stories",
            "8",
            "--num-envs",
            "4",
            "--max-new-tokens",
            "32",
            "--no-judge",  # the judge is not under test here
        ],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert f"{tmp_path}: 8 stories" in evaluated.stdout and "teacher_score" in evaluated.stdout

    from story_env.run.evaluation import evaluate

    shared = {"stories": 8, "num_envs": 4, "max_new_tokens": 32, "judges": []}
    by_run = evaluate(checkpoint=tmp_path, **shared)
    by_folder = evaluate(student=str(tmp_path / state["checkpoint"]), **shared)
    assert by_run["teacher_score"] == by_folder["teacher_score"]


def test_compare_puts_grpo_beside_ppo_in_one_table_and_plot(tmp_path):
    pytest.importorskip("trl")
    from story_env.run.comparison import compare
    from story_env.run.config import TrainConfig

    base = TrainConfig(
        student="tiny",
        steps=256,
        num_envs=4,
        max_new_tokens=16,
        kl_coef=0.05,
        algo_kwargs={"n_steps": 32, "batch_size": 64, "n_epochs": 1, "learning_rate": 1e-4},
        checkpoint_every=10_000,
    )
    table = compare(
        base, ["ppo", "grpo"], [0, 1], tmp_path, eval_stories=4, progress=False, judges=[]
    )
    per_seed = table.split("Across seeds")[0]  # the per-seed table, before the IQMs
    rows = [
        line for line in per_seed.splitlines() if line.startswith("| ") and "seed |" not in line
    ]
    assert [r.split(" | ")[:2] for r in rows] == [
        [f"| {a}", str(s)] for a in ("ppo", "grpo") for s in (0, 1)
    ]
    assert "grpo `learning_rate=0.0001`" in table  # PPO's n_steps etc. are not GRPO's
    assert (tmp_path / "results.md").read_text() == table
    assert (tmp_path / "curves.png").stat().st_size > 0
    records = {}
    for a in ("ppo", "grpo"):
        ev = json.loads((tmp_path / f"{a}-seed1" / "eval.json").read_text())
        assert ev["stories"] == 4 and 0.0 <= ev["teacher_score"][0] <= 1.0
        lines = (tmp_path / f"{a}-seed0" / "stories.jsonl").read_text().splitlines()
        records[a] = json.loads(lines[-1])
    assert set(records["grpo"]) == set(records["ppo"])  # one story-log format
