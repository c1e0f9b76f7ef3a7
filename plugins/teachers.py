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


def _hf(**kwargs: Any) -> Any:
    from teachers.hf import HFTeacher

    return HFTeacher(**kwargs)


def _lm(**kwargs: Any) -> Any:
    from teachers.lm import LMTeacher

    return LMTeacher(**kwargs)


def _llamacpp(**kwargs: Any) -> Any:
    from teachers.llamacpp import LlamaCppTeacher

    return LlamaCppTeacher(**kwargs)


def _api(**kwargs: Any) -> Any:
    from teachers.api import APITeacher

    return APITeacher(**kwargs)


@hookimpl
def storytelling_register_teachers(register: RegisterTeacher) -> None:
    register(
        "heuristic",
        _heuristic,
        description="Fast offline grader: readability, coherence, creativity from text statistics",
    )
    register("random", _random, description="The paper's control: uniformly random grades (seeded)")
    register(
        "hf",
        _hf,
        description="Local transformers LLM judge (default SmolLM2-135M-Instruct); generate or probability mode",
    )
    register(
        "lm",
        _lm,
        description="Language-model judge: readability, coherence, creativity from a local LM's "
        "probabilities of the story (default SmolLM2-135M; model=gemma for Gemma-3-270M)",
    )
    register(
        "llamacpp",
        _llamacpp,
        description="LLM judge through llama.cpp in-process (xllamacpp) on a GGUF file",
    )
    register(
        "api",
        _api,
        description="Any OpenAI-compatible chat-completions server (vLLM, llama.cpp, Ollama, hosted)",
    )
