"""What the heuristic teacher knows about English words (``story_env.teachers.heuristic``).

Word lists and word classes (function words, grammar classes and the adjacent classes
English never allows, tense markers, descriptive words), the tokeniser, and the cached
look-ups of one word: ``wordfreq`` Zipf frequency with a suffix-stripping fallback,
``pyphen`` syllables, and the flags the teacher's signals need. The names keep their
leading underscore: they serve the heuristic teacher's modules only.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from functools import lru_cache

import pyphen
import wordfreq

_COPY_N = 5
"""Story word n-grams of this length found in the prompt count as copied text."""
_MAX_WORD_LEN = 24
"""Longer letter runs are never real words; they skip the dictionary lookups."""

# --- tokenisation -------------------------------------------------------------------------
_TOKEN = re.compile(r"[A-Za-z]+(?:'[A-Za-z]+)*|[.!?\u2026]+|[\"\u201c\u201d,;:]")
"""Words (with inner apostrophes), sentence terminators, quotes and clause breaks."""
_FOREIGN = re.compile(r"[^\x00-\x7f\u2018\u2019\u201c\u201d\u2013\u2014\u2026]")
_SYMBOL = re.compile(r"[#$%&*+<=>@\\^_`{|}~\[\]/]")
_PUNCT_RUN = re.compile(r"[!?]{3,}|[,;:]{2,}|\.{4,}")
_QUOTES = '"\u201c\u201d'
_CLAUSE_BREAKS = ",;:"
_ARTICLES = frozenset(("a", "an", "the"))


def _wordset(words: str) -> frozenset[str]:
    """Return the whitespace-separated words of ``words`` as a set (keeps lists readable)."""
    return frozenset(words.split())


def _class_pairs(pairs: str) -> frozenset[tuple[str, str]]:
    """Return ``"A-B C-D"`` as ``{("A", "B"), ("C", "D")}``."""
    return frozenset((a, b) for a, _, b in (pair.partition("-") for pair in pairs.split()))


# --- word classes -------------------------------------------------------------------------
_DETERMINERS = _wordset("a an the my your our their its every")
_PREPOSITIONS = _wordset(
    "of in on at by for with about into through from to under over between during without "
    "onto upon across behind beside toward towards among"
)
_SUBJECTS = _wordset("i he she we they")
_CONJUNCTIONS = _wordset("and or but nor because")
_BE = _wordset("is am are was were")
_FUNCTION_WORDS = (
    _DETERMINERS
    | _PREPOSITIONS
    | _SUBJECTS
    | _CONJUNCTIONS
    | _BE
    | _wordset(
        """me you him her it us them his hers mine yours ours theirs myself yourself himself
        herself itself ourselves themselves this that these those who whom whose which what
        where when why how so yet if as than then though although while until unless since up
        down out off again here there all any both each few more most other some such no not
        only own same too very can will just should would could might must shall may do does
        did done be been being have has had having let's i'm it's don't didn't can't won't
        wasn't weren't isn't aren't couldn't wouldn't shouldn't hasn't haven't hadn't i'll
        you'll he'll she'll we'll they'll i've you've we've they've i'd you'd he'd she'd we'd
        they'd that's there's what's here's who's"""
    )
)
_LIGHT_WORDS = _wordset(
    """said says say went go goes get got saw see like one day time upon once also back now
    really much many made make came come thing things way lot little big"""
)
"""Common words that link sentences too easily to count as shared content."""
_BACK_REFERENCES = _wordset(
    """he she it they him her them his their its this these those then so but also too again
    after later finally soon next suddenly together there"""
)
_BAD_OPENERS = _wordset(
    """he she they his her their him them then so but and finally later also afterwards next
    still again soon"""
)
"""First words that refer back to something, odd at the very start of a story."""
_PERSONAL_PRONOUNS = _wordset("he she they him her them his their")
_REFERENT_MARKERS = frozenset(("a", "an", "named"))
"""Words that introduce someone; "she" before any of them (or a name) has no referent."""
_PAST_MARKERS = _wordset(
    """was were had did went saw said came took made found gave ran ate felt knew thought told
    got sat stood fell flew swam sang began became heard held left met put brought caught
    could would slept woke wore won drew drank grew threw spoke bought sent built"""
)
_PRESENT_MARKERS = _wordset(
    """is are am has does goes says sees comes takes makes finds gives runs eats feels knows
    thinks tells gets sits stands falls flies swims sings begins becomes hears holds"""
)
_DESCRIPTIVE = _wordset(
    """red orange yellow green blue purple pink brown black white gray grey golden silver shiny
    sparkly glittering bright dark pale colorful colourful rainbow big small tiny little
    huge giant enormous tall short long wide narrow round soft fluffy smooth rough fuzzy
    warm cold cool icy hot wet dry sticky crunchy silky furry loud quiet gentle sweet sour
    bitter salty sparkling glowing shimmering twinkling happy sad angry scared brave proud
    kind friendly curious excited lonely shy silly calm cheerful grumpy sleepy hungry tired
    clever wise funny jolly beautiful magical mysterious ancient secret strange wonderful
    lovely pretty cozy cosy wild fresh dusty misty sunny rainy snowy windy stormy starry old
    new young deep high heavy light fast slow quick busy noisy delicious glorious gloomy
    spooky creaky dazzling fierce tender fragile velvet crisp"""
)
_DESCRIPTIVE_SUFFIXES = ("ful", "ous", "ish", "less", "ive", "ly")

_GRAMMAR_CLASS: dict[str, str] = {
    **dict.fromkeys(_DETERMINERS, "DET"),
    **dict.fromkeys(_PREPOSITIONS, "PREP"),
    **dict.fromkeys(_SUBJECTS, "SUBJ"),
    **dict.fromkeys(_CONJUNCTIONS, "CONJ"),
    **dict.fromkeys(_BE, "BE"),
    **dict.fromkeys(
        ("will", "would", "can", "could", "shall", "should", "may", "might", "must"), "MOD"
    ),
    **dict.fromkeys(("me", "him", "us", "them"), "OBJ"),
    "very": "VERY",
}
_BAD_PAIRS = _class_pairs(
    """DET-DET DET-PREP DET-SUBJ DET-OBJ DET-CONJ DET-BE DET-MOD PREP-SUBJ PREP-CONJ PREP-BE
    PREP-MOD SUBJ-SUBJ SUBJ-OBJ SUBJ-DET SUBJ-PREP CONJ-CONJ BE-BE BE-MOD BE-CONJ MOD-MOD
    MOD-DET MOD-OBJ MOD-BE MOD-CONJ VERY-DET VERY-PREP VERY-SUBJ VERY-OBJ VERY-CONJ VERY-BE
    VERY-MOD"""
)
"""Adjacent word classes (within a clause) that English grammar (almost) never allows:
"the of", "she the", "was will", "very the"."""
_BAD_ENDINGS = frozenset(["DET", "CONJ", "SUBJ"])

_RESOLUTION_WORDS = _wordset(
    """smiled smile happy happily home friends friend together love loved safe asleep sleep
    laughed thanked hugged proud glad best always never again lesson dreamed dreams"""
)


def _clip(value: float) -> float:
    """Clamp ``value`` to ``[0, 1]``."""
    return 0.0 if value < 0.0 else 1.0 if value > 1.0 else value


@lru_cache(maxsize=1)
def _frequencies() -> dict[str, float]:
    """Return wordfreq's English word -> frequency table (bundled, loaded once)."""
    return wordfreq.get_frequency_dict("en")


