"""Every on-policy algorithm trains the real embedded default student, ``tiny``.

Slow job: the first use builds ``tiny`` (about 5 minutes on 2 cores, then cached).
The default suite runs the same paths on a smaller student (tests/test_training.py).
"""

from __future__ import annotations

import json

import pytest

from story_env.run.config import TrainConfig
from story_env.run.evaluation import evaluate
from story_env.run.training import train

pytestmark = pytest.mark.slow


@pytest.mark.parametrize(
    ("algorithm", "extra"),
    [
        ("ppo", {"batch_size": 64, "n_epochs": 2}),
        ("a2c", {}),
        ("trpo", {"batch_size": 64, "cg_max_steps": 5, "n_critic_updates": 2}),
        ("maskable_ppo", {"batch_size": 64}),
    ],
)
def test_each_algorithm_trains_the_tiny_student(tmp_path, algorithm, extra):
    config = TrainConfig(
        algorithm=algorithm,
        student="tiny",
        teacher="heuristic",
        steps=320,
        num_envs=4,
        max_new_tokens=40,
        kl_coef=0.01,
        top_p=0.95 if algorithm == "maskable_ppo" else None,
        algo_kwargs={"n_steps": 40, **extra},
        checkpoint_every=10_000,
    )
    summary = train(config, tmp_path, progress=False)
    assert summary["steps"] >= 320
    rows = [json.loads(line) for line in (tmp_path / "stories.jsonl").read_text().splitlines()]
    assert len(rows) == summary["stories"] >= 320 // 40
    assert all(0.0 <= r["teacher_score"] <= 1.0 and r["story"] is not None for r in rows)
    result = evaluate(student="tiny", checkpoint=tmp_path, stories=8, num_envs=4, max_new_tokens=40)
    assert result["stories"] == 8 and 0.0 < result["teacher_score"][0] <= 1.0
