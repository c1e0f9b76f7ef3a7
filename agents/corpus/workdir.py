"""A build's work directory: the live work file, sealed parts, a frozen base and its lock.

A work directory holds:

* ``raw.jsonl``: the live work file ``build`` appends each raw answer to (one JSON line
  per story, with its index). Never committed.
* ``parts/part-NNNNN.jsonl.gz``: sealed, immutable parts. :func:`seal` moves the live
  file's new records into the next part (written atomically, then the live file is
  removed); a kill between the two leaves records in both, and every reader keeps the
  first record of an index, so nothing is lost or counted twice. The fields that are the
  same for the whole build (seed, settings, model, system prompt, the drawn words) are
  left out of a part: ``build.json`` has them, and the words are ``build_prompt``'s.
* ``build.json`` (the seed, settings, prompt set and commands) and ``sessions.jsonl``
  (one line of timing per session).
* optionally ``base.json`` and the files it names: a frozen corpus of clean stories
  (:func:`freeze_base`) that ``finalize`` takes before the build's stories.
* ``.lock``: held by a running ``build``/``grow``, so two never share a directory.
"""

from __future__ import annotations

import contextlib
import fcntl
import gzip
import hashlib
import io
import json
import os
import re
import shutil
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, Any

from story_env.agents.corpus.clean import count_words
from story_env.agents.corpus.load import DATA_DIR, SPLITS, load_corpus
from story_env.errors import ConfigError, RunFolderError
from story_env.run_folder import read_config, write_atomic, write_atomic_with

WORK_FILE = "raw.jsonl"
SESSIONS_FILE = "sessions.jsonl"
BUILD_FILE = "build.json"
"""The build's seed and settings (a resume must keep them) and every command that ran it."""
PARTS_DIR = "parts"
"""Folder of the sealed parts inside a work directory."""
BASE_FILE = "base.json"
"""The frozen base's record: its file, size, checksum, seed, prompt set and commands."""
LOCK_FILE = ".lock"

SEALED_DROPPED = ("seed", "system", "settings", "model", "fields")
"""Record fields a part leaves out (constant for a build, or a function of its index)."""


def write_gz_lines(path: Path, lines: Iterable[str], what: str = "corpus split") -> None:
    """Write lines to a gzip file atomically and reproducibly (no name or time in the header)."""
    path.parent.mkdir(parents=True, exist_ok=True)

    def write(raw: IO[bytes]) -> None:
        with gzip.GzipFile(filename="", mode="wb", fileobj=raw, compresslevel=9, mtime=0) as gz:
            for line in lines:
                gz.write((line + "\n").encode("utf-8"))

    write_atomic_with(path, write, what)


# --------------------------------------------------------------------------------------
# Records: the live work file and the sealed parts
# --------------------------------------------------------------------------------------


def _parse_lines(lines: Iterable[str], seen: set[int], out: list[dict[str, Any]]) -> None:
    """Append the records of JSON ``lines`` to ``out``, skipping torn lines and seen indices."""
    for line in lines:
        line = line.strip()
        if not line:
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            continue  # a line torn by a kill; its index is simply redone
        idx = rec.get("index") if isinstance(rec, dict) else None
        if not isinstance(idx, int) or idx in seen:
            continue
        seen.add(idx)
        out.append(rec)


def read_work_file(path: Path) -> list[dict[str, Any]]:
    """Read the JSON lines of a work file, skipping a torn last line.

    Args:
        path: The work file (may not exist).

    Returns:
        The records, in file order; for a repeated index, only the first.
    """
    out: list[dict[str, Any]] = []
    if path.exists():
        with path.open(encoding="utf-8") as fh:
            _parse_lines(fh, set(), out)
    return out


def part_paths(out_dir: Path) -> list[Path]:
    """The sealed parts of a work directory, in order."""
    return sorted((out_dir / PARTS_DIR).glob("part-*.jsonl.gz"))


