"""The single env: spaces, episode rules, rewards, seeding, checkers and errors."""

from __future__ import annotations

import subprocess
import sys
import warnings

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env as gym_check_env

import story_env
from story_env.agents.students.baselines import NGramStudent
from story_env.env import StorytellingEnv
from story_env.errors import (
    ActionError,
    ConfigError,
    EpisodeError,
    TeacherError,
    UnknownPluginError,
)
from story_env.prompts import PAPER_PROMPT
from story_env.teacher import Scores


def write(env: StorytellingEnv, text: str, end: bool = True):
    """Step the env through the bytes of ``text`` (byte students), then EOS."""
    out = None
    ids = env.unwrapped.tokenizer.encode(text)
    for i, token in enumerate(ids):
        out = env.step(token)
        if i < len(ids) - 1 or end:
            assert out[1] == 0.0 and not out[2] and not out[3]
    if end:
        out = env.step(env.unwrapped.tokenizer.eos_token_id)
    return out


def test_make_in_fresh_interpreter_with_module_prefix():
    code = (
        "import gymnasium as gym; e = gym.make('story_env:Storytelling-v0'); "
        "o, _ = e.reset(seed=0); print(e.action_space.n, o.shape)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["257", "(164,)"]


@pytest.mark.parametrize("student", ["random", "ngram"])
def test_gymnasium_env_checker(student):
    env = gym.make("Storytelling-v0", student=student)
    gym_check_env(env.unwrapped)


def test_sb3_env_checker():
    from stable_baselines3.common.env_checker import check_env

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_env(StorytellingEnv(), warn=True)


def test_observation_holds_prompt_then_story_with_padding():
    env = StorytellingEnv()
    obs, info = env.reset(seed=0)
    prompt_ids = env.tokenizer.encode(PAPER_PROMPT)
    assert info["prompt"] == PAPER_PROMPT
    assert obs[: len(prompt_ids)].tolist() == prompt_ids
    assert (obs[len(prompt_ids) :] == env.pad_id).all() and env.pad_id == env.action_space.n
    obs, *_ = env.step(ord("x"))
    assert obs[len(prompt_ids)] == ord("x") and obs[len(prompt_ids) + 1] == env.pad_id
    assert env.observation_space.contains(obs)


def test_eos_terminates_with_the_teachers_reward_and_full_info():
    env = StorytellingEnv()
    env.reset(seed=0)
    story = " there lived a kind old fox who loved the moon. He sang to it every night."
    _, reward, terminated, truncated, info = write(env, story)
    assert terminated and not truncated
    expected = env.teacher.score([story_env.StoryRequest(PAPER_PROMPT, story)])[0]
    assert reward == pytest.approx(expected.total) and reward > 0
    assert info["story"] == story and info["prompt"] == PAPER_PROMPT
    assert info["scores"] == dict(expected.values)
    assert info["reward"] == reward and info["teacher_error"] is None
    assert info["teacher_raw"] == expected.raw and info["words"] == len(story.split())


def test_truncated_at_max_new_tokens_with_reward_only_at_the_end():
    env = StorytellingEnv(max_new_tokens=12)
    env.reset(seed=0)
    rewards = []
    for t in range(12):
        _, r, terminated, truncated, info = env.step(ord("a") + t % 5)
        rewards.append(r)
        assert terminated is False
        assert truncated is (t == 11)
    assert rewards[:-1] == [0.0] * 11 and "story" in info and info["tokens"] == 12


def test_paper_length_bonus_and_weights():
    story = " the cat sat on a warm mat and dreamed of fish. Then the cat woke up happy."
    plain = StorytellingEnv(max_new_tokens=200)
    bonus = StorytellingEnv(max_new_tokens=200, length_bonus=0.4)
    weighted = StorytellingEnv(max_new_tokens=200, weights=[1.0, 0.0, 0.0])
    results = []
    for env in (plain, bonus, weighted):
        env.reset(seed=0)
        results.append(write(env, story))
    teacher, info = results[0][1], results[0][4]
    words = len(story.split())
    assert results[1][1] == pytest.approx((teacher + 0.4 * words / 200) / 1.4)
    assert results[2][1] == pytest.approx(info["scores"]["readability"] / 3)


def test_same_seed_same_prompts_stories_and_scores():
    prompts = ["Once there was a bear.", "A ship sailed at dawn.", "The rain came down."]

    def run(seed):
        env = gym.make("Storytelling-v0", student="ngram", prompts=prompts, max_new_tokens=30)
        agent = NGramStudent().make_agent(seed=seed)
        out = []
        obs, info = env.reset(seed=seed)
        for _ in range(6):
            done = False
            while not done:
                obs, r, term, trunc, info = env.step(agent.predict(obs)[0])
                done = term or trunc
            out.append((info["prompt"], info["story"], r))
            obs, _ = env.reset()
        return out

    first, again, other = run(3), run(3), run(4)
    assert first == again and first != other
    assert len({p for p, _, _ in first}) > 1


def test_prompt_file(tmp_path):
    f = tmp_path / "prompts.txt"
    f.write_text("First prompt.\n\nSecond prompt.\n")
    env = StorytellingEnv(prompt_file=str(f))
    seen = {env.reset(seed=s)[1]["prompt"] for s in range(20)}
    assert seen == {"First prompt.", "Second prompt."}


def test_render_ansi():
    env = StorytellingEnv(render_mode="ansi")
    env.reset(seed=0)
    for ch in b" Hi":
        env.step(ch)
    assert env.render() == PAPER_PROMPT + " Hi"


# --- errors -------------------------------------------------------------------------


@pytest.mark.parametrize("action", [-1, 257, 10**6])
def test_out_of_range_action(action):
    env = StorytellingEnv()
    env.reset(seed=0)
    with pytest.raises(ActionError, match=rf"action {action} is outside .*\[0, 256\]"):
        env.step(action)


def test_non_integer_action():
    env = StorytellingEnv()
    env.reset(seed=0)
    with pytest.raises(ActionError, match="integer token ids"):
        env.step(3.5)


def test_step_after_episode_end():
    env = StorytellingEnv()
    env.reset(seed=0)
    env.step(env.tokenizer.eos_token_id)
    with pytest.raises(EpisodeError, match="call reset"):
        env.step(65)


def test_unknown_teacher_and_student_suggest_names():
    with pytest.raises(
        UnknownPluginError, match=r"unknown teacher 'heuristik'.*Did you mean 'heuristic'"
    ):
        gym.make("Storytelling-v0", teacher="heuristik")
    with pytest.raises(UnknownPluginError, match=r"unknown student 'ngramm'.*ngram"):
        gym.make("Storytelling-v0", student="ngramm")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"max_new_tokens": -5}, r"max_new_tokens must be >= 1, got -5"),
        ({"max_new_tokens": 0}, r"max_new_tokens must be >= 1, got 0"),
        ({"weights": [1.0, 1.0]}, r"weights \[1.0, 1.0\] have length 2.*3 dimensions"),
        ({"weights": {"humour": 1.0}}, r"unknown dimensions \['humour'\]"),
        ({"weights": [-1.0, 1.0, 1.0]}, r"non-negative"),
        ({"length_bonus": -0.4}, r"length_bonus must be >= 0, got -0.4"),
        ({"prompts": "Once upon a time"}, r"must be a list of strings"),
        ({"prompts": []}, r"non-empty list"),
        ({"prompt_file": "/nonexistent/prompts.txt"}, r"does not exist"),
        (
            {"teacher_kwargs": {"bogus": 1}},
            r"bad keyword arguments \['bogus'\] for teacher 'heuristic'",
        ),
        ({"render_mode": "human"}, r"render_mode 'human' is not supported"),
        ({"teacher_fallback": 2.0}, r"teacher_fallback must be in \[0, 1\]"),
    ],
)
def test_bad_keyword_arguments(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        StorytellingEnv(**kwargs)


class FailingTeacher:
    """Failure injection: a teacher whose every grade fails."""

    name = "always_fails"
    dimensions = ("readability", "coherence", "creativity")
    max_score = 3.0

    def score(self, requests):
        return [Scores.failed("backend unreachable") for _ in requests]


class FailingTeacherPlugin:
    @story_env.hookimpl
    def storytelling_register_teachers(self, register):
        register("always_fails", lambda: FailingTeacher())


def test_teacher_failure_raises_or_uses_a_flagged_fallback(temporary_plugin):
    temporary_plugin(FailingTeacherPlugin(), "failing-teacher-test")
    env = StorytellingEnv(teacher="always_fails")
    env.reset(seed=0)
    with pytest.raises(TeacherError, match="backend unreachable.*teacher_fallback"):
        env.step(env.tokenizer.eos_token_id)
    env = StorytellingEnv(teacher="always_fails", teacher_fallback=0.0)
    env.reset(seed=0)
    _, reward, _, _, info = env.step(env.tokenizer.eos_token_id)
    assert reward == 0.0 and info["teacher_error"] == "backend unreachable" and info["scores"] == {}


def test_every_step_reward_is_finite_under_random_play():
    env = StorytellingEnv()
    rng = np.random.default_rng(0)
    env.reset(seed=0)
    for _ in range(500):
        _, r, term, trunc, _ = env.step(int(rng.integers(257)))
        assert np.isfinite(r) and 0.0 <= r <= 1.0
        if term or trunc:
            env.reset()


class _ClosingTeacher:
    """A test double for the close contract: grades nothing useful, counts close()."""

    name = "closing"
    dimensions = ("readability", "coherence", "creativity")
    max_score = 3.0
    closed = 0

    def score(self, requests):
        from story_env.teacher import Scores

        return [Scores.from_values(dict.fromkeys(self.dimensions, 1.0), 3.0) for _ in requests]

    def close(self):
        type(self).closed += 1


class _ClosingTeacherPlugin:
    @story_env.hookimpl
    def storytelling_register_teachers(self, register):
        register("closing", _ClosingTeacher, description="test double")


@pytest.mark.parametrize("vector", [False, True])
def test_closing_the_env_closes_its_teacher(temporary_plugin, vector):
    temporary_plugin(_ClosingTeacherPlugin(), "closing-teacher")
    _ClosingTeacher.closed = 0
    if vector:
        env = gym.make_vec("story_env:Storytelling-v0", num_envs=2, teacher="closing")
    else:
        env = gym.make("story_env:Storytelling-v0", teacher="closing")
    env.reset(seed=0)
    assert _ClosingTeacher.closed == 0
    env.close()
    assert _ClosingTeacher.closed == 1
