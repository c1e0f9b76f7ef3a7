"""Built-in commands of the ``storytelling`` command line.

Registered through ``storytelling_register_commands`` exactly as a plugin package adds
its own; each builder is imported only when the parser is built.
"""

from __future__ import annotations

from story_env.hookspecs import hookimpl
from story_env.registry import RegisterCommand, lazy

_RUN = "story_env.run.commands"


@hookimpl
def storytelling_register_commands(register: RegisterCommand) -> None:
    register(
        "plugins",
        lazy(f"{_RUN}:add_plugins"),
        description="list registered teachers, students, algorithms and commands",
    )
    register(
        "play", lazy(f"{_RUN}:add_play"), description="let an agent write stories and grade them"
    )
    register(
        "pretrain",
        lazy("agents.pretraining.commands:add_pretrain"),
        description="next-word pretraining of a small student, by words seen",
    )
    register(
        "build-student",
        lazy("agents.pretraining.commands:add_build_student"),
        description="build (pretrain and cache) the embedded tiny student",
    )
    register(
        "train",
        lazy(f"{_RUN}:add_train"),
        description="train a student with an RL algorithm against a teacher",
    )
    register(
        "eval",
        lazy(f"{_RUN}:add_eval"),
        description="mean and 95% CI per dimension over N stories at fixed seeds",
    )
    register(
        "compare",
        lazy(f"{_RUN}:add_compare"),
        description="several algorithms x seeds on the same task: table + plot",
    )
    register(
        "reproduce",
        lazy(f"{_RUN}:add_reproduce"),
        description="the paper's data-efficiency experiment (resumable)",
    )
    register(
        "calibrate-lm",
        lazy(f"{_RUN}:add_calibrate_lm"),
        description="fit the lm teacher's map onto 0..3 for a model, on held-out corpus stories",
    )
    register(
        "calibrate",
        lazy("teachers.calibrate:add_calibrate"),
        description="rank-correlate a teacher's grades with the labelled calibration set",
    )
    register(
        "probe",
        lazy("story_env.run.probing:add_probe"),
        description="formal-competence probes (minimal pairs, entity tracking): "
        "accuracy with 95% CIs",
    )
