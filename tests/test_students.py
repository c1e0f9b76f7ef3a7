"""LM students: tiny (built and cached), smollm2 (from the package), local model folders."""

from __future__ import annotations

import gymnasium as gym
import pytest
from gymnasium.utils.env_checker import check_env as gym_check_env
from stable_baselines3.common.env_checker import check_env as sb3_check_env

import story_env  # noqa: F401
from story_env.agents.pretraining.pretrain import (
    ModelConfig,
    PretrainConfig,
    checkpoint_name,
    pretrain,
)
from story_env.agents.students.baselines import seed_stories
from story_env.errors import ConfigError, UnknownPluginError

SMALL = ModelConfig(n_layer=1, n_embd=32, n_head=2, n_positions=256, vocab_size=400)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    stories = seed_stories()
    config = PretrainConfig(words=500, block_size=32, batch_size=4, model=SMALL)
    pretrain(config, stories, stories, out, progress=False, log=lambda *_: None)
    return out / checkpoint_name(500)


@pytest.fixture
def tiny_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("STORYTELLING_CACHE_DIR", str(tmp_path))
    return tmp_path


def test_local_checkpoint_folder_is_a_student(checkpoint):
    env = gym.make("Storytelling-v0", student=str(checkpoint), max_new_tokens=20)
    assert env.action_space.n == len(env.unwrapped.student.tokenizer.hf) == 400
    gym_check_env(env.unwrapped)
    same = gym.make("Storytelling-v0", student="hf", student_kwargs={"path": str(checkpoint)})
    assert same.action_space.n == 400


def test_lm_agent_writes_in_the_students_vocabulary(checkpoint):
    env = gym.make("Storytelling-v0", student=str(checkpoint), max_new_tokens=30)
    agent = env.unwrapped.student.make_agent(seed=0)
    obs, _ = env.reset(seed=0)
    done = False
    while not done:
        obs, reward, term, trunc, info = env.step(agent.predict(obs)[0])
        done = term or trunc
    assert isinstance(info["story"], str) and 0.0 <= reward <= 1.0


def test_path_without_a_model_is_a_clear_error(tmp_path):
    with pytest.raises(ConfigError, match=r"holds no transformers model \(no config.json\)"):
        gym.make("Storytelling-v0", student=str(tmp_path))
    with pytest.raises(ConfigError, match="is not a directory"):
        gym.make("Storytelling-v0", student="./no/such/folder")


def test_unknown_student_name():
    with pytest.raises(UnknownPluginError, match=r"unknown student 'tinny'.*Did you mean 'tiny'"):
        gym.make("Storytelling-v0", student="tinny")


def test_tiny_is_built_once_then_loaded_from_cache(tiny_cache):
    env = gym.make("Storytelling-v0", student="tiny", student_kwargs={"words": 20_000})
    folders = list((tiny_cache / "students").glob("tiny-*/words-*"))
    assert len(folders) == 1
    mtime = folders[0].stat().st_mtime
    again = gym.make("Storytelling-v0", student="tiny", student_kwargs={"words": 20_000})
    assert folders[0].stat().st_mtime == mtime  # not rebuilt
    assert list((tiny_cache / "students").glob("tiny-*/words-*")) == folders
    assert again.action_space.n == env.action_space.n == env.unwrapped.tokenizer.vocab_size
    gym_check_env(env.unwrapped)
    sb3_check_env(env.unwrapped)


def test_smollm2_student_passes_the_env_checkers():
    env = gym.make("Storytelling-v0", student="smollm2")
    assert env.action_space.n == 49152
    assert (
        env.unwrapped.tokenizer.decode(env.unwrapped.tokenizer.encode(" Once upon")) == " Once upon"
    )
    gym_check_env(env.unwrapped)
    sb3_check_env(env.unwrapped)


def test_the_trainable_contract_holds_for_lm_students_only(random_lm_student):
    from story_env.agents.students.baselines import NGramStudent, RandomStudent
    from story_env.agents.students.lm import load_path_student
    from story_env.registry import registry
    from story_env.student import is_trainable

    assert is_trainable(load_path_student(random_lm_student))
    assert not is_trainable(NGramStudent())
    assert not is_trainable(RandomStudent())
    marked = {e.name for e in registry().entries("student") if e.trainable}
    assert marked == {"tiny", "smollm2", "hf"}


