"""Finalize: a work directory's stories cleaned, deduplicated and split into the corpus + datasheet."""

from __future__ import annotations

import collections
import datetime as _dt
import itertools
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from story_env.agents.corpus.clean import Deduplicator, clean_story, count_words, split_of
from story_env.agents.corpus.datasheet import render_datasheet
from story_env.agents.corpus.generate import corpus_command
from story_env.agents.corpus.load import SPLIT_FILES, SPLITS
from story_env.agents.corpus.workdir import (
    BUILD_FILE,
    SESSIONS_FILE,
    read_base,
    read_records,
    write_gz_lines,
)
from story_env.errors import MissingFileError
from story_env.run_folder import read_config, write_atomic

logger = logging.getLogger(__name__)

SOURCES: tuple[str, ...] = ("base", "build")
"""Where kept stories come from, in dedup order: the frozen base, then the build."""

DUPLICATES: tuple[str, ...] = ("duplicate_exact", "duplicate_near")


def finalize(out_dir: Path, data_dir: Path, command: str | None = None) -> dict[str, Any]:
    """Filter, deduplicate and split a work directory's stories, and write the corpus.

    The frozen base's stories come first (cleaned and deduplicated again the same way;
    a base story the cleaning now changes or drops is counted and logged), then the
    build's records (sealed parts and live work file) in index order; the first of a
    group of duplicates is kept. The split is a function of each story's text only
    (:func:`split_of`), so re-running on a longer build keeps every earlier story in its
    split.

    Args:
        out_dir: The build's work directory.
        data_dir: Where to write the ``.txt.gz`` files and ``DATASHEET.md``.
        command: The command line to record (defaults to ``sys.argv``).

    Returns:
        The statistics written to the datasheet.

    Raises:
        MissingFileError: If the work directory has neither records nor a base (a
            ``FileNotFoundError``).
    """
    records = sorted(read_records(out_dir), key=lambda r: r["index"])
    base_meta, base = read_base(out_dir)
    if not records and not base:
        raise MissingFileError(
            f"no stories in {str(out_dir)!r} (no work file, sealed part or base); run "
            f"`python -m story_env.agents.corpus build --out-dir {out_dir}` first, or give the "
            "--out-dir of a build"
        )
    kept = _sort_stories(base, records)
    if kept.base_changed:
        logger.warning(
            "[corpus] %d stories of the frozen base changed or were dropped when cleaned "
            "again (see the datasheet's outcome table)",
            kept.base_changed,
        )
    for name in SPLITS:
        write_gz_lines(data_dir / SPLIT_FILES[name], kept.splits[name])
    stats = _statistics(records, kept, data_dir, out_dir, command or corpus_command())
    stats["base"] = base_meta
    write_atomic(data_dir / "DATASHEET.md", render_datasheet(stats), "datasheet")
    return stats


@dataclass
class _Sorted:
    """The stories cleaned and deduplicated in order (base first), split by text hash.

    Attributes:
        splits: The kept stories of each split.
        reasons: How many stories of each source had each outcome (``ok`` or why one was
            dropped).
        words: Kept words of each source.
        finish: How many of the build's answers ended with each finish reason.
        base_changed: Base stories that cleaning changed or dropped.
    """

    splits: dict[str, list[str]] = field(default_factory=lambda: {n: [] for n in SPLITS})
    reasons: dict[str, collections.Counter] = field(
        default_factory=lambda: {n: collections.Counter() for n in SOURCES}
    )
    words: dict[str, int] = field(default_factory=lambda: dict.fromkeys(SOURCES, 0))
    finish: collections.Counter = field(default_factory=collections.Counter)
    base_changed: int = 0

    def add(self, source: str, story: str | None, reason: str, dedup: Deduplicator) -> None:
        """Deduplicate one cleaned story (``story`` is None when cleaning dropped it)."""
        if story is not None:
            reason = dedup.check(story)
        self.reasons[source][reason] += 1
        if reason == "ok" and story is not None:
            self.splits[split_of(story)].append(story)
            self.words[source] += count_words(story)


def _sort_stories(base: Sequence[str], records: Sequence[dict[str, Any]]) -> _Sorted:
    """Clean and deduplicate the base, then the records in order; split each kept story."""
    dedup = Deduplicator()
    kept = _Sorted()
    for text in base:
        story, reason = clean_story(text)
        kept.base_changed += story != text
        kept.add("base", story, reason, dedup)
    for rec in records:
        kept.finish[str(rec.get("finish_reason"))] += 1
        story, reason = clean_story(rec.get("text") or "")
        kept.add("build", story, reason, dedup)
    return kept


def source_counts(reasons: collections.Counter, words: int) -> dict[str, Any]:
    """A source's counts: stories in, passed cleaning, duplicates dropped, kept, and rates.

    The near-duplicate rate is near duplicates dropped / stories that passed cleaning
    (kept + exact + near duplicates); the exact-duplicate rate likewise.
    """
    passed = reasons["ok"] + sum(reasons[d] for d in DUPLICATES)
    return {
        "stories": sum(reasons.values()),
        "passed_cleaning": passed,
        "duplicate_exact": reasons["duplicate_exact"],
        "duplicate_near": reasons["duplicate_near"],
        "kept": reasons["ok"],
        "kept_words": words,
        "exact_dup_rate": reasons["duplicate_exact"] / passed if passed else 0.0,
        "near_dup_rate": reasons["duplicate_near"] / passed if passed else 0.0,
    }


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
    """The datasheet's numbers: sizes, outcomes per source, timing, settings and commands."""
    meta, sessions = _build_history(out_dir)
    created = sorted(r.get("created", "") for r in records if r.get("created"))
    first = records[0] if records else {}
    reasons = sum(kept.reasons.values(), collections.Counter())
    stats: dict[str, Any] = {
        "raw_stories": len(records),
        "raw_words": sum(count_words(r.get("text") or "") for r in records),
        "completion_tokens": sum(int(r.get("completion_tokens") or 0) for r in records),
        "finish_reasons": dict(kept.finish),
        "reasons": _by_count(reasons),
        "reasons_by_source": {name: _by_count(kept.reasons[name]) for name in SOURCES},
        "sources": {name: source_counts(kept.reasons[name], kept.words[name]) for name in SOURCES},
        "all_sources": source_counts(reasons, sum(kept.words.values())),
        "base_changed": kept.base_changed,
        "splits": {
            name: {
                "stories": len(kept.splits[name]),
                "words": sum(count_words(s) for s in kept.splits[name]),
                "bytes_gz": (data_dir / SPLIT_FILES[name]).stat().st_size,
            }
            for name in SPLITS
        },
        "seed": meta.get("seed", first.get("seed")),
        "prompt_version": meta.get("prompt_version", 1) if records else None,
        "settings": meta.get("settings", first.get("settings")),
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


def _by_count(counter: collections.Counter) -> dict[str, int]:
    """The outcomes, most frequent first."""
    return dict(sorted(counter.items(), key=lambda kv: -kv[1]))


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
