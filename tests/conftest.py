"""Shared fixtures."""

from __future__ import annotations

import contextlib
import importlib
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from story_env.registry import plugin_manager


@pytest.fixture(scope="session", autouse=True)
def _own_user_data_folder(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Point the user data folder (platformdirs: ``$XDG_DATA_HOME``) at a fresh folder, so
    no user calibration of the machine's user changes the tests' grades."""
    before = os.environ.get("XDG_DATA_HOME")
    folder = tmp_path_factory.mktemp("user_data")
    os.environ["XDG_DATA_HOME"] = str(folder)
    try:
        yield folder
    finally:
        if before is None:
            os.environ.pop("XDG_DATA_HOME", None)
        else:
            os.environ["XDG_DATA_HOME"] = before


@pytest.fixture
def temporary_plugin() -> Iterator[Callable[[Any, str], None]]:
    """Register plugin objects for the duration of one test, then unregister them."""
    pm = plugin_manager()
    added: list[str] = []

    def add(plugin: Any, name: str) -> None:
        pm.register(plugin, name=name)
        added.append(name)

    try:
        yield add
    finally:
        for name in added:
            with contextlib.suppress(Exception):
                pm.unregister(name=name)


TOOLS = Path(__file__).resolve().parents[1] / "tools"
"""The repository's maintainer scripts (not part of the package)."""


@pytest.fixture
def tool(monkeypatch: pytest.MonkeyPatch) -> Callable[[str], ModuleType]:
    """Import a script of the repository's ``tools/`` folder by its module name."""
    monkeypatch.syspath_prepend(str(TOOLS))
    return importlib.import_module


@pytest.fixture(scope="session")
def random_lm_student(tmp_path_factory) -> str:
    """A one-layer GPT with untrained weights and a BPE tokenizer (a second to build).

    A real transformers model folder (``save_pretrained``) with a 128-token context, for
    tests that need an LM student and a training run but not a fluent one.
    """
    from story_env.agents.pretraining.pretrain import ModelConfig, build_model, train_tokenizer
    from story_env.agents.students.baselines import seed_stories

    out = tmp_path_factory.mktemp("random_lm")
    tokenizer = train_tokenizer(seed_stories(), 300)
    config = ModelConfig(n_layer=1, n_embd=32, n_head=2, n_positions=128, vocab_size=len(tokenizer))
    model = build_model(config, tokenizer.eos_token_id, 0)
    tokenizer.save_pretrained(out)
    model.save_pretrained(out)
    return str(out)


@pytest.fixture(scope="session")
def student(tmp_path_factory) -> str:
    """A small pretrained student folder (2 layers x 64, seconds to build), shared by the
    training and transformers-integration tests."""
    from story_env.agents.pretraining.pretrain import (
        ModelConfig,
        PretrainConfig,
        checkpoint_name,
        pretrain,
    )
    from story_env.agents.students.baselines import seed_stories

    out = tmp_path_factory.mktemp("student")
    model = ModelConfig(n_layer=2, n_embd=64, n_head=2, n_positions=256, vocab_size=400)
    config = PretrainConfig(words=3000, block_size=32, batch_size=4, model=model)
    pretrain(config, seed_stories(), seed_stories(), out, progress=False, log=lambda *_: None)
    return str(out / checkpoint_name(3000))
