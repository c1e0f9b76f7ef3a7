"""The example scripts run, at tiny budgets (the docs point users at them)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import torch

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def _load(name: str):
    spec = importlib.util.spec_from_file_location(name, EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_train_with_sb3_trains_the_student_and_grades_it_with_a_held_out_judge(capsys):
    """Plain stable-baselines3: StoryPPO on the project's env and policy, then
    ``evaluate`` of the model in memory with a judge the reward never saw."""
    example = _load("train_with_sb3")
    assert len((EXAMPLES / "train_with_sb3.py").read_text().splitlines()) <= 40
    torch.manual_seed(0)
    flags = ["--steps", "64", "--stories", "4", "--judge", "random", "--num-envs", "2"]
    result = example.main(flags)
    assert result["stories"] == 4 and result["teacher"] == "heuristic"
    assert 0.0 <= result["teacher_score"][0] <= 1.0
    (judge,) = result["judges"]
    assert judge.startswith("random") and 0.0 <= result["judges"][judge]["total"][0] <= 1.0
    out = capsys.readouterr().out
    assert "teacher heuristic (the reward):" in out and f"held-out judge {judge}:" in out
