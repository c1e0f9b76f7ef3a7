"""transformers integration: KV-cached rollouts on the Cache API, and a quiet console.

The rollout cache must write exactly the tokens a plain full-prefix forward would, and
nothing on the rollout, evaluation or training path may use an API transformers has
deprecated (``past_key_values`` goes in 5.40) or print warnings and loading bars.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import warnings

import numpy as np
import pytest
import torch

from story_env.run.algorithms import build_algorithm
from story_env.run.config import TrainConfig
from story_env.run.evaluation import evaluate
from story_env.run.training import train
from story_env.sb3 import make_sb3_vec_env

PROMPTS = ["Once upon a time", "The fox", "A small dragon lived in a cave by the sea", "Tom"]


def _plain_hidden(model, ids, lengths):
    """Hidden state after each row's last token, from one plain forward of its prefix."""
    rows = [
        model.base_model(input_ids=ids[i : i + 1, : lengths[i]]).last_hidden_state[0, -1]
        for i in range(len(ids))
    ]
    return torch.stack(rows)  # (N, H)


def _rollout_tokens(student, *, cached: bool, slack: int, steps: int = 70) -> np.ndarray:
    """Token ids the untrained policy writes from seed 0: (steps, envs)."""
    venv = make_sb3_vec_env(
        num_envs=3, student=student, max_new_tokens=14, prompts=PROMPTS, teacher="heuristic"
    )
    model = build_algorithm(TrainConfig(student=student, num_envs=3, max_new_tokens=14), venv)
    policy = model.policy
    policy.set_training_mode(False)
    extractor = policy.features_extractor
    extractor.incremental.slack = slack  # 0: compact the cache at almost every step
    if not cached:
        lm = extractor.model
        extractor.incremental = lambda ids, lengths: _plain_hidden(lm, ids, lengths)
    venv.seed(0)
    obs = venv.reset()
    torch.manual_seed(0)
    tokens = []
    for _ in range(steps):
        with torch.no_grad():
            actions, _, _ = policy(torch.as_tensor(obs))
        tokens.append(actions.numpy())
        obs, _, _, _ = venv.step(actions.numpy())
    venv.close()
    return np.stack(tokens)


@pytest.mark.parametrize("slack", [32, 0])
def test_kv_cached_rollout_writes_the_tokens_of_full_prefix_forwards(student, slack):
    cached = _rollout_tokens(student, cached=True, slack=slack)
    plain = _rollout_tokens(student, cached=False, slack=slack)
    # 70 steps of stories of at most 14 tokens: every slot restarts several times
    np.testing.assert_array_equal(cached, plain)
    assert len(np.unique(cached)) > 10  # sampled text, not one repeated token


def test_sliding_window_students_are_refused_with_a_clear_error():
    from transformers import AutoModelForCausalLM, Gemma3TextConfig

    from story_env.agents.rl.kvcache import IncrementalLM
    from story_env.errors import ConfigError

    config = Gemma3TextConfig(
        vocab_size=64,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=1,
        head_dim=16,
        sliding_window=8,
        pad_token_id=0,
        eos_token_id=1,
        bos_token_id=2,
    )
    with pytest.raises(ConfigError, match=r"sliding-window attention \(layers \[0, 1\]\)"):
        IncrementalLM(AutoModelForCausalLM.from_config(config), 64)


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def test_rollout_train_and_eval_use_no_deprecated_transformers_api(student, tmp_path):
    from transformers.utils import logging as hf_logging

    # transformers reports some deprecations once per process through its logger
    hf_logging.warning_once.cache_clear()
    records = _Records()
    hf_logger = logging.getLogger("transformers")
    hf_logger.addHandler(records)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", DeprecationWarning)
            warnings.simplefilter("error", FutureWarning)
            config = TrainConfig(
                student=student,
                steps=64,
                num_envs=4,
                max_new_tokens=12,
                kl_coef=0.01,  # the frozen reference's cache too
                algo_kwargs={"n_steps": 16, "batch_size": 64, "n_epochs": 1},
            )
            train(config, tmp_path, progress=False)
            kwargs = {"stories": 4, "num_envs": 2, "max_new_tokens": 12, "judges": []}
            result = evaluate(student=student, **kwargs)
            trained = evaluate(student=student, checkpoint=tmp_path, **kwargs)
    finally:
        hf_logger.removeHandler(records)
    assert result["stories"] == trained["stories"] == 4
    assert records.messages == []


