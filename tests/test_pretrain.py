"""Next-word pretraining: exact word budgets, checkpoints, perplexity and resume."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM

from story_env.agents.pretraining.pretrain import (
    ModelConfig,
    PretrainConfig,
    checkpoint_name,
    encode_stream,
    pretrain,
    train_tokenizer,
)
from story_env.agents.students.baselines import seed_stories
from story_env.errors import ConfigError

SMALL = ModelConfig(n_layer=1, n_embd=32, n_head=2, n_positions=64, vocab_size=400)


@pytest.fixture(scope="module")
def stories_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("corpus") / "stories.txt"
    path.write_text("\n".join(" ".join(s.split()) for s in seed_stories()) + "\n")
    return path


def test_word_start_flags_count_split_words():
    stories = seed_stories()
    tokenizer = train_tokenizer(stories, 400)
    ids, flags = encode_stream(tokenizer, stories)
    assert len(ids) == len(flags)
    assert int(flags.sum()) == sum(len(s.split()) for s in stories)
    assert (ids == tokenizer.eos_token_id).sum() == len(stories)


def test_budget_is_exact_and_checkpoints_load(tmp_path):
    stories = seed_stories()
    config = PretrainConfig(words=2345, save_at=(700,), block_size=32, batch_size=4, model=SMALL)
    result = pretrain(config, stories, stories, tmp_path, progress=False, log=lambda *_: None)
    assert result["words_seen"] == 2345
    events = [json.loads(x) for x in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [e["target_words"] for e in events] == [700, 2345]
    assert 700 <= events[0]["words_seen"] < 700 + 4 * 32  # within one batch of the target
    for words in (700, 2345):
        model = AutoModelForCausalLM.from_pretrained(tmp_path / checkpoint_name(words))
        assert model.config.n_layer == 1
    assert events[1]["val_perplexity"] < events[0]["val_perplexity"]


def test_more_words_give_lower_validation_perplexity(tmp_path):
    stories = seed_stories()
    ppl = {}
    for words in (1500, 15000):
        config = PretrainConfig(words=words, block_size=32, batch_size=4, model=SMALL)
        ppl[words] = pretrain(
            config, stories, stories[:3], tmp_path / str(words), progress=False, log=lambda *_: None
        )["val_perplexity"]
    assert ppl[15000] < ppl[1500]


def test_bad_config_is_rejected():
    with pytest.raises(ConfigError, match="--words must be >= 1, got 0"):
        PretrainConfig(words=0)
    with pytest.raises(ConfigError, match=r"--save-at values \[500\]"):
        PretrainConfig(words=100, save_at=(500,))


def _cli(out: Path, stories: Path, *extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "story_env.run.cli",
        "pretrain",
        "--words",
        "6000",
        "--out",
        str(out),
        "--train-file",
        str(stories),
        "--val-file",
        str(stories),
        "--vocab-size",
        "400",
        "--layers",
        "1",
        "--embd",
        "32",
        "--heads",
        "2",
        "--positions",
        "64",
        "--block-size",
        "32",
        "--batch-size",
        "4",
        "--state-every",
        "3",
        "--no-progress",
        *extra,
    ]


def test_resume_after_sigkill_ends_where_an_uninterrupted_run_ends(tmp_path, stories_file):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    straight = tmp_path / "straight"
    subprocess.run(_cli(straight, stories_file), check=True, env=env, capture_output=True)

    killed = tmp_path / "killed"
    proc = subprocess.Popen(
        _cli(killed, stories_file), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.time() + 120
    while time.time() < deadline:
        state = killed / "state.pt"
        if state.exists() and torch.load(state, weights_only=False)["step"] >= 6:
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    interrupted_at = torch.load(killed / "state.pt", weights_only=False)["step"]
    final = killed / checkpoint_name(6000)
    assert not final.exists(), "the run finished before it was killed; make it longer"
    out = subprocess.run(
        _cli(killed, stories_file, "--resume"), check=True, env=env, capture_output=True, text=True
    )
    assert f"resumed {killed} at step {interrupted_at}" in out.stderr + out.stdout

    a = json.loads((straight / checkpoint_name(6000) / "pretraining.json").read_text())
    b = json.loads((final / "pretraining.json").read_text())
    assert (a["words_seen"], a["step"]) == (b["words_seen"], b["step"]) == (6000, a["step"])
    wa = AutoModelForCausalLM.from_pretrained(straight / checkpoint_name(6000)).state_dict()
    wb = AutoModelForCausalLM.from_pretrained(final).state_dict()
    for name in wa:
        torch.testing.assert_close(wa[name], wb[name], rtol=1e-4, atol=1e-5)


def test_starting_over_an_existing_run_needs_resume(tmp_path, stories_file):
    config = PretrainConfig(words=300, block_size=32, batch_size=4, model=SMALL)
    stories = seed_stories()
    pretrain(config, stories, stories, tmp_path, progress=False, log=lambda *_: None)
    with pytest.raises(ConfigError, match="pass --resume"):
        pretrain(config, stories, stories, tmp_path, progress=False, log=lambda *_: None)
