"""GRPO in two processes on the CPU (``accelerate launch``, gloo): one run folder, kills, resume.

The commands are the ones docs/scaling.md gives. The slow tests launch real processes:
two GRPO launches are killed (one per rank) and resumed, then ``eval`` scores the result
(about two minutes on 2 cores); a resume in another number of processes is refused;
RLOO trains the same way. The fast ones check the launch's settings.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from launching import accelerate_train, one_thread_env, run_launch

from story_env.errors import ConfigError, GradingError, StorytellingError, UnknownPluginError
from story_env.run.processes import (
    ProcessGroup,
    check_processes,
    handed_error,
    process_count,
    process_index,
    rebuilt_error,
)

BUDGET = 3000
NUM_ENVS = 4  # completions per process and optimizer step
PROCESSES = 2


def launch_cmd(out: Path, *extra: str) -> list[str]:
    """``accelerate launch`` of GRPO on ``tiny`` in two CPU processes (tests/launching.py)."""
    return accelerate_train(
        PROCESSES,
        *("--algorithm", "grpo", "--student", "tiny"),
        *("--steps", str(BUDGET), "--num-envs", str(NUM_ENVS), "--max-new-tokens", "32"),
        *("--checkpoint-every", "256", "--kl-coef", "0.05", "--seed", "3"),
        # one group of 8 completions per prompt: each group spans both processes
        *("--algo-kwargs", json.dumps({"num_generations": NUM_ENVS * PROCESSES})),
        *("--out", str(out), "--no-progress", *extra),
    )


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
        launch_cmd(out, *extra),
        env=one_thread_env(),
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


@pytest.mark.slow
def test_two_processes_share_one_run_folder_survive_kills_of_either_rank_and_evaluate(tmp_path):
    pytest.importorskip("trl")
    from story_env.agents.students.tiny import build_tiny

    build_tiny(progress=False)  # outside the timed runs
    first = _kill_rank_after(tmp_path, rank=1, steps=256, resume=False)
    second = _kill_rank_after(tmp_path, rank=0, steps=first["steps"] + 256, resume=True)
    assert second["processes"] == PROCESSES

    done = run_launch(launch_cmd(tmp_path, "--resume"))
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
        env=one_thread_env(),
        capture_output=True,
        text=True,
        check=True,
    )
    assert f"{tmp_path}: 8 stories" in evaluated.stdout and "teacher_score" in evaluated.stdout


@pytest.mark.slow
def test_a_resume_with_another_number_of_processes_is_refused(tmp_path):
    """The processes share each step's batch: resuming in one process would change it."""
    pytest.importorskip("trl")
    cmd = launch_cmd(tmp_path, "--steps", "300")
    del cmd[cmd.index("--algo-kwargs") : cmd.index("--algo-kwargs") + 2]  # groups of 4
    run_launch(cmd)
    config = (tmp_path / "config.json").read_text()
    single = cmd[cmd.index("-m") + 1 :]  # the same train command, without the launcher
    resumed = subprocess.run(
        [sys.executable, "-m", *single, "--steps", "600", "--resume"],
        env=one_thread_env(),
        capture_output=True,
        text=True,
    )
    assert resumed.returncode == 2
    assert "it trained in 2 process(es) and this launch started 1" in resumed.stderr
    assert (tmp_path / "config.json").read_text() == config  # refused before any write


