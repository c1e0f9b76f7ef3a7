"""Rollout buffers whose minibatches are made of whole episodes.

SB3 shuffles a rollout's steps before cutting minibatches, so one minibatch holds a few
steps of many stories and the LM policy must run a forward pass per story for a few
tokens each. These buffers shuffle *episodes* instead and keep each episode's steps
together, so the policy's teacher-forced pass serves every step of a story at once.

A minibatch also ends at a story boundary where one is near: a story cut between two
minibatches costs its first part's positions again in the second (forward and
backward), about a fifth of an update's positions at 256-step minibatches of 90-token
stories.

A step whose ``trainable`` flag is false (``story_env.agents.rl.advantages``, the critic-free story
advantage: a slot waiting for the next rollout, or a story the rollout cut off) is left
out of every minibatch.
"""

from __future__ import annotations

import itertools
from collections.abc import Generator
from typing import Any

import numpy as np
from sb3_contrib.common.maskable.buffers import MaskableRolloutBuffer
from stable_baselines3.common.buffers import RolloutBuffer

_FLAT = ("observations", "actions", "values", "log_probs", "advantages", "returns", "action_masks")


def episode_segments(episode_starts: np.ndarray) -> list[np.ndarray]:
    """Each episode's flat buffer indices, episodes in random order.

    Args:
        episode_starts: (n_steps, n_envs) flags as SB3 stores them.

    Returns:
        Index arrays in SB3's flattened (env-major) order, one per episode (a story
        that began in an earlier rollout or goes on in the next one counts as one).
    """
    n_steps, n_envs = episode_starts.shape
    segments: list[np.ndarray] = []
    for env in range(n_envs):
        cuts = np.flatnonzero(episode_starts[1:, env]) + 1
        for seg in np.split(np.arange(n_steps), cuts):
            segments.append(env * n_steps + seg)
    return [segments[i] for i in np.random.permutation(len(segments))]


def episode_order(episode_starts: np.ndarray) -> np.ndarray:
    """A permutation of the flat buffer indices that keeps each episode's steps together."""
    return np.concatenate(episode_segments(episode_starts))


def minibatch_cuts(lengths: list[int], batch_size: int) -> list[int]:
    """Where to cut episodes of ``lengths`` (in order) into minibatches of ``batch_size``.

    SB3 cuts at every ``batch_size`` steps. Each such cut moves to the nearest episode
    boundary when one lies within a quarter of ``batch_size`` of it, so the number of
    minibatches stays SB3's and each holds ``batch_size`` steps give or take a half
    (each of its two cuts moves a quarter at most; the last one keeps SB3's remainder);
    where no boundary is that near (episodes longer than half a minibatch) the cut stays
    inside the episode, as SB3's would.

    Returns:
        Increasing cut positions, 0 and the total included.
    """
    total = int(sum(lengths))
    inner = np.cumsum(lengths)[:-1]  # boundaries between stories
    cuts = [0]
    for target in range(batch_size, total, batch_size):
        near = int(inner[np.abs(inner - target).argmin()]) if len(inner) else target
        cut = near if abs(near - target) <= batch_size // 4 else target
        cuts.append(cut if cut > cuts[-1] else target)
    return [*cuts, total]


class _EpisodeBatches:
    trainable: np.ndarray | None = None  # (n_steps, n_envs); None: every step

    def reset(self) -> None:
        super().reset()  # type: ignore[misc]
        self.trainable = None

    def get(self, batch_size: int | None = None) -> Generator[Any, None, None]:
        segments = episode_segments(self.episode_starts)  # type: ignore[attr-defined]
        if self.trainable is not None:
            keep = self.trainable.T.ravel()  # SB3's flat order is env-major
            segments = [s[keep[s]] for s in segments]
            segments = [s for s in segments if len(s)]
        order = np.concatenate(segments)
        if not self.generator_ready:  # type: ignore[has-type]
            for name in _FLAT:
                if name in self.__dict__:
                    self.__dict__[name] = self.swap_and_flatten(self.__dict__[name])  # type: ignore[attr-defined]
            self.generator_ready = True
        cuts = minibatch_cuts([len(s) for s in segments], batch_size or len(order))
        for start, end in itertools.pairwise(cuts):
            yield self._get_samples(order[start:end])  # type: ignore[attr-defined]


class EpisodeRolloutBuffer(_EpisodeBatches, RolloutBuffer):
    """``RolloutBuffer`` with episode-grouped minibatches (PPO, A2C, TRPO)."""


class MaskableEpisodeRolloutBuffer(_EpisodeBatches, MaskableRolloutBuffer):
    """``MaskableRolloutBuffer`` with episode-grouped minibatches (MaskablePPO)."""
