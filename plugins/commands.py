"""Built-in commands of the ``storytelling`` command line.

Registered through ``storytelling_register_commands`` exactly as a plugin package adds
its own; each builder is imported only when the parser is built.
"""

from __future__ import annotations

from story_env.hookspecs import Register, hookimpl
from story_env.registry import lazy

# name, what it stands for (imported on first use), description
_COMMANDS = (
    (
        "plugins",
        "story_env.run.commands:add_plugins",
        "list registered teachers, students, algorithms and commands",
    ),
    ("play", "story_env.run.commands:add_play", "let an agent write stories and grade them"),
    (
        "pretrain",
        "story_env.agents.pretraining.commands:add_pretrain",
        "next-word pretraining of a small student, by words seen",
    ),
    (
        "build-student",
        "story_env.agents.pretraining.commands:add_build_student",
        "build (pretrain and cache) the embedded tiny student",
    ),
    (
        "train",
        "story_env.run.commands:add_train",
        "train a student with an RL algorithm against a teacher",
    ),
    (
        "eval",
        "story_env.run.commands:add_eval",
        "mean and 95% CI per dimension over N stories at fixed seeds",
    ),
    (
        "compare",
        "story_env.run.commands:add_compare",
        "several algorithms x seeds on the same task: table + plot",
    ),
    (
        "reproduce",
        "story_env.run.commands:add_reproduce",
        "the paper's data-efficiency experiment (resumable)",
    ),
    (
        "calibrate-lm",
        "story_env.run.commands:add_calibrate_lm",
        "fit the lm teacher's map onto 0..3 for a model, on held-out corpus stories",
    ),
    (
        "calibrate",
        "story_env.teachers.calibrate:add_calibrate",
        "rank-correlate a teacher's grades with the labelled calibration set",
    ),
    (
        "probe",
        "story_env.run.probing:add_probe",
        "formal-competence probes (minimal pairs, entity tracking): accuracy with 95% CIs",
    ),
    (
        "rate",
        "story_env.run.rating_web:add_rate",
        "blind pairwise rating of stories by people in a web page; win rates, ratings",
    ),
)


@hookimpl
def storytelling_register_commands(register: Register) -> None:
    for name, target, description in _COMMANDS:
        register(name, lazy(target), description=description)
