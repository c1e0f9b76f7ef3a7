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
