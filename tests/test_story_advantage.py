"""The critic-free story advantage (``StoryPPO``, algorithm ``ppo_story``): GRPO's signal
inside the SB3 algorithms, with stories a rollout cut off left out of the update."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from gymnasium import spaces

from story_env.agents.rl.advantages import story_advantages, story_returns
from story_env.agents.rl.buffers import EpisodeRolloutBuffer
from story_env.errors import ConfigError
from story_env.run.algorithms import build_algorithm
from story_env.run.config import TrainConfig
from story_env.run.training import train
from story_env.sb3 import make_sb3_vec_env

# env 0: the end of a story begun in the last rollout (grade 0.5 at t=1), a whole story
# (0.8 at t=4), and a story still being written at the rollout's end (t=5).
# env 1: one story over the whole rollout, graded 0.2 at its last step.
STARTS = np.array([[1, 1], [0, 0], [1, 0], [0, 0], [0, 0], [1, 0]], dtype=np.float32)
REWARDS = np.zeros((6, 2), dtype=np.float32)
REWARDS[1, 0], REWARDS[4, 0], REWARDS[5, 1] = 0.5, 0.8, 0.2
LAST_DONES = np.array([False, True])


def test_story_returns_give_each_finished_story_its_grade_and_leave_cut_stories_out():
    starts = STARTS.copy()  # the module's arrays stay as every other test reads them
    starts[0, 0] = 0  # the rollout opens inside env 0's story
    returns, trainable, finished = story_returns(REWARDS.copy(), starts, LAST_DONES.copy())
    np.testing.assert_allclose(returns[:, 0], [0.5, 0.5, 0.8, 0.8, 0.8, 0.0])
    np.testing.assert_allclose(returns[:, 1], [0.2] * 6)
    assert trainable[:, 0].tolist() == [True] * 5 + [False]
    assert trainable[:, 1].all()
    assert sorted(finished) == pytest.approx([0.2, 0.5, 0.8])


def test_story_advantages_standardise_grades_over_stories_and_charge_each_token_k3():
    rng = np.random.default_rng(0)
    log_probs = -rng.uniform(1, 5, size=(6, 2)).astype(np.float32)
    ref = -rng.uniform(1, 5, size=(6, 2)).astype(np.float32)
    values = np.full((6, 2), 0.7, dtype=np.float32)
    buffer = SimpleNamespace(
        rewards=REWARDS.copy(), episode_starts=STARTS.copy(), log_probs=log_probs, values=values
    )
    signal = story_advantages(buffer, LAST_DONES, ref, kl_coef=0.1)
    grades = np.array([0.5, 0.8, 0.2])  # one per story, whatever its length
    z = (np.array([[0.5, 0.5, 0.8, 0.8, 0.8, 0.0], [0.2] * 6]).T - grades.mean()) / grades.std()
    want = z + 0.1 * (np.exp(ref - log_probs) - 1)  # the gradient of GRPO's k3 term
    want[5, 0] = 0.0  # the cut-off story's step: no grade, no KL, left out
    np.testing.assert_allclose(buffer.advantages, want, rtol=1e-5, atol=1e-6)
    assert buffer.trainable[:, 0].tolist() == [True] * 5 + [False]
    assert buffer.returns[5, 0] == pytest.approx(0.7)  # the critic's own value: no loss
    assert signal["stories"] == 3 and signal["left_out"] == pytest.approx(1 / 12)
    assert signal["grade_mean"] == pytest.approx(0.5)


def test_one_grade_per_rollout_gives_zero_advantages_not_nan():
    buffer = SimpleNamespace(
        rewards=np.array([[0.0], [0.6]], dtype=np.float32),
        episode_starts=np.array([[1.0], [0.0]], dtype=np.float32),
        log_probs=np.zeros((2, 1), dtype=np.float32),
        values=np.zeros((2, 1), dtype=np.float32),
    )
    story_advantages(buffer, np.array([True]))
    assert buffer.advantages.tolist() == [[0.0], [0.0]]


def test_episode_buffer_leaves_untrainable_steps_out_of_every_minibatch():
    n_steps, n_envs = 6, 2
    buffer = EpisodeRolloutBuffer(
        n_steps, spaces.Box(0, 100, (1,)), spaces.Discrete(4), n_envs=n_envs
    )
    for t in range(n_steps):  # each observation names its step: 10 * t + env
        obs = np.array([[10.0 * t], [10.0 * t + 1]], dtype=np.float32)
        buffer.add(
            obs,
            np.zeros((n_envs, 1)),
            np.zeros(n_envs),
            STARTS[t],
            torch.zeros(n_envs),
            torch.zeros(n_envs),
        )
    buffer.trainable = np.ones((n_steps, n_envs), dtype=bool)
    buffer.trainable[5, 0] = buffer.trainable[0:2, 1] = False
    seen = sorted(int(o) for batch in buffer.get(4) for o in batch.observations[:, 0])
    assert seen == sorted({10 * t + e for t in range(6) for e in range(2)} - {50, 1, 11})
    buffer.reset()
    assert buffer.trainable is None  # the next rollout starts with every step


def test_held_slots_wait_with_their_next_prompt_until_released(student):
    venv = make_sb3_vec_env(num_envs=2, student=student, max_new_tokens=6)
    venv.seed(0)
    obs = venv.reset()
    prompt = obs[0].copy()
    obs, _, _, _ = venv.step(np.array([5, 5]))
    venv.hold([0])
    for _ in range(8):  # slot 1's story ends and restarts meanwhile
        before = obs.copy()
        obs, rewards, dones, infos = venv.step(np.array([7, 7]))
        assert (obs[0] == before[0]).all() and rewards[0] == 0 and not dones[0]
        assert infos[0] == {"waiting": True} and "waiting" not in infos[1]
    assert (obs[0] != prompt).sum() == 1  # one token written before the hold
    venv.release()
    obs, _, _, infos = venv.step(np.array([7, 7]))
    assert (obs[0] != prompt).sum() == 2 and "waiting" not in infos[0]
    with pytest.raises(ConfigError, match=r"cannot hold slot 2: slots are 0..1"):
        venv.hold([2])


def test_deferred_reference_scores_held_slots_as_the_per_step_one_does(student):
    """A held slot repeats its row; the deferred reference's pass must keep it inside
    the slot's segment and still give every other step its exact log p_ref."""
    from stable_baselines3.common.buffers import RolloutBuffer

    from story_env.agents.rl.reference import ReferenceVecEnv

    n_envs, n_steps = 3, 6
    got = {}
    rng = np.random.default_rng(1)
    actions = rng.integers(1, 399, size=(2, n_steps, n_envs))
    actions[0, 1, 1] = 0  # slot 1's story ends at step 1 and is held to the rollout's end
    for deferred in (False, True):
        venv = ReferenceVecEnv(
            make_sb3_vec_env(num_envs=n_envs, student=student, max_new_tokens=5),
            student,
            kl_coef=1.0,
            deferred=deferred,
        )
        venv.seed(3)
        obs, starts, refs = venv.reset(), np.ones(n_envs, dtype=bool), []
        for r in range(2):
            venv.release()
            buffer = RolloutBuffer(
                n_steps, venv.observation_space, venv.action_space, n_envs=n_envs
            )
            for t in range(n_steps):
                new_obs, _, dones, _ = venv.step(actions[r, t])
                if dones.any() and n_steps - t - 1 < 5:
                    venv.hold(np.flatnonzero(dones))
                buffer.add(
                    obs,
                    actions[r, t][:, None],
                    np.zeros(n_envs),
                    starts,
                    torch.zeros(n_envs),
                    torch.zeros(n_envs),
                )
                obs, starts = new_obs, dones
            venv.end_rollout(buffer, None, lambda *_: None)
            refs.append(venv.rollout_ref.copy())
        got[deferred] = np.stack(refs)
    np.testing.assert_allclose(got[True], got[False], rtol=1e-5, atol=1e-5)


