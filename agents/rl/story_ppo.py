"""``StoryPPO``: PPO trained on GRPO's signal, the story advantage, with whole stories.

No critic. Every token of a story gets the story's grade standardised over the stories
its rollout finished (their mean is the baseline, as the group mean is GRPO's), and the
KL to the frozen starting student acts on each token alone, as GRPO's loss term does
(``story_env.agents.rl.advantages``). A story still being written when a rollout ends
would have no grade, and nothing could stand in for one, so a slot whose story ends with
fewer rollout steps left than a story may take waits for the next rollout
(``StorytellingVectorEnv.hold``): every rollout's stories are whole, as a batch of
``generate`` calls gives GRPO. Waiting steps write no token: they are left out of the
update and out of ``num_timesteps``, so ``learn(N)`` counts written tokens.

It is a stable-baselines3 ``PPO`` with its rollout and advantage computation overridden,
so a plain SB3 script uses it with the project's env and policy::

    from story_env import CausalLMPolicy, StoryPPO, make_sb3_vec_env

    env = make_sb3_vec_env(num_envs=16, student="tiny", teacher="heuristic")
    model = StoryPPO(CausalLMPolicy, env, policy_kwargs={"student": "tiny"})
    model.learn(20_000)
"""

from __future__ import annotations

import copy
from typing import Any, ClassVar

import numpy as np
import torch
from stable_baselines3 import PPO
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.utils import obs_as_tensor
from stable_baselines3.common.vec_env import VecEnv

from story_env.agents.rl.advantages import story_advantages
from story_env.agents.rl.buffers import EpisodeRolloutBuffer
from story_env.agents.rl.novelty import rollout_novelty
from story_env.agents.rl.reference import RolloutReference, adapt_kl_coef
from story_env.errors import ConfigError
from story_env.rewards import finite_number


