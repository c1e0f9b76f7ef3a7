"""Built-in teachers."""

from __future__ import annotations

from story_env.hookspecs import hookimpl
from story_env.registry import RegisterTeacher, lazy


@hookimpl
def storytelling_register_teachers(register: RegisterTeacher) -> None:
    register(
        "heuristic",
        lazy("teachers.heuristic:HeuristicTeacher"),
        description="Fast offline grader: readability, coherence, creativity from text statistics",
    )
    register(
        "random",
        lazy("teachers.random_teacher:RandomTeacher"),
        description="The paper's control: uniformly random grades (seeded)",
    )
    register(
        "hf",
        lazy("teachers.hf:HFTeacher"),
        description="Local transformers LLM judge (default SmolLM2-135M-Instruct); generate or probability mode",
    )
    register(
        "lm",
        lazy("teachers.lm:LMTeacher"),
        description="Language-model judge: readability, coherence, creativity from a local LM's "
        "probabilities of the story (default SmolLM2-135M; model=gemma for Gemma-3-270M)",
    )
    register(
        "llamacpp",
        lazy("teachers.llamacpp:LlamaCppTeacher"),
        description="LLM judge through llama.cpp in-process (xllamacpp) on a GGUF file",
    )
    register(
        "api",
        lazy("teachers.api:APITeacher"),
        description="Any OpenAI-compatible chat-completions server (vLLM, llama.cpp, Ollama, hosted)",
    )
