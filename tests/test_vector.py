"""The native vector env, its batched teacher calls, and the stable-baselines3 adapter."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

import story_env
from story_env.env import StorytellingEnv
from story_env.errors import ConfigError
from story_env.sb3 import SB3VecEnv, make_sb3_vec_env
from story_env.vector import StorytellingVectorEnv


class BatchSpy:
    """Wraps the real heuristic teacher and records the size of every score() call."""

    name = "batch_spy"
    dimensions = ("readability", "coherence", "creativity")
    max_score = 3.0
    calls: list[int] = []

    def __init__(self):
        from story_env.teachers.heuristic import HeuristicTeacher

        self.inner = HeuristicTeacher()

    def score(self, requests):
        BatchSpy.calls.append(len(requests))
        return self.inner.score(requests)


class SpyPlugin:
    @story_env.hookimpl
    def storytelling_register_teachers(self, register):
        register("batch_spy", BatchSpy)


def test_make_vec_uses_the_native_vector_env():
    envs = gym.make_vec("Storytelling-v0", num_envs=3)
    assert isinstance(envs, StorytellingVectorEnv)
    obs, _ = envs.reset(seed=0)
    assert obs.shape == (3, envs.single_observation_space.shape[0])
    assert envs.action_space.shape == (3,)


def test_stories_finishing_in_one_step_are_graded_in_one_batch(temporary_plugin):
    temporary_plugin(SpyPlugin(), "batch-spy")
    BatchSpy.calls.clear()
    envs = StorytellingVectorEnv(num_envs=4, teacher="batch_spy", max_new_tokens=5)
    envs.reset(seed=0)
    eos = envs.tokenizer.eos_token_id
    envs.step(np.array([65, eos, 65, eos]))  # two stories end now
    for _ in range(4):  # the other two hit max_new_tokens together, then the first two
        envs.step(np.array([66, 66, 66, 66]))
    assert BatchSpy.calls == [2, 2]


def test_vector_slots_replay_single_envs_with_offset_seeds():
    n, seed = 3, 11
    prompts = ["One day a cat.", "The sea was calm.", "Far away, a bell rang.", "Snow fell."]
    kwargs = dict(student="ngram", prompts=prompts, max_new_tokens=20)
    envs = StorytellingVectorEnv(num_envs=n, **kwargs)
    singles = [StorytellingEnv(**kwargs) for _ in range(n)]
    rng = np.random.default_rng(0)
    obs, _ = envs.reset(seed=seed)
    [e.reset(seed=seed + i)[0] for i, e in enumerate(singles)]
    for _ in range(70):
        actions = rng.integers(0, 257, size=n)
        actions[rng.random(n) < 0.05] = 256
        obs, rewards, term, trunc, infos = envs.step(actions)
        for i, env in enumerate(singles):
            o, r, te, tr, info = env.step(int(actions[i]))
            assert r == pytest.approx(rewards[i]) and te == term[i] and tr == trunc[i]
            if te or tr:
                assert infos["final_info"]["story"][i] == info["story"]
                assert (infos["final_obs"][i] == o).all()
                o, _ = env.reset()
            assert (obs[i] == o).all()


def test_bad_num_envs():
    with pytest.raises(ConfigError, match="num_envs must be a positive int, got 0"):
        StorytellingVectorEnv(num_envs=0)


def test_bad_keyword_for_vector_env():
    with pytest.raises(ConfigError, match="bad keyword argument.*max_tokens"):
        StorytellingVectorEnv(num_envs=2, max_tokens=5)


def test_sb3_adapter_passes_vec_env_checks_and_reports_terminal_observations():
    from stable_baselines3.common.vec_env import VecCheckNan

    venv = VecCheckNan(make_sb3_vec_env(num_envs=2, max_new_tokens=4), raise_exception=True)
    venv.seed(5)
    obs = venv.reset()
    assert obs.shape == (2, *venv.observation_space.shape)
    assert venv.observation_space.contains(obs[0]) and venv.action_space.n == 257
    for _step in range(4):
        obs, rewards, dones, infos = venv.step(np.array([72, 105]))
    assert dones.all() and rewards.dtype == np.float32
    for info in infos:
        assert info["TimeLimit.truncated"] is False  # graded: no bootstrapping
        assert info["story_truncated"] is True
        assert info["terminal_observation"].shape == obs[0].shape
        assert set(info["scores"]) == {"readability", "coherence", "creativity"}
    assert [info["story"] for info in infos] == ["HHHH", "iiii"]


@pytest.mark.parametrize("vectorized", [False, True])
def test_ppo_learns_a_few_steps(vectorized):
    from stable_baselines3 import PPO

    if vectorized:
        env = make_sb3_vec_env(num_envs=4, max_new_tokens=16)
        assert isinstance(env, SB3VecEnv)
    else:
        env = StorytellingEnv(max_new_tokens=16)
    model = PPO("MlpPolicy", env, n_steps=64, batch_size=64, n_epochs=1, seed=0, device="cpu")
    model.learn(256)
    assert model.num_timesteps >= 256
    action, _ = model.predict(env.reset()[0] if not vectorized else env.reset())
    assert np.all((action >= 0) & (action < 257))


class FlakyTeacher:
    """Failure injection: fails every other story."""

    name = "flaky"
    dimensions = ("readability", "coherence", "creativity")
    max_score = 3.0

    def __init__(self):
        self.count = 0

    def score(self, requests):
        from story_env.teacher import Scores

        out = []
        for _ in requests:
            self.count += 1
            ok = self.count % 2
            out.append(
                Scores.from_values(dict.fromkeys(self.dimensions, 3.0), 3.0)
                if ok
                else Scores.failed("timeout")
            )
        return out


class FlakyPlugin:
    @story_env.hookimpl
    def storytelling_register_teachers(self, register):
        register("flaky", FlakyTeacher)


def test_vector_env_reports_mixed_successes_and_failures_per_slot(temporary_plugin):
    from story_env.vector import slot_info

    temporary_plugin(FlakyPlugin(), "flaky-teacher")
    envs = StorytellingVectorEnv(num_envs=2, teacher="flaky", teacher_fallback=0.25)
    envs.reset(seed=0)
    eos = envs.tokenizer.eos_token_id
    _, rewards, *_, infos = envs.step(np.array([eos, eos]))
    first, second = (slot_info(infos["final_info"], i) for i in range(2))
    assert rewards.tolist() == [1.0, 0.25]
    assert first["teacher_error"] is None and first["scores"]["creativity"] == 3.0
    assert second["teacher_error"] == "timeout" and second["scores"] == {}
    assert np.isnan(second["teacher_score"])


def test_deferred_grading_gives_the_same_rewards_in_one_teacher_batch(temporary_plugin):
    temporary_plugin(SpyPlugin(), "batch_spy_deferred")
    kwargs = dict(teacher="batch_spy", student="ngram", max_new_tokens=12)
    now = make_sb3_vec_env(num_envs=4, **kwargs)
    later = make_sb3_vec_env(num_envs=4, **kwargs)
    later.defer_grading(True)
    rng = np.random.default_rng(0)
    now.seed(5)
    later.seed(5)
    now.reset()
    later.reset()
    immediate, pending = [], []
    BatchSpy.calls.clear()
    for _ in range(30):
        actions = rng.integers(0, 256, size=4)
        _, r_now, d_now, i_now = now.step(actions)
        _, r_later, d_later, i_later = later.step(actions)
        assert (d_now == d_later).all()
        assert (r_later == 0).all()  # nothing graded yet
        for i in np.flatnonzero(d_now):
            immediate.append((i_now[i]["story"], r_now[i]))
            assert i_later[i]["pending_grade"] == len(pending)
            pending.append(i)
    calls_before = len(BatchSpy.calls)
    graded = later.grade_pending()
    assert len(BatchSpy.calls) == calls_before + 1 and BatchSpy.calls[-1] == len(pending)
    assert [(g["story"], g["reward"]) for g in graded] == [
        (s, pytest.approx(r)) for s, r in immediate
    ]
    assert later.grade_pending() == []
