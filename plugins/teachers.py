"""Built-in teachers."""

from __future__ import annotations

from typing import Any

from story_env.hookspecs import hookimpl
from story_env.registry import RegisterTeacher


def _heuristic(**kwargs: Any) -> Any:
    from teachers.heuristic import HeuristicTeacher

    return HeuristicTeacher(**kwargs)


def _random(**kwargs: Any) -> Any:
    from teachers.random_teacher import RandomTeacher

    return RandomTeacher(**kwargs)


@hookimpl
def storytelling_register_teachers(register: RegisterTeacher) -> None:
    register(
        "heuristic",
        _heuristic,
        description="Fast offline grader: readability, coherence, creativity from text statistics",
    )
    register("random", _random, description="The paper's control: uniformly random grades (seeded)")
