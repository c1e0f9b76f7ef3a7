"""Hook specifications: the only ways a plugin extends Storytelling-v0.

Every hook takes a ``register`` callback; the host owns the names, aliases and the
detection of duplicates. A plugin implements a hook with ``@story_env.hookimpl`` and
is found through the ``storytelling`` entry-point group, e.g. in its pyproject::

    [project.entry-points.storytelling]
    my_teacher = "my_package.plugin"

Hooks are called with keyword arguments only.
"""

from __future__ import annotations

from typing import Any, Protocol

import pluggy

PROJECT = "storytelling"

hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


class Register(Protocol):
    """The callback each registration hook is given.

    ``obj`` is what the name stands for: a teacher or student factory, an
    ``AlgorithmSpec``, or a command builder (see each hook below). ``trainable``
    marks a student whose ``model`` ``storytelling train`` can fine-tune.
    """

    def __call__(
        self,
        name: str,
        obj: Any,
        *,
        description: str = "",
        aliases: tuple[str, ...] = (),
        trainable: bool = False,
    ) -> None: ...


@hookspec
def storytelling_register_teachers(register: Register) -> None:
    """Register teacher factories.

    Call ``register(name, factory, description=..., aliases=())`` once per teacher.
    ``factory(**kwargs)`` must return an object following ``story_env.teacher.Teacher``;
    import heavy dependencies inside the factory, not at module import.
    """


@hookspec
def storytelling_register_students(register: Register) -> None:
    """Register student factories.

    Call ``register(name, factory, description=..., aliases=(), trainable=False)`` once
    per student. ``factory(**kwargs)`` must return an object following
    ``story_env.student.Student``: it gives the tokenizer that defines the env's action
    space and an agent that writes. Pass ``trainable=True`` when the student also has a
    ``model``: a transformers causal LM with an LM head over the tokenizer's vocabulary,
    which ``storytelling train`` fine-tunes (``story_env.student.TrainableStudent``).
    """


@hookspec
def storytelling_register_algorithms(register: Register) -> None:
    """Register RL algorithms.

    Call ``register(name, spec)`` with a ``story_env.registry.AlgorithmSpec`` that says how
    to load the stable-baselines3-style class and what it needs (action masks, recurrent
    state, discrete Q-values), or, with ``framework="trl"``, the TRL trainer and config
    classes that run it on whole completions.
    """


@hookspec
def storytelling_register_commands(register: Register) -> None:
    """Register subcommands of the ``storytelling`` command line.

    Call ``register(name, build, description=..., aliases=())`` once per command. The host
    makes the subparser (``description`` is its help line) and calls ``build(parser)``,
    which adds the arguments and sets ``parser.set_defaults(func=run)``; ``run(args)``
    returns the exit status. Import heavy dependencies inside ``run`` so that
    ``storytelling --help`` stays fast. Raise ``story_env.errors.StorytellingError`` (or
    a subclass) for a user's mistake: the CLI prints it as one line.
    """
