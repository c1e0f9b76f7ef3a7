"""Held-out judges: parsing, the default judge, and judges in eval and compare."""

from __future__ import annotations

import pytest

from story_env.errors import ConfigError
from story_env.run.cli import main
from story_env.run.judging import JudgeSpec, default_judges, judge_stories, parse_judge
from story_env.teacher import StoryRequest


@pytest.mark.parametrize(
    "text, spec",
    [
        ("heuristic", JudgeSpec("heuristic")),
        ("lm:gemma", JudgeSpec("lm", {"model": "gemma"})),
        (
            'lm:{"model": "smollm2", "batch_size": 4}',
            JudgeSpec("lm", {"model": "smollm2", "batch_size": 4}),
        ),
    ],
)
def test_parse_judge(text, spec):
    assert parse_judge(text) == spec


@pytest.mark.parametrize("text", ['lm:{"model": ', "lm:[1, 2]", ":gemma"])
def test_parse_judge_rejects_bad_input_naming_it(text):
    with pytest.raises(ConfigError, match="judge"):
        parse_judge(text)


def test_default_judge_uses_a_model_the_reward_does_not():
    assert default_judges("lm", {}) == [JudgeSpec("lm", {"model": "gemma"})]
    assert default_judges("lm", {"model": "gemma"}) == [JudgeSpec("lm", {"model": "smollm2"})]
    assert default_judges("heuristic", None) == [JudgeSpec("lm", {"model": "gemma"})]
    assert JudgeSpec("lm", {"model": "gemma"}).label == "lm:gemma"


def test_judge_stories_grades_every_story_with_every_judge():
    requests = [
        StoryRequest("Once upon a time,", " a fox found a key. It opened a door to the sea."),
        StoryRequest("Once upon a time,", " the the the the the the the the the the the."),
    ]
    out = judge_stories([JudgeSpec("heuristic"), JudgeSpec("random", {"seed": 3})], requests)
    assert set(out) == {"heuristic", 'random:{"seed": 3}'}
    for judged in out.values():
        assert judged["stories"] == 2 and judged["failed"] == 0
        mean, low, high = judged["total"]
        assert 0.0 <= low <= mean <= high <= 1.0


def test_eval_prints_the_teacher_and_the_held_out_judge(random_lm_student, capsys, tmp_path):
    out = tmp_path / "eval.json"
    code = main(
        [
            "eval",
            "--student", random_lm_student,
            "--teacher", "heuristic",
            "--judge", "random",
            "--stories", "4",
            "--num-envs", "2",
            "--max-new-tokens", "12",
            "--json", str(out),
        ]
    )  # fmt: skip
    printed = capsys.readouterr().out
    assert code == 0
    assert "teacher heuristic (the reward)" in printed
    assert "held-out judge random" in printed
    import json

    assert json.loads(out.read_text())["judges"]["random"]["stories"] == 4


def test_compare_table_has_a_column_per_judge(random_lm_student, tmp_path):
    from story_env.run.comparison import compare
    from story_env.run.config import TrainConfig

    base = TrainConfig(
        student=random_lm_student,
        steps=64,
        num_envs=2,
        max_new_tokens=12,
        algo_kwargs={"n_steps": 32, "batch_size": 32, "n_epochs": 1},
        checkpoint_every=10_000,
    )
    table = compare(base, ["ppo"], [0], tmp_path, eval_stories=2, progress=False, judges=["random"])
    assert "| algorithm | seed | final teacher score | judge random |" in table
    assert "judge random" in table.splitlines()[2]
    row = next(line for line in table.splitlines() if line.startswith("| ppo"))
    assert row.count("[") == 2  # the teacher's and the judge's mean with their CIs
