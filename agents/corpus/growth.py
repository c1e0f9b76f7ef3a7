"""Growing a corpus over many sessions: build, seal a part, repeat to a target.

:func:`grow` runs ``build`` in sessions of ``session_minutes``; after each it seals the
session's stories into an immutable part (:func:`~story_env.agents.corpus.workdir.seal`)
and calls ``on_part`` with it (the maintainer script ``tools/grow_corpus.py`` commits each
part to git there), so a stopped machine loses at most the session in progress. It stops
at the target (clean, deduplicated words, the frozen base included), after
``max_sessions``, or on Ctrl-C (after sealing what the session wrote). Started again with
the same command, it first seals what a killed run left in the live work file.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from story_env.agents.corpus.generate import build, corpus_command
from story_env.agents.corpus.prompts import PROMPT_VERSION, GenerationSettings, prompt_set
from story_env.agents.corpus.workdir import (
    seal,
    work_lock,
)
from story_env.errors import ConfigError, GenerationError

logger = logging.getLogger(__name__)

OnPart = Callable[[Path, str], None]
"""Called after each sealed part with its path and a one-line note of where the corpus stands."""


def _check(name: str, value: float | None, low: float, fix: str) -> None:
    if value is not None and not value >= low:
        raise ConfigError(f"{name} must be >= {low:g}, got {value!r}; {fix}")


def grow(
    work_dir: Path,
    target_words: int,
    session_minutes: float = 20.0,
    *,
    on_part: OnPart | None = None,
    max_sessions: int | None = None,
    workers: int = 8,
    seed: int = 0,
    settings: GenerationSettings | None = None,
    prompt_version: int = PROMPT_VERSION,
    n_threads: int = 2,
    servers: int = 1,
    progress: bool = True,
    command: str | None = None,
) -> dict[str, Any]:
    """Build in sessions until the corpus reaches ``target_words``, sealing each session.

    Args:
        work_dir: The work directory.
        target_words: Clean, deduplicated words to reach (the frozen base included).
        session_minutes: Length of one session; each ends with a sealed part.
        on_part: Called after each sealed part (the leftover of a stopped session first)
            with the part's path and a note; an exception it raises is logged, and the
            part stays on disk.
        max_sessions: Stop after this many sessions (None: at the target).
        workers: Concurrent requests (see :func:`~story_env.agents.corpus.generate.build`).
        seed: Run seed (a resume must keep it).
        settings: Sampling settings (a resume must keep them).
        prompt_version: Prompt set (a resume must keep it).
        n_threads: llama.cpp CPU threads per server.
        servers: In-process llama.cpp servers.
        progress: Show the build's progress bar.
        command: The command line to record (defaults to ``sys.argv``).

    Returns:
        ``{"sessions": n, "parts": [...], "clean_words": ..., "done": bool}``.

    Raises:
        ConfigError: A bad value, a resume with other settings, or a running build there.
        GenerationError: A session wrote no story (every request failed).
    """
    _check("--target-words", target_words, 1, "give the clean words to reach, e.g. 2500000")
    _check("--session-minutes", session_minutes, 0.1, "e.g. 20")
    _check("--max-sessions", max_sessions, 1, "or leave it out to run to the target")
    _check("--workers", workers, 1, "e.g. 8")
    _check("--servers", servers, 1, "e.g. 1")
    _check("--n-threads", n_threads, 1, "e.g. 2")
    if servers > workers:
        raise ConfigError(f"--servers ({servers}) must not exceed --workers ({workers})")
    prompt_set(prompt_version)
    command = command or corpus_command()
    parts: list[str] = []
    with work_lock(work_dir):
        _seal(work_dir, on_part, parts, "leftover of a stopped session")
        sessions, summary = 0, None
        while max_sessions is None or sessions < max_sessions:
            summary = build(
                work_dir,
                target_words,
                workers=workers,
                seed=seed,
                settings=settings,
                n_threads=n_threads,
                servers=servers,
                max_minutes=session_minutes,
                progress=progress,
                command=command,
                prompt_version=prompt_version,
            )
            new = summary["session"]
            if new["new_stories"]:
                sessions += 1
            note = _progress_note(summary, target_words)
            _seal(work_dir, on_part, parts, note)
            logger.info("[corpus] session %d: %s", sessions, note)
            if summary["clean_words"] >= target_words or summary["interrupted"]:
                break
            if not new["new_stories"]:
                raise GenerationError(
                    f"a session in {work_dir} wrote no story ({new['errors']} failed "
                    "requests; see the warnings above); lower --workers or --max-tokens"
                )
    words = summary["clean_words"] if summary else 0
    return {
        "sessions": sessions,
        "parts": parts,
        "clean_words": words,
        "done": words >= target_words,
    }


def _progress_note(summary: dict[str, Any], target_words: int) -> str:
    """One line: what the session added and where the corpus stands."""
    new = summary["session"]
    rate = new.get("clean_words_per_s")
    return (
        f"+{new['new_stories']:,} stories, +{new['new_clean_words']:,} clean words in "
        f"{new['wall_s'] / 60:.0f} min ({rate if rate is not None else '-'} clean words/s); "
        f"corpus {summary['clean_words']:,} of {target_words:,} clean words "
        f"({summary['base_stories']:,} base + {summary['kept_stories']:,} built stories)"
    )


def _seal(work_dir: Path, on_part: OnPart | None, parts: list[str], note: str) -> None:
    """Seal the live work file into a part and hand it to ``on_part``."""
    part = seal(work_dir)
    if part is None:
        return
    parts.append(part.name)
    logger.info("[corpus] sealed %s", part)
    if on_part is not None:
        try:
            on_part(part, note)
        except Exception as exc:  # the part stays on disk; a later call can take it
            logger.error("[corpus] after sealing %s: %s", part, exc)
