"""The random-reward control: uniform integer grades, reproducible from a seed."""

from __future__ import annotations

import numpy as np

from story_env.teacher import StoryRequest, Teacher
from story_env.teachers.random_teacher import RandomTeacher

REQUESTS = [StoryRequest(prompt="Once upon a time,", story=f"story {i}") for i in range(50)]


def grades(
    teacher: RandomTeacher, batch_sizes: tuple[int, ...] = (50, 7, 1)
) -> list[dict[str, float]]:
    """All grades from a sequence of batches, as plain dicts."""
    return [dict(s.values) for n in batch_sizes for s in teacher.score(REQUESTS[:n])]


def test_satisfies_the_teacher_protocol() -> None:
    teacher = RandomTeacher()
    assert isinstance(teacher, Teacher)
    assert teacher.name == "random"
    assert teacher.dimensions == ("readability", "coherence", "creativity")
    assert teacher.max_score == 3.0


def test_same_seed_same_grades() -> None:
    assert grades(RandomTeacher(seed=3)) == grades(RandomTeacher(seed=3))


def test_different_seed_different_grades() -> None:
    assert grades(RandomTeacher(seed=0)) != grades(RandomTeacher(seed=1))


def test_successive_batches_differ() -> None:
    teacher = RandomTeacher(seed=0)
    first = [s.values for s in teacher.score(REQUESTS)]
    assert [s.values for s in teacher.score(REQUESTS)] != first


def test_grades_are_integers_in_range_with_exact_keys() -> None:
    for scores in RandomTeacher(seed=5).score(REQUESTS):
        assert scores.ok
        assert set(scores.values) == {"readability", "coherence", "creativity"}
        assert all(v in (0.0, 1.0, 2.0, 3.0) for v in scores.values.values())
        assert scores.total == sum(scores.values.values()) / 9
        assert scores.raw == " ".join(str(int(v)) for v in scores.values.values())


def test_grades_ignore_the_story() -> None:
    empty = [StoryRequest(prompt="", story="")] * 50
    assert grades(RandomTeacher(seed=9), (50,)) == [
        dict(s.values) for s in RandomTeacher(seed=9).score(empty)
    ]


def test_grades_are_roughly_uniform() -> None:
    teacher = RandomTeacher(seed=11)
    requests = [StoryRequest(prompt="", story="x")] * 4000
    values = np.array([list(s.values.values()) for s in teacher.score(requests)])
    for column in values.T:  # each dimension on its own
        counts = np.bincount(column.astype(int), minlength=4)
        assert counts.sum() == 4000
        assert np.all(np.abs(counts / 4000 - 0.25) < 0.03)
    assert abs(values.mean() - 1.5) < 0.05