@pytest.mark.slow
def test_rloo_trains_in_two_processes_with_one_story_log(tmp_path):
    pytest.importorskip("trl")
    cmd = launch_cmd(tmp_path, "--algorithm", "rloo", "--steps", "400")
    del cmd[cmd.index("--algo-kwargs") : cmd.index("--algo-kwargs") + 2]  # groups of 4
    run_launch(cmd)
    state = json.loads((tmp_path / "checkpoint.json").read_text())
    assert state["algorithm"] == "rloo" and state["processes"] == PROCESSES
    rows = _check_story_log(tmp_path, state)
    assert [r["env"] for r in rows] == list(range(8)) * (len(rows) // 8)


@pytest.mark.slow
def test_a_failure_of_rank_0_during_setup_stops_both_processes_with_one_error(tmp_path):
    """Rank 0 refuses to resume a one-process run in two (``from_main``); rank 1 gets the
    refusal from it, and the launch ends at once with the message printed once."""
    pytest.importorskip("trl")
    cmd = launch_cmd(tmp_path, "--steps", "64", "--checkpoint-every", "32")
    del cmd[cmd.index("--algo-kwargs") : cmd.index("--algo-kwargs") + 2]  # groups of 4
    single = cmd[cmd.index("-m") + 1 :]  # the train command, without the launcher
    subprocess.run(
        [sys.executable, "-m", *single],
        env=one_thread_env(),
        capture_output=True,
        text=True,
        check=True,
    )

    def files() -> dict[str, bytes]:  # the run's files, not the lock (its holder's PID)
        return {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.is_file()} | {
            ".storytelling.lock": b""
        }

    before = files()
    started = time.perf_counter()
    resumed = subprocess.run(
        [*cmd, "--steps", "128", "--resume"],
        env=one_thread_env(),
        capture_output=True,
        text=True,
        timeout=300,  # without the hand-off rank 1 would wait for rank 0 until killed
    )
    elapsed = time.perf_counter() - started
    assert resumed.returncode != 0
    said = [line for line in resumed.stderr.splitlines() if "storytelling: error" in line]
    assert len(said) == 1, resumed.stderr[-3000:]  # rank 0 says it; rank 1 stays quiet
    assert "it trained in 1 process(es) and this launch started 2" in said[0]
    # no traceback of ours (the launcher prints its own ChildFailedError)
    assert "story_env/" not in resumed.stderr, resumed.stderr[-3000:]
    assert elapsed < 120, elapsed
    # refused before any write: the run folder is the one-process run's
    assert files() == before


# --- the launch's settings (fast) ----------------------------------------------------------
def test_rank_and_process_count_come_from_the_launcher_variables(monkeypatch):
    for name in ("RANK", "WORLD_SIZE", "OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE"):
        monkeypatch.delenv(name, raising=False)
    assert (process_index(), process_count()) == (0, 1)
    monkeypatch.setenv("OMPI_COMM_WORLD_RANK", "3")
    monkeypatch.setenv("OMPI_COMM_WORLD_SIZE", "4")  # mpirun's names
    assert (process_index(), process_count()) == (3, 4)
    monkeypatch.setenv("WORLD_SIZE", "two")
    with pytest.raises(ConfigError, match=r"WORLD_SIZE='two' is not a whole number >= 1"):
        process_count()
    monkeypatch.setenv("RANK", "-1")
    with pytest.raises(ConfigError, match=r"RANK='-1' is not a whole number >= 0"):
        process_index()


def test_an_sb3_algorithm_refuses_a_multi_process_launch(monkeypatch, tmp_path):
    from story_env.run.config import TrainConfig
    from story_env.run.training import train

    check_processes("ppo", "sb3")  # one process: fine
    monkeypatch.setenv("WORLD_SIZE", "2")
    check_processes("grpo", "trl")
    with pytest.raises(
        ConfigError, match=r"'ppo_story' \(stable-baselines3\) trains in one process"
    ):
        train(TrainConfig(student="ngram", steps=8), tmp_path / "run", progress=False)
    assert not (tmp_path / "run").exists()  # refused before the folder is made


def test_one_process_needs_no_process_group():
    group = ProcessGroup()
    assert group.main and group.gather([1, 2]) == [1, 2] and group.from_main(lambda: 7) == 7
    group.barrier()


def test_device_settings_pass_through_algo_kwargs(tmp_path):
    pytest.importorskip("trl")
    from story_env.registry import get_algorithm
    from story_env.run.config import TrainConfig
    from story_env.run.trl_training import _trl_args

    spec = get_algorithm("grpo")
    default = _trl_args(spec, TrainConfig(algorithm="grpo", steps=64, num_envs=4), tmp_path)
    assert default.use_cpu and not default.bf16 and not default.use_vllm
    assert default.ddp_find_unused_parameters is False
    chosen = TrainConfig(algorithm="grpo", steps=64, num_envs=4, algo_kwargs={"use_cpu": False})
    assert not _trl_args(spec, chosen, tmp_path).use_cpu


def test_the_scaling_page_gives_the_commands_the_tests_run():
    """docs/scaling.md shows the launch and train arguments of the tests, word for word."""
    import shlex

    page = (Path(__file__).resolve().parents[1] / "docs" / "scaling.md").read_text()
    words = " ".join(shlex.split(page.replace("\\\n", " "), comments=False, posix=False))
    launcher = accelerate_train(PROCESSES, port=29500)[1:-3]  # no executable, no train
    assert "accelerate " + " ".join(launcher) in words
    train = launch_cmd(Path("runs/grpo-2p"))
    flags = train[train.index("train") :]
    flags[flags.index("--algo-kwargs") + 1] = "'" + flags[flags.index("--algo-kwargs") + 1] + "'"
    assert "-m story_env.run.cli " + " ".join(flags) in words


def test_after_ctrl_c_a_launched_run_is_resumed_by_its_launch_command(monkeypatch):
    from story_env.run.cli import resume_hint

    argv = ["train", "--algorithm", "grpo", "--out", "runs/x"]
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert resume_hint(argv).endswith("storytelling train --algorithm grpo --out runs/x --resume")
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert resume_hint(argv).endswith(
        "the same launch command (accelerate launch ... train ...) plus --resume"
    )


class RecordingBroadcast:
    """Failure injection: stands in for accelerate's ``broadcast_object_list`` in one
    process. Rank 0's call pickles what it sends (as gloo does); a later call on another
    rank receives the last thing sent, unpickled."""

    def __init__(self) -> None:
        self.sent: list[bytes] = []

    def __call__(self, box: list, from_process: int = 0) -> list:
        import pickle

        assert from_process == 0
        if box[0] is not None:  # rank 0 sends
            self.sent.append(pickle.dumps(box[0]))
        else:  # another rank receives
            box[0] = pickle.loads(self.sent[-1])
        return box


def _hand_over(monkeypatch, failure: BaseException) -> tuple[BaseException, BaseException]:
    """Rank 0's ``from_main`` failing with ``failure``, then rank 1's; the two errors."""
    import accelerate.utils

    broadcast = RecordingBroadcast()
    monkeypatch.setattr(accelerate.utils, "broadcast_object_list", broadcast)

    def work():
        raise failure

    with pytest.raises(BaseException) as on_rank_0:
        ProcessGroup(2, 0).from_main(work)
    assert len(broadcast.sent) == 1, "rank 0 did not release the other processes"
    with pytest.raises(BaseException) as on_rank_1:
        ProcessGroup(2, 1).from_main(lambda: pytest.fail("work ran on rank 1"))
    return on_rank_0.value, on_rank_1.value


@pytest.mark.parametrize(
    "failure",
    [
        UnknownPluginError("teacher", "lama", ["heuristic", "llama"]),
        GradingError("the judge answered nothing", kind="format"),
        ConfigError("bad --steps"),
    ],
    ids=["unknown-plugin", "grading", "config"],
)
def test_rank_0s_project_error_reaches_the_other_ranks_as_the_same_error(monkeypatch, failure):
    pytest.importorskip("accelerate")
    own, handed = _hand_over(monkeypatch, failure)
    assert own is failure  # rank 0 raises its own error
    assert type(handed) is type(failure) and str(handed) == str(failure)
    assert getattr(handed, "kind", None) == getattr(failure, "kind", None)
    assert handed.handed_from_main


@pytest.mark.parametrize(
    "failure, said",
    [
        (KeyboardInterrupt(), "rank 0 stopped with KeyboardInterrupt"),
        (OSError(28, "No space left on device"), "OSError: [Errno 28] No space left on device"),
        (SystemExit(3), "rank 0 stopped with SystemExit: 3"),
    ],
    ids=["ctrl-c", "os-error", "exit"],
)
def test_any_failure_of_rank_0_releases_the_other_ranks(monkeypatch, failure, said):
    pytest.importorskip("accelerate")
    own, handed = _hand_over(monkeypatch, failure)
    assert own is failure
    assert type(handed) is StorytellingError and said in str(handed)
    assert handed.handed_from_main


def test_the_hand_off_is_plain_strings_that_any_process_can_unpickle():
    import pickle

    unknown = UnknownPluginError("teacher", "lama", ["llama"])
    with pytest.raises(TypeError):  # why the error object itself is not sent
        pickle.loads(pickle.dumps(unknown))
    sent = handed_error(GradingError("timed out", kind="timeout"))
    assert sent == ("GradingError", "timed out", "timeout")
    assert all(type(part) is str for part in handed_error(unknown))
    assert rebuilt_error("GradingError", "timed out", "timeout").kind == "timeout"
    assert rebuilt_error("GradingError", "no kind").kind == "backend"  # the class default
    generic = rebuilt_error("ValueError", "bad")  # a name that is not the project's
    assert (
        type(generic) is StorytellingError and str(generic) == "rank 0 stopped with ValueError: bad"
    )
    for not_an_error in ("Iterable", "describe_os_error"):  # names in errors, not its errors
        assert type(rebuilt_error(not_an_error, "x")) is StorytellingError
