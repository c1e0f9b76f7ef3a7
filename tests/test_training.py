"""RL on the student: the LM policy, KV caches, KL shaping, masks, algorithms, train/resume."""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

from story_env.agents.rl.kvcache import IncrementalLM, last_hidden_teacher_forced
from story_env.agents.rl.reference import ReferenceVecEnv, reference_masks
from story_env.errors import ConfigError
from story_env.registry import get_algorithm
from story_env.run.algorithms import build_algorithm, policy_class_for
from story_env.run.config import TrainConfig
from story_env.run.evaluation import evaluate
from story_env.run.training import train
from story_env.sb3 import make_sb3_vec_env


def _full_hidden(model, ids, lengths):
    rows = [
        model.base_model(input_ids=ids[i : i + 1, : lengths[i]]).last_hidden_state[0, -1]
        for i in range(len(ids))
    ]
    return torch.stack(rows)


@pytest.mark.parametrize("slack", [32, 0])  # 0: compacts the cache at almost every step
def test_incremental_cache_matches_full_recompute_as_slots_restart(student, slack):
    from story_env.agents.students.lm import load_path_student

    model = load_path_student(student).model.eval()
    pad, n, width = 400, 3, 50
    rng = np.random.default_rng(0)
    ids = torch.full((n, width), pad)
    lengths = torch.zeros(n, dtype=torch.long)

    pool = [rng.integers(0, 400, int(rng.integers(3, 8))) for _ in range(4)]  # prompt pool

    def restart(i):
        prompt = pool[int(rng.integers(len(pool)))]
        ids[i] = pad
        ids[i, : len(prompt)] = torch.as_tensor(prompt)
        lengths[i] = len(prompt)

    for i in range(n):
        restart(i)
    cache = IncrementalLM(model, pad, slack=slack)
    compactions, compact = [], cache._compact
    cache._compact = lambda: (compactions.append(1), compact())
    ways: list[str] = []  # how restarted rows' prompts entered the cache
    for way in ("_overwrite", "_append"):
        method = getattr(cache, way)
        setattr(cache, way, lambda *a, _m=method, _w=way: (ways.append(_w), _m(*a)))
    for step in range(80):
        with torch.no_grad():
            torch.testing.assert_close(
                cache(ids, lengths), _full_hidden(model, ids, lengths), rtol=1e-4, atol=1e-4
            )
        for i in range(n):
            roll = rng.random()
            if lengths[i] >= width or roll < 0.08 or step == 40:  # 40: all at once
                restart(i)
            elif roll < 0.12:
                pass  # unchanged this step (a slot that waits)
            else:
                ids[i, lengths[i]] = int(rng.integers(0, 400))
                lengths[i] += 1
    assert slack or len(compactions) >= 3
    # both ways are exercised: into a row's own freed columns, and as new columns when
    # the cache is narrower than the prompt (right after a compaction or a prefill)
    assert ways.count("_overwrite") >= 10 and ways.count("_append") >= 1, ways
    assert 1 <= len(cache.prompts) <= len(pool)  # each prompt computed once, then reused
    cache.clear()
    assert not cache.prompts  # new weights, new prompt keys/values
    with torch.no_grad():
        torch.testing.assert_close(
            last_hidden_teacher_forced(model, ids, lengths),
            _full_hidden(model, ids, lengths),
            rtol=1e-4,
            atol=1e-4,
        )


def test_untrained_policy_is_the_student(student):
    from story_env.agents.students.lm import load_path_student

    venv = make_sb3_vec_env(num_envs=2, student=student, max_new_tokens=10)
    model = build_algorithm(TrainConfig(student=student, num_envs=2), venv)
    obs = venv.reset()
    ids = torch.as_tensor(obs)
    lengths = (ids != 400).sum(1)
    lm = load_path_student(student).model
    with torch.no_grad():
        logits = lm(input_ids=ids[:, : int(lengths.max())].clamp(max=399)).logits[
            torch.arange(2), lengths - 1
        ]
        dist = model.policy.get_distribution(torch.as_tensor(obs).float())
    torch.testing.assert_close(
        dist.distribution.logits, torch.log_softmax(logits, -1), rtol=1e-4, atol=1e-4
    )


