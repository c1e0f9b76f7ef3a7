"""The story advantage: GRPO's learning signal inside an SB3 rollout buffer.

``StoryPPO`` (algorithm ``ppo_story``) computes it and does not use the critic. Every token of a story gets the story's grade, standardised over the stories the
rollout finished (their mean is the baseline, as the group mean is GRPO's), and the KL
penalty acts on each token alone, as GRPO's loss term does: the token's advantage gains
``kl_coef * (p_ref / pi - 1)``, the gradient of GRPO's estimator ``k3 = p_ref / pi -
log(p_ref / pi) - 1`` through ``log pi``, instead of every earlier token's return paying
``kl_coef * (log pi - log p_ref)``. The grade is then the only thing a story's tokens
share.

A story still being written when the rollout ends would have no grade yet, and without
a critic nothing can stand in for one. So training does not start a story the rollout
could cut: a slot whose story ends with fewer steps left than a story may take waits
for the next rollout (``StoryPPO``, ``StorytellingVectorEnv.hold``), and every
rollout's stories are whole, as a batch of ``generate`` calls gives GRPO. Steps with no
grade after them (a waiting slot's, or a story cut all the same) are left out of the
update (``trainable`` false). Measured on the tiny student: the same signal
with cut stories' first parts trained on an untrained value's bootstrap gained about
half as much per story, and with those parts left out (about a quarter to a third of
the steps once slots drift apart) about two thirds.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def story_returns(
    rewards: np.ndarray, episode_starts: np.ndarray, last_dones: np.ndarray
) -> tuple[np.ndarray, np.ndarray, list[float]]:
    """Each step's undiscounted reward-to-go within its story, and which steps have one.

    Args:
        rewards: (n_steps, n_envs) rewards (the grade on each story's last step).
        episode_starts: (n_steps, n_envs) SB3's flags: a story starts at this step.
        last_dones: (n_envs,) whether each env's story ended at the rollout's last step.

    Returns:
        returns (n_steps, n_envs), ``trainable`` (n_steps, n_envs): false on the steps of
        a story the rollout cut off before its end, and the return of every story that
        ended in the rollout (its steps here may be its second part), in rollout order.
    """
    n_steps, n_envs = rewards.shape
    ends = np.zeros((n_steps, n_envs), dtype=bool)
    ends[:-1] = episode_starts[1:].astype(bool)
    ends[-1] = np.asarray(last_dones, dtype=bool)
    returns = np.zeros((n_steps, n_envs), dtype=np.float32)
    trainable = np.zeros((n_steps, n_envs), dtype=bool)
    finished: list[float] = []
    for env in range(n_envs):
        to_go, ended = 0.0, False
        for t in range(n_steps - 1, -1, -1):
            if ends[t, env]:
                to_go, ended = 0.0, True
                finished.append(0.0)  # filled below, once the story's start is reached
            to_go += float(rewards[t, env])
            returns[t, env], trainable[t, env] = to_go, ended
            if ended:
                finished[-1] = to_go
    return returns, trainable, finished


def story_advantages(
    buffer: Any,
    last_dones: np.ndarray,
    ref_logps: np.ndarray | None = None,
    kl_coef: float = 0.0,
) -> dict[str, float]:
    """Write the story advantage into an SB3 rollout buffer (returns, advantages, trainable).

    Args:
        buffer: The rollout buffer (``story_env.agents.rl.buffers.EpisodeRolloutBuffer``), its
            rewards final (graded, no KL in them).
        last_dones: The envs' done flags at the rollout's last step.
        ref_logps: (n_steps, n_envs) ``log p_ref`` of each action (None: no KL term).
        kl_coef: The KL coefficient.

    Returns:
        What the rollout's signal looked like, for the logger: stories graded, the
        grade's mean and spread, and the share of steps left out (waiting or cut).
    """
    returns, trainable, finished = story_returns(buffer.rewards, buffer.episode_starts, last_dones)
    grades = np.asarray(finished, dtype=np.float64)
    mean = float(grades.mean()) if len(grades) else 0.0
    std = float(grades.std()) if len(grades) else 0.0
    advantages = np.where(trainable, (returns - mean) / (std + 1e-8), 0.0)
    if ref_logps is not None and kl_coef:
        # GRPO's per-token KL term k3 = p_ref/pi - log(p_ref/pi) - 1, as an advantage: its
        # gradient through log pi is kl_coef * (1 - p_ref/pi), so the token's advantage
        # gains kl_coef * (p_ref/pi - 1) (at the sampling policy, where PPO's ratio is 1)
        ratio = np.exp(ref_logps.astype(np.float64) - buffer.log_probs)
        advantages += kl_coef * (ratio - 1.0) * trainable
    # the critic is not used; its targets stay where it is, so its loss is zero
    buffer.returns = np.where(trainable, returns, buffer.values).astype(np.float32)
    buffer.advantages = advantages.astype(np.float32)
    buffer.trainable = trainable
    return {
        "stories": float(len(grades)),
        "grade_mean": mean,
        "grade_std": std,
        "left_out": float(1.0 - trainable.mean()),
    }
