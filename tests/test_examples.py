"""The example scripts run as their docs say, at tiny budgets.

(The plugin package in examples/custom_teacher_plugin is installed and used by
tests/test_plugins.py; the README's and the docs' code blocks run in tests/test_docs.py.)
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


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