@pytest.mark.parametrize(
    ("algorithm", "extra"),
    [
        ("ppo", {"batch_size": 64, "n_epochs": 2}),
        ("a2c", {}),
        ("trpo", {"cg_max_steps": 3, "line_search_max_iter": 3, "n_critic_updates": 2}),
        ("maskable_ppo", {"batch_size": 64}),
    ],
)
def test_each_algorithm_trains_a_few_hundred_steps(student, tmp_path, algorithm, extra):
    config = TrainConfig(
        algorithm=algorithm,
        student=student,
        steps=256,
        num_envs=4,
        max_new_tokens=20,
        top_p=0.95 if algorithm == "maskable_ppo" else None,
        algo_kwargs={"n_steps": 32, **extra},
        checkpoint_every=10_000,
    )
    summary = train(config, tmp_path, progress=False)
    assert summary["steps"] >= 256 and summary["stories"] >= 256 // 20  # stories end by 20 tokens
    rows = [json.loads(line) for line in (tmp_path / "stories.jsonl").read_text().splitlines()]
    assert len(rows) == summary["stories"]
    assert {"prompt", "story", "scores", "teacher_raw", "reward"} <= set(rows[0])
    result = evaluate(
        student=student, checkpoint=tmp_path, stories=8, num_envs=4, max_new_tokens=20
    )
    assert 0.0 <= result["teacher_score"][0] <= 1.0


def test_kl_shaping_adds_coef_times_reference_logprob(student):
    from story_env.agents.students.lm import load_path_student

    coef = 0.25
    plain = make_sb3_vec_env(num_envs=2, student=student, max_new_tokens=6)
    shaped = ReferenceVecEnv(
        make_sb3_vec_env(num_envs=2, student=student, max_new_tokens=6), student, kl_coef=coef
    )
    lm = load_path_student(student).model.eval()
    plain.seed(1)
    shaped.seed(1)
    plain.reset()
    obs_s = shaped.reset()
    rng = np.random.default_rng(0)
    for _ in range(6):
        actions = rng.integers(0, 399, size=2)
        ids = torch.as_tensor(obs_s)
        lengths = (ids != 400).sum(1)
        with torch.no_grad():
            logits = lm(input_ids=ids[:, : int(lengths.max())].clamp(max=399)).logits[
                torch.arange(2), lengths - 1
            ]
        logp = torch.log_softmax(logits, -1)[torch.arange(2), torch.as_tensor(actions)].numpy()
        _, r_plain, _, _ = plain.step(actions)
        obs_s, r_shaped, _, _ = shaped.step(actions)
        assert (logp < 0).all()
        np.testing.assert_allclose(r_shaped - r_plain, coef * logp, rtol=1e-3, atol=1e-5)


def fill_rollouts(venv, actions, log_probs, on_step=None):
    """Step ``venv`` through ``actions`` (rollouts x steps x envs) into real SB3 rollout
    buffers, as PPO's collection does; yield each full buffer and its last done flags
    (the caller ends the rollout). ``on_step(rewards, dones)`` sees every step."""
    from stable_baselines3.common.buffers import RolloutBuffer

    n_rollouts, n_steps, n_envs = actions.shape
    venv.seed(3)
    obs = venv.reset()
    starts = np.ones(n_envs, dtype=bool)
    for r in range(n_rollouts):
        buffer = RolloutBuffer(n_steps, venv.observation_space, venv.action_space, n_envs=n_envs)
        for t in range(n_steps):
            new_obs, rewards, dones, _ = venv.step(actions[r, t])
            buffer.add(
                obs,
                actions[r, t][:, None],
                rewards,
                starts,
                torch.zeros(n_envs),
                torch.as_tensor(log_probs[r, t]),
            )
            if on_step is not None:
                on_step(rewards, dones)
            obs, starts = new_obs, dones
        yield buffer, dones


