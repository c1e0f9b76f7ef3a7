"""A story's structure for the heuristic teacher (``story_env.teachers.heuristic``).

``_parse`` splits a story into sentences of lowercase words in one pass over its tokens
and notes what the split sees on the way (capitals, quotes, names introduced, articles,
impossible neighbouring words, tense markers); ``_find_cues`` finds the discourse cues
(opening and closing formulas, time cues) in those sentences.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from collections import Counter
from dataclasses import dataclass, field

from story_env.teachers.heuristic_lexicon import (
    _ARTICLES,
    _BAD_ENDINGS,
    _BAD_PAIRS,
    _CLAUSE_BREAKS,
    _DESCRIPTIVE,
    _FUNCTION_WORDS,
    _GRAMMAR_CLASS,
    _PAST_MARKERS,
    _PRESENT_MARKERS,
    _QUOTES,
    _TOKEN,
)

# --- discourse cues (matched on sentences of lowercase words, one sentence a line) --------
_INTRO_CUES = (  # two patterns: one mixing "^" with unanchored parts is 3x slower
    re.compile(r"\b(?:once upon a time|long ago|there (?:once )?lived|far far away)\b"),
    re.compile(r"^(?:once )?there (?:once )?(?:was|were)\b", re.MULTILINE),
)
_CLOSING_CUE = re.compile(
    r"\bthe end\b|\bhappily ever after\b|\bfrom (?:that|this|then)\b|\bever since\b"
    r"|\bnever forgot\b|\bin the end\b|\bat last\b|\bfinally\b|\bforever\b"
    r"|\blearned (?:that|to|a)\b|\bfell asleep\b"
)
_STAGE_CUE = re.compile(
    r"^(?:(?P<s1>every|each|always|usually|often|most days)"
    r"|(?P<s2>(?:but |then )?one (?:\w+ )?(?:day|morning|afternoon|evening|night|summer|winter)"
    r"|(?:but )?suddenly|on the first (?:day|morning|night))"
    r"|(?P<s3>first|then|next|after that|afterwards|soon|later|so|that (?:night|evening)"
    r"|the next (?:day|morning)"
    r"|(?:an|one|a few|some) (?:\w+ )?(?:hours?|days?|weeks?|moments?|minutes?|while) later))\b",
    re.MULTILINE,
)
"""Sentence-initial time cues, grouped by their place in a story's usual order (stage 0 is
the opening formula, 4 the closing one): "every day ..." sets the scene (s1), "one day
..." starts the action (s2), "then ..." continues it (s3). A cue followed by one of a lower
stage is an inversion."""
_STAGE_OF = {"s1": 1, "s2": 2, "s3": 3}


@dataclass(slots=True)
class _Parsed:
    """A story split into sentences of lowercase words, with what the split noticed."""

    sentences: list[list[str]] = field(default_factory=list)
    starts_upper: list[bool] = field(default_factory=list)  # sentence begins with a capital
    after_quote: list[bool] = field(default_factory=list)  # it follows '."' (a dialogue tag)
    complete: bool = True  # the text ends with a sentence terminator
    capitalised: Counter[str] = field(default_factory=Counter)  # capitalised content words
    introduced: list[tuple[int, str]] = field(default_factory=list)  # (sentence, X): "named X"
    appositions: list[tuple[int, str]] = field(default_factory=list)  # (sentence, X): "X the ..."
    first_sentence: dict[str, int] = field(default_factory=dict)  # word -> first sentence
    first_token: dict[str, int] = field(default_factory=dict)  # word -> first token index
    article_violations: int = 0  # "the fox ..." before "a fox ..."
    bad_pairs: int = 0  # impossible adjacent words in a clause, or a sentence ending "the."
    midcap_function: int = 0  # "the dog Ran To The park"
    shouting: int = 0  # ALL-CAPS words
    lowercase_i: int = 0
    past: int = 0  # past-tense markers outside quotes
    present: int = 0  # present-tense markers outside quotes


def _parse(text: str) -> _Parsed:
    """Split ``text`` into sentences in one pass over its tokens.

    Tokens are words, sentence terminators, quotes and clause breaks (commas, semicolons,
    colons). Curly apostrophes must already be straight.
    """
    parsed = _Parsed()
    sentences, first_sentence, first_token = (
        parsed.sentences,
        parsed.first_sentence,
        parsed.first_token,
    )
    current: list[str] = []
    definite_at: dict[str, int] = {}
    indefinite: set[str] = set()
    in_quote = last_was_terminator = quote_after_terminator = False
    previous = article = ""  # article: "a", "an" or "the" while its noun phrase lasts
    word_class = ""  # grammar class of the previous word in the same clause
    article_span = position = 0
    for token in _TOKEN.findall(text):
        head = token[0]
        if head in _CLAUSE_BREAKS:
            word_class = ""
            continue
        if head in _QUOTES:
            quote_after_terminator = quote_after_terminator or last_was_terminator
            in_quote = (not in_quote) if head == '"' else head == "\u201c"
            word_class = ""
            continue
        if not head.isalpha():  # a sentence terminator
            if current:
                sentences.append(current)
                current = []
            parsed.bad_pairs += word_class in _BAD_ENDINGS  # "... and the."
            last_was_terminator = True
            previous = article = word_class = ""
            continue
        low = token.lower()
        index = len(sentences)
        upper = head.isupper()
        function = low in _FUNCTION_WORDS
        this_class = _GRAMMAR_CLASS.get(low, "")
        if (word_class, this_class) in _BAD_PAIRS or (low == previous and function):
            parsed.bad_pairs += 1  # "the of", "she the", "the the"
        word_class = this_class
        if not current:
            parsed.starts_upper.append(upper)
            parsed.after_quote.append(quote_after_terminator)
            quote_after_terminator = False
        elif upper and function and low != "i":
            parsed.midcap_function += 1
        if upper and len(token) > 1:
            if token.isupper():
                parsed.shouting += 1
            elif not function:
                parsed.capitalised[low] += 1
        elif token == "i":
            parsed.lowercase_i += 1
        if not in_quote:
            if low in _PAST_MARKERS or (low[-2:] == "ed" and len(low) > 4):
                parsed.past += 1
            elif low in _PRESENT_MARKERS:
                parsed.present += 1
        if previous == "named":
            parsed.introduced.append((index, low))
        elif low == "the" and len(current) == 1 and parsed.starts_upper[-1]:
            parsed.appositions.append((index, current[0]))  # "Tim the turtle ..."
        if article and not function:
            if low not in _DESCRIPTIVE:  # "a little fox": look past the adjectives
                if article == "the":
                    definite_at.setdefault(low, index)
                else:
                    if definite_at.get(low, index) < index and low not in indefinite:
                        parsed.article_violations += 1
                    indefinite.add(low)
                article_span -= 1
                if article_span == 0:
                    article = ""
        else:
            article, article_span = (low, 2) if low in _ARTICLES else ("", 0)
        if low not in first_token:
            first_token[low] = position
            first_sentence[low] = index
        position += 1
        current.append(low)
        previous = low
        last_was_terminator = False
    if current:
        sentences.append(current)
        parsed.complete = False
    return parsed


@dataclass(slots=True)
class _Cues:
    """Which sentences hold discourse cues (by sentence index)."""

    intro: set[int]  # an opening formula: "once upon a time", "there lived"
    closing: set[int]  # a closing formula: "from that day on", "in the end"
    stage: dict[int, int]  # a sentence-initial time cue and its stage (1..3)


def _find_cues(sentences: list[list[str]]) -> _Cues:
    """Find the cues with one regex sweep each over all sentences (one a line)."""
    lines = "\n".join(" ".join(s) for s in sentences)
    starts = [0]
    for sentence in sentences[:-1]:
        starts.append(starts[-1] + sum(map(len, sentence)) + len(sentence))

    def at(position: int) -> int:
        return bisect_right(starts, position) - 1

    stage: dict[int, int] = {}
    for cue in _STAGE_CUE.finditer(lines):
        stage[at(cue.start())] = _STAGE_OF[cue.lastgroup or ""]
    return _Cues(
        intro={at(cue.start()) for pattern in _INTRO_CUES for cue in pattern.finditer(lines)},
        closing={at(cue.start()) for cue in _CLOSING_CUE.finditer(lines)},
        stage=stage,
    )
