"""``TrainConfig``: one training run's settings, with the env's settings inside it.

A run is an env (``story_env.core.EnvConfig``: teacher, student, story length, prompts,
reward weights, failure policy) plus what the run adds (algorithm, budget, parallel envs,
KL reference, seed, checkpoints). The env part is an ``EnvConfig``, held once; the run's
settings read it through properties (``config.teacher`` is ``config.env.teacher``) and
the constructor takes the env's fields by name, so a config is written flat::

    TrainConfig(algorithm="ppo", student="tiny", teacher="lm", steps=40_000)

``to_dict()`` is the flat JSON a run folder keeps as ``config.json``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import types
import typing
from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from story_env.arguments import MAX_ENVS, MAX_SEED, positive_int
from story_env.arguments import seed as parse_seed
from story_env.core import EnvConfig
from story_env.errors import ConfigError, did_you_mean
from story_env.rewards import finite_number

ENV_FIELDS = tuple(f.name for f in dataclasses.fields(EnvConfig))
# A run trains the embedded default student; a bare env writes with the random one.
_RUN_ENV = EnvConfig(student="tiny")


@dataclass(frozen=True, init=False)
class TrainConfig:
    """One training run. Every value is plain (JSON-able), saved as ``config.json``.

    Attributes:
        algorithm: Registered algorithm name (``storytelling plugins``).
        env: The env's settings (``EnvConfig``): ``student`` (name or model folder; the
            policy starts as this model, default ``tiny``), ``teacher``,
            ``max_new_tokens`` (the paper: 90), ``length_bonus`` (the paper's b),
            ``prompts`` or ``prompt_file``, ``weights``, ``teacher_kwargs``,
            ``student_kwargs``, ``teacher_fallback`` (reward of a story the teacher
            failed to grade, flagged in the story log; ``None`` stops the run with an
            error) and ``teacher_timeout_s``. Each can be given by name instead.
        steps: Env steps (tokens) to train for, across all envs.
        word_budget: Stop once prompt words + teacher words of finished stories reach this.
        num_envs: Stories written at once.
        kl_coef: Weight of the KL to the starting student: ``ppo_story`` charges each
            token GRPO's k3 term; the other SB3 algorithms a per-token reward
            ``kl_coef * (log p_ref(token) - log pi(token))``.
        kl_target: If set, adapt ``kl_coef`` after each rollout toward this KL (nats/token).
        kl_per_story: Charge each story's KL as if it ran ``max_new_tokens`` tokens at
            its own mean rate: per token as usual, plus at its end the tokens it did not
            write times its mean. A story's KL cost then does not grow with its length,
            so the penalty stops pulling toward short stories (the per-token penalty
            does, once the policy has moved: ending early is the cheapest way to pay less).
        top_p: MaskablePPO: mask tokens outside the reference's nucleus.
        top_k: MaskablePPO: mask tokens outside the reference's top k.
        seed: Seeds the env, the policy's sampling and the algorithm.
        checkpoint_every: Env steps between checkpoints.
        algo_kwargs: Extra constructor arguments of the algorithm (learning_rate, n_steps...).
    """

    # each field's "help" is its command-line help (add_config_flags)
    algorithm: str = field(default="ppo_story", metadata={"help": "registered algorithm"})
    env: EnvConfig = field(default=_RUN_ENV, metadata={"cli": False})
    steps: int = field(
        default=20_000,
        metadata={
            "help": "tokens to train; the run stops at the end of the rollout that reaches it"
        },
    )
    word_budget: int | None = field(
        default=None, metadata={"help": "stop at this many interactive words"}
    )
    num_envs: int = field(
        default=16, metadata={"help": "stories written at once", "type": positive_int}
    )
    kl_coef: float = field(
        default=0.01, metadata={"help": "weight of the KL to the starting student"}
    )
    kl_target: float | None = field(
        default=None, metadata={"help": "adapt kl_coef toward this KL per token"}
    )
    kl_per_story: bool = field(
        default=False,
        metadata={
            "help": "charge each story's KL at its mean rate for max_new_tokens tokens, so "
            "the penalty does not favour short stories (ppo, a2c, trpo, maskable_ppo)"
        },
    )
    top_p: float | None = field(
        default=None, metadata={"help": "MaskablePPO: mask outside the reference's nucleus"}
    )
    top_k: int | None = field(
        default=None, metadata={"help": "MaskablePPO: mask outside the reference's top k"}
    )
    seed: int = field(
        default=0, metadata={"help": "seed of the env, sampling and algorithm", "type": parse_seed}
    )
    checkpoint_every: int = field(default=2_000, metadata={"help": "tokens between checkpoints"})
    algo_kwargs: Mapping[str, Any] = field(
        default_factory=dict,
        metadata={
            "help": "JSON object of the algorithm's constructor arguments, e.g. "
            "'{\"learning_rate\": 1e-5}'"
        },
    )

    def __init__(self, *, env: EnvConfig | None = None, **settings: Any) -> None:
        run_fields = [f.name for f in dataclasses.fields(self) if f.name != "env"]
        unknown = sorted(set(settings) - set(run_fields) - set(ENV_FIELDS))
        if unknown:
            raise TypeError(f"TrainConfig got unexpected keyword argument {unknown[0]!r}")
        for f in dataclasses.fields(self):
            if f.name == "env":
                continue
            if f.name in settings:
                value = settings[f.name]
            elif f.default_factory is not dataclasses.MISSING:
                value = f.default_factory()
            else:
                value = f.default
            object.__setattr__(self, f.name, value)
        env_settings = {k: settings[k] for k in ENV_FIELDS if k in settings}
        if isinstance(env_settings.get("prompts"), list):
            env_settings["prompts"] = tuple(env_settings["prompts"])
        _check_run_settings(self)
        # the env's own fields are checked by EnvConfig, once
        base = env if env is not None else _RUN_ENV
        object.__setattr__(self, "env", dataclasses.replace(base, **env_settings))

    def env_kwargs(self) -> dict[str, Any]:
        """The env's settings as keyword arguments of ``Storytelling-v0``."""
        return {name: getattr(self.env, name) for name in ENV_FIELDS}

    def to_dict(self) -> dict[str, Any]:
        """The flat settings (the env's fields beside the run's), as in ``config.json``."""
        run = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "env"}
        return {"algorithm": run.pop("algorithm"), **self.env_kwargs(), **run}

    @classmethod
    def from_file(cls, path: str | Path, **overrides: Any) -> TrainConfig:
        """Read a JSON config file; ``overrides`` (e.g. command-line flags) win.

        Raises:
            ConfigError: The file is missing, a directory, unreadable, not UTF-8, not
                JSON, not a JSON object, or names keys that are not fields (each named,
                with the closest field).
        """
        from story_env.prompts import read_text_file

        text = read_text_file(path, "config file")
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ConfigError(
                f"config file {str(path)!r} is not valid JSON ({exc.msg} at line {exc.lineno}, "
                f"column {exc.colno}); fix it, e.g. check quotes and commas"
            ) from exc
        known = set(_RUN_FIELDS) | set(ENV_FIELDS)
        if not isinstance(data, dict):
            raise ConfigError(
                f"config file {str(path)!r} holds a JSON {type(data).__name__}, but it must hold "
                f'an object of TrainConfig fields, e.g. {{"steps": 20000, "teacher": "heuristic"}}'
            )
        unknown = sorted(set(data) - known)
        if unknown:
            hints = "".join(did_you_mean(k, known) for k in unknown[:1])
            raise ConfigError(
                f"unknown keys {unknown} in config file {str(path)!r}.{hints} "
                f"Valid keys: {', '.join(sorted(known))}"
            )
        return cls(**{**data, **overrides})


