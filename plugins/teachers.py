"""Built-in teachers."""

from __future__ import annotations

from story_env.hookspecs import Register, hookimpl
from story_env.registry import lazy

# name, what it stands for (imported on first use), description
_TEACHERS = (
    (
        "heuristic",
        "story_env.teachers.heuristic:HeuristicTeacher",
        "Fast offline grader: readability, coherence, creativity from text statistics",
    ),
    (
        "random",
        "story_env.teachers.random_teacher:RandomTeacher",
        "The paper's control: uniformly random grades (seeded)",
    ),
    (
        "hf",
        "story_env.teachers.hf:HFTeacher",
        "Local transformers LLM judge (default SmolLM2-135M-Instruct); generate or probability mode",
    ),
    (
        "lm",
        "story_env.teachers.lm:LMTeacher",
        "Language-model judge: readability, coherence, creativity from a local LM's probabilities of the story (default SmolLM2-135M; model=gemma for Gemma-3-270M)",
    ),
    (
        "llamacpp",
        "story_env.teachers.llamacpp:LlamaCppTeacher",
        "LLM judge through llama.cpp in-process (xllamacpp) on a GGUF file",
    ),
    (
        "api",
        "story_env.teachers.api:APITeacher",
        "Any OpenAI-compatible chat-completions server (vLLM, llama.cpp, Ollama, hosted)",
    ),
)


@hookimpl
def storytelling_register_teachers(register: Register) -> None:
    for name, target, description in _TEACHERS:
        register(name, lazy(target), description=description)