def test_a_story_advantage_run_learns_without_its_critic(student, tmp_path):
    config = TrainConfig(
        algorithm="ppo_story",
        student=student,
        steps=128,
        num_envs=4,
        max_new_tokens=16,
        kl_coef=0.05,
        algo_kwargs={"n_steps": 32, "batch_size": 64, "n_epochs": 1, "learning_rate": 1e-3},
        checkpoint_every=10_000,
    )
    venv = make_sb3_vec_env(num_envs=4, student=student, max_new_tokens=16)
    start = build_algorithm(config, venv).policy.state_dict()
    summary = train(config, tmp_path, progress=False)
    rows = [json.loads(line) for line in (tmp_path / "stories.jsonl").read_text().splitlines()]
    assert len(rows) == summary["stories"] >= 128 // 16
    assert all(r["step"] > 0 for r in rows)  # no critic, so no warm-up wave to start it
    # slots wait rather than start a story the rollout would cut, and waiting steps are
    # not counted: the steps are exactly the logged stories' tokens, none left in flight
    assert summary["steps"] == sum(r["tokens"] for r in rows) >= 128
    from story_env.agents.rl.story_ppo import StoryPPO

    model = StoryPPO.load(tmp_path / "checkpoint.zip", device="cpu")
    assert model.vf_coef == 0.0 and model.normalize_advantage is False
    assert (model.kl_coef, model.story_tokens) == (0.05, 16)
    end = model.policy.state_dict()
    unchanged = [k for k in start if torch.equal(start[k], end[k])]
    assert any(k.startswith("value_net") for k in unchanged)
    assert all(not k.startswith("value_net") or k in unchanged for k in start)
    assert any(not torch.equal(start[k], end[k]) for k in start if "lm_head" in k or "wte" in k)


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"kl_per_story": True}, r"'ppo_story' charges each token its own KL.*kl_per_story"),
        ({"top_p": 0.9}, r"masks need an algorithm that uses action masks; .ppo_story. does not"),
    ],
)
def test_story_ppo_refuses_the_env_side_kl_settings(student, settings, message):
    config = TrainConfig(student=student, num_envs=2, max_new_tokens=16, **settings)
    venv = make_sb3_vec_env(num_envs=2, student=student, max_new_tokens=16)
    with pytest.raises(ConfigError, match=message):
        build_algorithm(config, venv)


