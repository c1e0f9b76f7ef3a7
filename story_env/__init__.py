"""Storytelling-v0: a Gymnasium environment where a student LM learns to tell stories.

Importing this package registers ``Storytelling-v0`` with Gymnasium::

    import gymnasium as gym
    env = gym.make("story_env:Storytelling-v0", teacher="heuristic")
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
