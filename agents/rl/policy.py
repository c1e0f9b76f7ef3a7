"""A causal LM as a stable-baselines3 actor-critic policy.

The student's LM head gives the action logits, so the untrained policy *is* the
pretrained student; the value is a linear head on the last hidden state. Rollouts keep
the model's past key/values per env slot (one token's forward pass per step); training
passes evaluate every distinct episode in a minibatch once, teacher-forced.

Use it through ``policy_kwargs``-free classes::

    PPO(CausalLMPolicy, venv, policy_kwargs={"student": "tiny"})
    MaskablePPO(MaskableCausalLMPolicy, venv, policy_kwargs={"student": "tiny"})
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

import gymnasium as gym
import torch
from sb3_contrib.common.maskable.policies import MaskableActorCriticPolicy
from stable_baselines3.common.policies import ActorCriticPolicy
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor

from story_env.agents.rl.kvcache import IncrementalLM, last_hidden_teacher_forced
from story_env.errors import ConfigError
from story_env.registry import resolve_student


class LMFeaturesExtractor(BaseFeaturesExtractor):
    """Token-id observations -> the LM's hidden state after the last real token.

    Args:
        observation_space: The env's ``Box`` of token ids padded with ``vocab_size``.
        student: Registered student name or a model folder (its weights are copied).
        student_kwargs: Keyword arguments of the student's factory.
        attn_implementation: Override the model's attention kernel (e.g. ``"eager"``).
    """

    def __init__(
        self,
        observation_space: gym.spaces.Box,
        student: str = "tiny",
        student_kwargs: Mapping[str, Any] | None = None,
        attn_implementation: str | None = None,
    ) -> None:
        source = resolve_student(student, dict(student_kwargs or {}))
        model = copy.deepcopy(source.model)  # the policy trains its own copy
        if (
            attn_implementation is not None
        ):  # TRPO needs "eager": SDPA has no double backward on CPU
            model.set_attn_implementation(attn_implementation)
        super().__init__(observation_space, features_dim=model.config.hidden_size)
        self.model = model
        self.pad_id = int(observation_space.high.max())
        vocab = model.get_output_embeddings().out_features
        if vocab != self.pad_id:
            raise ConfigError(
                f"student {student!r} has {vocab} output logits but the env's vocabulary has "
                f"{self.pad_id} tokens; build the env and the policy with the same student"
            )
        self.incremental = IncrementalLM(model, self.pad_id)

    def forward(self, observations: torch.Tensor) -> torch.Tensor:
        ids = observations.long()  # (batch, context) SB3 hands Box observations as float
        lengths = (ids != self.pad_id).sum(dim=1)
        if self.training or torch.is_grad_enabled():
            # updates (incl. TRPO's no-grad line search) see changing weights: no cache
            return last_hidden_teacher_forced(self.model, ids, lengths)
        return self.incremental(ids, lengths)


class _CausalLMMixin:
    """Shared by the plain and the maskable policy: LM head as action net, no MLP."""

    def __init__(
        self,
        observation_space: gym.spaces.Space,
        action_space: gym.spaces.Space,
        lr_schedule: Any,
        student: str = "tiny",
        student_kwargs: Mapping[str, Any] | None = None,
        attn_implementation: str | None = None,
        **kwargs: Any,
    ) -> None:
        for key in ("features_extractor_class", "net_arch"):
            if key in kwargs:
                raise ConfigError(
                    f"{key} is fixed by the causal-LM policy; remove it from policy_kwargs"
                )
        super().__init__(  # type: ignore[call-arg]
            observation_space,
            action_space,
            lr_schedule,
            net_arch=[],
            ortho_init=False,
            features_extractor_class=LMFeaturesExtractor,
            features_extractor_kwargs={
                "student": student,
                "student_kwargs": dict(student_kwargs or {}),
                "attn_implementation": attn_implementation,
            },
            share_features_extractor=True,
            **kwargs,
        )

    def _build(self, lr_schedule: Any) -> None:
        super()._build(lr_schedule)  # type: ignore[misc]
        self.action_net = self.features_extractor.model.get_output_embeddings()  # type: ignore[attr-defined]
        torch.nn.init.zeros_(self.value_net.weight)  # type: ignore[attr-defined]
        torch.nn.init.zeros_(self.value_net.bias)  # type: ignore[attr-defined]
        kwargs = dict(self.optimizer_kwargs)  # type: ignore[attr-defined]
        if issubclass(self.optimizer_class, torch.optim.Adam | torch.optim.AdamW) and not (  # type: ignore[attr-defined]
            {"fused", "foreach"} & kwargs.keys()
        ):
            # one kernel per step (transformers' Trainer defaults to fused AdamW too):
            # torch's per-tensor loop took 9.6 ms a step for the tiny student on CPU,
            # fused 2.2 ms, and PPO steps once per minibatch
            kwargs["fused"] = True
        self.optimizer = self.optimizer_class(  # type: ignore[attr-defined]
            self.parameters(), lr=lr_schedule(1), **kwargs
        )

    def set_training_mode(self, mode: bool) -> None:
        # Training changes the weights, so cached keys/values go stale: drop them when
        # training starts. (SB3 also calls this with False before every predict(); the
        # cache must survive that, or every step would recompute whole prefixes.)
        if mode:
            self.features_extractor.incremental.clear()  # type: ignore[attr-defined]
        super().set_training_mode(mode)  # type: ignore[misc]


class CausalLMPolicy(_CausalLMMixin, ActorCriticPolicy):
    """Actor-critic policy for PPO, A2C and TRPO whose actor is the student LM.

    Rollouts and ``predict`` sample with :func:`sample_tokens` instead of SB3's
    ``Categorical`` (same distribution, a twentieth of the time per step on CPU);
    updates use SB3's ``evaluate_actions`` unchanged.
    """

    def forward(
        self, obs: torch.Tensor, deterministic: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        features = self.extract_features(obs)
        actions, log_prob = sample_tokens(self.action_net(features), deterministic)
        return actions, self.value_net(features), log_prob

    def _predict(self, observation: Any, deterministic: bool = False) -> torch.Tensor:
        return sample_tokens(self.action_net(self.extract_features(observation)), deterministic)[0]

    def evaluate_actions(
        self, obs: torch.Tensor, actions: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Values, log-probabilities of ``actions`` and entropies, for the update.

        The same quantities as SB3's (through ``Categorical``) from one ``log_softmax``:
        ``Categorical`` normalises the logits, takes a softmax for the entropy and
        validates them, about a sixth of a tiny student's update over 4,096 tokens.
        """
        features = self.extract_features(obs)
        logp = torch.log_softmax(self.action_net(features).float(), dim=-1)
        log_prob = logp.gather(1, actions.long().reshape(-1, 1))[:, 0]
        entropy = -(logp.exp() * logp).sum(dim=-1)
        return self.value_net(features), log_prob, entropy