_RUN_FIELDS = tuple(f.name for f in dataclasses.fields(TrainConfig) if f.name != "env")


def settings(config_class: type | None = None) -> Iterator[tuple[dataclasses.Field, Any, Any]]:
    """Every command-line setting of a run: ``(field, type, default)``, the run's own fields
    and then its env's (``EnvConfig``), each declared once with its help in ``metadata``.

    Args:
        config_class: ``TrainConfig`` (the default) or a subclass of it.
    """
    config_class = config_class or TrainConfig
    defaults = config_class()
    for cls, fields in ((config_class, dataclasses.fields(config_class)), (EnvConfig, None)):
        hints = typing.get_type_hints(cls)
        for f in fields or dataclasses.fields(EnvConfig):
            if f.metadata.get("cli", True):
                yield f, hints[f.name], getattr(defaults, f.name)


def add_config_flags(
    parser: argparse.ArgumentParser,
    config_class: type | None = None,
    *,
    only: Collection[str] | None = None,
    exclude: Collection[str] = (),
) -> list[str]:
    """Add a ``--flag`` per setting of ``config_class`` (see :func:`settings`): its type
    (or ``metadata["type"]``), its help and its default come from the field. Every flag defaults to ``None`` (not
    given), so a config file's value stands unless the flag is given.

    Returns:
        The settings added (each flag's ``dest`` is the setting's name).
    """
    from story_env.arguments import count, json_object

    added = []
    for f, hint, default in settings(config_class):
        if (only is not None and f.name not in only) or f.name in exclude:
            continue
        union = typing.get_origin(hint) in (typing.Union, types.UnionType)
        kinds = {a for a in typing.get_args(hint) if a is not type(None)} if union else {hint}
        origin = {typing.get_origin(k) or k for k in kinds}
        help_text = f.metadata.get("help", "")
        if default is not None and default is not False and default != {}:
            help_text += (
                f" (default: {json.dumps(default) if isinstance(default, dict) else default})"
            )
        flag = f.metadata.get("flag", "--" + f.name.replace("_", "-"))
        if origin == {bool}:
            parser.add_argument(
                flag, dest=f.name, action="store_true", default=None, help=help_text
            )
            added.append(f.name)
            continue
        if "type" in f.metadata:  # a field's own parser (e.g. seeds within numpy's range)
            kind: Any = f.metadata["type"]
        elif origin <= {int}:
            kind = count
        elif origin <= {int, float} or origin == {float}:
            kind = float
        elif origin == {str}:
            kind = str
        elif origin & {Mapping, dict}:
            kind = json_object
        else:
            raise TypeError(f"setting {f.name!r} of type {hint} has no command-line form")
        parser.add_argument(flag, dest=f.name, type=kind, default=None, help=help_text)
        added.append(f.name)
    return added


