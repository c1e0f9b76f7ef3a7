"""A Storytelling-v0 teacher plugin: the fraction of chosen keywords a story uses.

Install it (``pip install examples/custom_teacher_plugin``) and use it by name::

    gym.make("Storytelling-v0", teacher="keywords", teacher_kwargs={"keywords": ["dragon"]})

It also adds a subcommand, as any plugin can::

    storytelling keywords --keywords fox,moon "A fox saw the moon."
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Callable, Sequence
from typing import Any

from story_env import Scores, StoryRequest, hookimpl

_WORD = re.compile(r"[a-z']+")


class KeywordTeacher:
    """Grades a story by how many of ``keywords`` it mentions (one dimension, 0..1)."""

    name = "keywords"
    dimensions = ("keywords",)
    max_score = 1.0

    def __init__(self, *, keywords: Sequence[str] = ("dragon", "friend", "forest")) -> None:
        if isinstance(keywords, str) or not keywords:
            raise ValueError(f"keywords must be a non-empty list of words, got {keywords!r}")
        self.keywords = frozenset(k.lower() for k in keywords)

    def score(self, requests: Sequence[StoryRequest]) -> list[Scores]:
        grades = []
        for request in requests:
            found = self.keywords & set(_WORD.findall(request.story.lower()))
            grades.append(
                Scores.from_values(
                    {"keywords": len(found) / len(self.keywords)},
                    self.max_score,
                    raw=f"found {sorted(found)}",
                )
            )
        return grades


@hookimpl
def storytelling_register_teachers(register: Callable[..., Any]) -> None:
    register("keywords", KeywordTeacher, description="Fraction of chosen keywords the story uses")


def _grade_text(args: argparse.Namespace) -> int:
    teacher = KeywordTeacher(keywords=[k for k in args.keywords.split(",") if k])
    (grade,) = teacher.score([StoryRequest("", args.story)])
    print(f"{grade.total:.3f} {grade.raw}")
    return 0


def _add_keywords_command(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("story", help="the story text to grade")
    parser.add_argument("--keywords", default="dragon,friend,forest", help="comma-separated")
    parser.set_defaults(func=_grade_text)


@hookimpl
def storytelling_register_commands(register: Callable[..., Any]) -> None:
    register("keywords", _add_keywords_command, description="grade a text by its keywords")
