"""The example scripts run as their docs say, at tiny budgets.

(The plugin package in examples/custom_teacher_plugin is installed and used by
tests/test_plugins.py; the README's and the docs' code blocks run in tests/test_docs.py.)
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest
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


@pytest.mark.slow
def test_dqn_experiment_runs_and_reports(tmp_path):
    command = [
        sys.executable,
        str(EXAMPLES / "dqn_experiment.py"),
        *("--steps", "64", "--num-envs", "2", "--eval-stories", "2", "--out", str(tmp_path)),
    ]
    subprocess.run(command, check=True, capture_output=True, text=True, timeout=900)
    report = json.loads((tmp_path / "results.json").read_text())
    assert report["steps"] == 64 and "dqn_greedy_before" in report
