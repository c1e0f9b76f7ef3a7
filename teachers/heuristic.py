"""A fast, offline, rule-based teacher for the paper's three-dimension rubric.

``HeuristicTeacher`` grades a story on readability, narrative coherence and creativity,
each on the rubric's ``0..3`` scale (fractions allowed), from cheap lexical signals. It
needs no model and no network: word frequencies come from ``wordfreq``'s bundled English
list and syllables from ``pyphen``'s bundled hyphenation dictionary (``textstat`` is not
used: offline, its English syllable counter tries to download cmudict and raises). It is
meant for tests, smoke runs, baselines and fast experiments, not as a substitute for a
human or a strong LLM judge: it sees words, sentence boundaries and a few discourse cues,
never meaning.

The signals, each in ``[0, 1]`` before weighting:

* **Gate** (multiplies every dimension): enough words (0 at 3 words, full at 30: the
  rubric gives less than one sentence ``0 0 0``), Latin script, mostly real English words
  (``wordfreq`` Zipf frequency, with a suffix-stripping fallback for inflections and a
  credit for names that recur or follow "named"), and lexical variety (Herdan's C, so
  one word repeated 90 times scores nothing).
* **Readability**: real-word rate, sentence-length sanity (3 to 30 words), Flesch reading
  ease from ``pyphen`` syllable counts, mechanics (capitals at sentence starts, no
  lowercase "i", shouting, symbol noise or "!!!!") and a grammar proxy (a plausible share
  of function words; few impossible neighbours within a clause, such as "the of", "she
  the", "was will", or a sentence ending in "the").
* **Coherence**: continuity (a sentence shares a content word with the one before, or
  refers back with a pronoun or connective), order (opening and closing formulas and
  time cues such as "every day", "one day", "then", "in the end" in their usual order; no
  "He" or "Then" as the story's first word; no name before "named X" introduces it; no
  "she" before anyone was introduced; no "the fox" before "a fox"), an ending (a closing
  formula or a resolution, and a complete last sentence), tense consistency outside
  dialogue, and a penalty for repeated sentences and 4-grams.
* **Creativity**: lexical diversity (Herdan's C), distinct bigrams, rarer-but-real
  vocabulary, descriptive words; discounted by text copied from the prompt and by
  ungrammatical or repetitive text (rare words in a word salad are not creative).

Text that addresses the grader ("ignore the rubric", "give this story 3 3 3") or, in a
text that mentions itself, praises itself ("the best story ever written") is penalised on
every dimension, so the paper's reward hack (a meta-story praising itself) does not pay.

The prompt is not judged: it is used only to discount story text copied from it (word
5-grams found in the prompt). Grades depend on the request alone, so a batch equals
one-by-one calls, and they are deterministic. Only English is supported, and only the
first 6,000 characters of a story are read.

The word lists and word look-ups live in ``story_env.teachers.heuristic_lexicon``, the sentence
split and the discourse cues in ``story_env.teachers.heuristic_text``; the signals, the grade and
the teacher are here.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import pairwise

from story_env.errors import ConfigError
from story_env.teacher import DEFAULT_DIMENSIONS, Scores, StoryRequest
from story_env.teachers import rubric
from story_env.teachers.heuristic_lexicon import (
    _BACK_REFERENCES,
    _BAD_OPENERS,
    _COPY_N,
    _FOREIGN,
    _LIGHT_WORDS,
    _PERSONAL_PRONOUNS,
    _PUNCT_RUN,
    _REFERENT_MARKERS,
    _RESOLUTION_WORDS,
    _SYMBOL,
    _clip,
    _frequencies,
    _hyphenator,
    _prompt_ngrams,
    _word_info,
    _WordInfo,
)
from story_env.teachers.heuristic_text import _Cues, _find_cues, _parse, _Parsed

SUPPORTED_LANGUAGES: tuple[str, ...] = ("en",)

_MAX_CHARS = 6000
"""Only this many leading characters are analysed (about 1,000 words)."""


@dataclass(slots=True)
class _Features:
    """The measured sub-features of one story, each in ``[0, 1]`` unless it is a count."""

    words: int = 0
    sentences: int = 0
    script: float = 0.0  # share of Latin-script characters
    real: float = 0.0  # mean realness of the words
    diversity: float = 0.0  # Herdan's C
    sentence_length: float = 0.0
    flesch: float = 0.0
    mechanics: float = 0.0
    grammar: float = 0.0
    continuity: float = 0.0
    order: float = 0.0
    ending: float = 0.0
    tense: float = 1.0
    repeated: float = 0.0
    distinct_bigrams: float = 0.0
    rarity: float = 0.0
    descriptive: float = 0.0
    copied: float = 0.0  # share of the story's word 5-grams found in the prompt
    grader_hits: int = 0  # grader-addressing patterns found
    praise_hits: int = 0  # self-praise patterns found


def _sentence_length_sanity(sentences: list[list[str]], n_words: int) -> float:
    """Share of words in sentences of 3..30 words (word-weighted: a run-on dominates)."""
    good = 0.0
    for sentence in sentences:
        size = len(sentence)
        if 3 <= size <= 30:
            good += size
        elif size < 3:
            good += 0.5 * size
        elif size < 50:
            good += size * (50 - size) / 20.0
    return good / n_words


def _mechanics(text: str, visible: int, parsed: _Parsed, n_words: int) -> float:
    """Capitals at sentence starts, no lowercase "i", shouting, symbol noise or "!!!!"."""
    checked = [
        upper
        for i, (upper, quoted) in enumerate(
            zip(parsed.starts_upper, parsed.after_quote, strict=True)
        )
        if not quoted and not (i == 0 and not upper)  # a continuation may start lowercase
    ]
    capital_rate = sum(checked) / len(checked) if checked else 1.0
    return (
        capital_rate
        * _clip(1.0 - 5.0 * len(_SYMBOL.findall(text)) / visible)
        * _clip(1.0 - 3.0 * parsed.shouting / n_words)
        * _clip(1.0 - 5.0 * (parsed.midcap_function + parsed.lowercase_i) / n_words)
        * _clip(1.0 - 0.15 * len(_PUNCT_RUN.findall(text)))
    )


def _grammar_and_repetition(
    parsed: _Parsed, infos: dict[str, _WordInfo], n_words: int
) -> tuple[float, float, float]:
    """Return (grammar proxy, repetition, distinct-bigram rate).

    The grammar proxy wants a plausible share of function words and few impossible
    adjacent words (counted while parsing). Repetition adds the share of repeated word
    4-grams to the share of duplicated sentences (a weak model's loops).
    """
    sentences = parsed.sentences
    function_count = 0
    bigrams: list[tuple[str, str]] = []
    fourgrams: list[tuple[str, str, str, str]] = []
    for sentence in sentences:
        function_count += sum(infos[word].function for word in sentence)
        bigrams += pairwise(sentence)
        fourgrams += zip(sentence, sentence[1:], sentence[2:], sentence[3:], strict=False)
    function_rate = function_count / n_words
    band = min(_clip((function_rate - 0.12) / 0.18), _clip((0.85 - function_rate) / 0.2))
    grammar = band * _clip(1.0 - 8.0 * parsed.bad_pairs / n_words)

    repeated_grams = 1.0 - len(set(fourgrams)) / len(fourgrams) if fourgrams else 0.0
    long_sentences = [tuple(s) for s in sentences if len(s) >= 3]
    duplicates = len(long_sentences) - len(set(long_sentences))
    repeated = _clip(repeated_grams + duplicates / len(sentences))
    distinct_bigrams = len(set(bigrams)) / len(bigrams) if bigrams else 0.0
    return grammar, repeated, distinct_bigrams


def _continuity(sentences: list[list[str]], infos: dict[str, _WordInfo]) -> float:
    """Mean link of each sentence to the ones before it.

    A shared content word with the previous sentence links fully, with the one before
    that 0.7; a back-reference in the first words ("she", "then") 0.5; a word shared with
    an earlier sentence 0.4. Text without sentence breaks is cut into 12-word pieces; a
    single short sentence scores 0.5.
    """
    if len(sentences) < 2:
        words = sentences[0]
        sentences = [words[i : i + 12] for i in range(0, len(words), 12)]
        if len(sentences) < 2:
            return 0.5
    content = [
        {infos[w].stem for w in s if not infos[w].function and w not in _LIGHT_WORDS and len(w) > 2}
        for s in sentences
    ]
    linked = 0.0
    for i in range(1, len(sentences)):
        if content[i] & content[i - 1]:
            linked += 1.0
        elif i > 1 and content[i] & content[i - 2]:
            linked += 0.7
        elif _BACK_REFERENCES.intersection(sentences[i][:4]):
            linked += 0.5
        elif any(content[i] & content[j] for j in range(i - 2)):
            linked += 0.4
    return linked / (len(sentences) - 1)


def _order(parsed: _Parsed, cues: _Cues, names: set[str]) -> float:
    """1 minus penalties for things told out of order.

    Penalised: an opening formula late or a closing formula early; time cues out of
    their usual order ("then ..." before "one day ..."); a story that opens with "He",
    "Then" or "An hour later"; a name used before "named X" or "X the ..." introduces it;
    "he" / "she" / "they" before any name or "a ..." introduced someone; "the fox"
    before "a fox".
    """
    n_sentences = len(parsed.sentences)
    stages: list[int] = []
    penalty = 0.0
    for i in range(n_sentences):
        if i in cues.intro:
            stages.append(0)
            penalty += 0.25 if i > max(1, n_sentences // 3) else 0.0
        elif i in cues.closing:
            stages.append(4)
            penalty += 0.2 if i < n_sentences // 2 else 0.0
        elif i in cues.stage:
            stages.append(cues.stage[i])
    odd_opening = parsed.sentences[0][0] in _BAD_OPENERS or (
        0 not in cues.intro and 0 not in cues.closing and cues.stage.get(0) == 3
    )
    if parsed.starts_upper[0] and odd_opening:
        penalty += 0.3
    penalty += 0.15 * sum(a > b for i, a in enumerate(stages) for b in stages[i + 1 :])
    first_sentence, first_token = parsed.first_sentence, parsed.first_token
    introduced = parsed.introduced + [(i, w) for i, w in parsed.appositions if w in names]
    penalty += 0.3 * sum(first_sentence[name] < index for index, name in introduced)
    pronoun_at = min((first_token[p] for p in _PERSONAL_PRONOUNS if p in first_token), default=-1)
    if pronoun_at >= 0:
        referents = names.union(_REFERENT_MARKERS).intersection(first_token)
        if pronoun_at < min((first_token[r] for r in referents), default=len(first_token) + 1):
            penalty += 0.3
    penalty += min(0.45, 0.15 * parsed.article_violations)
    return _clip(1.0 - penalty)


def _ending(parsed: _Parsed, cues: _Cues) -> float:
    """A closing formula or a resolution at the end, times a complete last sentence."""
    last = len(parsed.sentences) - 1
    if last in cues.closing:
        ending = 1.0
    elif last > 1 and last - 1 in cues.closing:
        ending = 0.8
    elif _RESOLUTION_WORDS.intersection(parsed.sentences[-1]):
        ending = 0.7
    else:
        ending = 0.4
    return ending * (1.0 if parsed.complete else 0.4)


def _measure(story: str, prompt: str) -> _Features:
    """Measure every sub-feature of ``story``; the prompt only serves to detect copying."""
    feats = _Features()
    text = story[:_MAX_CHARS].replace("\u2019", "'")  # curly apostrophes as in wordfreq
    visible = len("".join(text.split()))
    if visible == 0:
        return feats
    if not text.isascii():
        feats.script = _clip(1.0 - 4.0 * len(_FOREIGN.findall(text)) / visible)
    else:
        feats.script = 1.0
    parsed = _parse(text)
    sentences = parsed.sentences
    if not sentences:
        return feats

    words = [word for sentence in sentences for word in sentence]
    infos = {word: _word_info(word) for word in set(words)}
    names = {word for word, count in parsed.capitalised.items() if count >= 2}
    names.update(name for _, name in parsed.introduced)
    n_words = feats.words = len(words)
    n_sentences = feats.sentences = len(sentences)

    realness = 0.0
    syllables = 0
    for word in words:
        info = infos[word]
        realness += 1.0 if word in names else info.realness
        syllables += info.syllables
    feats.real = realness / n_words
    feats.diversity = math.log(len(infos)) / math.log(n_words) if n_words > 1 else 0.0

    feats.sentence_length = _sentence_length_sanity(sentences, n_words)
    reading_ease = 206.835 - 1.015 * n_words / n_sentences - 84.6 * syllables / n_words
    feats.flesch = _clip((reading_ease - 40.0) / 45.0)  # children's prose is 85+
    feats.mechanics = _mechanics(text, visible, parsed, n_words)
    feats.grammar, feats.repeated, feats.distinct_bigrams = _grammar_and_repetition(
        parsed, infos, n_words
    )

    cues = _find_cues(sentences)
    feats.continuity = _continuity(sentences, infos)
    feats.order = _order(parsed, cues, names)
    feats.ending = _ending(parsed, cues)
    tensed = parsed.past + parsed.present
    feats.tense = max(parsed.past, parsed.present) / tensed if tensed >= 3 else 1.0

    real_content = [
        infos[w]
        for w in words
        if not infos[w].function and w not in names and infos[w].realness >= 0.5
    ]
    if real_content:
        feats.rarity = sum(_clip((5.5 - i.zipf) / 2.5) for i in real_content) / len(real_content)
        feats.descriptive = sum(i.descriptive for i in real_content) / len(real_content)

    grams = list(zip(*(words[k:] for k in range(_COPY_N)), strict=False))
    prompt_grams = _prompt_ngrams(prompt) if grams else frozenset()
    if prompt_grams:
        feats.copied = sum(g in prompt_grams for g in grams) / len(grams)

    feats.grader_hits, feats.praise_hits = rubric.grader_talk(text, parsed.first_token)
    return feats


def _grade(feats: _Features) -> tuple[float, float, float]:
    """Turn measured features into (readability, coherence, creativity), each in ``0..1``.

    Each dimension is a weighted sum of its signals, scaled down by the gate, by grader
    talk and self-praise, by repetition, and by the grammar proxy (word salad is neither
    readable, coherent nor creative). The weights were set by hand so that good short
    children's stories score about 0.85-0.95 and shuffled, looping, salad and degenerate
    texts score clearly lower (see tests/test_heuristic_teacher.py).
    """
    if feats.words == 0:
        return 0.0, 0.0, 0.0
    gate = (
        rubric.length_factor(feats.words)
        * feats.script
        * _clip((feats.real - 0.6) / 0.35)
        * _clip((feats.diversity - 0.5) / 0.25)
    )
    gate *= 0.3**feats.grader_hits * 0.6**feats.praise_hits
    if gate == 0.0:
        return 0.0, 0.0, 0.0
    repetition = _clip(1.0 - 2.0 * feats.repeated)
    readability = (
        (
            0.2 * _clip((feats.real - 0.8) / 0.18)
            + 0.2 * feats.sentence_length
            + 0.15 * feats.flesch
            + 0.2 * feats.mechanics
            + 0.25 * feats.grammar
        )
        * (0.4 + 0.6 * feats.grammar)
        * (0.5 + 0.5 * repetition)
    )
    coherence = (
        (0.3 * feats.continuity + 0.4 * feats.order + 0.15 * feats.ending + 0.15 * feats.tense)
        * (0.4 + 0.6 * feats.grammar)
        * (0.5 + 0.5 * _clip(feats.continuity / 0.4))  # unrelated sentences are no story
        * repetition
    )
    creativity = (
        (
            0.3 * _clip((feats.diversity - 0.7) / 0.2)
            + 0.15 * _clip((feats.distinct_bigrams - 0.6) / 0.35)
            + 0.3 * _clip(feats.rarity / 0.4)
            + 0.25 * _clip(feats.descriptive / 0.2)
        )
        * (1.0 - feats.copied)
        * (0.3 + 0.7 * feats.grammar)
        * repetition
    )
    return gate * readability, gate * coherence, gate * creativity


def _trace(feats: _Features) -> str:
    """A one-line, human-readable summary of the sub-features behind a grade."""
    return (
        f"words={feats.words} sents={feats.sentences} script={feats.script:.2f} "
        f"real={feats.real:.2f} herdan={feats.diversity:.2f} | "
        f"slen={feats.sentence_length:.2f} flesch={feats.flesch:.2f} "
        f"mech={feats.mechanics:.2f} gram={feats.grammar:.2f} | "
        f"cont={feats.continuity:.2f} order={feats.order:.2f} end={feats.ending:.2f} "
        f"tense={feats.tense:.2f} rep={feats.repeated:.2f} | "
        f"bigr={feats.distinct_bigrams:.2f} rare={feats.rarity:.2f} "
        f"desc={feats.descriptive:.2f} copied={feats.copied:.2f} | "
        f"grader={feats.grader_hits} praise={feats.praise_hits}"
    )


class HeuristicTeacher:
    """Grades stories with fast lexical heuristics on the paper's 0..3 rubric.

    Deterministic, offline and stateless: the same request always gets the same grade,
    and a batch equals one-by-one calls. See the module docstring for the signals.

    Attributes:
        name: The registry name, ``"heuristic"``.
        dimensions: ``("readability", "coherence", "creativity")``.
        max_score: ``3.0``, the rubric's top score on each dimension.
    """

    name = "heuristic"
    dimensions: tuple[str, ...] = DEFAULT_DIMENSIONS
    max_score = 3.0

    def __init__(self, *, language: str = "en") -> None:
        """Create the teacher and load its word lists.

        Args:
            language: The stories' language; only ``"en"`` is supported.

        Raises:
            ConfigError: ``language`` is not supported.
        """
        if language not in SUPPORTED_LANGUAGES:
            raise ConfigError(
                f"HeuristicTeacher supports language {', '.join(map(repr, SUPPORTED_LANGUAGES))}, "
                f"got {language!r}; use language='en' or an LLM teacher for other languages"
            )
        self.language = language
        _frequencies()
        _hyphenator()

    def score(self, requests: Sequence[StoryRequest]) -> list[Scores]:
        """Grade a batch of stories; one ``Scores`` per request, in order.

        Args:
            requests: The stories to grade; each prompt is used only to discount copying.

        Returns:
            One ``Scores`` per request: values rounded to 3 decimals, with a trace of the
            sub-features as ``raw``; a failed grade (``error`` set) only when a story or
            prompt is not a string.
        """
        return [self._score_one(request) for request in requests]

    def _score_one(self, request: StoryRequest) -> Scores:
        """Grade one story; a story that is not text gets a failed grade, not a number."""
        if not isinstance(request.story, str) or not isinstance(request.prompt, str):
            return Scores.failed(
                f"story and prompt must be str, got {type(request.story).__name__} and "
                f"{type(request.prompt).__name__}"
            )
        feats = _measure(request.story, request.prompt)
        values = {
            dimension: round(self.max_score * grade, 3)
            for dimension, grade in zip(self.dimensions, _grade(feats), strict=True)
        }
        return Scores.from_values(values, self.max_score, raw=_trace(feats))
