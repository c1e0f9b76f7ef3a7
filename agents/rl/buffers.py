"""Rollout buffers whose minibatches are made of whole episodes.

SB3 shuffles a rollout's steps before cutting minibatches, so one minibatch holds a few
steps of many stories and the LM policy must run a forward pass per story for a few
tokens each. These buffers shuffle *episodes* instead and keep each episode's steps
together, so the policy's teacher-forced pass serves every step of a story at once.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

import numpy as np
from sb3_contrib.common.maskable.buffers import MaskableRolloutBuffer
from stable_baselines3.common.buffers import RolloutBuffer

_FLAT = ("observations", "actions", "values", "log_probs", "advantages", "returns", "action_masks")


def episode_order(episode_starts: np.ndarray) -> np.ndarray:
    """Flat buffer indices grouped by episode, episodes in random order.

    Args:
        episode_starts: (n_steps, n_envs) flags as SB3 stores them.

    Returns:
        A permutation of ``n_steps * n_envs`` indices in SB3's flattened (env-major) order.
    """
    n_steps, n_envs = episode_starts.shape
    segments: list[np.ndarray] = []
    for env in range(n_envs):
        cuts = np.flatnonzero(episode_starts[1:, env]) + 1
        for seg in np.split(np.arange(n_steps), cuts):
            segments.append(env * n_steps + seg)
    return np.concatenate([segments[i] for i in np.random.permutation(len(segments))])


class _EpisodeBatches:
    def get(self, batch_size: int | None = None) -> Generator[Any, None, None]:
        order = episode_order(self.episode_starts)  # type: ignore[attr-defined]
        if not self.generator_ready:  # type: ignore[has-type]
            for name in _FLAT:
                if name in self.__dict__:
                    self.__dict__[name] = self.swap_and_flatten(self.__dict__[name])  # type: ignore[attr-defined]
            self.generator_ready = True
        total = len(order)
        step = batch_size or total
        for start in range(0, total, step):
            yield self._get_samples(order[start : start + step])  # type: ignore[attr-defined]


class EpisodeRolloutBuffer(_EpisodeBatches, RolloutBuffer):
    """``RolloutBuffer`` with episode-grouped minibatches (PPO, A2C, TRPO)."""


class MaskableEpisodeRolloutBuffer(_EpisodeBatches, MaskableRolloutBuffer):
    """``MaskableRolloutBuffer`` with episode-grouped minibatches (MaskablePPO)."""
