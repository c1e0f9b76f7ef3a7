"""Novelty within a rollout: how much of a story no other story of its rollout also says.

RL on a teacher's grade finds an opening or a phrase that pays and writes it every time
(docs/results.md: after the demo's training most stories open alike). ``StoryPPO``'s
``novelty_coef`` adds ``novelty_coef * rollout_novelty(...)`` to each story's grade
before the story advantage standardises the grades, so of two stories the teacher
grades alike the one that repeats its rollout's neighbours less is reinforced more.

A story's novelty is the share of its distinct word bigrams that no other story of the
rollout holds. Words are the story lowercased and split at whitespace, as distinct-n
counts them in every evaluation. Bigrams: the two-word opening and the stock phrases a
collapsed student repeats are bigrams; on the demo's stories a story's bigram novelty
spreads about half as wide over a rollout as its grade does (sd ~0.05 vs ~0.09), so a
coefficient near 1 gives it a say without drowning the teacher.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import numpy as np

NOVELTY_N = 2
"""The n of the word n-grams compared (bigrams)."""


def _bigrams(story: str) -> set[tuple[str, ...]]:
    words = story.lower().split()
    return {tuple(words[i : i + NOVELTY_N]) for i in range(len(words) - NOVELTY_N + 1)}


def rollout_novelty(stories: Sequence[str]) -> np.ndarray:
    """Each story's share of distinct word bigrams that no other story of the set holds.

    A story with no bigram (fewer than two words) says nothing new: its novelty is 0. A
    lone story has no neighbour to repeat: 1 (if it has a bigram).

    >>> rollout_novelty(["the cat sat", "the cat ran", "a dog barked"]).tolist()
    [0.5, 0.5, 1.0]
    """
    grams = [_bigrams(s) for s in stories]
    holders = Counter(g for story in grams for g in story)  # how many stories hold each
    return np.array(
        [sum(holders[g] == 1 for g in story) / len(story) if story else 0.0 for story in grams],
        dtype=np.float64,
    )
