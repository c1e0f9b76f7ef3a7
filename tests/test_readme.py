"""The README's own code does what it says: its teacher plugin matches words as words."""

from __future__ import annotations

import gymnasium as gym
import pytest
from doc_snippets import README, python_blocks

import story_env
from story_env import StoryRequest


def _readme_block(containing: str) -> str:
    found = [b for b in python_blocks(README) if containing in b.code]
    assert len(found) == 1, f"{len(found)} README python blocks contain {containing!r}"
    return found[0].code


@pytest.fixture
def keyword_plugin(temporary_plugin):
    """The README's plugin code, registered in-process as an installed plugin would be."""
    namespace: dict = {}
    exec(compile(_readme_block("class KeywordTeacher"), "README.md", "exec"), namespace)
    plugin = type("ReadmePlugin", (), {})()
    plugin.storytelling_register_teachers = namespace["storytelling_register_teachers"]
    temporary_plugin(plugin, "readme-keywords")
    return namespace["KeywordTeacher"]


def test_readme_teacher_matches_words_next_to_punctuation(keyword_plugin):
    teacher = keyword_plugin(keywords=["fox", "moon"])
    stories = ["I saw a fox.", "A Fox, then the MOON!", "A foxglove on the moonlit hill", ""]
    grades = teacher.score([StoryRequest("Once upon a time,", s) for s in stories])
    assert [g.values["keywords"] for g in grades] == [0.5, 1.0, 0.0, 0.0]
    assert all(g.ok and g.total == g.values["keywords"] for g in grades)


def test_readme_teacher_is_found_by_name(keyword_plugin):
    env = gym.make(
        "Storytelling-v0",
        teacher="keywords",
        teacher_kwargs={"keywords": ["fox"]},
        max_new_tokens=8,
    )
    env.reset(seed=0)
    done = False
    while not done:
        _, reward, terminated, truncated, info = env.step(env.action_space.sample())
        done = terminated or truncated
    assert set(info["scores"]) == {"keywords"} and 0.0 <= reward <= 1.0
    env.close()
    assert story_env.ENV_ID == "Storytelling-v0"
