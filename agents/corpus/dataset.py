"""Finalize: the work file cleaned, deduplicated and split into the packaged corpus + datasheet."""

from __future__ import annotations

import collections
import datetime as _dt
import gzip
import itertools
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from agents.corpus.clean import Deduplicator, clean_story, count_words, split_of
from agents.corpus.datasheet import render_datasheet
from agents.corpus.generate import (
    BUILD_FILE,
    SESSIONS_FILE,
    WORK_FILE,
    corpus_command,
    read_work_file,
)
from agents.corpus.load import DATA_DIR, SPLIT_FILES, SPLITS
from story_env.errors import MissingFileError
from story_env.run_folder import read_config, write_atomic, write_atomic_with


def _write_gz_lines(path: Path, lines: Iterable[str]) -> None:
    """Write lines to a gzip file reproducibly (no name or time stamp in the header)."""
    path.parent.mkdir(parents=True, exist_ok=True)

    def write(raw: IO[bytes]) -> None:
        with gzip.GzipFile(filename="", mode="wb", fileobj=raw, compresslevel=9, mtime=0) as gz:
            for line in lines:
                gz.write((line + "\n").encode("utf-8"))

    write_atomic_with(path, write, "corpus split")


def finalize(
    out_dir: Path, data_dir: Path = DATA_DIR, command: str | None = None
) -> dict[str, Any]:
    """Filter, deduplicate and split the work file, and write the packaged corpus.

    Stories are taken in index order; the first of a group of duplicates is kept. The
    split is a function of each story's text only (:func:`split_of`), so re-running on a
    longer work file keeps every earlier story in its split.

    Args:
        out_dir: The build's work directory (holds ``raw.jsonl``).
        data_dir: Where to write the ``.txt.gz`` files and ``DATASHEET.md``.
        command: The command line to record (defaults to ``sys.argv``).

    Returns:
        The statistics written to the datasheet.

    Raises:
        MissingFileError: If the work file is missing or empty (a ``FileNotFoundError``).
    """
    work = out_dir / WORK_FILE
    records = sorted(read_work_file(work), key=lambda r: r["index"])
    if not records:
        raise MissingFileError(
            f"no stories in {str(work)!r} (the work file is missing or empty); run "
            f"`python -m agents.corpus build --out-dir {out_dir}` first, or give the "
            "--out-dir of a build"
        )
    kept = _sort_stories(records)
    for name in SPLITS:
        _write_gz_lines(data_dir / SPLIT_FILES[name], kept.splits[name])
    stats = _statistics(records, kept, data_dir, out_dir, command or corpus_command())
    write_atomic(data_dir / "DATASHEET.md", render_datasheet(stats), "datasheet")
    return stats


@dataclass
class _Sorted:
    """The work file's stories cleaned and deduplicated in index order.

    Attributes:
        splits: The kept stories of each split.
        reasons: How many stories had each outcome (``ok`` or why one was dropped).
        finish: How many answers ended with each finish reason.
    """

    splits: dict[str, list[str]]
    reasons: collections.Counter
    finish: collections.Counter


def _sort_stories(records: Sequence[dict[str, Any]]) -> _Sorted:
    """Clean and deduplicate the records in order, and put each kept story in its split."""
    dedup = Deduplicator()
    kept = _Sorted({name: [] for name in SPLITS}, collections.Counter(), collections.Counter())
    for rec in records:
        kept.finish[str(rec.get("finish_reason"))] += 1
        story, reason = clean_story(rec.get("text") or "")
        if story is not None:
            reason = dedup.check(story)
        kept.reasons[reason] += 1
        if reason == "ok" and story is not None:
            kept.splits[split_of(story)].append(story)
    return kept


def _build_history(out_dir: Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The build's record (``build.json``) and its finished sessions (``sessions.jsonl``)."""
    spath = out_dir / SESSIONS_FILE
    sessions = []
    if spath.exists():
        sessions = [json.loads(x) for x in spath.read_text().splitlines() if x.strip()]
    meta_path = out_dir / BUILD_FILE
    meta = read_config(out_dir, BUILD_FILE) if meta_path.exists() else {}
    return meta, sessions


def _statistics(
    records: Sequence[dict[str, Any]], kept: _Sorted, data_dir: Path, out_dir: Path, command: str
) -> dict[str, Any]:
    """The datasheet's numbers: sizes, outcomes, timing, settings and commands of the build."""
    meta, sessions = _build_history(out_dir)
    created = sorted(r.get("created", "") for r in records if r.get("created"))
    stats: dict[str, Any] = {
        "raw_stories": len(records),
        "raw_words": sum(count_words(r.get("text") or "") for r in records),
        "completion_tokens": sum(int(r.get("completion_tokens") or 0) for r in records),
        "finish_reasons": dict(kept.finish),
        "reasons": dict(sorted(kept.reasons.items(), key=lambda kv: -kv[1])),
        "splits": {
            name: {
                "stories": len(kept.splits[name]),
                "words": sum(count_words(s) for s in kept.splits[name]),
                "bytes_gz": (data_dir / SPLIT_FILES[name]).stat().st_size,
            }
            for name in SPLITS
        },
        "seed": meta.get("seed", records[0].get("seed")),
        "settings": meta.get("settings", records[0].get("settings")),
        "build_commands": meta.get("commands", []),
        "finalize_command": command,
        "generation_wall_s": round(active_seconds(created), 1),
        "sessions": len(sessions),
        "session_log": sessions,
        "generated_from": created[0] if created else None,
        "generated_to": created[-1] if created else None,
        "finalized": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
    }
    stats["total_words"] = sum(v["words"] for v in stats["splits"].values())
    stats["total_stories"] = sum(v["stories"] for v in stats["splits"].values())
    return stats


def active_seconds(timestamps: Sequence[str], max_gap_s: float = 300.0) -> float:
    """Generation time from the records' finish times, leaving out idle gaps.

    Sums the gaps between consecutive timestamps that are shorter than ``max_gap_s``, so
    the pauses between build sessions are not counted (each session's start-up and first
    stories are, at most, slightly under-counted).

    Args:
        timestamps: ISO-8601 times, sorted.
        max_gap_s: Longer gaps count as idle.

    Returns:
        Seconds of generation.
    """
    times = [_dt.datetime.fromisoformat(t).timestamp() for t in timestamps]
    return float(sum(b - a for a, b in itertools.pairwise(times) if b - a < max_gap_s))
