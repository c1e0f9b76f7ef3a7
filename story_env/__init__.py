"""Storytelling-v0: a Gymnasium environment where a student LM learns to tell stories.

Importing this package registers ``Storytelling-v0`` with Gymnasium::

    import gymnasium as gym
    env = gym.make("story_env:Storytelling-v0", teacher="heuristic")

This package is the bottom layer; it imports nothing from ``agents``, ``teachers`` or
its run layer ``story_env.run`` (plugins are loaded by name, through the registry):

* contracts: :mod:`~story_env.teacher` (``Teacher``, ``Scores``, ``close_teacher``),
  :mod:`~story_env.student` (``Student``, tokenizers, agents), :mod:`~story_env.errors`
  (every project error is a ``StorytellingError``);
* the task: :mod:`~story_env.core` (``EnvConfig``, ``StoryBatch``: prompts, steps,
  grading, rewards), :mod:`~story_env.rewards`, :mod:`~story_env.prompts`;
* the envs: :mod:`~story_env.env` (one story), :mod:`~story_env.vector` (N stories, one
  teacher batch), :mod:`~story_env.sb3` (stable-baselines3's VecEnv), :mod:`~story_env.trl`
  (a teacher as TRL's reward function);
* plugins: :mod:`~story_env.hookspecs`, :mod:`~story_env.registry` (names, lazy
  factories, ``resolve_student``);
* shared services: :mod:`~story_env.run_folder` (atomic writes, the resume guard, the
  story log), :mod:`~story_env.loading`, :mod:`~story_env.secrets`,
  :mod:`~story_env.arguments` (command-line value types).

:mod:`story_env.run` (train, evaluate, compare, reproduce, the CLI) sits on top of it all,
beside :mod:`story_env.agents` (students, the RL policy, ``StoryPPO``),
:mod:`story_env.teachers` and :mod:`story_env.plugins`.

For scripts, this package also exports what an RL script needs, each imported on first
use (so ``import story_env`` stays light and the bottom layer imports nothing above it)::

    from story_env import CausalLMPolicy, StoryPPO, evaluate, make_sb3_vec_env
"""

from __future__ import annotations

import importlib
from typing import Any

from gymnasium.envs.registration import register, registry

from story_env.hookspecs import hookimpl
from story_env.teacher import Scores, StoryRequest, Teacher

_LAZY = {
    "StorytellingEnv": "story_env.env",
    "StorytellingVectorEnv": "story_env.vector",
    "EnvConfig": "story_env.core",
    "SB3VecEnv": "story_env.sb3",
    "make_sb3_vec_env": "story_env.sb3",
    "create_teacher": "story_env.registry",
    "CausalLMPolicy": "story_env.agents.rl.policy",
    "MaskableCausalLMPolicy": "story_env.agents.rl.policy",
    "StoryPPO": "story_env.agents.rl.story_ppo",
    "TrainConfig": "story_env.run.config",
    "train": "story_env.run.training",
    "evaluate": "story_env.run.evaluation",
    "compare": "story_env.run.comparison",
}
"""Public names imported on first use: name -> the module that defines it."""

__all__ = [  # a literal list, so tools read it without importing (docs/api.md)
    "ENV_ID",
    "CausalLMPolicy",
    "EnvConfig",
    "MaskableCausalLMPolicy",
    "SB3VecEnv",
    "Scores",
    "StoryPPO",
    "StoryRequest",
    "StorytellingEnv",
    "StorytellingVectorEnv",
    "Teacher",
    "TrainConfig",
    "compare",
    "create_teacher",
    "evaluate",
    "hookimpl",
    "make_sb3_vec_env",
    "train",
]
__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value  # once: later lookups do not come here
        return value
    raise AttributeError(f"module 'story_env' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})


ENV_ID = "Storytelling-v0"

if ENV_ID not in registry:
    register(
        id=ENV_ID,
        entry_point="story_env.env:StorytellingEnv",
        vector_entry_point="story_env.vector:StorytellingVectorEnv",
        disable_env_checker=False,
    )
