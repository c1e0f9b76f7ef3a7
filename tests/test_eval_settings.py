"""Evaluation reads its run (issue 34): ``eval``, ``compare`` and ``probe`` on a run
trained with non-default settings (a model folder as student, ``--max-new-tokens 12``, a
prompt file) use those settings; an override that cannot work is one line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from story_env.run.cli import main

PROMPTS = "Write a story about a red kite.\nWrite a very short story about a lost boot.\n"
SMALL = ["--num-envs", "2", "--max-new-tokens", "12"]
PPO = ["--algo-kwargs", '{"n_steps": 16, "batch_size": 32, "n_epochs": 1}', "--no-progress"]


@pytest.fixture(scope="module")
def prompt_run(random_lm_student, tmp_path_factory) -> Path:
    """A 32-step run of a model-folder student with a prompt file and 12-token stories."""
    folder = tmp_path_factory.mktemp("prompt_run")
    prompts = folder / "prompts.txt"
    prompts.write_text(PROMPTS)
    config = folder / "config.json"
    config.write_text(json.dumps({"prompt_file": str(prompts)}))
    out = folder / "run"
    argv = ["train", "--config", str(config), "--student", random_lm_student, "--steps", "32"]
    assert main([*argv, *SMALL, *PPO, "--out", str(out)]) == 0
    return out


def test_eval_of_a_run_uses_its_student_prompts_and_length(prompt_run, capsys, tmp_path):
    capsys.readouterr()
    result = tmp_path / "eval.json"
    argv = ["eval", "--checkpoint", str(prompt_run), "--stories", "4", "--num-envs", "2"]
    assert main([*argv, "--no-judge", "--json", str(result)]) == 0
    assert f"{prompt_run}: 4 stories" in capsys.readouterr().out
    texts = json.loads(result.read_text())["texts"]
    assert len(texts) == 4


@pytest.mark.parametrize(
    ("flag", "value", "shown"),
    [
        ("--max-new-tokens", "30", "was trained with max_new_tokens 12; --max-new-tokens 30"),
        ("--student", "tiny", "was trained with student '"),
    ],
)
def test_an_override_the_policy_cannot_use_is_one_line(prompt_run, capsys, flag, value, shown):
    capsys.readouterr()
    argv = ["eval", "--checkpoint", str(prompt_run), "--stories", "2", flag, value, "--no-judge"]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("storytelling: error: ") and "\n" not in err
    assert shown in err and f"Drop {flag}" in err


def test_an_override_that_matches_the_run_is_accepted(prompt_run, capsys):
    argv = ["eval", "--checkpoint", str(prompt_run), "--stories", "2", "--num-envs", "2"]
    assert main([*argv, "--max-new-tokens", "12", "--no-judge"]) == 0


def test_probe_of_a_run_uses_its_student(prompt_run, capsys):
    assert main(["probe", "--checkpoint", str(prompt_run), "--pairs", "2"]) == 0
    assert f"checkpoint {prompt_run}" in capsys.readouterr().out


def test_compare_with_a_prompt_file_evaluates_each_run_with_it(random_lm_student, tmp_path, capsys):
    prompts = tmp_path / "prompts.txt"
    prompts.write_text(PROMPTS)
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"prompt_file": str(prompts)}))
    argv = ["compare", "--config", str(config), "--student", random_lm_student, "--steps", "32"]
    argv += [*SMALL, *PPO, "--algorithms", "ppo", "--seeds", "0", "--eval-stories", "2"]
    assert main([*argv, "--no-judge", "--out", str(tmp_path / "cmp")]) == 0
    assert "| ppo | 0 |" in capsys.readouterr().out


@pytest.mark.parametrize("student", ["ngram", "random"])
def test_eval_of_a_student_without_a_language_model_writes_with_its_agent(
    student, capsys, tmp_path
):
    """``random`` and ``ngram`` have no causal LM to build a policy from: ``eval`` grades
    what their own agent writes (as ``play`` does), into a folder it creates."""
    result = tmp_path / "new" / "folder" / "eval.json"
    argv = ["eval", "--student", student, "--teacher", "heuristic", "--stories", "4"]
    flags = ["--num-envs", "2", "--no-judge", "--no-mauve", "--no-progress"]
    assert main([*argv, *flags, "--json", str(result)]) == 0
    assert f"student {student} (untrained): 4 stories" in capsys.readouterr().out
    written = json.loads(result.read_text())
    assert len(written["texts"]) == 4 and all(isinstance(t, str) for t in written["texts"])
    assert 0.0 <= written["teacher_score"][0] <= 1.0
