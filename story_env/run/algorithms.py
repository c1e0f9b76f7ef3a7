"""From a ``TrainConfig`` to a stable-baselines3 algorithm: which algorithms the causal-LM
policy fits, the run's vector env (with the KL reference when it is on), and the
algorithm itself with the checked ``algo_kwargs``.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Mapping
from typing import Any

from story_env.errors import ConfigError, UnknownPluginError
from story_env.registry import AlgorithmSpec, get_algorithm, registry, resolve_student
from story_env.run.config import TrainConfig
from story_env.student import is_trainable


def refusal_reason(spec: AlgorithmSpec) -> str | None:
    """Why ``train`` refuses an algorithm (short), or ``None`` if it can train with it.

    The causal-LM policy keeps its state in the token prefix and takes its action logits
    from the LM head: recurrent policies and Q-learning do not fit it
    (``policy_class_for`` gives the full reasons).
    """
    if spec.recurrent:
        return "needs a recurrent policy; the LM's state is its prefix"
    if spec.q_values:
        return "learns Q-values: greedy decoding from the LM head loops (docs/training.md)"
    if not spec.on_policy:
        return "off-policy; the causal-LM policy supports on-policy algorithms"
    return None


def untrainable_student(name: str, kwargs: Mapping[str, Any]) -> Any:
    """The student ``name`` if it has no causal LM to fine-tune (``random``, ``ngram``),
    created once; ``None`` if it has one.

    A student registered with ``trainable=True`` (or a model folder) has one and is not
    created here; any other student is created and checked.
    """
    try:
        if registry().get("student", name).trainable:
            return None
    except UnknownPluginError:
        return None  # a model folder (an ``hf`` student), or a name the env will refuse
    student = resolve_student(name, kwargs)
    return None if is_trainable(student) else student


def check_trainable(name: str, kwargs: Mapping[str, Any]) -> None:
    """The LM-student contract, checked before a run builds anything.

    ``train`` fine-tunes the student's ``model``, a causal LM with an LM head.

    Raises:
        ConfigError: The student has no causal LM; the message names those that do.
    """
    student = untrainable_student(name, kwargs)
    if student is None:
        return
    model = getattr(student, "model", None)
    trainable = sorted(e.name for e in registry().entries("student") if e.trainable)
    raise ConfigError(
        f"student {name!r} cannot be trained: `storytelling train` fine-tunes a causal "
        f"language model and {name!r} has none ({type(model).__name__}). Students that can "
        f"be trained: {', '.join(trainable)}, or a model folder (--student DIR)"
    )


def policy_class_for(name: str, spec: AlgorithmSpec, config: TrainConfig) -> type:
    """The causal-LM policy class that fits the algorithm, or a clear error."""
    from story_env.agents.rl.policy import CausalLMPolicy, MaskableCausalLMPolicy

    compatible = sorted(
        e.name for e in registry().entries("algorithm") if refusal_reason(e.obj) is None
    )
    if spec.recurrent:
        raise ConfigError(
            f"algorithm {name!r} needs a recurrent policy, but the causal-LM policy carries its "
            f"state in the token prefix (an LSTM between the LM and its head would stop the "
            f"untrained policy from being the student). Use one of: {', '.join(compatible)}"
        )
    if spec.q_values:
        raise ConfigError(
            f"algorithm {name!r} learns Q-values: with Q initialised from the LM head its "
            f"greedy policy is greedy decoding, which loops, and it does not learn here "
            f"(examples/dqn_experiment.py, docs/training.md 'Why not DQN'). The causal-LM "
            f"policy supports the on-policy algorithms {', '.join(compatible)}"
        )
    if (config.top_p is not None or config.top_k is not None) and not spec.needs_action_masks:
        maskable = sorted(
            e.name for e in registry().entries("algorithm") if e.obj.needs_action_masks
        )
        raise ConfigError(
            f"top_p/top_k masks need an algorithm that uses action masks; {name!r} does not. "
            f"Use one of: {', '.join(maskable)}"
        )
    if spec.needs_action_masks and config.top_p is None and config.top_k is None:
        raise ConfigError(f"algorithm {name!r} needs action masks: pass top_p (e.g. 0.95) or top_k")
    return MaskableCausalLMPolicy if spec.needs_action_masks else CausalLMPolicy


def make_env(config: TrainConfig, seed_offset: int = 0) -> Any:
    """The SB3 vector env of a run, wrapped with the reference model when needed."""
    from story_env.sb3 import make_sb3_vec_env

    venv = make_sb3_vec_env(num_envs=config.num_envs, **config.env_kwargs())
    venv.seed((config.seed + seed_offset) % 2**32)  # numpy's range
    if _owns_kl(get_algorithm(config.algorithm)):
        return venv  # the algorithm keeps its own reference (StoryPPO)
    if (
        config.kl_coef
        or config.kl_target is not None
        or config.top_p is not None
        or config.top_k is not None
    ):
        from story_env.agents.rl.reference import ReferenceVecEnv

        venv = ReferenceVecEnv(
            venv,
            config.student,
            config.student_kwargs,
            kl_coef=config.kl_coef,
            story_tokens=config.max_new_tokens if config.kl_per_story else None,
            top_p=config.top_p,
            top_k=config.top_k,
            # without masks the reference scores each rollout in one pass at its end
            deferred=config.top_p is None and config.top_k is None,
        )
    return venv


def _owns_kl(spec: AlgorithmSpec) -> bool:
    """The algorithm takes the KL settings itself (``kl_coef`` in its constructor)."""
    return spec.framework == "sb3" and accepts_kwarg(spec, "kl_coef")


def build_algorithm(config: TrainConfig, venv: Any, tensorboard_log: str | None = None) -> Any:
    """Instantiate the configured algorithm with the causal-LM policy."""
    spec = get_algorithm(config.algorithm)
    policy = policy_class_for(config.algorithm, spec, config)
    check_algo_kwargs(config.algorithm, spec, config.algo_kwargs)
    kwargs: dict[str, Any] = {**spec.defaults, **dict(config.algo_kwargs)}
    if _owns_kl(spec):
        if config.top_p is not None or config.top_k is not None or config.kl_per_story:
            raise ConfigError(
                f"{config.algorithm!r} charges each token its own KL and samples from the whole "
                "vocabulary: drop top_p, top_k and kl_per_story (they shape the env-side KL "
                "of ppo, a2c, trpo and maskable_ppo)"
            )
        kwargs.update(
            kl_coef=config.kl_coef, kl_target=config.kl_target, story_tokens=config.max_new_tokens
        )
    policy_kwargs = {
        "student": config.student,
        "student_kwargs": dict(config.student_kwargs),
        **kwargs.pop("policy_kwargs", {}),
    }
    if "rollout_buffer_class" not in kwargs and accepts_kwarg(spec, "rollout_buffer_class"):
        from story_env.agents.rl.buffers import EpisodeRolloutBuffer, MaskableEpisodeRolloutBuffer

        kwargs["rollout_buffer_class"] = (
            MaskableEpisodeRolloutBuffer if spec.needs_action_masks else EpisodeRolloutBuffer
        )
    try:
        model = spec.load()(
            policy,
            venv,
            seed=config.seed,
            device="cpu",
            verbose=0,
            policy_kwargs=policy_kwargs,
            tensorboard_log=tensorboard_log,
            **kwargs,
        )
    except TypeError as exc:
        raise ConfigError(
            f"bad algo_kwargs {sorted(kwargs)} for {config.algorithm!r}: {exc}"
        ) from exc
    return model


# Set by the run itself: passing them in algo_kwargs is a mistake, not a setting.
_RUN_OWNED = {
    "policy": "the student's causal-LM policy",
    "kl_coef": "--kl-coef",
    "kl_target": "--kl-target",
    "story_tokens": "--max-new-tokens",
    "env": "the run's vector env",
    "seed": "--seed",
    "device": "the CPU",
    "verbose": "the run's logging",
    "tensorboard_log": "the run folder",
}


# Ranges of the numeric hyperparameters (of SB3, sb3-contrib and TRL's configs):
# name -> (low, low is allowed, high, high is allowed, whole number). A value outside
# reaches the library as an assertion, a division by zero or an allocation that never ends.
_RANGES: dict[str, tuple[float, bool, float | None, bool, bool]] = {
    "learning_rate": (0.0, True, None, False, False),  # 0: a frozen policy (tests use it)
    "n_steps": (1, True, 1_000_000, True, True),
    "batch_size": (1, True, 1_000_000, True, True),
    "n_epochs": (1, True, 10_000, True, True),
    "gamma": (0.0, True, 1.0, True, False),
    "gae_lambda": (0.0, True, 1.0, True, False),
    "clip_range": (0.0, False, None, False, False),
    "clip_range_vf": (0.0, False, None, False, False),
    "ent_coef": (0.0, True, None, False, False),
    "vf_coef": (0.0, True, None, False, False),
    "max_grad_norm": (0.0, False, None, False, False),
    "target_kl": (0.0, False, None, False, False),
    "n_critic_updates": (1, True, 10_000, True, True),
    "cg_max_steps": (1, True, 10_000, True, True),
    "cg_damping": (0.0, False, None, False, False),
    "line_search_shrinking_factor": (0.0, False, 1.0, False, False),
    "line_search_max_iter": (1, True, 10_000, True, True),
    "rms_prop_eps": (0.0, False, None, False, False),
    "num_generations": (1, True, 10_000, True, True),
    "num_train_epochs": (0.0, False, 10_000, True, False),
    "per_device_train_batch_size": (1, True, 1_000_000, True, True),
    "gradient_accumulation_steps": (1, True, 10_000, True, True),
    "beta": (0.0, True, None, False, False),
    "temperature": (0.0, False, None, False, False),
}
#: Any number past this is a typo, not a setting (``1e300``, ``10**30``).
_MAX_MAGNITUDE = 1e9


def _check_range(name: str, key: str, value: Any) -> None:
    """``value`` of ``algo_kwargs[key]`` is a finite number inside ``_RANGES[key]``."""
    where = f"algo_kwargs {key}={value!r} for {name!r}"
    if value is None and key in ("clip_range_vf", "target_kl"):
        return  # their "off"
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(f"{where} must be a number")
    if not math.isfinite(value):
        raise ConfigError(f"{where} must be finite")
    if abs(value) > _MAX_MAGNITUDE:
        raise ConfigError(f"{where} is too large (the limit is {_MAX_MAGNITUDE:g})")
    rule = _RANGES.get(key)
    if rule is None:
        return
    low, low_ok, high, high_ok, whole = rule
    if whole and not isinstance(value, int):
        raise ConfigError(f"{where} must be a whole number")
    below = value < low or (value == low and not low_ok)
    above = high is not None and (value > high or (value == high and not high_ok))
    if below or above:
        span = f"{'>=' if low_ok else '>'} {low:g}"
        if high is not None:
            span += f" and {'<=' if high_ok else '<'} {high:g}"
        raise ConfigError(f"{where} must be {span}")


def _init_parameters(cls: type) -> tuple[dict[str, Any], bool]:
    """The constructor parameters of ``cls``, those its ``**kwargs`` passes on to its base
    classes included (``StoryPPO`` -> ``PPO``), and whether it still takes any keyword."""

    params: dict[str, Any] = {}
    for klass in cls.__mro__:
        if "__init__" not in vars(klass):
            continue
        own = inspect.signature(klass.__init__).parameters
        params.update({k: v for k, v in own.items() if k not in params and v.kind != v.VAR_KEYWORD})
        if not any(v.kind is v.VAR_KEYWORD for v in own.values()):
            return params, False
    return params, True


def check_algo_kwargs(name: str, spec: AlgorithmSpec, algo_kwargs: Mapping[str, Any]) -> None:
    """Check the user's ``algo_kwargs`` against the algorithm's constructor.

    Names only keys the user passed: an unknown key (with the closest valid one), a key
    the run sets itself, a value whose type does not match the parameter's default
    (a string where a number is expected), or a number out of its range (``_RANGES``:
    ``n_steps`` 0, a negative learning rate, ``1e300``). Runs before anything is built.

    Raises:
        ConfigError: With the key, the value and the fix.
    """

    from story_env.errors import did_you_mean

    params, takes_any = _init_parameters(spec.load())
    valid = sorted(k for k in params if k not in ("self", *_RUN_OWNED) and not k.startswith("_"))
    owned = sorted(set(algo_kwargs) & set(_RUN_OWNED))
    if owned:
        raise ConfigError(
            f"algo_kwargs {owned} for {name!r} are set by the run itself "
            f"({', '.join(f'{k}: {_RUN_OWNED[k]}' for k in owned)}); drop them"
        )
    unknown = sorted(k for k in algo_kwargs if k not in params)
    if unknown and not takes_any:
        raise ConfigError(
            f"unknown algo_kwargs {unknown} for {name!r}.{did_you_mean(unknown[0], valid)} "
            f"Valid keys: {', '.join(valid)}"
        )
    for key, value in algo_kwargs.items():
        param = params.get(key)
        default = param.default if param is not None else inspect.Parameter.empty
        if isinstance(default, bool) and not isinstance(value, bool):
            raise ConfigError(f"algo_kwargs {key}={value!r} for {name!r} must be true or false")
        if isinstance(default, int | float) and not isinstance(default, bool):
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ConfigError(
                    f"algo_kwargs {key}={value!r} for {name!r} must be a number "
                    f'(the default is {default!r}), e.g. {{"{key}": {default!r}}}'
                )
            if not math.isfinite(value):
                raise ConfigError(f"algo_kwargs {key}={value!r} for {name!r} must be finite")
            if isinstance(default, int) and not isinstance(value, int):
                raise ConfigError(
                    f"algo_kwargs {key}={value!r} for {name!r} must be a whole number "
                    f"(the default is {default!r})"
                )
        if key in _RANGES or (
            isinstance(value, int | float) and not isinstance(value, bool) and key in params
        ):
            _check_range(name, key, value)


def accepts_kwarg(spec: AlgorithmSpec, name: str) -> bool:
    """The algorithm's constructor takes ``name`` (its own or one it passes on)."""
    return name in _init_parameters(spec.load())[0]
