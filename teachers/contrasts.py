"""Contrast sets: held-out corpus stories and controlled corruptions of them.

A judge that sees meaning must rank an original story above the same story damaged in a
known way. Three corruptions, each keeping the words and changing one thing:

* ``sentence_shuffle``: the story's own sentences in another order (coherence);
* ``splice``: sentences drawn from several different stories (coherence, topic);
* ``word_shuffle``: the words of each sentence shuffled in place (grammar, fluency).

Used to build the ``lm`` teacher's calibration and by ``bench/bench_judges.py``, on the
corpus's validation split, which no student trains on: its first half calibrates, its
second half is only ever used to measure.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from story_env.teachers.lm_scoring import split_sentences
from story_env.teachers.rubric import PIECE_WORDS

CORRUPTIONS: tuple[str, ...] = ("sentence_shuffle", "splice", "word_shuffle")
"""Names of the corruptions, in order of how much they destroy."""


def truncate_words(story: str, words: int = PIECE_WORDS) -> str:
    """The story's first ``words`` words, cut back to the last full sentence if one ends
    in the second half (the teacher judges ~80-word stories)."""
    kept = story.split()[:words]
    text = " ".join(kept)
    sentences = split_sentences(" " + text)
    unfinished = not sentences[-1].rstrip().endswith((".", "!", "?", '"')) if sentences else False
    if unfinished and len(sentences) > 1 and len(" ".join(sentences[:-1]).split()) >= words // 2:
        text = "".join(sentences[:-1]).strip()
    return text


def sentence_shuffle(story: str, rng: random.Random) -> str:
    """The story's sentences in a different order (the same order only for one sentence)."""
    sents = [s.strip() for s in split_sentences(story)]
    if len(sents) < 2:
        return story
    order = list(range(len(sents)))
    while order == sorted(order):
        rng.shuffle(order)
    return " ".join(sents[k] for k in order)


def splice(stories: Sequence[str], index: int, rng: random.Random, sources: int = 6) -> str:
    """As many sentences as story ``index`` has, each from one of ``sources`` other stories."""
    own = [s.strip() for s in split_sentences(stories[index])]
    others = [k for k in range(len(stories)) if k != index]
    picked = rng.sample(others, min(sources, len(others)))
    pool = [s.strip() for k in picked for s in split_sentences(stories[k])]
    return " ".join(rng.sample(pool, min(len(own), len(pool))))


def word_shuffle(story: str, rng: random.Random) -> str:
    """Each sentence's words shuffled in place (the end punctuation stays last)."""
    out = []
    for sent in split_sentences(story):
        words = sent.split()
        if len(words) > 2:
            body, last = words[:-1], words[-1]
            rng.shuffle(body)
            words = [*body, last]
        out.append(" ".join(words))
    return " ".join(out)


def contrast_sets(stories: Sequence[str], seed: int = 0) -> dict[str, list[str]]:
    """The originals (truncated to ~80 words) and each corruption, aligned by index."""
    rng = random.Random(seed)
    originals = [truncate_words(s) for s in stories]
    return {
        "original": originals,
        "sentence_shuffle": [sentence_shuffle(s, rng) for s in originals],
        "splice": [splice(originals, i, rng) for i in range(len(originals))],
        "word_shuffle": [word_shuffle(s, rng) for s in originals],
    }