def test_the_removed_advantage_setting_is_refused_by_name():
    with pytest.raises(TypeError, match="unexpected keyword argument 'advantage'"):
        TrainConfig(advantage="story")


@pytest.mark.parametrize(
    ("algo_kwargs", "message"),
    [
        (
            {"n_steps": 8, "batch_size": 16},
            r"n_steps is 8, a story takes up to 16 steps.*n_steps=16",
        ),
        ({"n_steps": 16, "normalize_advantage": True}, r"normalize_advantage would rescale"),
        ({"rollout_buffer_class": "x"}, r"needs its episode buffer"),
    ],
)
def test_story_advantage_refuses_settings_it_cannot_honour(student, algo_kwargs, message):
    config = TrainConfig(student=student, num_envs=2, max_new_tokens=16, algo_kwargs=algo_kwargs)
    venv = make_sb3_vec_env(num_envs=2, student=student, max_new_tokens=16)
    with pytest.raises(ConfigError, match=message):
        build_algorithm(config, venv)


def test_rollout_novelty_is_the_share_of_a_storys_bigrams_no_other_story_holds():
    from story_env.agents.rl.novelty import rollout_novelty

    stories = ["Once upon a time", "once upon a hill", "A dog barked loudly", "Hi", ""]
    # bigrams of story 0: once-upon, upon-a (both in story 1), a-time (its own): 1/3
    got = rollout_novelty(stories)
    np.testing.assert_allclose(got, [1 / 3, 1 / 3, 1.0, 0.0, 0.0])
    assert rollout_novelty(["the cat sat on the cat"]).tolist() == [1.0]


@pytest.mark.parametrize("deferred", [True, False])
def test_novelty_adds_its_weight_times_each_storys_novelty_to_its_grade(student, deferred):
    """Two models, same seed: their first rollouts are the same stories; with
    ``novelty_coef`` each story's grade row gains the coefficient times its novelty."""
    from stable_baselines3.common.callbacks import BaseCallback

    from story_env.agents.rl.novelty import rollout_novelty

    class FirstRollout(BaseCallback):
        def _on_step(self) -> bool:
            return True

        def _on_rollout_end(self) -> None:
            if not hasattr(self, "rewards"):
                self.rewards = self.locals["rollout_buffer"].rewards.copy()
                self.texts = dict(self.locals["texts"])

    seen = {}
    for coef in (0.0, 0.5):
        config = TrainConfig(
            algorithm="ppo_story",
            student=student,
            num_envs=4,
            max_new_tokens=16,
            kl_coef=0.0,
            algo_kwargs={"n_steps": 32, "novelty_coef": coef},
        )
        venv = make_sb3_vec_env(num_envs=4, student=student, max_new_tokens=16)
        venv.defer_grading(deferred)
        model = build_algorithm(config, venv)
        seen[coef] = FirstRollout()
        model.learn(32 * 4, callback=seen[coef])
    plain, bonus = seen[0.0], seen[0.5]
    assert plain.texts == bonus.texts and len(plain.texts) >= 4
    want = plain.rewards.copy()
    cells, stories = zip(*plain.texts.items(), strict=True)
    for (row, i), novelty in zip(cells, rollout_novelty(stories), strict=True):
        want[row, i] += 0.5 * novelty
    np.testing.assert_allclose(bonus.rewards, want, rtol=1e-6)
    assert not np.allclose(bonus.rewards, plain.rewards)


def test_novelty_coef_must_be_a_finite_non_negative_number(student):
    for bad, message in (
        (-0.1, r"novelty_coef must be >= 0.*got -0.1"),
        (float("nan"), "novelty_coef"),
    ):
        config = TrainConfig(
            algorithm="ppo_story",
            student=student,
            num_envs=2,
            max_new_tokens=16,
            algo_kwargs={"novelty_coef": bad},
        )
        venv = make_sb3_vec_env(num_envs=2, student=student, max_new_tokens=16)
        with pytest.raises(ConfigError, match=message):
            build_algorithm(config, venv)