def read_records(out_dir: Path) -> list[dict[str, Any]]:
    """Every record of a work directory: the sealed parts in order, then the live file.

    Args:
        out_dir: The work directory.

    Returns:
        The records; for an index found more than once, only the first.

    Raises:
        RunFolderError: A part is not a readable gzip file (an ``OSError``).
    """
    out: list[dict[str, Any]] = []
    seen: set[int] = set()
    _read_parts(out_dir, seen, out)
    live = out_dir / WORK_FILE
    if live.exists():
        with live.open(encoding="utf-8") as fh:
            _parse_lines(fh, seen, out)
    return out


def _read_parts(out_dir: Path, seen: set[int], out: list[dict[str, Any]]) -> None:
    """Append the sealed parts' records to ``out`` (indices in ``seen`` skipped, then added)."""
    for path in part_paths(out_dir):
        try:
            with gzip.open(path, "rt", encoding="utf-8") as fh:
                _parse_lines(fh, seen, out)
        except (OSError, EOFError) as exc:
            raise RunFolderError(
                f"sealed part {str(path)!r} is damaged ({exc}); restore it from git "
                f"(`git checkout -- {path}`)"
            ) from exc


def _open_for_append(path: Path) -> io.TextIOWrapper:
    """Open ``path`` for appending, first ending a torn last line with a newline."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists() and path.stat().st_size > 0:
        with path.open("rb") as fh:
            fh.seek(-1, os.SEEK_END)
            last = fh.read(1)
        if last != b"\n":
            with path.open("ab") as fh:
                fh.write(b"\n")
    return path.open("a", encoding="utf-8")


def seal(out_dir: Path) -> Path | None:
    """Move the live work file's new records into the next sealed part.

    The part is written atomically first and the live file removed after; records whose
    index a part already holds are not sealed again, so a kill at any point loses and
    duplicates nothing (a torn last line is dropped: its index is asked again).

    Args:
        out_dir: The work directory (its lock is taken, or kept if this process has it).

    Returns:
        The new part, or ``None`` when the live file held nothing new.

    Raises:
        ConfigError: Another process is building in ``out_dir``.
    """
    if not (out_dir / WORK_FILE).exists():
        return None
    with work_lock(out_dir):
        return _seal_locked(out_dir)


def _seal_locked(out_dir: Path) -> Path | None:
    live = out_dir / WORK_FILE
    sealed: set[int] = set()
    _read_parts(out_dir, sealed, [])
    new = [rec for rec in read_work_file(live) if rec["index"] not in sealed]
    path = None
    if new:
        parts = part_paths(out_dir)
        number = int(parts[-1].name.split("-")[1].split(".")[0]) + 1 if parts else 1
        path = out_dir / PARTS_DIR / f"part-{number:05d}.jsonl.gz"
        lines = (
            json.dumps(
                {k: v for k, v in rec.items() if k not in SEALED_DROPPED}, ensure_ascii=False
            )
            for rec in sorted(new, key=lambda r: r["index"])
        )
        write_gz_lines(path, lines, "sealed part")
    live.unlink()
    return path


# --------------------------------------------------------------------------------------
# The lock
# --------------------------------------------------------------------------------------

_HELD: dict[Path, int] = {}
_HELD_GUARD = threading.Lock()


@contextlib.contextmanager
def work_lock(out_dir: Path) -> Iterator[None]:
    """Hold the work directory's lock (re-entrant within a process).

    Raises:
        ConfigError: Another process holds it (a ``build`` or ``grow`` is running there).
    """
    key = out_dir.resolve()
    with _HELD_GUARD:
        if key in _HELD:
            _HELD[key] += 1
            fh = None
        else:
            out_dir.mkdir(parents=True, exist_ok=True)
            fh = (out_dir / LOCK_FILE).open("a+")
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                fh.seek(0)
                holder = fh.read().strip() or "?"
                fh.close()
                raise ConfigError(
                    f"{out_dir} is in use by another build (pid {holder}); wait for it, "
                    f"pause it (kill -STOP {holder}) or stop it before starting another"
                ) from None
            fh.truncate(0)
            fh.write(f"{os.getpid()}\n")
            fh.flush()
            _HELD[key] = 1
    try:
        yield
    finally:
        with _HELD_GUARD:
            _HELD[key] -= 1
            if _HELD[key] == 0:
                del _HELD[key]
        if fh is not None:  # the outermost holder lets go
            fh.close()


# --------------------------------------------------------------------------------------
# The frozen base
# --------------------------------------------------------------------------------------


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _datasheet_facts(text: str) -> dict[str, Any]:
    """The seed, exact commands and raw-answer count a corpus datasheet records."""
    seed = re.search(r"^- Seed: (\d+)\.", text, re.MULTILINE)
    raw = re.search(r"^- Raw answers: ([\d,]+)", text, re.MULTILINE)
    block = re.search(r"^## Exact commands\n```\n(.*?)\n```", text, re.MULTILINE | re.DOTALL)
    return {
        "seed": int(seed.group(1)) if seed else None,
        "raw_answers": int(raw.group(1).replace(",", "")) if raw else None,
        "commands": block.group(1).splitlines() if block else [],
    }


def freeze_base(
    out_dir: Path,
    data_dir: Path = DATA_DIR,
    name: str = "v1",
    prompt_version: int = 1,
    command: str | None = None,
) -> dict[str, Any]:
    """Freeze a finished corpus (both splits) as the base of a work directory.

    Writes ``<name>-stories.txt.gz`` (train then validation, one story per line), a copy
    of its datasheet as ``<name>-DATASHEET.md``, and ``base.json`` (sizes, SHA-256, and
    the seed and commands its datasheet records). A base is immutable: freezing over one
    is refused.

    Args:
        out_dir: The work directory.
        data_dir: The corpus to freeze (its split files and ``DATASHEET.md``).
        name: Short name of the base (file prefix and datasheet label).
        prompt_version: The prompt set its stories were written from.
        command: The command line to record.

    Returns:
        The base record written to ``base.json``.

    Raises:
        ConfigError: The work directory already has a base, or ``name`` is not a plain name.
        MissingFileError: A split file is missing (a ``FileNotFoundError``).
    """
    if (out_dir / BASE_FILE).exists():
        raise ConfigError(
            f"{out_dir / BASE_FILE} exists: a base is frozen once and never rewritten; "
            "use another --out-dir for another base"
        )
    if not re.fullmatch(r"[A-Za-z0-9_]+", name):
        raise ConfigError(f"base name {name!r} must be letters, digits or _ (e.g. v1)")
    stories = [s for split in SPLITS for s in load_corpus(split, data_dir=data_dir)]
    story_file = out_dir / f"{name}-stories.txt.gz"
    write_gz_lines(story_file, stories, "frozen base")
    sheet = data_dir / "DATASHEET.md"
    facts: dict[str, Any] = {"seed": None, "raw_answers": None, "commands": []}
    sheet_copy = None
    if sheet.is_file():
        sheet_copy = f"{name}-DATASHEET.md"
        shutil.copyfile(sheet, out_dir / sheet_copy)
        facts = _datasheet_facts(sheet.read_text(encoding="utf-8"))
    meta = {
        "name": name,
        "file": story_file.name,
        "datasheet": sheet_copy,
        "stories": len(stories),
        "words": sum(count_words(s) for s in stories),
        "sha256": _sha256(story_file),
        "order": f"{' then '.join(SPLITS)} split, each in its file's order",
        "prompt_version": prompt_version,
        **facts,
        "frozen_with": command,
    }
    write_atomic(out_dir / BASE_FILE, json.dumps(meta, indent=2) + "\n", "base record")
    return meta


def read_base(out_dir: Path) -> tuple[dict[str, Any] | None, list[str]]:
    """The frozen base of a work directory and its stories (``(None, [])`` without one).

    Raises:
        RunFolderError: The base file is missing or differs from its recorded SHA-256.
    """
    if not (out_dir / BASE_FILE).exists():
        return None, []
    meta = read_config(out_dir, BASE_FILE)
    path = out_dir / str(meta.get("file"))
    if not path.is_file() or _sha256(path) != meta.get("sha256"):
        raise RunFolderError(
            f"frozen base {str(path)!r} is missing or changed (its SHA-256 differs from "
            f"{BASE_FILE}); restore it from git (`git checkout -- {path}`)"
        )
    with gzip.open(path, "rt", encoding="utf-8") as fh:
        return meta, [line.rstrip("\n") for line in fh if line.strip()]
