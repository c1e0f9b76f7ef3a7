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

:mod:`story_env.run` (train, evaluate, compare, reproduce, the CLI) sits on top of it all.
"""

from __future__ import annotations

from gymnasium.envs.registration import register, registry

from story_env.hookspecs import hookimpl
from story_env.teacher import Scores, StoryRequest, Teacher

__all__ = ["ENV_ID", "Scores", "StoryRequest", "Teacher", "hookimpl"]
__version__ = "0.1.0"

ENV_ID = "Storytelling-v0"

if ENV_ID not in registry:
    register(
        id=ENV_ID,
        entry_point="story_env.env:StorytellingEnv",
        vector_entry_point="story_env.vector:StorytellingVectorEnv",
        disable_env_checker=False,
    )
