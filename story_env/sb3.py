"""stable-baselines3 adapter for the native vector env (imports SB3, so kept apart)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np
from stable_baselines3.common.vec_env import VecEnv

from story_env.vector import StorytellingVectorEnv, slot_info


class SB3VecEnv(VecEnv):
    """Lets stable-baselines3 algorithms drive ``StorytellingVectorEnv`` (the batched path).

    SB3 expects ``step`` to return lists of infos with ``terminal_observation`` and
    ``TimeLimit.truncated`` for finished slots; this adapter translates.

    Example:
        >>> from story_env.sb3 import make_sb3_vec_env
        >>> venv = make_sb3_vec_env(num_envs=4, teacher="heuristic")
    """

    def __init__(self, vec_env: StorytellingVectorEnv) -> None:
        self.vec_env = vec_env
        super().__init__(
            vec_env.num_envs, vec_env.single_observation_space, vec_env.single_action_space
        )
        self._actions: np.ndarray | None = None
        self.render_mode = vec_env.render_mode

    def reset(self) -> np.ndarray:
        seeds = [s for s in self._seeds] if any(s is not None for s in self._seeds) else None
        obs, _ = self.vec_env.reset(seed=seeds)
        self._reset_seeds()
        self._reset_options()
        return obs

    def step_async(self, actions: np.ndarray) -> None:
        self._actions = np.asarray(actions)

    def step_wait(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[dict[str, Any]]]:
        held = self.vec_env.held.copy()
        obs, rewards, terminated, truncated, infos = self.vec_env.step(self._actions)
        dones = terminated | truncated
        # a held slot's step wrote nothing: "waiting" tells training not to count it
        out: list[dict[str, Any]] = [{"waiting": True} if h else {} for h in held]
        for i in np.flatnonzero(dones):
            info = slot_info(infos["final_info"], i)
            info["terminal_observation"] = infos["final_obs"][i]
            # A story cut at max_new_tokens is still graded and nothing follows it, so for
            # SB3 it is terminal: no value bootstrapping past the teacher's grade.
            info["TimeLimit.truncated"] = False
            info["story_truncated"] = bool(truncated[i] and not terminated[i])
            out[i] = info
        return obs, rewards.astype(np.float32), dones, out

    def close(self) -> None:
        self.vec_env.close()

    def hold(self, slots: Any) -> None:
        """See ``StorytellingVectorEnv.hold``."""
        self.vec_env.hold(slots)

    def release(self) -> None:
        """See ``StorytellingVectorEnv.release``."""
        self.vec_env.release()

    def defer_grading(self, enabled: bool = True) -> None:
        """See ``StorytellingVectorEnv.defer_grading``."""
        self.vec_env.defer_grading(enabled)

    def grade_pending(self) -> list[dict[str, Any]]:
        """See ``StoryBatch.grade_pending``."""
        return self.vec_env.grade_pending()

    def get_attr(self, attr_name: str, indices: Any = None) -> list[Any]:
        return [getattr(self.vec_env, attr_name)] * len(self._indices(indices))

    def set_attr(self, attr_name: str, value: Any, indices: Any = None) -> None:
        setattr(self.vec_env, attr_name, value)

    def env_method(
        self, method_name: str, *args: Any, indices: Any = None, **kwargs: Any
    ) -> list[Any]:
        result = getattr(self.vec_env, method_name)(*args, **kwargs)
        return [result] * len(self._indices(indices))

    def env_is_wrapped(self, wrapper_class: type, indices: Any = None) -> list[bool]:
        return [False] * len(self._indices(indices))

    def _indices(self, indices: Any) -> Iterable[int]:
        if indices is None:
            return range(self.num_envs)
        return [indices] if isinstance(indices, int) else list(indices)


def make_sb3_vec_env(num_envs: int = 1, **kwargs: Any) -> SB3VecEnv:
    """Build ``StorytellingVectorEnv(num_envs, **kwargs)`` wrapped for stable-baselines3."""
    return SB3VecEnv(StorytellingVectorEnv(num_envs=num_envs, **kwargs))
