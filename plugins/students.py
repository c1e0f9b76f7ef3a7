"""Built-in students."""

from __future__ import annotations

from typing import Any

from story_env.hookspecs import hookimpl
from story_env.registry import RegisterStudent


def _random(**kwargs: Any) -> Any:
    from agents.baselines import RandomStudent

    return RandomStudent(**kwargs)


def _ngram(**kwargs: Any) -> Any:
    from agents.baselines import NGramStudent

    return NGramStudent(**kwargs)


@hookimpl
def storytelling_register_students(register: RegisterStudent) -> None:
    register("random", _random, description="Byte vocabulary, uniformly random tokens")
    register(
        "ngram",
        _ngram,
        description="Byte n-gram model (order 5) trained on stories",
        aliases=("bigram",),
    )
