"""Built-in teachers."""

from __future__ import annotations

from story_env.hookspecs import Register, hookimpl
from story_env.registry import lazy

# name, what it stands for (imported on first use), description
_TEACHERS = (
    (
        "heuristic",
        "teachers.heuristic:HeuristicTeacher",
        "Fast offline grader: readability, coherence, creativity from text statistics",
    ),
    (
        "random",
        "teachers.random_teacher:RandomTeacher",
        "The paper's control: uniformly random grades (seeded)",
    ),
    (
        "hf",
        "teachers.hf:HFTeacher",
        "Local transformers LLM judge (default SmolLM2-135M-Instruct); generate or probability mode",
    ),
    (
        "lm",
        "teachers.lm:LMTeacher",
        "Language-model judge: readability, coherence, creativity from a local LM's probabilities of the story (default SmolLM2-135M; model=gemma for Gemma-3-270M)",
    ),
    (
        "llamacpp",
        "teachers.llamacpp:LlamaCppTeacher",
        "LLM judge through llama.cpp in-process (xllamacpp) on a GGUF file",
    ),
    (
        "api",
        "teachers.api:APITeacher",
        "Any OpenAI-compatible chat-completions server (vLLM, llama.cpp, Ollama, hosted)",
    ),
)


@hookimpl
def storytelling_register_teachers(register: Register) -> None:
    for name, target, description in _TEACHERS:
        register(name, lazy(target), description=description)
