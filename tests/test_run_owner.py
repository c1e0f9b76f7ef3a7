"""A run folder has one owner (issue 34): a lock held for the run's lifetime, ``--out``
never takes over foreign files, and a checkpoint's model and counters must match.

Real components only: the real CLI, real run folders, two real ``train`` processes.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest

from story_env.errors import RunFolderError
from story_env.run.cli import main
from story_env.run_owner import LOCK, own_run

TRAIN = [
    "--num-envs",
    "2",
    "--max-new-tokens",
    "12",
    "--checkpoint-every",
    "32",
    "--algo-kwargs",
    '{"n_steps": 16, "batch_size": 32, "n_epochs": 1}',
    "--no-progress",
]


def one_line_error(capsys, argv: list[str]) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("storytelling: error: ") and "\n" not in err, err
    return err


def train_argv(student: str, out: Path, steps: int = 64) -> list[str]:
    return [
        "train",
        *("--algorithm", "ppo", "--kl-coef", "0"),  # the paper's PPO, as these runs were made
        *("--student", student, "--steps", str(steps), *TRAIN, "--out", str(out)),
    ]


@pytest.fixture(scope="module")
def finished_run(random_lm_student, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("owned") / "run"
    assert main(train_argv(random_lm_student, out)) == 0
    return out


def test_a_second_train_process_on_the_same_folder_is_refused_naming_the_holder(
    random_lm_student, tmp_path
):
    out = tmp_path / "run"
    argv = [sys.executable, "-m", "story_env.run.cli", *train_argv(random_lm_student, out, 10**6)]
    first = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while not (out / "stories.jsonl").exists():  # the first one is training
            assert first.poll() is None, first.communicate()[1]
            assert time.monotonic() < deadline
            time.sleep(0.2)
        second = subprocess.run(argv, capture_output=True, text=True, timeout=120)
        assert second.returncode == 2
        err = second.stderr.strip()
        assert "\n" not in err and "Traceback" not in err, err
        assert f"is in use by another process (PID {first.pid})" in err
        assert (out / LOCK).read_text().strip() == str(first.pid)
    finally:
        first.send_signal(signal.SIGTERM)
        first.communicate(timeout=120)
    # the first one's story log is its own: numbered 1..N once
    rows = [json.loads(line) for line in (out / "stories.jsonl").read_text().splitlines()]
    assert [r["story_index"] for r in rows] == list(range(1, len(rows) + 1))


def test_the_lock_is_released_when_the_run_ends(tmp_path):
    with (
        own_run(tmp_path / "run") as out,
        pytest.raises(RunFolderError, match=f"PID {os.getpid()}"),
        own_run(out),
    ):
        pass
    with own_run(tmp_path / "run"):  # free again
        pass


@pytest.mark.parametrize("out", ["", " "])
def test_an_empty_out_is_refused(capsys, random_lm_student, tmp_path, monkeypatch, out):
    monkeypatch.chdir(tmp_path)
    err = one_line_error(capsys, [*train_argv(random_lm_student, tmp_path)[:-1], out])
    assert f"--out {out!r} is empty" in err
    assert list(tmp_path.iterdir()) == []  # nothing written into the current folder


def test_a_folder_of_foreign_files_is_refused_not_adopted(capsys, random_lm_student, tmp_path):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "stories.jsonl").write_text("my own stories\n")
    (mine / "config.json").write_text('{"font": "serif"}')
    err = one_line_error(capsys, train_argv(random_lm_student, mine))
    assert "holds files that are not a storytelling run's (config.json, stories.jsonl)" in err
    assert (mine / "stories.jsonl").read_text() == "my own stories\n"
    assert (mine / "config.json").read_text() == '{"font": "serif"}'
    assert sorted(p.name for p in mine.iterdir()) == ["config.json", "stories.jsonl"]


def test_a_run_folder_of_this_project_is_resumed(random_lm_student, finished_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(finished_run, run)
    assert main([*train_argv(random_lm_student, run, 96), "--resume"]) == 0
    # a folder written before the lock file existed is still a run folder
    (run / LOCK).unlink()
    assert main([*train_argv(random_lm_student, run, 128), "--resume"]) == 0


def _rewritten_model(finished_run: Path, tmp_path: Path, **changes) -> Path:
    """A copy of the run whose checkpoint.zip carries other counters (``changes``)."""
    run = tmp_path / "run"
    shutil.copytree(finished_run, run)
    zipped = run / "checkpoint.zip"
    with zipfile.ZipFile(zipped) as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    state = json.loads(members["run_state.json"])
    members["run_state.json"] = json.dumps({**state, **changes}).encode()
    with zipfile.ZipFile(zipped, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return run


def test_an_older_model_beside_newer_counters_refuses_to_resume(
    capsys, random_lm_student, finished_run, tmp_path
):
    run = _rewritten_model(finished_run, tmp_path, steps=32)
    err = one_line_error(capsys, [*train_argv(random_lm_student, run, 128), "--resume"])
    assert "checkpoint.zip was saved at step 32 but checkpoint.json counts step 64" in err


def test_a_model_of_another_algorithm_refuses_to_resume(
    capsys, random_lm_student, finished_run, tmp_path
):
    run = _rewritten_model(finished_run, tmp_path, algorithm="a2c")
    err = one_line_error(capsys, [*train_argv(random_lm_student, run, 128), "--resume"])
    assert "checkpoint.zip is a 'a2c' checkpoint but the run trains 'ppo'" in err


def test_a_checkpoint_of_another_algorithm_refuses_to_resume(
    capsys, random_lm_student, finished_run, tmp_path
):
    run = tmp_path / "run"
    shutil.copytree(finished_run, run)
    meta = json.loads((run / "checkpoint.json").read_text())
    assert meta["algorithm"] == "ppo"  # the counters name the algorithm
    (run / "checkpoint.json").write_text(json.dumps({**meta, "algorithm": "a2c"}))
    err = one_line_error(capsys, [*train_argv(random_lm_student, run, 128), "--resume"])
    assert "checkpoint.json is a 'a2c' checkpoint but the run trains 'ppo'" in err


def _default_sigint() -> None:
    """A shell starts a background job (``pytest ... &``) with SIGINT ignored, and a child
    inherits that: Python then installs no KeyboardInterrupt handler and Ctrl-C would do
    nothing. The child is given SIGINT's default, as a terminal's foreground job has."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.mark.slow