def sample_tokens(
    logits: torch.Tensor, deterministic: bool = False
) -> tuple[torch.Tensor, torch.Tensor]:
    """One token per row from ``softmax(logits)``, and its log-probability.

    Draws by inverse CDF: one uniform number per row against the running sum of the
    probabilities, where ``torch.multinomial`` (what ``Categorical.sample`` calls)
    spends about 1 ms on a 16 x 4,096 batch drawing a number per token. The uniform is
    scaled by the row's total, so the drawn token always has a positive probability.
    ``deterministic`` takes the most likely token. Both come from the global torch
    generator, seeded by SB3's ``set_random_seed``.
    """
    logp = torch.log_softmax(logits.float(), dim=-1)
    if deterministic:
        actions = logp.argmax(dim=-1)
    else:
        cdf = logp.double().exp().cumsum(dim=-1)  # float64: rare tokens keep their share
        u = torch.rand(len(cdf), 1, dtype=cdf.dtype) * cdf[:, -1:]
        actions = torch.searchsorted(cdf, u, right=True)[:, 0]
    return actions, logp.gather(1, actions[:, None])[:, 0]


class MaskableCausalLMPolicy(_CausalLMMixin, MaskableActorCriticPolicy):
    """The same policy for sb3-contrib's MaskablePPO (action masks from the env)."""
