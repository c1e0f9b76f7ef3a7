"""The embedded default student ``tiny``: shipped with the package, rebuildable from the corpus.

The default ``tiny`` is the top of issue 14's student ladder: the tiny shape pretrained on
the committed corpus for 10M words. Building it takes about 45 minutes on a 2-core CPU, so
its weights ship in ``agents/data/students/tiny/`` with a model card (``MODEL_CARD.md``).
``storytelling build-student tiny --rebuild`` builds the same recipe again into the user
cache and compares its validation perplexity with the shipped one.

Other budgets (``build_tiny(words)``; tests use small ones) are built on first use into
``<user cache>/storytelling/students/tiny-<recipe hash>/`` with a progress bar and loaded in
seconds afterwards. A file lock makes concurrent first uses wait for one build.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import shutil
from dataclasses import asdict, replace
from pathlib import Path

from story_env.agents.corpus.load import DATA_DIR, SPLIT_FILES, SPLITS, load_corpus
from story_env.agents.pretraining.pretrain import (
    ModelConfig,
    PretrainConfig,
    checkpoint_name,
    pretrain,
)
from story_env.agents.students.lm import LMStudent, load_path_student
from story_env.errors import ConfigError
from story_env.loading import cache_root
from story_env.run_folder import write_atomic

logger = logging.getLogger(__name__)

#: The recipe of the default student (the ladder's run in examples/reproduce/ladder.json);
#: changing it or the corpus changes its cache key, and the shipped weights then no longer match.
TINY_RECIPE = PretrainConfig(
    words=10_000_000,
    block_size=128,
    batch_size=16,
    lr=1e-3,
    seed=0,
    model=ModelConfig(n_layer=4, n_embd=256, n_head=4, n_positions=256, vocab_size=4096),
)
#: Where the default's weights ship (with ``recipe.json`` naming the recipe they come from).
SHIPPED_DIR = DATA_DIR / "students" / "tiny"
#: Files copied from a checkpoint into SHIPPED_DIR.
SHIPPED_FILES = (
    "config.json",
    "generation_config.json",
    "model.safetensors",
    "pretraining.json",
    "tokenizer.json",
    "tokenizer_config.json",
)


def recipe_key(recipe: PretrainConfig) -> str:
    """A hash of a recipe and the corpus files it trains on."""
    digest = hashlib.sha256(json.dumps(asdict(recipe), sort_keys=True).encode())
    for split in SPLITS:
        digest.update((DATA_DIR / SPLIT_FILES[split]).read_bytes())
    return digest.hexdigest()[:12]


def tiny_dir(recipe: PretrainConfig) -> Path:
    """The cache folder of a recipe."""
    return cache_root() / "students" / f"tiny-{recipe_key(recipe)}"


def shipped_key() -> str | None:
    """The recipe key the shipped weights were built from; ``None`` when none are shipped."""
    marker = SHIPPED_DIR / "recipe.json"
    if not (marker.is_file() and (SHIPPED_DIR / "model.safetensors").is_file()):
        return None
    return json.loads(marker.read_text())["key"]


def build_tiny(words: int | None = None, *, progress: bool = True, rebuild: bool = False) -> Path:
    """The checkpoint folder of the tiny student, building it if needed.

    Args:
        words: Pretraining budget; ``None`` = the default recipe, whose shipped weights are
            used when they match the recipe and the corpus.
        progress: Show a progress bar while building.
        rebuild: Build the default recipe into the cache even though weights ship.
    """
    recipe = TINY_RECIPE if words is None else replace(TINY_RECIPE, words=words)
    if recipe == TINY_RECIPE and not rebuild:
        key = shipped_key()
        if key == recipe_key(recipe):
            return SHIPPED_DIR
        if key is not None:
            logger.warning(
                "the shipped tiny weights come from recipe %s, not the current %s (recipe or "
                "corpus changed); building the current recipe instead",
                key,
                recipe_key(recipe),
            )
    run = tiny_dir(recipe)
    final = run / checkpoint_name(recipe.words)
    if final.is_dir():
        return final
    run.mkdir(parents=True, exist_ok=True)
    with open(run / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another process may be building it
        if not final.is_dir():
            logger.warning("building the tiny student in %s (%s words)", run, f"{recipe.words:,}")
            pretrain(
                recipe,
                load_corpus("train"),
                load_corpus("validation"),
                run,
                resume=(run / "state.pt").exists(),
                progress=progress,
                log=logger.warning,
            )
    return final


def ship_tiny(checkpoint: str | Path) -> Path:
    """Copy a checkpoint of the default recipe into SHIPPED_DIR (a maintainer's step).

    The checkpoint must come from TINY_RECIPE on the current corpus (its
    ``pretraining.json`` says how many words it saw); ``recipe.json`` records the recipe key
    so a later change of recipe or corpus is noticed instead of loading stale weights.
    """
    source = Path(checkpoint)
    facts = json.loads((source / "pretraining.json").read_text())
    if facts.get("words_seen", 0) < TINY_RECIPE.words:
        raise ConfigError(
            f"{source} saw {facts.get('words_seen')} words; the default recipe needs "
            f"{TINY_RECIPE.words:,}: ship the checkpoint at the end of the recipe's run"
        )
    SHIPPED_DIR.mkdir(parents=True, exist_ok=True)
    for name in SHIPPED_FILES:
        shutil.copyfile(source / name, SHIPPED_DIR / name)
    record = {"key": recipe_key(TINY_RECIPE), "recipe": asdict(TINY_RECIPE), "source": str(source)}
    write_atomic(SHIPPED_DIR / "recipe.json", json.dumps(record, indent=1), "shipped recipe")
    return SHIPPED_DIR


def tiny_student(*, words: int | None = None) -> LMStudent:
    """The ``tiny`` student (the shipped default, or a smaller budget built on first use).

    Args:
        words: Pretraining budget in words; default the recipe's. Smaller budgets build
            faster (tests use them) and are cached separately.
    """
    return load_path_student(build_tiny(words), name="tiny")
