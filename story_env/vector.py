"""The native vector env (N stories at once, one teacher batch per step) and its SB3 adapter."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from story_env.core import EnvConfig, StoryBatch
from story_env.errors import ConfigError, RenderModeError
from story_env.teacher import close_teacher


class StorytellingVectorEnv(VectorEnv):
    """``num_envs`` stories written in lockstep, sharing one teacher and one tokenizer.

    Every story that ends in a step is graded in a single ``teacher.score`` batch. Slots
    reset in the same step they end (``AutoresetMode.SAME_STEP``): the returned
    observation starts the next story, and ``info["final_obs"]`` / ``info["final_info"]``
    hold the finished one. ``reset(seed=s)`` seeds slot ``i`` with ``s + i``, so slot ``i``
    replays ``gym.make("Storytelling-v0").reset(seed=s + i)`` exactly.

    ``hold(slots)`` makes slots wait: until ``release()``, a held slot ignores its
    actions and keeps its observation (the prompt of its next story), with reward 0 and
    no end. Training holds a slot whose story ended when too few steps of the rollout
    are left for another, so no story is cut between rollouts (``StoryPPO``).

    Takes the same keyword arguments as ``StorytellingEnv`` plus ``num_envs``.
    """

    metadata = {"render_modes": ["ansi"], "autoreset_mode": AutoresetMode.SAME_STEP}

    def __init__(self, num_envs: int = 1, render_mode: str | None = None, **kwargs: Any) -> None:
        if isinstance(num_envs, bool) or not isinstance(num_envs, int) or num_envs < 1:
            raise ConfigError(f"num_envs must be a positive int, got {num_envs!r}")
        if render_mode not in (None, "ansi"):
            raise RenderModeError(
                f"render_mode {render_mode!r} is not supported; use 'ansi' or None"
            )
        for key in ("teacher_kwargs", "student_kwargs"):
            kwargs[key] = dict(kwargs.get(key) or {})
        try:
            self.config = EnvConfig(**kwargs)
        except TypeError as exc:
            raise ConfigError(f"bad keyword argument for Storytelling-v0: {exc}") from exc
        self.student, self.batch = StoryBatch.build(num_envs, self.config)
        self.teacher, self.reward_config = self.batch.teacher, self.batch.reward
        self.tokenizer = self.student.tokenizer
        self.num_envs = num_envs
        self.render_mode = render_mode
        self.single_action_space = spaces.Discrete(self.batch.vocab_size)
        self.single_observation_space = spaces.Box(
            0, self.batch.vocab_size, shape=(self.batch.context_len,), dtype=np.int64
        )
        self.action_space = batch_space(self.single_action_space, num_envs)
        self.observation_space = batch_space(self.single_observation_space, num_envs)
        self._rngs = [np.random.default_rng() for _ in range(num_envs)]
        self.held = np.zeros(num_envs, dtype=bool)  # slots waiting for release()

    @property
    def pad_id(self) -> int:
        """The padding id of observations (= ``vocab_size``)."""
        return self.batch.pad

    def reset(
        self,
        *,
        seed: int | Sequence[int | None] | None = None,
        options: dict[str, Any] | None = None,
    ) -> tuple[np.ndarray, dict[str, Any]]:
        if seed is None:
            seeds: list[int | None] = [None] * self.num_envs
        elif isinstance(seed, int):
            seeds = [seed + i for i in range(self.num_envs)]
        else:
            seeds = list(seed)
            if len(seeds) != self.num_envs:
                raise ConfigError(f"got {len(seeds)} seeds for {self.num_envs} envs")
        for i, s in enumerate(seeds):
            if s is not None:
                self._rngs[i], _ = gym.utils.seeding.np_random(s)
            self.batch.reset_slot(i, self._rngs[i])
        self.held[:] = False
        return self.batch.tokens.copy(), {}

    def step(
        self, actions: Any
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        actions = self.batch.validate(actions)
        moving = ~self.held if self.held.any() else None
        rewards, terminated, truncated, finals = self.batch.step(actions, moving)
        infos: dict[str, Any] = {}
        for i, final_info in finals.items():
            infos = self._add_info(
                infos, {"final_obs": self.batch.tokens[i].copy(), "final_info": final_info}, i
            )
            self.batch.reset_slot(i, self._rngs[i])
        return self.batch.tokens.copy(), rewards, terminated, truncated, infos

    def hold(self, slots: Any) -> None:
        """Make ``slots`` (indices or a boolean mask) wait until ``release()``."""
        index = np.asarray(slots)
        if index.dtype == bool:
            if index.shape != (self.num_envs,):
                raise ConfigError(f"a hold mask needs {self.num_envs} entries, got {index.shape}")
            index = np.flatnonzero(index)
        bad = [int(i) for i in index.ravel() if not 0 <= int(i) < self.num_envs]
        if bad:
            raise ConfigError(f"cannot hold slot {bad[0]}: slots are 0..{self.num_envs - 1}")
        self.held[index] = True

    def release(self) -> None:
        """Let every held slot go on (its next action starts its story)."""
        self.held[:] = False

    def defer_grading(self, enabled: bool = True) -> None:
        """Defer grading: a story that ends gets reward 0 and ``pending_grade`` (its index)
        in its final info; ``grade_pending()`` later grades all of them in one teacher
        batch. Training uses it to grade a whole rollout at once (an LM teacher is far
        faster on one batch of 16 stories than on 16 batches of one)."""
        self.batch.deferred = bool(enabled)

    def grade_pending(self) -> list[dict[str, Any]]:
        """See ``StoryBatch.grade_pending``."""
        return self.batch.grade_pending()

    def render(self) -> tuple[str, ...] | None:
        if self.render_mode == "ansi":
            return tuple(self.batch.render(i) for i in range(self.num_envs))
        return None

    def close_extras(self, **kwargs: Any) -> None:
        """Release the teacher's resources (HTTP clients, caches, servers); ``close()``
        calls it once."""
        close_teacher(self.teacher)


def slot_info(infos: dict[str, Any], i: int) -> dict[str, Any]:
    """Slot ``i``'s entries of a batched vector-env info dict (nested dicts included).

    Example: ``slot_info(infos["final_info"], i)["story"]`` is the story slot ``i`` finished.
    """
    out: dict[str, Any] = {}
    for key, value in infos.items():
        mask = infos.get(f"_{key}")
        if key.startswith("_") or (mask is not None and not mask[i]):
            continue
        item = slot_info(value, i) if isinstance(value, dict) else value[i]
        out[key] = item.item() if isinstance(item, np.generic) else item
    return out
