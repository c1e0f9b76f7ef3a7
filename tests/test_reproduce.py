"""The reproduction experiment: NWP-equivalent arithmetic and an end-to-end smoke run."""

from __future__ import annotations

import json
import time

import pytest

from agents.students.baselines import seed_stories
from story_env.errors import ConfigError
from story_env.run.reproduce import ReproConfig, nwp_equivalent, run, smoke_config


def test_nwp_equivalent_interpolates_in_log_words():
    budgets, starts = [1_000, 10_000, 100_000], [0.1, 0.3, 0.5]
    assert nwp_equivalent(budgets, starts, 0.3) == pytest.approx(10_000)
    assert nwp_equivalent(budgets, starts, 0.4) == pytest.approx(
        31_622.8, rel=1e-4
    )  # geometric middle
    assert nwp_equivalent(budgets, starts, 0.05) == 1_000
    assert nwp_equivalent(budgets, starts, 0.9) is None  # beyond the ladder
    assert nwp_equivalent(budgets, [0.1, 0.05, 0.5], 0.2) == pytest.approx(
        10 ** (4 + 0.25), rel=1e-4
    )


def test_smoke_experiment_runs_end_to_end_and_resumes(tmp_path):
    corpus = tmp_path / "stories.txt"
    corpus.write_text("\n".join(" ".join(s.split()) for s in seed_stories()) + "\n")
    config = smoke_config(str(corpus), str(corpus))
    started = time.perf_counter()
    result = run(config, tmp_path / "exp", progress=False, log=lambda *_: None)
    first = time.perf_counter() - started
    results = json.loads((tmp_path / "exp" / "results.json").read_text())
    assert len(results) == 5 * 2 + 1  # every budget x seed, plus the random-reward control
    assert sum(k.startswith("control/") for k in results) == 1
    assert all(0.0 <= r["start"] <= 1.0 and 0.0 <= r["end"] <= 1.0 for r in results.values())
    # a checkpoint is evaluated once before RL, whatever the number of seeds
    assert results["rl/1000-seed0"]["start"] == results["rl/1000-seed1"]["start"]
    table = (tmp_path / "exp" / "results.md").read_text()
    assert "NWP words equivalent" in table and "random-reward control" in table
    assert table.count("\n| 1,000 |") == 2  # the teacher's table and the judge's
    assert (tmp_path / "exp" / "curves.png").stat().st_size > 0
    assert "Held-out judge `random` (never the reward)" in table
    assert all("random" in r["judges_end"] for k, r in results.items() if k.startswith("rl/"))
    assert result["timings"]["pretrain"] > 0
    started = time.perf_counter()
    again = run(config, tmp_path / "exp", progress=False, log=lambda *_: None)
    assert again["results"] == results  # every stage is skipped on a rerun
    assert time.perf_counter() - started < first / 4


def test_config_file_round_trips_and_rejects_unknown_fields(tmp_path):
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"budgets": [10, 20], "seeds": [3], "model": {"n_layer": 2}}))
    config = ReproConfig.from_json(path)
    assert config.budgets == (10, 20) and config.seeds == (3,) and config.model.n_layer == 2
    path.write_text(json.dumps({"budget": [10, 20]}))
    with pytest.raises(ConfigError, match="unknown fields \\['budget'\\]"):
        ReproConfig.from_json(path)