def test_ctrl_c_during_train_is_one_line_saying_how_to_resume(random_lm_student, tmp_path):
    out = tmp_path / "run"
    argv = train_argv(random_lm_student, out, 10**6)
    run = subprocess.Popen(
        [sys.executable, "-m", "story_env.run.cli", *argv],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=_default_sigint,
    )
    try:
        deadline = time.monotonic() + 120
        while not (out / "checkpoint.json").exists():  # past its first checkpoint
            assert run.poll() is None, run.communicate()[1]
            assert time.monotonic() < deadline
            time.sleep(0.2)
        run.send_signal(signal.SIGINT)  # what Ctrl-C sends
        _, err = run.communicate(timeout=300)
    finally:  # a failed test leaves no run training on
        if run.poll() is None:
            run.kill()
            run.wait()
    assert run.returncode == 130
    assert "Traceback" not in err and "KeyboardInterrupt" not in err, err
    last = err.strip().splitlines()[-1]
    assert last.startswith("storytelling: interrupted. The run folder keeps its last checkpoint")
    assert last.endswith("--resume") and f"--out {out}" in last
    # the line's command resumes the run
    resume = shlex.split(last.split("continue with: ", 1)[1])[1:]
    resume[resume.index("--steps") + 1] = "96"
    assert main(resume) == 0
