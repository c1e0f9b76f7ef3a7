"""The embedded default student ``tiny``: built from the committed corpus, cached per user.

The first use pretrains it (a few minutes on a laptop CPU, with a progress bar) into
``<user cache>/storytelling/students/tiny-<recipe hash>/``; later uses load it in
seconds. ``storytelling build-student tiny`` builds it explicitly. A file lock makes
concurrent first uses wait for one build instead of racing.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
from dataclasses import asdict, replace
from pathlib import Path

from agents.corpus.load import DATA_DIR, SPLIT_FILES, SPLITS, load_corpus
from agents.pretraining.pretrain import ModelConfig, PretrainConfig, checkpoint_name, pretrain
from agents.students.lm import LMStudent, load_path_student

logger = logging.getLogger(__name__)

#: The recipe of the default student; changing it changes the cache folder.
TINY_RECIPE = PretrainConfig(
    words=1_200_000,
    block_size=128,
    batch_size=16,
    lr=2e-3,
    seed=0,
    model=ModelConfig(n_layer=4, n_embd=256, n_head=4, n_positions=256, vocab_size=4096),
)
CACHE_ENV = "STORYTELLING_CACHE_DIR"


def cache_root() -> Path:
    """Where built students live: ``$STORYTELLING_CACHE_DIR`` or the user cache dir."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("storytelling"))


def tiny_dir(recipe: PretrainConfig) -> Path:
    """The cache folder of a recipe (a hash of the recipe and the corpus files)."""
    digest = hashlib.sha256(json.dumps(asdict(recipe), sort_keys=True).encode())
    for split in SPLITS:
        digest.update((DATA_DIR / SPLIT_FILES[split]).read_bytes())
    return cache_root() / "students" / f"tiny-{digest.hexdigest()[:12]}"


def build_tiny(words: int | None = None, *, progress: bool = True) -> Path:
    """Pretrain the tiny student if it is not cached yet; return its checkpoint folder."""
    recipe = TINY_RECIPE if words is None else replace(TINY_RECIPE, words=words)
    run = tiny_dir(recipe)
    final = run / checkpoint_name(recipe.words)
    if final.is_dir():
        return final
    run.mkdir(parents=True, exist_ok=True)
    with open(run / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another process may be building it
        if not final.is_dir():
            logger.warning("building the tiny student in %s (first use; a few minutes)", run)
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


def tiny_student(*, words: int | None = None) -> LMStudent:
    """The ``tiny`` student (built on first use).

    Args:
        words: Pretraining budget in words; default the recipe's. Smaller budgets build
            faster (tests use them) and are cached separately.
    """
    return load_path_student(build_tiny(words), name="tiny")
