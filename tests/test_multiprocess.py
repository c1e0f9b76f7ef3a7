"""GRPO in two processes on the CPU (``accelerate launch``, gloo): one run folder, kills, resume.

The commands are the ones docs/scaling.md gives. Slow job: two launches are killed (one
per rank) and resumed, then ``eval`` scores the result; about two minutes on 2 cores.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

BUDGET = 3000
NUM_ENVS = 4  # completions per process and optimizer step
PROCESSES = 2


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch_cmd(out: Path, *extra: str, port: int) -> list[str]:
    """``accelerate launch`` of ``storytelling train`` in two CPU processes.

    ``--multi_gpu`` picks accelerate's torchrun launcher, which starts the processes
    (``--cpu`` alone starts one); with no GPU each process trains on the CPU over gloo.
    """
    return [
        *(str(Path(sys.executable).with_name("accelerate")), "launch"),
        *("--multi_gpu", "--num_processes", str(PROCESSES), "--num_machines", "1"),
        *("--mixed_precision", "no", "--dynamo_backend", "no"),
        *("--main_process_port", str(port)),
        *("-m", "story_env.run.cli", "train", "--algorithm", "grpo", "--student", "tiny"),
        *("--steps", str(BUDGET), "--num-envs", str(NUM_ENVS), "--max-new-tokens", "32"),
        *("--checkpoint-every", "256", "--kl-coef", "0.05", "--seed", "3"),
        # one group of 8 completions per prompt: each group spans both processes
        *("--algo-kwargs", json.dumps({"num_generations": NUM_ENVS * PROCESSES})),
        *("--out", str(out), "--no-progress", *extra),
    ]


def _env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1"}


def _worker(launcher: subprocess.Popen, rank: int, deadline: float):
    """The training process of ``rank`` under the launcher (found by its RANK variable)."""
    import psutil

    while time.time() < deadline:
        for child in psutil.Process(launcher.pid).children(recursive=True):
            try:
                if child.environ().get("RANK") == str(rank) and "story_env.run.cli" in " ".join(
                    child.cmdline()
                ):
                    return child
            except psutil.Error:
                continue
        time.sleep(0.2)
    raise AssertionError(f"no worker of rank {rank} appeared")


def _kill_rank_after(out: Path, rank: int, steps: int, *, resume: bool) -> dict:
    """Launch (or resume), SIGKILL the worker of ``rank`` once a checkpoint counts
    ``steps``, and return the counters the run folder holds after the launcher gave up."""
    extra = ("--resume",) if resume else ()
    launcher = subprocess.Popen(
        launch_cmd(out, *extra, port=_free_port()),
        env=_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.time() + 400
    worker = _worker(launcher, rank, deadline)
    meta = out / "checkpoint.json"
    while time.time() < deadline and launcher.poll() is None:
        if meta.exists() and json.loads(meta.read_text())["steps"] >= steps:
            break
        time.sleep(0.05)
    assert launcher.poll() is None, f"the run ended before the kill: {launcher.stderr.read()}"
    worker.send_signal(signal.SIGKILL)
    _, err = launcher.communicate(timeout=120)  # the launcher stops the other process
    assert launcher.returncode != 0, err
    killed = json.loads(meta.read_text())
    assert steps <= killed["steps"] < BUDGET, "the run finished before the kill; make it longer"
    # the checkpoint it names holds both processes' parts
    checkpoint = out / killed["checkpoint"]
    for name in ("model.safetensors", "trainer_state.json", "rng_state_0.pth", "rng_state_1.pth"):
        assert (checkpoint / name).is_file(), name
    return killed


def _check_story_log(out: Path, state: dict) -> list[dict]:
    rows = [json.loads(line) for line in (out / "stories.jsonl").read_text().splitlines()]
    assert len(rows) == state["stories"]
    assert [r["story_index"] for r in rows] == list(range(1, len(rows) + 1))  # no gap, no repeat
    steps = [r["step"] for r in rows]
    assert steps == sorted(set(steps)) and steps[-1] == state["steps"]
    assert all(r["teacher_error"] is None and 0.0 <= r["reward"] <= 1.0 for r in rows)
    assert all(r["teacher_score"] is not None and r["scores"] for r in rows)
    assert rows[-1]["interactive_words"] == state["interactive_words"]
    return rows


def test_two_processes_share_one_run_folder_survive_kills_of_either_rank_and_evaluate(tmp_path):
    pytest.importorskip("trl")
    from story_env.agents.students.tiny import build_tiny

    build_tiny(progress=False)  # outside the timed runs
    first = _kill_rank_after(tmp_path, rank=1, steps=256, resume=False)
    second = _kill_rank_after(tmp_path, rank=0, steps=first["steps"] + 256, resume=True)
    assert second["processes"] == PROCESSES

    done = subprocess.run(
        launch_cmd(tmp_path, "--resume", port=_free_port()),
        env=_env(),
        capture_output=True,
        text=True,
        check=True,
    )
    assert done.stdout.count("trained grpo on tiny") == 1, done.stdout  # rank 0 reports
    state = json.loads((tmp_path / "checkpoint.json").read_text())
    assert state["steps"] >= BUDGET and state["wall_s"] > second["wall_s"]
    rows = _check_story_log(tmp_path, state)

    # every optimizer step grades 8 completions of one prompt: 4 from each process, in
    # rank order; the ranks sample from their own random streams, so their halves differ
    assert len(rows) % 8 == 0
    for start in range(0, len(rows), 8):
        group = rows[start : start + 8]
        assert [r["env"] for r in group] == list(range(8))
        assert len({r["prompt"] for r in group}) == 1
        assert [r["story"] for r in group[:4]] != [r["story"] for r in group[4:]]
    checkpoints = sorted(p.name for p in (tmp_path / "trainer").iterdir() if p.is_dir())
    assert checkpoints == [state["checkpoint"].rsplit("/", 1)[1]]  # older ones removed
    trainer_state = json.loads((tmp_path / state["checkpoint"] / "trainer_state.json").read_text())
    assert trainer_state["global_step"] > int(second["checkpoint"].rsplit("-", 1)[1])

    evaluated = subprocess.run(
        [
            *(sys.executable, "-m", "story_env.run.cli", "eval", "--checkpoint", str(tmp_path)),
            *("--stories", "8", "--num-envs", "4", "--max-new-tokens", "32", "--no-judge"),
        ],
        env=_env(),
        capture_output=True,
        text=True,
        check=True,
    )
    assert f"{tmp_path}: 8 stories" in evaluated.stdout and "teacher_score" in evaluated.stdout


def test_a_resume_with_another_number_of_processes_is_refused(tmp_path):
    """The processes share each step's batch: resuming in one process would change it."""
    pytest.importorskip("trl")
    cmd = launch_cmd(tmp_path, "--steps", "300", port=_free_port())
    del cmd[cmd.index("--algo-kwargs") : cmd.index("--algo-kwargs") + 2]  # groups of 4
    subprocess.run(cmd, env=_env(), capture_output=True, text=True, check=True)
    config = (tmp_path / "config.json").read_text()
    single = cmd[cmd.index("-m") + 1 :]  # the same train command, without the launcher
    resumed = subprocess.run(
        [sys.executable, "-m", *single, "--steps", "600", "--resume"],
        env=_env(),
        capture_output=True,
        text=True,
    )
    assert resumed.returncode == 2
    assert "it trained in 2 process(es) and this launch started 1" in resumed.stderr
    assert (tmp_path / "config.json").read_text() == config  # refused before any write