def _env_property(name: str) -> property:
    return property(lambda self: getattr(self.env, name), doc=f"``env.{name}``")


for _name in ENV_FIELDS:
    setattr(TrainConfig, _name, _env_property(_name))


def _check_run_settings(config: TrainConfig) -> None:
    """The run's own numbers (not its env's: ``EnvConfig`` checks those) are of the right
    type, finite and in range."""

    def integer(name: str, low: int, optional: bool = False, high: int | None = None) -> None:
        value = getattr(config, name)
        if optional and value is None:
            return
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{name} must be a whole number, got {value!r}")
        if value < low or (high is not None and value > high):
            top = f" and <= {high}" if high is not None else ""
            raise ConfigError(f"{name} must be >= {low}{top}, got {value}")

    integer("steps", 1)
    integer("num_envs", 1, high=MAX_ENVS)
    integer("seed", 0, high=MAX_SEED)
    integer("checkpoint_every", 1)
    integer("word_budget", 1, optional=True)
    integer("top_k", 1, optional=True)
    for name, low, high, inclusive_low in (
        ("kl_coef", 0.0, None, True),
        ("kl_target", 0.0, None, False),
        ("top_p", 0.0, 1.0, False),
    ):
        value = getattr(config, name)
        if value is None and name != "kl_coef":
            continue
        number = finite_number(name, value)
        if number < low or (number == low and not inclusive_low) or (high and number > high):
            opening = "[" if inclusive_low else "("
            span = (
                f"in {opening}{low:g}, {high:g}]"
                if high
                else f"{'>=' if inclusive_low else '>'} {low:g}"
            )
            raise ConfigError(f"{name} must be {span}, got {value!r}")
    if not isinstance(config.kl_per_story, bool):
        raise ConfigError(f"kl_per_story must be true or false, got {config.kl_per_story!r}")
    if config.kl_per_story and not config.kl_coef and config.kl_target is None:
        raise ConfigError(
            "kl_per_story shapes the KL penalty, which is off (kl_coef 0); set kl_coef > 0 "
            "(e.g. 0.01) or drop kl_per_story"
        )
    if not isinstance(config.algo_kwargs, Mapping):
        raise ConfigError(f"algo_kwargs must be a JSON object (a dict), got {config.algo_kwargs!r}")