@pytest.fixture
def small_recipe(tmp_path, monkeypatch):
    """The tiny machinery on a 2,000-word recipe, shipping into a temporary folder."""
    import dataclasses

    from story_env.agents.students import tiny

    recipe = dataclasses.replace(tiny.TINY_RECIPE, words=2_000, model=SMALL, block_size=32)
    monkeypatch.setattr(tiny, "TINY_RECIPE", recipe)
    monkeypatch.setattr(tiny, "SHIPPED_DIR", tmp_path / "shipped")
    monkeypatch.setenv("STORYTELLING_CACHE_DIR", str(tmp_path / "cache"))
    return tiny


def test_shipped_weights_are_used_while_they_match_the_recipe(small_recipe, monkeypatch):
    tiny = small_recipe
    built = tiny.build_tiny(progress=False)  # nothing shipped yet: built into the cache
    assert built.parent.parent == tiny.cache_root() / "students"
    shipped = tiny.ship_tiny(built)
    assert tiny.build_tiny(progress=False) == shipped
    assert tiny.shipped_key() == tiny.recipe_key(tiny.TINY_RECIPE)
    student = tiny.tiny_student()
    assert student.context_length == tiny.TINY_RECIPE.model.n_positions
    # --rebuild ignores the shipped copy
    assert tiny.build_tiny(progress=False, rebuild=True) == built
    # a changed recipe makes the shipped copy stale: the new recipe is built instead
    import dataclasses

    changed = dataclasses.replace(tiny.TINY_RECIPE, lr=5e-4)
    monkeypatch.setattr(tiny, "TINY_RECIPE", changed)
    fresh = tiny.build_tiny(progress=False)
    assert fresh != shipped and fresh.parent == tiny.tiny_dir(changed)


def test_shipping_a_checkpoint_short_of_the_recipe_is_refused(small_recipe):
    tiny = small_recipe
    short = tiny.build_tiny(1_000, progress=False)
    with pytest.raises(ConfigError, match="saw 1000 words; the default recipe needs 2,000"):
        tiny.ship_tiny(short)


def test_the_shipped_default_matches_the_recipe_and_corpus():
    """Weights in the package come from TINY_RECIPE on the committed corpus (not stale)."""
    from story_env.agents.students import tiny

    assert tiny.shipped_key() == tiny.recipe_key(tiny.TINY_RECIPE), (
        "agents/data/students/tiny was built from another recipe or corpus; rebuild it with "
        "`storytelling build-student tiny --rebuild` and ship it with story_env.agents.students.tiny.ship_tiny"
    )
    assert (tiny.SHIPPED_DIR / "MODEL_CARD.md").is_file()
    size = sum(f.stat().st_size for f in tiny.SHIPPED_DIR.iterdir())
    assert size <= 20 * 2**20


def test_the_shipped_tiny_is_the_model_a_rebuild_makes():
    """The shipped config describes what ``build_model`` makes from the default recipe,
    down to the activation: GPT-2's tanh GELU as torch's one kernel, which computes the
    function the weights were trained with (``gelu_new``) to float32 rounding."""
    import torch
    from transformers import AutoConfig
    from transformers.activations import ACT2FN

    from story_env.agents.pretraining.pretrain import build_model
    from story_env.agents.students.tiny import SHIPPED_DIR, TINY_RECIPE

    shipped = AutoConfig.from_pretrained(SHIPPED_DIR)
    built = build_model(TINY_RECIPE.model, shipped.eos_token_id, seed=0).config
    keys = ("n_layer", "n_embd", "n_head", "n_positions", "vocab_size", "activation_function")
    assert {k: getattr(built, k) for k in keys} == {k: getattr(shipped, k) for k in keys}
    assert shipped.activation_function == "gelu_pytorch_tanh"
    x = torch.linspace(-8, 8, 100_001)
    fused, python = ACT2FN["gelu_pytorch_tanh"](x), ACT2FN["gelu_new"](x)
    assert (fused - python).abs().max() < 1e-6