@lru_cache(maxsize=1)
def _hyphenator() -> pyphen.Pyphen:
    """Return pyphen's bundled US English hyphenation dictionary (loaded once)."""
    return pyphen.Pyphen(lang="en_US")


def _zipf(word: str) -> float:
    """Return the Zipf frequency of a lowercase word (0 when unknown)."""
    freq = _frequencies().get(word)
    return math.log10(freq) + 9.0 if freq else 0.0


def _stems(word: str) -> list[str]:
    """Return plausible stems of an inflected word ("jumped" -> "jump", "jumpe", ...)."""
    stems: list[str] = []
    if word.endswith("'s"):
        stems.append(word[:-2])
    for suffix in ("ing", "ed", "es", "s", "ly", "est", "er"):
        if word.endswith(suffix) and len(word) > len(suffix) + 2:
            base = word[: -len(suffix)]
            stems += [base, base + "e"]
            if len(base) > 2 and base[-1] == base[-2]:
                stems.append(base[:-1])
            if base.endswith("i"):
                stems.append(base[:-1] + "y")
    return stems


@dataclass(frozen=True, slots=True)
class _WordInfo:
    """What the teacher needs to know about one lowercase word (cached)."""

    realness: float
    zipf: float
    syllables: int
    function: bool
    descriptive: bool
    stem: str


@lru_cache(maxsize=1 << 16)
def _word_info(word: str) -> _WordInfo:
    """Look a lowercase word up once: frequency, realness, syllables, flags and a stem."""
    function = word in _FUNCTION_WORDS
    if len(word) > _MAX_WORD_LEN:
        return _WordInfo(0.0, 0.0, max(1, len(word) // 3), False, False, word)
    zipf = _zipf(word)
    best = zipf
    if zipf < 3.0:
        best = max([zipf] + [_zipf(stem) - 0.3 for stem in _stems(word)])
    syllables = len(_hyphenator().positions(word)) + 1
    descriptive = not function and (
        word in _DESCRIPTIVE
        or (len(word) > 5 and best >= 2.0 and word.endswith(_DESCRIPTIVE_SUFFIXES))
    )
    stem = word[:-2] if word.endswith("'s") else word
    if len(stem) > 3 and stem.endswith("s") and not stem.endswith("ss"):
        stem = stem[:-1]
    return _WordInfo(
        realness=_clip((best - 1.0) / 1.5),
        zipf=zipf,
        syllables=syllables,
        function=function,
        descriptive=descriptive,
        stem=stem,
    )


@lru_cache(maxsize=256)
def _prompt_ngrams(prompt: str) -> frozenset[tuple[str, ...]]:
    """Return the lowercase word n-grams of a prompt (cached: prompts repeat)."""
    tokens = _TOKEN.findall(prompt.replace("\u2019", "'"))
    words = [token.lower() for token in tokens if token[0].isalpha()]
    return frozenset(zip(*(words[k:] for k in range(_COPY_N)), strict=False))