def test_loading_bars_show_only_when_asked(student, capfd):
    from story_env.agents.students.lm import load_path_student
    from story_env.loading import loading_bars

    load_path_student(student).model  # noqa: B018 (loads the weights)
    assert "Loading weights" not in capfd.readouterr().err
    with loading_bars(True):
        load_path_student(student).model  # noqa: B018
    assert "Loading weights" in capfd.readouterr().err


def test_train_ends_with_a_short_summary_and_json_on_request(student, tmp_path, capsys):
    from story_env.run.cli import main

    args = [
        "train",
        "--algorithm",
        "ppo",
        "--student",
        student,
        "--steps",
        "64",
        "--num-envs",
        "4",
        "--max-new-tokens",
        "12",
        "--algo-kwargs",
        '{"n_steps": 16, "batch_size": 64, "n_epochs": 1}',
        "--no-progress",
    ]
    assert main([*args, "--out", str(tmp_path / "run")]) == 0
    captured = capsys.readouterr()
    lines = captured.out.splitlines()
    assert lines[0].startswith(f"trained ppo on {student} against heuristic: 64 tokens, ")
    rows = [json.loads(r) for r in (tmp_path / "run" / "stories.jsonl").read_text().splitlines()]
    first = np.mean([r["teacher_score"] for r in rows[:4]])
    last = np.mean([r["teacher_score"] for r in rows[-4:]])
    assert f"{len(rows)} stories" in lines[0]
    assert lines[1].startswith(
        f"teacher score (heuristic): {first:.3f} over the first 4 stories, {last:.3f} over "
        "the last 4"
    )
    assert lines[2].startswith(f"run folder: {tmp_path / 'run'} ")
    assert lines[3] == (
        f"evaluate:   storytelling eval --checkpoint {tmp_path / 'run'} --student {student} "
        "--max-new-tokens 12 --stories 64"
    )
    assert len(lines) == 4 and "Loading weights" not in captured.err

    assert main([*args, "--out", str(tmp_path / "json"), "--json", "-"]) == 0
    summary = json.loads(capsys.readouterr().out)  # only JSON on stdout
    assert summary["steps"] == 64 and summary["stories"] == len(
        (tmp_path / "json" / "stories.jsonl").read_text().splitlines()
    )


@pytest.mark.slow
def test_tiny_rollout_eval_and_train_are_quiet(tmp_path):
    """The demo's student: no deprecated API under warnings-as-errors, and the commands a
    user runs print nothing on stderr (no warnings, no loading bars with --no-progress)."""
    from story_env.agents.students.tiny import build_tiny

    build_tiny(progress=False)  # outside the checked runs
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)
        warnings.simplefilter("error", FutureWarning)
        result = evaluate(student="tiny", stories=8, num_envs=4, max_new_tokens=32, judges=[])
    assert result["stories"] == 8
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    commands = [
        ["eval", "--student", "tiny", "--stories", "8", "--num-envs", "4", "--no-judge"],
        [
            "train",
            "--student",
            "tiny",
            "--steps",
            "256",
            "--num-envs",
            "4",
            "--max-new-tokens",
            "32",
            "--kl-coef",
            "0.01",
            "--algo-kwargs",
            '{"n_steps": 32, "batch_size": 64, "n_epochs": 1}',
            "--out",
            str(tmp_path / "run"),
            "--no-progress",
        ],
    ]
    for args in commands:
        done = subprocess.run(
            [sys.executable, "-m", "story_env.run.cli", *args],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
        assert done.stderr == "", f"storytelling {args[0]} printed on stderr:\n{done.stderr}"
    assert "evaluate:   storytelling eval --checkpoint" in done.stdout


@pytest.mark.slow
def test_tiny_eval_with_the_default_held_out_judge_is_quiet():
    # (GGUF models now load from a folder converted once: no de-quantization bar)
    from story_env.agents.students.tiny import build_tiny

    build_tiny(progress=False)
    done = subprocess.run(
        [sys.executable, "-m", "story_env.run.cli", "eval", "--student", "tiny", "--stories", "4"],
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        capture_output=True,
        text=True,
        check=True,
    )
    assert done.stderr == "", done.stderr[:500]
