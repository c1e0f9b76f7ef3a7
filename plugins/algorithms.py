"""Built-in RL algorithms from stable-baselines3, sb3-contrib and TRL (optional extra)."""

from __future__ import annotations

import functools
from collections.abc import Callable

from story_env.hookspecs import Register, hookimpl
from story_env.registry import AlgorithmSpec, import_object


def _class(path: str, extra: str | None = None) -> Callable[[], type]:
    """A loader that imports the class at ``path`` when a run asks for it."""
    return functools.partial(import_object, path, extra)


# The paper's PPO settings: the grade arrives only at the story's end, so no discounting.
_PAPER = {"gamma": 1.0, "gae_lambda": 0.95}
# PPO's rollouts and updates as measured on the tiny student (docs/training.md): short
# rollouts (a run's --steps then trains about that many tokens), 2 epochs, lr 1e-4
_PPO = {**_PAPER, "n_steps": 64, "batch_size": 512, "n_epochs": 2, "learning_rate": 1e-4}


@hookimpl
def storytelling_register_algorithms(register: Register) -> None:
    register(
        "ppo_story",
        # GRPO's signal in SB3's PPO (story_env.agents.rl.story_ppo): no critic, each story's
        # grade standardised over its rollout, the KL per token, whole stories; its own
        # defaults (n_steps 90, one minibatch, 2 epochs, lr 1e-4, clipping 1.0) are TRL's.
        AlgorithmSpec(_class("story_env.agents.rl.story_ppo:StoryPPO")),
        description="PPO on the story advantage: GRPO's signal, no critic (the default)",
    )
    register(
        "ppo",
        AlgorithmSpec(_class("stable_baselines3:PPO"), defaults=_PPO),
        description="PPO with a critic and GAE, the paper's algorithm (stable-baselines3)",
    )
    register(
        "a2c",
        AlgorithmSpec(_class("stable_baselines3:A2C"), defaults=_PAPER),
        description="A2C (stable-baselines3)",
    )
    register(
        "trpo",
        # TRPO's Hessian-vector products need a double backward, which PyTorch's fused
        # CPU attention lacks: the LM policy runs plain ("eager") attention for it.
        # LMTRPO asks for all actor gradients in one backward pass (see story_env.agents.rl.trpo).
        AlgorithmSpec(
            _class("story_env.agents.rl.trpo:LMTRPO"),
            defaults={**_PAPER, "policy_kwargs": {"attn_implementation": "eager"}},
        ),
        description="TRPO (sb3-contrib)",
    )
    register(
        "maskable_ppo",
        AlgorithmSpec(_class("sb3_contrib:MaskablePPO"), needs_action_masks=True, defaults=_PPO),
        description="PPO with invalid-action masks (sb3-contrib)",
    )
    register(
        "grpo",
        # TRL writes whole completions and learns from group-normalised grades (no critic);
        # story_env.run.trl_training maps the run's task, budget, KL and run folder onto it. TRL's
        # default learning rate (1e-6) is for billion-parameter models.
        AlgorithmSpec(
            _class("trl:GRPOConfig", extra="trl"),
            framework="trl",
            trainer=_class("trl:GRPOTrainer", extra="trl"),
            defaults={"learning_rate": 1e-4},
        ),
        description="GRPO (TRL; pip install 'storytelling[trl]')",
    )
    register(
        "rloo",
        # Same runner; RLOO's baseline is the mean grade of the other completions of the
        # prompt, and its KL is a per-sequence reward penalty (sum of log pi - log p_ref).
        AlgorithmSpec(
            _class("trl:RLOOConfig", extra="trl"),
            framework="trl",
            trainer=_class("trl:RLOOTrainer", extra="trl"),
            defaults={"learning_rate": 1e-4},
        ),
        description="RLOO, REINFORCE leave-one-out (TRL; pip install 'storytelling[trl]')",
    )
    register(
        "recurrent_ppo",
        AlgorithmSpec(_class("sb3_contrib:RecurrentPPO"), recurrent=True),
        description="PPO with an LSTM policy (sb3-contrib)",
    )
    register(
        "dqn",
        AlgorithmSpec(_class("stable_baselines3:DQN"), q_values=True, on_policy=False),
        description="DQN (stable-baselines3)",
    )
    register(
        "qrdqn",
        AlgorithmSpec(_class("sb3_contrib:QRDQN"), q_values=True, on_policy=False),
        description="Quantile-regression DQN (sb3-contrib)",
    )
