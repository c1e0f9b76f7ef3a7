"""The `storytelling` command line."""

from __future__ import annotations

import subprocess
import sys

import pytest

from story_env.run.cli import main


def test_plugins_lists_every_kind_with_its_distribution(capsys):
    assert main(["plugins"]) == 0
    out = capsys.readouterr().out
    assert out.index("teachers:") < out.index("students:") < out.index("algorithms:")
    heuristic = next(line for line in out.splitlines() if line.strip().startswith("heuristic"))
    assert "[storytelling" in heuristic and "plugin story_env.plugins.teachers" in heuristic
    assert "maskable_ppo" in out and "aliases: bigram" in out


def test_play_prints_stories_scores_and_a_summary(capsys):
    assert (
        main(
            [
                "play",
                "--teacher",
                "heuristic",
                "--student",
                "ngram",
                "--episodes",
                "3",
                "--seed",
                "1",
                "--max-new-tokens",
                "40",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert out.count("--- story") == 3
    assert "== 3 stories | teacher heuristic | student ngram | seed 1" in out
    assert "reward: mean" in out and "coherence: mean" in out


def test_play_is_reproducible(capsys):
    args = [
        "play",
        "--student",
        "ngram",
        "--episodes",
        "2",
        "--seed",
        "7",
        "--max-new-tokens",
        "30",
    ]
    main(args)
    first = capsys.readouterr().out
    main(args)
    assert capsys.readouterr().out == first


def test_unknown_teacher_exits_with_a_clear_message():
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "story_env.run.cli",
            "play",
            "--teacher",
            "llama",
            "--episodes",
            "1",
        ],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2
    assert "unknown teacher 'llama'" in result.stderr and "heuristic" in result.stderr
    assert "Traceback" not in result.stderr


def test_bad_json_kwargs_are_rejected(capsys):
    try:
        main(["play", "--teacher-kwargs", "{seed: 1}"])
    except SystemExit as exc:
        assert exc.code == 2
    assert "not valid JSON" in capsys.readouterr().err


def test_train_refuses_a_student_without_a_language_model(capsys, tmp_path):
    out = tmp_path / "run"
    status = main(["train", "--student", "ngram", "--steps", "100", "--out", str(out)])
    err = capsys.readouterr().err.strip()
    assert status == 2 and "\n" not in err
    assert err.startswith("storytelling: error: student 'ngram' cannot be trained")
    assert "Students that can be trained: hf, smollm2, tiny" in err
    assert list(out.iterdir()) == []  # refused before the run wrote anything


def test_every_command_comes_from_the_registry():
    from story_env.registry import registry
    from story_env.run.cli import build_parser

    registered = [e.name for e in registry().entries("command")]
    parser = build_parser()
    (sub,) = [a for a in parser._actions if a.dest == "command"]
    assert list(sub.choices) == registered
    assert {"train", "eval", "compare", "reproduce", "pretrain", "probe"} <= set(registered)


def test_a_new_config_field_becomes_a_flag_with_its_help_in_train_and_compare(monkeypatch, capsys):
    """Each setting is declared once, as a TrainConfig field: its flag, type, default and
    help come from there (no flag map written by hand)."""
    import dataclasses
    import inspect

    from story_env.run import commands
    from story_env.run import config as config_module
    from story_env.run.cli import build_parser

    @dataclasses.dataclass(frozen=True, init=False)
    class Extended(config_module.TrainConfig):
        warmup_stories: int = dataclasses.field(
            default=7, metadata={"help": "stories before the first update"}
        )

    monkeypatch.setattr(config_module, "TrainConfig", Extended)
    parser = build_parser()
    for command in ("train", "compare"):
        with pytest.raises(SystemExit):
            parser.parse_args([command, "--help"])
        out = " ".join(capsys.readouterr().out.split())
        assert "--warmup-stories WARMUP_STORIES stories before the first update (default: 7)" in out
    args = parser.parse_args(["train", "--out", "run", "--warmup-stories", "3", "--steps", "2e4"])
    assert commands._config(args).warmup_stories == 3 and args.steps == 20_000
    assert "_FIELDS" not in inspect.getsource(commands)


def test_every_command_s_help_starts_with_what_it_does(capsys):
    from story_env.registry import registry
    from story_env.run.cli import build_parser

    parser = build_parser()
    for entry in registry().entries("command"):
        with pytest.raises(SystemExit):
            parser.parse_args([entry.name, "--help"])
        out = capsys.readouterr().out
        # argparse: the usage, a blank line, then the description (wrapped); a command
        # may go on after the registry's one-line description
        opening = " ".join(out.split("\n\n")[1].split()).lower()
        assert opening.startswith(" ".join(entry.description.split()).lower()), entry.name


def _launched(monkeypatch, rank: int, processes: int = 2) -> None:
    """This process as ``rank`` of a launch (the launcher's variables)."""
    for name in ("OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("RANK", str(rank))
    monkeypatch.setenv("WORLD_SIZE", str(processes))


@pytest.mark.parametrize("rank", [0, 1])
def test_a_command_other_than_train_refuses_a_multi_process_launch(monkeypatch, capsys, rank):
    _launched(monkeypatch, rank)
    assert main(["play", "--student", "ngram", "--episodes", "1"]) == 2
    out, err = capsys.readouterr()
    assert "--- story" not in out  # refused before it ran
    if rank == 0:
        assert err.count("\n") == 1
        assert err.startswith(
            "storytelling: error: `storytelling play` runs in one process, but this launch "
            "started 2 (WORLD_SIZE=2); run it in one process, without accelerate launch"
        )
    else:
        assert err == ""  # rank 0 says it for the launch


def test_compare_under_a_launch_writes_nothing(monkeypatch, capsys, tmp_path):
    _launched(monkeypatch, 0, processes=4)
    out = tmp_path / "cmp"
    assert main(["compare", "--out", str(out), "--steps", "64"]) == 2
    assert "`storytelling compare` runs in one process" in capsys.readouterr().err
    assert not out.exists()


class FailingTrain:
    """Failure injection: ``train`` that fails at once with ``error``."""

    def __init__(self, error: BaseException) -> None:
        self.error = error

    def __call__(self, *args, **kwargs):
        raise self.error


@pytest.mark.parametrize("rank", [0, 1])
def test_under_a_launch_an_error_every_rank_has_is_printed_by_rank_0(
    monkeypatch, capsys, tmp_path, rank
):
    from story_env.errors import ConfigError, TeacherError
    from story_env.run import training

    _launched(monkeypatch, rank)
    argv = ["train", "--algorithm", "grpo", "--student", "tiny", "--out", str(tmp_path / "r")]
    monkeypatch.setattr(training, "train", FailingTrain(ConfigError("bad setting")))
    assert main(argv) == 2  # train is the command a launch runs: no refusal
    err = capsys.readouterr().err
    assert err == ("storytelling: error: bad setting\n" if rank == 0 else "")
    # a failure at run time may be this rank's alone: it says it, with its rank
    monkeypatch.setattr(training, "train", FailingTrain(TeacherError("the judge is down")))
    assert main(argv) == 2
    err = capsys.readouterr().err
    tag = "" if rank == 0 else "rank 1 of 2: "
    assert err == f"storytelling: error: {tag}the judge is down\n"


@pytest.mark.parametrize("rank", [0, 1])
def test_ctrl_c_under_a_launch_is_reported_by_rank_0_alone(monkeypatch, capsys, tmp_path, rank):
    from story_env.run import training

    _launched(monkeypatch, rank)
    monkeypatch.setattr(training, "train", FailingTrain(KeyboardInterrupt()))
    argv = ["train", "--algorithm", "grpo", "--student", "tiny", "--out", str(tmp_path / "r")]
    assert main(argv) == 130
    err = capsys.readouterr().err
    if rank == 0:
        assert err.startswith("storytelling: interrupted.") and "accelerate launch" in err
    else:
        assert err == ""


def test_the_ctrl_c_hint_of_a_command_other_than_train_does_not_say_train(monkeypatch):
    from story_env.run.cli import resume_hint

    monkeypatch.setenv("WORLD_SIZE", "2")
    hint = resume_hint(["compare", "--out", "runs/cmp"])
    assert "train" not in hint and "accelerate" not in hint
    assert hint.endswith("storytelling compare --out runs/cmp --resume")
    assert resume_hint(["eval", "--checkpoint", "x"]) == "Run the command again to start it over."


def test_a_json_file_inside_the_run_folder_is_refused_before_any_work(capsys, tmp_path):
    run = tmp_path / "run"
    assert main(["train", "--out", str(run), "--steps", "16", "--json", str(run / "t.json")]) == 2
    err = capsys.readouterr().err
    assert f"--json '{run / 't.json'}' is inside the run folder" in err
    assert f"--json '{tmp_path / 'run.json'}'" in err  # the fix: beside the folder
    assert not run.exists()  # refused before the folder was made
    run.mkdir()
    (run / "checkpoint.json").write_text("{}")  # eval reads a run folder by this file
    assert main(["eval", "--checkpoint", str(run), "--json", str(run / "after.json")]) == 2
    assert "is inside the run folder" in capsys.readouterr().err