def test_deferred_reference_gives_the_per_step_penalty_in_one_pass(student):
    """Rollouts scored at their end (deferred) get the same rewards and KL as rollouts
    shaped step by step, on real SB3 buffers, with stories ending and restarting
    mid-rollout and running on into the next rollout (whose keys and values the deferred
    reference carries over), over several consecutive rollouts."""
    coef, n_envs, n_steps, n_rollouts = 0.3, 3, 5, 4  # stories of 8 rows span rollouts
    envs = {
        mode: ReferenceVecEnv(
            make_sb3_vec_env(num_envs=n_envs, student=student, max_new_tokens=7),
            student,
            kl_coef=coef,
            deferred=mode == "deferred",
        )
        for mode in ("per_step", "deferred")
    }
    rewards_of, kls = {m: [] for m in envs}, {m: [] for m in envs}
    deferred, reused = envs["deferred"], []
    past = deferred.rollout._past  # the deferred pass (RolloutReference)
    deferred.rollout._past = lambda env, tokens, first: (
        reused.append(past(env, tokens, first)[1]) or past(env, tokens, first)
    )
    rng = np.random.default_rng(0)
    actions = rng.integers(1, 399, size=(n_rollouts, n_steps, n_envs))
    actions[1, 2, 0] = 0  # an end-of-story token: a story ends mid-rollout
    log_probs = -rng.uniform(1, 8, size=(n_rollouts, n_steps, n_envs)).astype(np.float32)
    for mode, venv in envs.items():
        for buffer, _ in fill_rollouts(venv, actions, log_probs):
            records = {}
            assert venv.end_rollout(buffer, None, records.__setitem__)
            rewards_of[mode].append(buffer.rewards.copy())
            kls[mode].append(records["train/kl"])
    # after the first rollout every story reused keys and values: stories going on from
    # the last rollout's cache (longer) and new ones from a remembered prompt (the
    # prompt less its last token)
    assert reused[:n_envs] == [0] * n_envs and min(reused[n_envs:]) > 0
    assert max(reused) > min(reused[n_envs:])
    for got, want in zip(rewards_of["deferred"], rewards_of["per_step"], strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    assert kls["deferred"] == pytest.approx(kls["per_step"], abs=1e-5)


def test_deferred_reference_refuses_masks(student):
    venv = make_sb3_vec_env(num_envs=1, student=student, max_new_tokens=4)
    with pytest.raises(ConfigError, match=r"action masks \(top_p=0.9, top_k=None\).*deferred"):
        ReferenceVecEnv(venv, student, top_p=0.9, deferred=True)


def test_masks_keep_exactly_the_reference_nucleus():
    logp = torch.log(torch.tensor([[0.5, 0.3, 0.15, 0.05], [0.25, 0.25, 0.25, 0.25]]))
    masks = reference_masks(logp, top_p=0.7, top_k=None)
    assert masks.tolist() == [[True, True, False, False], [True, True, True, False]]
    assert reference_masks(logp, top_p=None, top_k=1)[0].tolist() == [True, False, False, False]


def test_maskable_ppo_only_picks_tokens_inside_top_p(student):
    venv = ReferenceVecEnv(
        make_sb3_vec_env(num_envs=2, student=student, max_new_tokens=12), student, top_p=0.5
    )
    config = TrainConfig(algorithm="maskable_ppo", student=student, num_envs=2, top_p=0.5)
    model = build_algorithm(config, venv)
    obs = venv.reset()
    for _ in range(30):
        masks = venv.action_masks()
        assert masks.sum(1).min() >= 1 and masks.sum(1).max() < 400
        actions, _ = model.predict(obs, action_masks=masks)
        assert masks[np.arange(2), actions].all()
        obs, *_ = venv.step(actions)


@pytest.mark.parametrize(
    ("algorithm", "kwargs", "message"),
    [
        (
            "recurrent_ppo",
            {},
            r"needs a recurrent policy.*Use one of: a2c, grpo, maskable_ppo, ppo, ppo_story, rloo, trpo",
        ),
        ("dqn", {}, r"learns Q-values.*a2c, grpo, maskable_ppo, ppo, ppo_story, rloo, trpo"),
        ("qrdqn", {}, r"learns Q-values"),
        ("ppo", {"top_p": 0.9}, r"masks need an algorithm that uses action masks.*maskable_ppo"),
        ("maskable_ppo", {}, r"needs action masks: pass top_p"),
    ],
)
def test_impossible_combinations_name_the_compatible_algorithms(algorithm, kwargs, message):
    config = TrainConfig(algorithm=algorithm, **kwargs)
    with pytest.raises(ConfigError, match=message):
        policy_class_for(algorithm, get_algorithm(algorithm), config)


def _train_cmd(out, student, *extra):
    return [
        sys.executable,
        "-m",
        "story_env.run.cli",
        "train",
        "--student",
        student,
        "--steps",
        "2400",
        "--num-envs",
        "4",
        "--max-new-tokens",
        "16",
        "--checkpoint-every",
        "160",
        "--algo-kwargs",
        '{"n_steps": 16, "batch_size": 64, "n_epochs": 1}',
        "--out",
        str(out),
        "--no-progress",
        *extra,
    ]


def test_sigkilled_run_resumes_with_a_consistent_log_and_checkpoint(student, tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(
        _train_cmd(tmp_path, student), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.time() + 240
    meta = tmp_path / "checkpoint.json"
    while time.time() < deadline:
        if meta.exists() and json.loads(meta.read_text())["steps"] >= 480:
            break
        time.sleep(0.1)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    killed = json.loads(meta.read_text())
    killed_at = killed["steps"]
    assert killed_at < 2400, "the run finished before the kill; make it longer"
    assert killed["wall_s"] > 0  # checkpoints carry the training time so far
    subprocess.run(
        _train_cmd(tmp_path, student, "--resume"), env=env, check=True, capture_output=True
    )
    state = json.loads(meta.read_text())
    rows = [json.loads(line) for line in (tmp_path / "stories.jsonl").read_text().splitlines()]
    assert state["steps"] >= 2400 and state["wall_s"] > killed["wall_s"]
    assert len(rows) == state["stories"]
    assert [r["story_index"] for r in rows] == list(range(1, len(rows) + 1))
    from sb3_contrib import MaskablePPO  # noqa: F401
    from stable_baselines3 import PPO

    PPO.load(tmp_path / "checkpoint.zip", device="cpu")  # not corrupt
    assert not list(tmp_path.glob("*.tmp*"))


def test_resume_refuses_a_different_config(student, tmp_path):
    config = TrainConfig(
        student=student,
        steps=64,
        num_envs=4,
        max_new_tokens=8,
        algo_kwargs={"n_steps": 16, "batch_size": 64},
    )
    train(config, tmp_path, progress=False)
    with pytest.raises(ConfigError, match="pass --resume"):
        train(config, tmp_path, progress=False)
    other = TrainConfig(
        student=student,
        steps=128,  # a budget: may change (tests/test_reliability.py extends a run)
        num_envs=4,
        max_new_tokens=9,
        algo_kwargs={"n_steps": 32, "batch_size": 64},
    )
    with pytest.raises(
        ConfigError,
        match=r"differ from its config.json: algo_kwargs.n_steps 16 -> 32; max_new_tokens 8 -> 9\.",
    ):
        train(other, tmp_path, resume=True, progress=False)


def test_episode_order_keeps_episodes_whole():
    from story_env.agents.rl.buffers import episode_order

    starts = np.zeros((6, 2))
    starts[[0, 3], 0] = 1  # env 0: steps 0-2, 3-5
    starts[[0, 4], 1] = 1  # env 1: steps 0-3, 4-5
    np.random.seed(0)
    order = episode_order(starts).tolist()
    assert sorted(order) == list(range(12))
    chunks = {(0, 1, 2), (3, 4, 5), (6, 7, 8, 9), (10, 11)}
    i, seen = 0, set()
    while i < len(order):
        chunk = next(c for c in chunks if c[0] == order[i])
        assert tuple(order[i : i + len(chunk)]) == chunk
        seen.add(chunk)
        i += len(chunk)
    assert seen == chunks


def test_minibatch_cuts_move_to_story_boundaries_when_one_is_near():
    from story_env.agents.rl.buffers import minibatch_cuts

    # stories of 60, 70, 50, 80 (ends 60, 130, 180, 260) and 40 steps (300), minibatch 128:
    # SB3 cuts at 128 and 256; both move to the nearest story end within 32
    assert minibatch_cuts([60, 70, 50, 80, 40], 128) == [0, 130, 260, 300]
    # one story of 300 steps: no boundary near, so SB3's cuts stay (inside the story)
    assert minibatch_cuts([300], 128) == [0, 128, 256, 300]
    # a boundary 40 steps away (> 128 // 4) is too far: the cut stays at 128
    assert minibatch_cuts([88, 200], 128) == [0, 128, 256, 288]
    # as many minibatches as SB3 makes; each cut moves a quarter of the size at most
    rng = np.random.default_rng(0)
    for _ in range(200):
        lengths = rng.integers(1, 90, size=int(rng.integers(1, 40))).tolist()
        cuts = minibatch_cuts(lengths, 256)
        total = sum(lengths)
        assert cuts[0] == 0 and cuts[-1] == total and cuts == sorted(set(cuts))
        assert len(cuts) - 1 == -(-total // 256)
        sb3 = list(range(0, total, 256))
        assert all(abs(c - t) <= 64 for c, t in zip(cuts[1:-1], sb3[1:], strict=True))


class _Quiet:
    """The callback protocol ``collect_rollouts`` drives, doing nothing."""

    def on_rollout_start(self) -> None: ...
    def on_rollout_end(self) -> None: ...
    def update_locals(self, _locals: dict) -> None: ...
    def on_step(self) -> bool:
        return True


def test_ppo_minibatches_end_where_stories_end(student):
    venv = make_sb3_vec_env(num_envs=4, student=student, max_new_tokens=12)
    config = TrainConfig(
        algorithm="ppo", student=student, num_envs=4, algo_kwargs={"n_steps": 48, "batch_size": 32}
    )
    model = build_algorithm(config, venv)
    model.learn(total_timesteps=1)  # a first rollout, stories in flight
    buffer = model.rollout_buffer
    model.collect_rollouts(venv, _Quiet(), buffer, n_rollout_steps=48)
    starts = buffer.episode_starts.copy()
    stories = {  # flat (env-major) index -> (env, story number within the env)
        env * 48 + t: (env, int(starts[1 : t + 1, env].sum()))
        for env in range(4)
        for t in range(48)
    }
    np.random.seed(0)
    batches = [b.observations for b in buffer.get(32)]
    assert sum(len(b) for b in batches) == 4 * 48
    assert len(batches) == -(-4 * 48 // 32)  # SB3's count of minibatches
    # replay the order the buffer used: each story lies in one minibatch only
    np.random.seed(0)
    from story_env.agents.rl.buffers import episode_segments, minibatch_cuts

    segments = episode_segments(starts)
    order = np.concatenate(segments)
    cuts = minibatch_cuts([len(s) for s in segments], 32)
    assert [len(b) for b in batches] == [b - a for a, b in itertools.pairwise(cuts)]
    assert [len(b) for b in batches] != [32] * len(batches)  # not SB3's cuts
    where = {}
    for i, (a, b) in enumerate(itertools.pairwise(cuts)):
        for idx in order[a:b]:
            where.setdefault(stories[int(idx)], set()).add(i)
    split = [k for k, v in where.items() if len(v) > 1]
    # a story of at most 12 steps always has a boundary within 8 of a cut
    assert not split, split


def test_policy_evaluates_actions_as_sb3s_categorical_does(student):
    from stable_baselines3.common.policies import ActorCriticPolicy

    venv = make_sb3_vec_env(num_envs=2, student=student, max_new_tokens=10)
    model = build_algorithm(TrainConfig(student=student, num_envs=2), venv)
    policy = model.policy
    obs = torch.as_tensor(venv.reset()).float()
    actions = torch.tensor([3, 250])
    ours = policy.evaluate_actions(obs, actions)
    sb3 = ActorCriticPolicy.evaluate_actions(policy, obs, actions)
    for a, b in zip(ours, sb3, strict=True):
        torch.testing.assert_close(a, b)
    head = policy.action_net.weight
    grads = [
        torch.autograd.grad(out[1].sum() + out[2].sum(), head)[0]
        for out in (ours, policy.evaluate_actions(obs, actions), sb3)
    ][1:]
    torch.testing.assert_close(grads[0], grads[1], rtol=1e-4, atol=1e-6)
    assert grads[0].abs().sum() > 0


def test_adam_is_fused_unless_the_user_chose(student):
    venv = make_sb3_vec_env(num_envs=2, student=student, max_new_tokens=10)
    fused = build_algorithm(TrainConfig(student=student, num_envs=2), venv)
    assert fused.policy.optimizer.param_groups[0]["fused"] is True
    chosen = build_algorithm(
        TrainConfig(
            student=student,
            num_envs=2,
            algo_kwargs={"policy_kwargs": {"optimizer_kwargs": {"foreach": True}}},
        ),
        venv,
    )
    group = chosen.policy.optimizer.param_groups[0]
    assert group["foreach"] is True and not group["fused"]


@pytest.mark.parametrize("shuffled", [False, True])
def test_teacher_forced_pass_matches_per_row_forwards_in_any_order(student, shuffled):
    from story_env.agents.students.lm import load_path_student

    model = load_path_student(student).model.eval()
    torch.manual_seed(0)
    rows, lens = [], []
    for episode in (torch.randint(0, 399, (30,)) for _ in range(3)):
        for length in range(5, 31):
            row = torch.full((40,), 400)
            row[:length] = episode[:length]
            rows.append(row)
            lens.append(length)
    ids, lengths = torch.stack(rows), torch.tensor(lens)
    if shuffled:
        perm = torch.randperm(len(ids))
        ids, lengths = ids[perm], lengths[perm]
    with torch.no_grad():
        torch.testing.assert_close(
            last_hidden_teacher_forced(model, ids, lengths),
            _full_hidden(model, ids, lengths),
            rtol=1e-4,
            atol=1e-4,
        )


def test_kl_penalty_is_zero_per_token_for_the_starting_policy(student, tmp_path):
    """coef * (log p_ref - log pi) per token: ~0 while pi is still the student."""
    from story_env.run.algorithms import make_env
    from story_env.run.callbacks import RunCallback

    config = TrainConfig(
        student=student,
        num_envs=2,
        max_new_tokens=12,
        kl_coef=0.5,
        algo_kwargs={"n_steps": 24, "batch_size": 48, "n_epochs": 1},
    )
    venv = make_env(config)
    model = build_algorithm(config, venv)
    state = {"steps": 0, "stories": 0, "interactive_words": 0, "wall_s": 0.0}
    with open(tmp_path / "log.jsonl", "a") as log_file:
        model.learn(
            48, callback=RunCallback(config, tmp_path, log_file, state, False, time.perf_counter)
        )
    buffer = model.rollout_buffer
    rewards = buffer.rewards.reshape(-1) if buffer.rewards.ndim > 1 else buffer.rewards
    final = np.abs(rewards) > 1e-3  # the teacher's grade lands on the last token only
    assert final.sum() <= state["stories"] + 2
    np.testing.assert_allclose(rewards[~final], 0.0, atol=1e-3)


def test_compare_runs_every_algorithm_and_seed_and_writes_table_and_plot(student, tmp_path):
    from story_env.run.comparison import compare

    base = TrainConfig(
        student=student,
        steps=128,
        num_envs=4,
        max_new_tokens=16,
        algo_kwargs={"n_steps": 32, "batch_size": 64, "n_epochs": 1},  # a2c takes only n_steps
        checkpoint_every=10_000,
    )
    table = compare(
        base, ["ppo", "a2c", "maskable_ppo"], [0, 1], tmp_path, eval_stories=4, progress=False
    )
    lines = table.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("| algorithm | seed |"))
    rows = lines[header + 2 : lines.index("", header)]  # the per-seed table
    assert [r.split(" | ")[:2] for r in rows] == [
        [f"| {a}", str(s)] for a in ("ppo", "a2c", "maskable_ppo") for s in (0, 1)
    ]
    assert (
        "a2c `n_steps=32`" in table
        and "maskable_ppo `batch_size=64, n_epochs=1, n_steps=32, top_p=0.95`" in table
    )
    assert (tmp_path / "results.md").read_text() == table
    assert (tmp_path / "curves.png").stat().st_size > 0
    for a in ("ppo", "a2c", "maskable_ppo"):
        ev = json.loads((tmp_path / f"{a}-seed1" / "eval.json").read_text())
        assert ev["stories"] == 4 and 0.0 <= ev["teacher_score"][0] <= 1.0


def test_critic_starts_at_the_mean_grade_of_one_story_per_env(student, tmp_path):
    # a zero critic would bootstrap cut-off stories to 0 and teach the policy to stop early
    config = TrainConfig(
        algorithm="ppo",
        student=student,
        steps=128,
        num_envs=4,
        max_new_tokens=16,
        algo_kwargs={"n_steps": 32, "batch_size": 64, "n_epochs": 1, "learning_rate": 0.0},
        checkpoint_every=10_000,
    )
    summary = train(config, tmp_path, progress=False)
    rows = [json.loads(line) for line in (tmp_path / "stories.jsonl").read_text().splitlines()]
    wave = [r for r in rows if r["step"] == 0]  # graded before the first rollout, and logged
    assert sorted(r["env"] for r in wave) == [0, 1, 2, 3]
    assert [r["story_index"] for r in rows] == list(range(1, len(rows) + 1))
    from stable_baselines3 import PPO

    bias = PPO.load(tmp_path / "checkpoint.zip", device="cpu").policy.value_net.bias.item()
    expected = np.mean([r["reward"] for r in wave])
    assert bias == pytest.approx(expected, abs=1e-6) == summary["critic_start"]


def test_evaluation_takes_the_same_number_of_stories_from_every_slot(student):
    # the first N stories to finish would over-represent short ones
    result = evaluate(student=student, stories=6, num_envs=4, max_new_tokens=20, seed=3)
    again = evaluate(student=student, stories=6, num_envs=4, max_new_tokens=20, seed=3)
    assert result["stories"] == 6 and result["teacher_score"] == again["teacher_score"]


def test_evaluation_reports_words_per_story_beside_the_grades(student):
    # a grader that prefers short text is gamed by writing less: the length shows it
    result = evaluate(student=student, stories=6, num_envs=4, max_new_tokens=20, seed=3)
    counts = result["story_words"]
    assert len(counts) == 6 and all(isinstance(n, int) and n >= 0 for n in counts)
    assert result["words"][0] == pytest.approx(np.mean(counts))
    assert result["words"][1] <= result["words"][0] <= result["words"][2]
    assert [len(s.split()) for s in result["texts"]] == counts
    assert result["texts"][:3] == result["samples"]


def test_lm_trpo_actor_gradients_equal_sb3_contribs_per_parameter_ones(student):
    import copy

    from sb3_contrib import TRPO
    from stable_baselines3.common.distributions import kl_divergence

    config = TrainConfig(algorithm="trpo", student=student, num_envs=2, max_new_tokens=8)
    model = build_algorithm(config, make_sb3_vec_env(num_envs=2, student=student))
    assert type(model).__name__ == "LMTRPO"
    obs = torch.as_tensor(model.env.reset())
    torch.manual_seed(0)
    dist = model.policy.get_distribution(obs)
    old = copy.copy(dist)
    logits = dist.distribution.logits.detach()
    old.distribution = torch.distributions.Categorical(logits=logits + torch.randn_like(logits))
    kl = kl_divergence(dist, old).mean()
    objective = (dist.log_prob(torch.tensor([3, 5])) * torch.tensor([1.0, -0.5])).mean()
    ours = model._compute_actor_grad(kl, objective)
    theirs = TRPO._compute_actor_grad(model, kl, objective)
    assert [id(p) for p in ours[0]] == [id(p) for p in theirs[0]] and ours[3] == theirs[3]
    torch.testing.assert_close(ours[1], theirs[1])
    torch.testing.assert_close(ours[2], theirs[2])
    assert float(ours[2].detach().abs().sum()) > 0  # a real KL gradient, not zeros on both sides


def test_maskable_checkpoint_is_evaluated_under_its_training_masks(student, tmp_path):
    # top_k=1: the only allowed token is the frozen student's argmax, whatever the
    # trained policy prefers, so every story under the masks is the student's greedy one
    config = TrainConfig(
        algorithm="maskable_ppo",
        student=student,
        steps=64,
        num_envs=4,
        max_new_tokens=12,
        top_k=1,
        algo_kwargs={"n_steps": 16, "batch_size": 64},
        checkpoint_every=10_000,
    )
    train(config, tmp_path, progress=False)
    result = evaluate(
        student=student, checkpoint=tmp_path, stories=8, num_envs=4, max_new_tokens=12
    )
    assert len(set(result["samples"])) == 1
    untrained = evaluate(student=student, stories=8, num_envs=4, max_new_tokens=12, top_k=1)
    assert untrained["samples"] == result["samples"]
    assert untrained["teacher_score"] == result["teacher_score"]
    unmasked = evaluate(student=student, stories=8, num_envs=4, max_new_tokens=12)
    assert len(set(unmasked["samples"])) > 1  # sampling without masks varies
    with pytest.raises(ConfigError, match="masks it was trained with"):
        evaluate(student=student, checkpoint=tmp_path, stories=4, num_envs=4, top_p=0.9)


def test_train_config_holds_the_env_config_and_passes_every_env_setting(tmp_path):
    from story_env.core import EnvConfig
    from story_env.run.algorithms import make_env

    prompts = tmp_path / "prompts.txt"
    prompts.write_text("The cat sat.\nA dog ran.\n")
    config = TrainConfig(
        student="ngram", num_envs=2, weights=[1, 0, 0], prompt_file=str(prompts), seed=3
    )
    assert isinstance(config.env, EnvConfig)
    assert (config.student, config.weights, config.env.prompt_file) == (
        "ngram",
        [1, 0, 0],
        str(prompts),
    )
    saved = config.to_dict()
    assert saved["weights"] == [1, 0, 0] and saved["seed"] == 3 and "env" not in saved
    venv = make_env(config)
    try:
        inner = venv.vec_env
        assert inner.batch.prompts == ("The cat sat.", "A dog ran.")
        assert list(inner.reward_config.weights) == [1.0, 0.0, 0.0]
    finally:
        venv.close()
    with pytest.raises(TypeError, match="unexpected keyword argument 'prompt_files'"):
        TrainConfig(prompt_files="x")


@pytest.mark.parametrize("deferred", [True, False])
def test_kl_per_story_charges_every_story_for_the_length_limit(student, deferred):
    """With ``story_tokens``, a story's KL charge is the length limit times its mean
    per-token shaping, whatever its length: stories ending early (an end token) pay for
    the tokens they did not write, full-length ones pay what the per-token penalty
    charges, and stories running across rollouts count their steps in both."""
    coef, n_envs, n_steps, n_rollouts, limit = 0.3, 3, 5, 4, 7
    venvs = {
        tokens: ReferenceVecEnv(
            make_sb3_vec_env(num_envs=n_envs, student=student, max_new_tokens=limit),
            student,
            kl_coef=coef,
            story_tokens=tokens,
            deferred=deferred,
        )
        for tokens in (None, limit)
    }
    rng = np.random.default_rng(1)
    actions = rng.integers(1, 399, size=(n_rollouts, n_steps, n_envs))
    actions[0, 2, 0] = actions[1, 3, 1] = actions[2, 1, 0] = 0  # stories end early
    log_probs = -rng.uniform(1, 8, size=(n_rollouts, n_steps, n_envs)).astype(np.float32)
    rewards = {tokens: [] for tokens in venvs}
    plain, ends = [], []  # the env's own rewards, and each step's done flag
    for tokens, venv in venvs.items():

        def unshape(env_rewards, dones, venv=venv):  # per step the reward came shaped
            ref = 0.0 if deferred else np.asarray(venv.ref_logps[-n_envs:])
            plain.append(env_rewards - coef * ref)
            ends.append(dones.copy())

        on_step = unshape if tokens is None else None
        for buffer, dones in fill_rollouts(venv, actions, log_probs, on_step):
            assert venv.end_rollout(buffer, None, lambda *_: None, dones)
            rewards[tokens].append(buffer.rewards.copy())
    per_token = np.concatenate(rewards[None])  # (rollouts x steps, envs)
    per_story = np.concatenate(rewards[limit])
    shaping = (per_token - np.asarray(plain)) / coef  # log p_ref - log pi, step by step
    ends = np.asarray(ends)
    assert ends[: n_steps * n_rollouts].sum() >= 3
    lengths_seen = set()
    for env in range(n_envs):
        first = 0
        for t in np.nonzero(ends[:, env])[0]:
            story = slice(first, t + 1)
            n = t + 1 - first
            lengths_seen.add(n)
            charged = (per_story[story, env] - np.asarray(plain)[story, env]).sum()
            want = coef * limit * shaping[story, env].mean()
            assert charged == pytest.approx(want, rel=1e-4, abs=1e-5)
            # only the story's last step carries the unwritten tokens' share
            np.testing.assert_allclose(
                per_story[first:t, env], per_token[first:t, env], rtol=1e-6, atol=1e-6
            )
            first = t + 1
    assert limit in lengths_seen and len(lengths_seen) >= 3  # early ends and full length


def test_kl_per_story_needs_the_kl_penalty_and_an_sb3_algorithm():
    from story_env.run.config import TrainConfig

    with pytest.raises(ConfigError, match=r"kl_per_story .*\(kl_coef 0\); set kl_coef > 0"):
        TrainConfig(kl_per_story=True, kl_coef=0.0)
    with pytest.raises(ConfigError, match=r"kl_per_story must be true or false, got 'yes'"):
        TrainConfig(kl_coef=0.01, kl_per_story="yes")
    assert TrainConfig(kl_coef=0.01, kl_per_story=True).to_dict()["kl_per_story"] is True


def test_train_command_runs_with_the_kl_charged_per_story(student, tmp_path, capsys):
    """`storytelling train --kl-per-story`: the flag reaches the run's config and the
    reference (the run's callback hands it each rollout's last done flags)."""
    from story_env.run.cli import main

    out = tmp_path / "run"
    args = ["train", "--algorithm", "ppo", "--student", student, "--teacher", "heuristic"]
    args += ["--steps", "96"]
    args += ["--num-envs", "2", "--max-new-tokens", "12", "--kl-coef", "0.5", "--kl-per-story"]
    args += ["--algo-kwargs", '{"n_steps": 24, "batch_size": 48, "n_epochs": 1}']
    assert main([*args, "--out", str(out), "--no-progress"]) == 0
    assert json.loads((out / "config.json").read_text())["kl_per_story"] is True
    assert json.loads((out / "checkpoint.json").read_text())["steps"] >= 96