class StoryPPO(PPO):
    """PPO with the story advantage: GRPO's learning signal, whole stories, no critic.

    Args:
        policy: The causal-LM policy (``CausalLMPolicy``) or its name.
        env: The project's SB3 vector env (``make_sb3_vec_env``): it must support
            ``hold``/``release`` (slots that wait for the next rollout).
        learning_rate: Adam's learning rate (default 1e-4, measured on the tiny student).
        n_steps: Steps per env in a rollout; at least ``story_tokens``, so every env
            finishes a story in each rollout (default: ``story_tokens``, or 90).
        batch_size: Minibatch size (default: the whole rollout, one minibatch, as a
            GRPO step over its group).
        n_epochs: Passes over each rollout (default 1, as TRL's GRPO: over six seeds a
            second pass gained no more per story and cost a quarter of the speed,
            docs/benchmarks.md).
        max_grad_norm: Gradient clipping (default 1.0, TRL's).
        kl_coef: Weight of the per-token KL to the starting student (GRPO's beta;
            default 0.01; 0 turns the reference off).
        kl_target: If set, adapt ``kl_coef`` after each rollout toward this KL
            (nats/token).
        story_tokens: The longest a story can be (default: the env's ``max_new_tokens``).
        novelty_coef: Weight of a story's novelty within its rollout, added to its grade
            before standardisation (``story_env.agents.rl.novelty``; default 0: off). The
            grade the env logs stays the teacher's.
        **kwargs: Any other ``PPO`` argument. ``normalize_advantage`` must stay false (the
            story advantage arrives standardised; SB3's per-minibatch normalisation would
            rescale the KL term); the critic's ``vf_coef`` is 0.

    Raises:
        ConfigError: A bad value, a rollout shorter than a story, or another buffer class.
    """

    uses_critic: ClassVar[bool] = False
    """Training does not warm-start a critic for it."""
    whole_stories: ClassVar[bool] = True
    """Its rollouts end at story boundaries and count written tokens only."""

    def __init__(
        self,
        policy: Any,
        env: VecEnv | None,
        learning_rate: float = 1e-4,
        n_steps: int | None = None,
        batch_size: int | None = None,
        n_epochs: int = 1,
        max_grad_norm: float = 1.0,
        kl_coef: float = 0.01,
        kl_target: float | None = None,
        story_tokens: int | None = None,
        novelty_coef: float = 0.0,
        _init_setup_model: bool = True,
        **kwargs: Any,
    ) -> None:
        if kwargs.get("normalize_advantage"):
            raise ConfigError(
                "StoryPPO standardises each rollout's grades itself and adds the KL per "
                "token; normalize_advantage would rescale that KL term: drop it"
            )
        buffer_class = kwargs.pop("rollout_buffer_class", None)
        if buffer_class not in (None, EpisodeRolloutBuffer):
            raise ConfigError(
                "StoryPPO leaves the steps of waiting slots out of the update, which needs "
                f"its episode buffer; drop rollout_buffer_class ({getattr(buffer_class, '__name__', buffer_class)})"
            )
        if finite_number("kl_coef", kl_coef) < 0:
            raise ConfigError(f"kl_coef must be >= 0, got {kl_coef}")
        if finite_number("novelty_coef", novelty_coef) < 0:
            raise ConfigError(f"novelty_coef must be >= 0 (0 turns it off), got {novelty_coef}")
        if kl_target is not None and not finite_number("kl_target", kl_target) > 0:
            raise ConfigError(f"kl_target must be > 0 (or None), got {kl_target}")
        if story_tokens is None and env is not None:
            story_tokens = int(env.get_attr("config")[0].max_new_tokens)
        if n_steps is None:
            n_steps = story_tokens or 90
        if story_tokens is not None and n_steps < story_tokens:
            raise ConfigError(
                f"StoryPPO needs rollouts of at least a story's length per env, so that "
                f"every env finishes a story in each: n_steps is {n_steps}, a story takes up "
                f"to {story_tokens} steps. Pass n_steps={story_tokens} or more"
            )
        if batch_size is None:
            batch_size = n_steps * (env.num_envs if env is not None else 1)
        self.kl_coef, self.kl_target, self.story_tokens = float(kl_coef), kl_target, story_tokens
        self.novelty_coef = float(novelty_coef)
        self.reference: RolloutReference | None = None
        super().__init__(
            policy,
            env,  # type: ignore[arg-type]
            learning_rate=learning_rate,
            n_steps=n_steps,
            batch_size=batch_size,
            n_epochs=n_epochs,
            max_grad_norm=max_grad_norm,
            vf_coef=kwargs.pop("vf_coef", 0.0),
            normalize_advantage=False,
            rollout_buffer_class=EpisodeRolloutBuffer,
            _init_setup_model=_init_setup_model,
            **kwargs,
        )

    def _setup_model(self) -> None:
        super()._setup_model()
        if self.kl_coef or self.kl_target is not None:
            # the starting student, frozen: built here, before a saved model's trained
            # weights are loaded into the policy
            lm = self.policy.features_extractor.model  # type: ignore[union-attr]
            frozen = copy.deepcopy(lm).eval().requires_grad_(False)
            pad_id = int(self.observation_space.high.max())  # type: ignore[union-attr]
            self.reference = RolloutReference(frozen, pad_id)

    def _excluded_save_params(self) -> list[str]:
        return [*super()._excluded_save_params(), "reference"]

    def collect_rollouts(
        self,
        env: VecEnv,
        callback: BaseCallback,
        rollout_buffer: Any,
        n_rollout_steps: int,
    ) -> bool:
        """Fill the buffer with whole stories, grade them, and write the story advantage.

        A step's stories may be graded at the rollout's end in one teacher batch (the
        env's ``defer_grading``): their rewards are added to their rows here, and the
        graded infos reach callbacks as ``graded`` (``(env, timestep, info)`` each) in
        ``locals`` at ``on_rollout_end`` (or, when a callback stops the rollout, before
        ``on_training_end``).
        """
        self.policy.set_training_mode(False)
        rollout_buffer.reset()
        env.env_method("release")  # the slots held at the last rollout's end
        callback.on_rollout_start()
        pending: list[tuple[int, int, int]] = []  # (buffer row, env, timestep)
        texts: dict[tuple[int, int], str] = {}  # (buffer row, env) -> a story graded there
        dones = np.zeros(env.num_envs, dtype=bool)
        for step in range(n_rollout_steps):
            with torch.no_grad():
                actions, values, log_probs = self.policy(obs_as_tensor(self._last_obs, self.device))
            actions = actions.cpu().numpy()
            new_obs, rewards, dones, infos = env.step(actions)
            waiting = sum(1 for info in infos if info.get("waiting"))
            self.num_timesteps += env.num_envs - waiting  # a waiting slot wrote nothing
            if dones.any() and n_rollout_steps - step - 1 < (self.story_tokens or 0):
                # too little of the rollout is left for another story: the slot waits
                env.env_method("hold", np.flatnonzero(dones))
            pending += [
                (step, int(i), self.num_timesteps)
                for i in np.flatnonzero(dones)
                if "pending_grade" in infos[i]
            ]
            texts.update(
                {(step, i): infos[i]["story"] for i in range(len(infos)) if "story" in infos[i]}
            )
            callback.update_locals(locals())
            if not callback.on_step():  # stopped mid-rollout: its graded stories still count
                callback.update_locals(
                    {"graded": self._grade_pending(env, rollout_buffer, pending, texts)}
                )
                return False
            self._update_info_buffer(infos, dones)
            rollout_buffer.add(
                self._last_obs,
                actions.reshape(-1, 1),
                rewards,
                self._last_episode_starts,
                values,
                log_probs,
            )
            self._last_obs, self._last_episode_starts = new_obs, dones
        graded = self._grade_pending(env, rollout_buffer, pending, texts)
        self._story_advantage(rollout_buffer, dones, texts)
        callback.update_locals({"graded": graded, "dones": dones})
        callback.on_rollout_end()
        return True

    def _grade_pending(
        self,
        env: VecEnv,
        buffer: Any,
        pending: list[tuple[int, int, int]],
        texts: dict[tuple[int, int], str],
    ) -> list[tuple[int, int, dict[str, Any]]]:
        """Grade the rollout's deferred stories in one batch; add each reward to its row
        and note its story in ``texts``."""
        if not pending:
            return []
        infos = env.env_method("grade_pending")[0]
        for (row, i, _), info in zip(pending, infos, strict=True):
            buffer.rewards[row, i] += info["reward"]
            texts[row, i] = info["story"]
        return [(i, step, info) for (_, i, step), info in zip(pending, infos, strict=True)]

    def _story_advantage(
        self, buffer: Any, dones: np.ndarray, texts: dict[tuple[int, int], str]
    ) -> None:
        """The novelty bonus (if any), the KL reference's pass, then each step's advantage
        (``story_advantages``)."""
        if self.novelty_coef and texts:
            rows, stories = zip(*texts.items(), strict=True)
            novelty = rollout_novelty(stories)
            for (row, i), value in zip(rows, novelty, strict=True):
                buffer.rewards[row, i] += self.novelty_coef * value
            self.logger.record("story_advantage/novelty_mean", float(novelty.mean()))
        ref = None
        if self.reference is not None:
            ref = self.reference.rollout_logps(buffer)
            kl = float(np.mean(buffer.log_probs) - np.mean(ref)) if ref.size else 0.0
            self.logger.record("train/kl", kl)
            if self.kl_target is not None:
                self.kl_coef = adapt_kl_coef(self.kl_coef, kl, self.kl_target)
                self.logger.record("train/kl_coef", self.kl_coef)
        signal = story_advantages(buffer, dones, ref, self.kl_coef)
        for key, value in signal.items():
            self.logger.record(f"story_advantage/{key}", value)
