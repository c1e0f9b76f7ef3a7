"""Train, evaluate and compare RL algorithms on Storytelling-v0.

``train`` builds the batched env (with the reference wrapper when KL shaping or masks are
on), the algorithm named in the plugin registry with the causal-LM policy of the chosen
student, and runs it with: a JSONL log of every finished story (appended and flushed),
TensorBoard scalars, atomic checkpoints, a progress bar, an optional interactive word
budget (prompt words + teacher words, as the paper counts), and ``resume``.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from story_env.errors import ConfigError
from story_env.registry import AlgorithmSpec, get_algorithm, registry
from story_env.run.judging import JudgeSpec, judge_stories, resolve_judges
from story_env.run.stats import CI_METHOD, mean_ci
from story_env.run_folder import (
    CHECKPOINT,
    CHECKPOINT_META,
    STORIES,
    append_story,
    flush_log,
    load_model,
    open_run,
    open_story_log,
    repair_story_log,
    save_model,
    write_meta,
)
from story_env.teacher import StoryRequest

logger = logging.getLogger("story_env.run.training")
TEACHER_ANSWER_WORDS = 3  # the paper counts ~3 words of teacher output per story


@dataclass(frozen=True)
class TrainConfig:
    """One training run. Every field is a plain value, saved as ``config.json``.

    Attributes:
        algorithm: Registered algorithm name (``storytelling plugins``).
        student: Student name or model folder; the policy starts as this model.
        teacher: Registered teacher name.
        steps: Env steps (tokens) to train for, across all envs.
        word_budget: Stop once prompt words + teacher words of finished stories reach this.
        num_envs: Stories written at once.
        max_new_tokens: Story length limit (the paper: 90).
        length_bonus: The paper's length bonus b (0 = off; the paper: 0.4).
        prompts: Prompt pool (default: the paper's fixed prompt).
        kl_coef: Per-token KL penalty ``kl_coef * (log p_ref(token) - log pi(token))``.
        kl_target: If set, adapt ``kl_coef`` after each rollout toward this KL (nats/token).
        top_p: MaskablePPO: mask tokens outside the reference's nucleus.
        top_k: MaskablePPO: mask tokens outside the reference's top k.
        seed: Seeds the env, the policy's sampling and the algorithm.
        checkpoint_every: Env steps between checkpoints.
        algo_kwargs: Extra constructor arguments of the algorithm (learning_rate, n_steps...).
        student_kwargs: Student factory arguments.
        teacher_kwargs: Teacher factory arguments.
        teacher_fallback: Reward of a story the teacher failed to grade (flagged in the
            story log); ``None``: a failed grade stops the run with an error.
        teacher_timeout_s: Seconds one teacher batch may take before its stories count as
            failed grades (``None``: no limit).
    """

    algorithm: str = "ppo"
    student: str = "tiny"
    teacher: str = "heuristic"
    steps: int = 20_000
    word_budget: int | None = None
    num_envs: int = 8
    max_new_tokens: int = 90
    length_bonus: float = 0.0
    prompts: tuple[str, ...] | None = None
    kl_coef: float = 0.0
    kl_target: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    seed: int = 0
    checkpoint_every: int = 2_000
    algo_kwargs: Mapping[str, Any] = field(default_factory=dict)
    student_kwargs: Mapping[str, Any] = field(default_factory=dict)
    teacher_kwargs: Mapping[str, Any] = field(default_factory=dict)
    teacher_fallback: float | None = None
    teacher_timeout_s: float | None = None

    def __post_init__(self) -> None:
        _check_train_numbers(self)

    @classmethod
    def from_file(cls, path: str | Path, **overrides: Any) -> TrainConfig:
        """Read a JSON config file; ``overrides`` (e.g. command-line flags) win.

        Raises:
            ConfigError: The file is missing, a directory, unreadable, not UTF-8, not
                JSON, not a JSON object, or names keys that are not fields (each named,
                with the closest field).
        """
        from story_env.errors import did_you_mean
        from story_env.prompts import read_text_file

        text = read_text_file(path, "config file")
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ConfigError(
                f"config file {str(path)!r} is not valid JSON ({exc.msg} at line {exc.lineno}, "
                f"column {exc.colno}); fix it, e.g. check quotes and commas"
            ) from exc
        known = {f.name for f in dataclasses.fields(cls)}
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
        if isinstance(data.get("prompts"), list):
            data["prompts"] = tuple(data["prompts"])
        return cls(**{**data, **overrides})


def _check_train_numbers(config: TrainConfig) -> None:
    """Every number of a ``TrainConfig`` is of the right type, finite and in range."""
    from story_env.core import MAX_CONTEXT_TOKENS
    from story_env.rewards import finite_number

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
    integer("num_envs", 1)
    integer("max_new_tokens", 1, high=MAX_CONTEXT_TOKENS)
    integer("seed", 0)
    integer("checkpoint_every", 1)
    integer("word_budget", 1, optional=True)
    integer("top_k", 1, optional=True)
    for name, low, high, inclusive_low in (
        ("length_bonus", 0.0, None, True),
        ("kl_coef", 0.0, None, True),
        ("kl_target", 0.0, None, False),
        ("top_p", 0.0, 1.0, False),
        ("teacher_fallback", 0.0, 1.0, True),
        ("teacher_timeout_s", 0.0, None, False),
    ):
        value = getattr(config, name)
        if value is None and name in (
            "kl_target",
            "top_p",
            "teacher_fallback",
            "teacher_timeout_s",
        ):
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
    for name in ("algo_kwargs", "student_kwargs", "teacher_kwargs"):
        if not isinstance(getattr(config, name), Mapping):
            raise ConfigError(
                f"{name} must be a JSON object (a dict), got {getattr(config, name)!r}"
            )


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


def policy_class_for(name: str, spec: AlgorithmSpec, config: TrainConfig) -> type:
    """The causal-LM policy class that fits the algorithm, or a clear error."""
    from agents.rl.policy import CausalLMPolicy, MaskableCausalLMPolicy

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

    venv = make_sb3_vec_env(
        num_envs=config.num_envs,
        teacher=config.teacher,
        student=config.student,
        max_new_tokens=config.max_new_tokens,
        length_bonus=config.length_bonus,
        prompts=list(config.prompts) if config.prompts else None,
        teacher_kwargs=dict(config.teacher_kwargs),
        student_kwargs=dict(config.student_kwargs),
        teacher_fallback=config.teacher_fallback,
        teacher_timeout_s=config.teacher_timeout_s,
    )
    venv.seed(config.seed + seed_offset)
    if (
        config.kl_coef
        or config.kl_target is not None
        or config.top_p is not None
        or config.top_k is not None
    ):
        from agents.rl.reference import ReferenceVecEnv

        venv = ReferenceVecEnv(
            venv,
            config.student,
            config.student_kwargs,
            kl_coef=config.kl_coef,
            top_p=config.top_p,
            top_k=config.top_k,
        )
    return venv


def build_algorithm(config: TrainConfig, venv: Any, tensorboard_log: str | None = None) -> Any:
    """Instantiate the configured algorithm with the causal-LM policy."""
    spec = get_algorithm(config.algorithm)
    policy = policy_class_for(config.algorithm, spec, config)
    check_algo_kwargs(config.algorithm, spec, config.algo_kwargs)
    kwargs: dict[str, Any] = {**spec.defaults, **dict(config.algo_kwargs)}
    policy_kwargs = {
        "student": config.student,
        "student_kwargs": dict(config.student_kwargs),
        **kwargs.pop("policy_kwargs", {}),
    }
    if "rollout_buffer_class" not in kwargs and _accepts(spec, "rollout_buffer_class"):
        from agents.rl.buffers import EpisodeRolloutBuffer, MaskableEpisodeRolloutBuffer

        kwargs["rollout_buffer_class"] = (
            MaskableEpisodeRolloutBuffer if spec.needs_action_masks else EpisodeRolloutBuffer
        )
    try:
        return spec.load()(
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


# Set by the run itself: passing them in algo_kwargs is a mistake, not a setting.
_RUN_OWNED = {
    "policy": "the student's causal-LM policy",
    "env": "the run's vector env",
    "seed": "--seed",
    "device": "the CPU",
    "verbose": "the run's logging",
    "tensorboard_log": "the run folder",
}


def check_algo_kwargs(name: str, spec: AlgorithmSpec, algo_kwargs: Mapping[str, Any]) -> None:
    """Check the user's ``algo_kwargs`` against the algorithm's constructor.

    Names only keys the user passed: an unknown key (with the closest valid one), a key
    the run sets itself, or a value whose type does not match the parameter's default
    (a string where a number is expected).

    Raises:
        ConfigError: With the key, the value and the fix.
    """
    import inspect

    from story_env.errors import did_you_mean

    params = inspect.signature(spec.load().__init__).parameters
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
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


def _accepts(spec: AlgorithmSpec, name: str) -> bool:
    import inspect

    return name in inspect.signature(spec.load().__init__).parameters


def _callbacks(
    config: TrainConfig,
    out: Path,
    log_file: Any,
    state: dict[str, Any],
    progress: bool,
    wall: Callable[[], float],
) -> Any:
    from stable_baselines3.common.callbacks import BaseCallback

    class RunCallback(BaseCallback):
        """Logs finished stories, checkpoints atomically, enforces the word budget."""

        def __init__(self) -> None:
            super().__init__()
            self.bar: Any = None
            self.last_checkpoint = state["steps"]
            self.recent: list[float] = []
            # stories whose grade is deferred to the rollout's end: (buffer row, env, step)
            self.pending: list[tuple[int, int, int]] = []

        def _on_training_start(self) -> None:
            from tqdm.auto import tqdm

            rollout = rollout_tokens(self.model)
            end = planned_end(self.num_timesteps, config.steps, rollout)
            self.bar = tqdm(
                total=end,
                initial=self.num_timesteps,
                unit="tok",
                disable=not progress,
                # the bar's total is where the run ends: --steps rounded up to whole rollouts
                desc=f"{config.algorithm} seed {config.seed} (--steps {config.steps:,} "
                f"in rollouts of {rollout:,})",
            )

        def _on_step(self) -> bool:
            infos, dones = self.locals["infos"], self.locals["dones"]
            for i in np.flatnonzero(dones):
                if "pending_grade" in infos[i]:
                    # SB3 stores this step's reward at rollout_buffer.pos after this call
                    self.pending.append((self.model.rollout_buffer.pos, int(i), self.num_timesteps))
                elif "story" in infos[i]:
                    _log_story(log_file, state, int(i), infos[i], self.num_timesteps)
                    self.recent.append(float(infos[i]["reward"]))
            flush_log(log_file, Path(log_file.name))
            if self.recent and len(self.recent) >= config.num_envs:
                self.logger.record("story/reward_mean", float(np.mean(self.recent)))
                self.recent.clear()
            self.bar.update(self.num_timesteps - self.bar.n)
            if self.num_timesteps - self.last_checkpoint >= config.checkpoint_every:
                self.save()
            if config.word_budget is not None and state["interactive_words"] >= config.word_budget:
                return False
            return True

        def grade_rollout(self, buffer: Any = None) -> bool:
            """Grade the deferred stories in one teacher batch, log them, and add each
            reward to its step's row of ``buffer`` (if given). True if any were graded."""
            if not self.pending:
                return False
            graded = self.training_env.grade_pending()
            for (row, i, step), info in zip(self.pending, graded, strict=True):
                if buffer is not None:
                    buffer.rewards[row, i] += info["reward"]
                _log_story(log_file, state, i, info, step)
                self.recent.append(float(info["reward"]))
            self.pending.clear()
            flush_log(log_file, Path(log_file.name))
            self.logger.record("story/reward_mean", float(np.mean(self.recent)))
            self.recent.clear()
            return True

        def _on_rollout_end(self) -> None:
            env = self.training_env
            buffer = self.model.rollout_buffer
            changed = self.grade_rollout(buffer)
            shaped = hasattr(env, "pop_ref_logps")
            ref = env.pop_ref_logps() if shaped else []
            # The env added coef * log p_ref(a) per step; subtracting coef * log pi(a) here
            # makes it the per-token KL penalty coef * (log p_ref - log pi) of the paper
            # (TRL), whose expectation is 0 for the starting policy. Without it, every
            # token costs about coef * 5 nats and the policy learns to end stories at once.
            if shaped and env.kl_coef and hasattr(buffer, "log_probs"):
                buffer.rewards -= env.kl_coef * buffer.log_probs
                changed = True
            if changed:
                buffer.compute_returns_and_advantage(
                    last_values=self.locals["values"], dones=self.locals["dones"]
                )
            if not shaped:
                return
            kl = float(np.mean(buffer.log_probs) - np.mean(ref)) if len(ref) else 0.0
            self.logger.record("train/kl", kl)
            if config.kl_target is not None:
                factor = (
                    1.0 + np.clip(kl / config.kl_target - 1.0, -0.2, 0.2) * 0.1
                )  # Ziegler et al.
                env.kl_coef *= float(factor)
                self.logger.record("train/kl_coef", env.kl_coef)

        def save(self) -> None:
            state["steps"] = self.num_timesteps
            state["wall_s"] = wall()  # so a resumed run reports its whole training time
            self.last_checkpoint = self.num_timesteps
            # the stories the checkpoint counts reach the disk before the checkpoint does
            flush_log(log_file, Path(log_file.name), durable=True)
            save_model(self.model, out)
            _write_meta(out, state)

        def _on_training_end(self) -> None:
            self.grade_rollout()  # a run stopped mid-rollout still logs its last stories
            self.save()
            self.bar.close()

    return RunCallback()


def _log_story(log_file: Any, state: dict[str, Any], env: int, info: dict, step: int) -> None:
    """Append one finished story to the run's log and count its interactive words."""
    state["stories"] += 1
    state["interactive_words"] += len(info["prompt"].split()) + TEACHER_ANSWER_WORDS
    record = {
        "story_index": state["stories"],
        "step": step,
        "env": env,
        "prompt": info["prompt"],
        "story": info["story"],
        "scores": info["scores"],
        # a failed grade has no teacher score: null in the log (teacher_error says why)
        "teacher_score": _grade_or_none(info["teacher_score"]),
        "reward": info["reward"],
        "teacher_raw": info["teacher_raw"],
        "teacher_error": info["teacher_error"],
        "teacher_fallback": info.get("teacher_fallback"),
        "words": info["words"],
        "interactive_words": state["interactive_words"],
    }
    append_story(log_file, record, Path(log_file.name))


def _grade_or_none(value: Any) -> float | None:
    """A teacher score, or ``None`` for the NaN an ungraded story carries in its info."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return float(value)


def rollout_tokens(model: Any) -> int:
    """Env steps one rollout of ``model`` collects (``n_steps`` x envs; 1 if it has none)."""
    return int(getattr(model, "n_steps", 1) or 1) * int(getattr(model, "n_envs", 1) or 1)


def planned_end(start: int, steps: int, rollout: int) -> int:
    """Where a run at ``start`` that trains to ``steps`` stops: whole rollouts past ``start``.

    SB3 collects whole rollouts, so a run ends at the first rollout boundary at or past
    ``steps``: less than one rollout past it.
    """
    if start >= steps:
        return start
    return start + math.ceil((steps - start) / rollout) * rollout


def _predict(model: Any, venv: Any, obs: np.ndarray) -> np.ndarray:
    """Sample one token per env from the policy (with action masks where it takes them)."""
    if "action_masks" in model.predict.__code__.co_varnames and venv.has_attr("action_masks"):
        masks = np.stack(venv.env_method("action_masks"))
        return model.predict(obs, action_masks=masks)[0]
    return model.predict(obs, deterministic=False)[0]


def _one_wave(model: Any, venv: Any, per_slot: int = 1) -> list[tuple[int, dict]]:
    """The first ``per_slot`` stories of every env slot, slot-major.

    Taking a fixed number per slot, rather than the first N stories to finish, keeps
    the sample free of a bias toward short stories.
    """
    obs = venv.reset()
    done: list[list[dict]] = [[] for _ in range(venv.num_envs)]
    while any(len(d) < per_slot for d in done):
        obs, _, dones, infos = venv.step(_predict(model, venv, obs))
        for i in np.flatnonzero(dones):
            if "story" in infos[i] and len(done[i]) < per_slot:
                done[i].append(infos[i])
    return [(i, info) for i, d in enumerate(done) for info in d]


def _warm_start_critic(model: Any, venv: Any, log_file: Any, state: dict[str, Any]) -> float:
    """Grade one story per env with the starting policy; start the critic at their mean.

    A zero critic bootstraps every story a rollout cuts off to 0 while finished stories
    earn their grade, and per-batch advantage normalisation then makes the end-of-story
    token look good: PPO's first updates taught the tiny student to end stories early
    (training score 0.56 -> 0.37). The wave's stories are logged and counted.
    """
    import torch

    wave = _one_wave(model, venv)
    for i, info in wave:
        _log_story(log_file, state, i, info, 0)
    log_file.flush()
    start = float(np.mean([info["reward"] for _, info in wave]))
    with torch.no_grad():
        model.policy.value_net.bias += start
    if hasattr(venv, "pop_ref_logps"):
        venv.pop_ref_logps()  # the wave is not a rollout
    return start


def train(
    config: TrainConfig, out_dir: str | Path, *, resume: bool = False, progress: bool = True
) -> dict[str, Any]:
    """Run (or resume) one training run; returns its summary."""
    if get_algorithm(config.algorithm).framework == "trl":  # GRPO: TRL's trainer
        from story_env.run.trl_training import train_trl

        return train_trl(config, out_dir, resume=resume, progress=progress)
    out = Path(out_dir)
    resuming = resume and (out / CHECKPOINT_META).exists()
    # the run folder's guard: names changed settings, repairs or refuses the story log
    state = open_run(out, asdict(config), resume)

    import torch

    torch.manual_seed(config.seed + state["steps"])
    venv = make_env(config, seed_offset=state["steps"])
    tb = str(out / "tensorboard") if _has_tensorboard() else None
    if resuming:
        spec = get_algorithm(config.algorithm)
        model = load_model(
            spec.load(), out / CHECKPOINT, env=venv, device="cpu", tensorboard_log=tb
        )
    else:
        model = build_algorithm(config, venv, tensorboard_log=tb)
    rollout = rollout_tokens(model)
    if rollout > config.steps - state["steps"] > 0:
        logger.warning(
            "one rollout (n_steps %d x %d envs = %d tokens) is longer than the %d steps left "
            "of --steps %d: the run trains %d tokens; pass --algo-kwargs '{\"n_steps\": N}' "
            "for shorter rollouts",
            rollout // config.num_envs,
            config.num_envs,
            rollout,
            config.steps - state["steps"],
            config.steps,
            rollout,
        )
    wall0, started = state["wall_s"], time.perf_counter()

    def wall() -> float:
        return wall0 + time.perf_counter() - started

    with open_story_log(out / STORIES) as log_file:
        if not resuming:
            state["critic_start"] = _warm_start_critic(model, venv, log_file, state)
        venv.defer_grading(True)  # each rollout's stories are graded in one teacher batch
        callback = _callbacks(config, out, log_file, state, progress, wall)
        remaining = config.steps - state["steps"]
        if remaining > 0:
            model.learn(
                remaining,
                callback=callback,
                reset_num_timesteps=not state["steps"],
                tb_log_name="run",
            )
    state["wall_s"] = wall()
    _write_meta(out, state)
    venv.close()
    return {**state, "tokens_per_s": state["steps"] / max(1e-9, state["wall_s"])}


def _write_meta(out: Path, state: dict[str, Any]) -> None:
    write_meta(out, state)


def _has_tensorboard() -> bool:
    try:
        import tensorboard  # noqa: F401
    except ImportError:
        return False
    return True


def _truncate_jsonl(path: Path, lines: int) -> None:
    """Keep the first ``lines`` stories of the log, validated (see ``repair_story_log``).

    Stories logged after the checkpoint go, with a warning; a damaged or missing story
    among the first ``lines`` raises ``RunFolderError`` instead of being lost.
    """
    note = repair_story_log(path, lines)
    if note:
        logger.warning("%s: %s", path.parent, note)


# --- evaluation -----------------------------------------------------------------------


def _run_config(run: Path) -> dict[str, Any]:
    """A run folder's ``config.json``, checked to name an algorithm and a student."""
    from story_env.errors import RunFolderError
    from story_env.run_folder import CONFIG, read_json

    data = read_json(run / CONFIG, "run config")
    if (
        not isinstance(data, dict)
        or not isinstance(data.get("algorithm"), str)
        or not isinstance(data.get("student"), str)
    ):
        raise RunFolderError(
            f"run config {str(run / CONFIG)!r} does not name an algorithm and a student; "
            "the run folder is damaged"
        )
    return data


def evaluate(
    *,
    student: str = "tiny",
    checkpoint: str | Path | None = None,
    teacher: str | None = None,
    stories: int = 64,
    seed: int = 0,
    num_envs: int = 16,
    max_new_tokens: int = 90,
    student_kwargs: Mapping[str, Any] | None = None,
    teacher_kwargs: Mapping[str, Any] | None = None,
    top_p: float | None = None,
    top_k: int | None = None,
    judges: Sequence[JudgeSpec | str] | None = None,
) -> dict[str, Any]:
    """Score ``stories`` stories at fixed seeds; per-dimension mean and 95% CI.

    With ``checkpoint`` (a training run folder or its ``checkpoint.zip``) the trained
    policy writes, under the top-p / top-k masks it was trained with, if any; without
    it the untrained policy, i.e. the pretrained student, sampling inside its own top-p
    / top-k set when ``top_p`` / ``top_k`` are given.

    The stories are graded by ``teacher`` (default: the run's own teacher for a
    checkpoint, else ``heuristic``) and by every judge in ``judges`` (default: the
    held-out judge of ``story_env.run.judging.default_judges``; ``[]`` for none), reported
    under ``summary["judges"]``.
    """
    if isinstance(stories, bool) or not isinstance(stories, int) or stories < 1:
        raise ConfigError(
            f"stories must be a whole number >= 1, got {stories!r}; e.g. --stories 64"
        )
    import torch

    from story_env.run.trl_training import trl_student_folder
    from story_env.sb3 import make_sb3_vec_env

    if teacher is None:  # the run's own teacher, never silently another one
        teacher, teacher_kwargs = _run_teacher(checkpoint, teacher_kwargs)
    judge_specs = resolve_judges(judges, teacher, teacher_kwargs)
    if checkpoint is not None and top_p is None and top_k is None:
        trained = trl_student_folder(checkpoint)  # a TRL run (grpo): a transformers folder
        if trained is not None:
            student, student_kwargs, checkpoint = str(trained), None, None

    config = TrainConfig(
        student=student,
        teacher=teacher,
        num_envs=num_envs,
        max_new_tokens=max_new_tokens,
        student_kwargs=dict(student_kwargs or {}),
        teacher_kwargs=dict(teacher_kwargs or {}),
    )
    venv = make_sb3_vec_env(
        num_envs=num_envs,
        teacher=teacher,
        student=student,
        max_new_tokens=max_new_tokens,
        student_kwargs=dict(student_kwargs or {}),
        teacher_kwargs=dict(teacher_kwargs or {}),
    )
    if checkpoint is not None and (top_p is not None or top_k is not None):
        raise ConfigError(
            "top_p/top_k apply to the untrained student; a checkpoint is evaluated under the "
            "masks it was trained with (its config.json). Drop top_p/top_k or the checkpoint"
        )
    mask_student, mask_student_kwargs = student, dict(student_kwargs or {})
    if checkpoint is not None:
        path = Path(checkpoint)
        path = path / CHECKPOINT if path.is_dir() else path
        if not path.is_file():
            raise ConfigError(
                f"no checkpoint at {str(path)!r}; give a `storytelling train` run folder"
            )
        run_config = _run_config(path.parent)
        model = load_model(get_algorithm(run_config["algorithm"]).load(), path, device="cpu")
        # a policy trained under top-p/top-k masks writes under them, so it is judged
        # under them too (without, it samples tokens it never learned about)
        top_p, top_k = run_config.get("top_p"), run_config.get("top_k")
        mask_student = run_config["student"]
        mask_student_kwargs = run_config.get("student_kwargs") or {}
    if top_p is not None or top_k is not None:
        from agents.rl.reference import ReferenceVecEnv

        venv = ReferenceVecEnv(venv, mask_student, mask_student_kwargs, top_p=top_p, top_k=top_k)
    if checkpoint is None:
        if top_p is not None or top_k is not None:
            config = dataclasses.replace(config, algorithm="maskable_ppo", top_p=top_p, top_k=top_k)
        model = build_algorithm(config, venv)
    torch.manual_seed(seed)
    venv.seed(seed)
    wave = _one_wave(model, venv, per_slot=-(-stories // num_envs))
    results = [info for _, info in wave[:stories]]
    venv.close()
    summary: dict[str, Any] = {"stories": len(results), "seed": seed, "teacher": teacher}
    summary["ci_method"] = CI_METHOD
    dims = list(results[0]["scores"])
    for dim in dims:
        summary[dim] = mean_ci([r["scores"][dim] for r in results])
    summary["teacher_score"] = mean_ci([r["teacher_score"] for r in results])
    summary["samples"] = [r["story"] for r in results[:3]]
    requests = [StoryRequest(r["prompt"], r["story"]) for r in results]
    summary["judges"] = judge_stories(judge_specs, requests)
    return summary


def _run_teacher(
    checkpoint: str | Path | None, teacher_kwargs: Mapping[str, Any] | None
) -> tuple[str, dict[str, Any]]:
    """The teacher (and its kwargs) a training run was graded by; ``heuristic`` without one."""
    if checkpoint is None:
        return "heuristic", dict(teacher_kwargs or {})
    path = Path(checkpoint)
    run = _run_config(path if path.is_dir() else path.parent)
    return run.get("teacher", "heuristic"), dict(teacher_kwargs or run.get("teacher_kwargs") or {})


# --- comparison -----------------------------------------------------------------------


def learning_curve(run_dir: Path, window: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """(steps, moving-average teacher score) from a run's story log."""
    rows = [json.loads(line) for line in (run_dir / STORIES).read_text().splitlines() if line]
    if not rows:
        return np.zeros(0), np.zeros(0)
    steps = np.array([r["step"] for r in rows])
    scores = np.array([r["teacher_score"] for r in rows], dtype=float)
    kernel = min(window, len(scores))
    smooth = np.convolve(scores, np.ones(kernel) / kernel, mode="valid")
    return steps[kernel - 1 :], smooth


def compare(
    base: TrainConfig,
    algorithms: Sequence[str],
    seeds: Sequence[int],
    out_dir: str | Path,
    *,
    eval_stories: int = 64,
    resume: bool = False,
    progress: bool = True,
    judges: Sequence[JudgeSpec | str] | None = None,
) -> str:
    """Train every algorithm x seed on the same task; write ``results.md`` and ``curves.png``.

    Each trained policy and the untrained student are graded by the training teacher and
    by the held-out ``judges`` (default: ``story_env.run.judging.default_judges``).
    """
    judge_specs = resolve_judges(judges, base.teacher, base.teacher_kwargs)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    configs = {name: _config_for(base, name) for name in algorithms}
    for name, config in configs.items():  # fail fast on an impossible combination
        policy_class_for(name, get_algorithm(name), config)
    rows = []
    for name in algorithms:
        for seed in seeds:
            run = out / f"{name}-seed{seed}"
            config = dataclasses.replace(configs[name], seed=seed)
            summary = train(
                config, run, resume=resume and (run / CHECKPOINT_META).exists(), progress=progress
            )
            ev = evaluate(
                student=base.student,
                checkpoint=run,
                teacher=base.teacher,
                stories=eval_stories,
                seed=10_000 + seed,
                num_envs=base.num_envs,
                max_new_tokens=base.max_new_tokens,
                student_kwargs=base.student_kwargs,
                teacher_kwargs=base.teacher_kwargs,
                judges=judge_specs,
            )
            rows.append((name, seed, ev, summary["wall_s"], summary["tokens_per_s"]))
            (run / "eval.json").write_text(json.dumps(ev, indent=2))
    start = evaluate(
        student=base.student,
        teacher=base.teacher,
        stories=eval_stories,
        seed=10_000,
        num_envs=base.num_envs,
        max_new_tokens=base.max_new_tokens,
        student_kwargs=base.student_kwargs,
        teacher_kwargs=base.teacher_kwargs,
        judges=judge_specs,
    )
    labels = [j.label for j in judge_specs]
    lines = [
        f"Student `{base.student}`, teacher `{base.teacher}`, {base.steps:,} env steps (tokens) per run, "
        f"{base.num_envs} envs, max_new_tokens {base.max_new_tokens}; teacher score in [0, 1] over "
        f"{eval_stories} stories at fixed seeds (mean [95% CI]).",
        "",
        f"Before training (the pretrained student): teacher {_fmt(start['teacher_score'])}"
        + "".join(f"; judge {k} {_judge_total(start, k)}" for k in labels),
        "",
        "The held-out judges grade the same stories as the teacher and were never the reward.",
        "",
        "Settings per algorithm (shared `algo_kwargs` an algorithm does not take are left out): "
        + "; ".join(f"{n} {_settings(c)}" for n, c in configs.items()),
        "",
        "| algorithm | seed | final teacher score | "
        + "".join(f"judge {k} | " for k in labels)
        + "wall time (s) | tokens/s |",
        "|---|---|---|" + "---|" * len(labels) + "---|---|",
    ]
    for name, seed, ev, wall, tps in rows:
        judged = "".join(f" {_judge_total(ev, k)} |" for k in labels)
        lines.append(
            f"| {name} | {seed} | {_fmt(ev['teacher_score'])} |{judged} {wall:,.0f} | {tps:,.1f} |"
        )
    table = "\n".join(lines) + "\n"
    (out / "results.md").write_text(table)
    _plot(out, algorithms, seeds)
    return table


def _judge_total(ev: Mapping[str, Any], label: str) -> str:
    judged = ev["judges"][label]
    return _fmt(judged["total"]) if "total" in judged else "not graded"


def _config_for(base: TrainConfig, name: str) -> TrainConfig:
    """The shared task for one algorithm: masks only where the algorithm uses them, and
    only the shared ``algo_kwargs`` its constructor takes (A2C has no ``batch_size``)."""
    spec = get_algorithm(name)
    kwargs = {k: v for k, v in base.algo_kwargs.items() if _accepts(spec, k)}
    config = dataclasses.replace(base, algorithm=name, algo_kwargs=kwargs)
    if not spec.needs_action_masks:
        return dataclasses.replace(config, top_p=None, top_k=None)
    if base.top_p is None and base.top_k is None:
        return dataclasses.replace(config, top_p=0.95)
    return config


def _settings(config: TrainConfig) -> str:
    parts = [f"{k}={v}" for k, v in sorted(config.algo_kwargs.items())]
    parts += [f"{k}={getattr(config, k)}" for k in ("top_p", "top_k") if getattr(config, k)]
    return "`" + ", ".join(parts) + "`" if parts else "defaults"


def _fmt(ci: tuple[float, float, float]) -> str:
    return f"{ci[0]:.3f} [{ci[1]:.3f}, {ci[2]:.3f}]"


def _plot(out: Path, algorithms: Sequence[str], seeds: Sequence[int]) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:
        from story_env.errors import DependencyMissingError

        raise DependencyMissingError(
            "plots need matplotlib: pip install 'storytelling[plots]'"
        ) from exc
    fig, ax = plt.subplots(figsize=(7, 4))
    for k, name in enumerate(algorithms):
        for j, seed in enumerate(seeds):
            steps, smooth = learning_curve(out / f"{name}-seed{seed}")
            ax.plot(
                steps,
                smooth,
                color=f"C{k}",
                alpha=0.9 if j == 0 else 0.5,
                label=name if j == 0 else None,
            )
    ax.set_xlabel("env steps (tokens)")
    ax.set_ylabel("teacher score (moving average)")
    ax.set_title("Storytelling-v0: learning curves")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "curves.png", dpi=120)
    plt.close(fig)
