"""Cleaning and filtering raw answers, duplicate keys, :class:`Deduplicator` and the split."""

from __future__ import annotations

import collections
import hashlib
import re
import unicodedata
from dataclasses import dataclass, field

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
VALIDATION_PERCENT = 5
"""Percent of stories :func:`split_of` puts in the validation split."""

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
# "The end." as a sentence of its own at the very end (not "... at the end.", which is
# the last sentence of a story: removing those words would leave it unfinished).
_THE_END_RE = re.compile(
    r"(?:(?<=[.!?\"')])\s+|^\s*)(?:[\"']?\s*(?:and\s+)?the\s+end\s*[.!]*\s*[\"']?\s*)+$",
    re.IGNORECASE,
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
