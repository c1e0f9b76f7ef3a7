"""Growing a corpus over many sessions: build, seal a part, commit it, repeat to a target.

:func:`grow` runs ``build`` in sessions of ``session_minutes``; after each it seals the
session's stories into an immutable part (:func:`~agents.corpus.workdir.seal`) and, with
``commit``, commits that part, ``build.json`` and ``sessions.jsonl`` to git, so a stopped
machine loses at most the session in progress. It stops at the target (clean,
deduplicated words, the frozen base included), after ``max_sessions``, or on Ctrl-C
(after sealing and committing what the session wrote). Started again with the same
command, it first seals and commits what a killed run left in the live work file.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from agents.corpus.generate import build, corpus_command
from agents.corpus.prompts import PROMPT_VERSION, GenerationSettings, prompt_set
from agents.corpus.workdir import (
    BASE_FILE,
    BUILD_FILE,
    PARTS_DIR,
    SESSIONS_FILE,
    seal,
    work_lock,
)
from story_env.errors import ConfigError, GenerationError
from story_env.run_folder import GitError, commit_paths, git, read_config

logger = logging.getLogger(__name__)

GITIGNORE = (
    "# The live work file, the lock and half-written files of `python -m agents.corpus grow`;\n"
    "# the sealed parts, build.json, sessions.jsonl and a frozen base are committed.\n"
    "raw.jsonl\n.lock\n*.tmp\n"
)
"""The ``.gitignore`` ``grow --commit`` puts in a work directory that has none."""


def commit_progress(work_dir: Path, message: str) -> None:
    """Commit the work directory's sealed parts and records (nothing else) to git.

    Stages ``parts/`` and the build's records (``build.json``, ``sessions.jsonl``, a
    frozen base's files, and a ``.gitignore`` for the live work file and the lock, written
    if missing) and commits only those paths (``git commit -- paths``), so other
    staged or changed files are left as they are.

    Raises:
        GitError: git failed.
    """
    if not (work_dir / ".gitignore").exists():
        (work_dir / ".gitignore").write_text(GITIGNORE, encoding="utf-8")
    names = [".gitignore", PARTS_DIR, BUILD_FILE, SESSIONS_FILE]
    base = read_config(work_dir, BASE_FILE) if (work_dir / BASE_FILE).exists() else None
    if base:
        names += [BASE_FILE, str(base["file"])] + ([base["datasheet"]] if base["datasheet"] else [])
    names = [n for n in names if (work_dir / n).exists()]
    if not commit_paths(work_dir, names, message):
        logger.info("[corpus] nothing new to commit")


def _check(name: str, value: float | None, low: float, fix: str) -> None:
    if value is not None and not value >= low:
        raise ConfigError(f"{name} must be >= {low:g}, got {value!r}; {fix}")


def grow(
    work_dir: Path,
    target_words: int,
    session_minutes: float = 20.0,
    *,
    commit: bool = False,
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
        work_dir: The work directory (inside a git repository when ``commit``).
        target_words: Clean, deduplicated words to reach (the frozen base included).
        session_minutes: Length of one session; each ends with a sealed part.
        commit: Commit each new part (and the build's records) to git.
        max_sessions: Stop after this many sessions (None: at the target).
        workers: Concurrent requests (see :func:`~agents.corpus.generate.build`).
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
        GitError: ``commit`` and the work directory is not in a git repository (a failed
            commit later is logged; the next commit takes every uncommitted part).
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
    if commit:
        git(work_dir if work_dir.exists() else Path.cwd(), "rev-parse", "--show-toplevel")
    command = command or corpus_command()
    parts: list[str] = []
    with work_lock(work_dir):
        _seal_and_commit(work_dir, commit, parts, "leftover of a stopped session")
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
            _seal_and_commit(work_dir, commit, parts, note)
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


def _seal_and_commit(work_dir: Path, commit: bool, parts: list[str], note: str) -> None:
    """Seal the live work file into a part and, with ``commit``, commit it."""
    part = seal(work_dir)
    if part is None:
        return
    parts.append(part.name)
    logger.info("[corpus] sealed %s", part)
    if commit:
        name = part.name.split(".")[0]
        try:
            commit_progress(
                work_dir,
                f"Corpus growth, committed in parts so a stop loses nothing: {name}, {note}",
            )
        except GitError as exc:  # the part stays on disk; the next commit takes all of parts/
            logger.error("[corpus] could not commit %s: %s", part, exc)
