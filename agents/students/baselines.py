"""Baseline students: uniformly random tokens, and a token n-gram model trained from text.

Both read the env's observation (prompt and story token ids, padded with
``vocab_size``) and return one token id per row, like stable-baselines3's ``predict``.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from importlib import resources

import numpy as np

from story_env.errors import ConfigError
from story_env.student import ByteTokenizer, StoryTokenizer, TokenAgent


class RandomAgent(TokenAgent):
    """Picks every token uniformly at random (end-of-story included)."""

    def __init__(self, vocab_size: int, seed: int | None = None) -> None:
        self.vocab_size = vocab_size
        self.rng = np.random.default_rng(seed)

    def act(self, rows: np.ndarray, deterministic: bool) -> np.ndarray:
        """A uniformly random token id per row (``deterministic`` is ignored)."""
        return self.rng.integers(0, self.vocab_size, size=len(rows))


class NGramModel:
    """A token n-gram model with backoff to shorter contexts, counted from text.

    Args:
        order: n; the next token is predicted from the previous ``order - 1`` tokens.
    """

    def __init__(self, order: int) -> None:
        if order < 1:
            raise ConfigError(f"n-gram order must be >= 1, got {order}; try order=4")
        self.order = order
        self.counts: list[dict[tuple[int, ...], Counter[int]]] = [
            defaultdict(Counter) for _ in range(order)
        ]
        self._tables: dict[tuple[int, tuple[int, ...]], tuple[np.ndarray, np.ndarray]] = {}

    def fit(self, sequences: Iterable[Sequence[int]]) -> NGramModel:
        for seq in sequences:
            seq = list(seq)
            for i, token in enumerate(seq):
                for n in range(self.order):
                    if i - n < 0:
                        break
                    self.counts[n][tuple(seq[i - n : i])][token] += 1
        self._tables.clear()
        return self

    def _table(self, n: int, context: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
        key = (n, context)
        if key not in self._tables:
            counter = self.counts[n][context]
            tokens = np.fromiter(counter.keys(), dtype=np.int64)
            weights = np.fromiter(counter.values(), dtype=np.float64)
            self._tables[key] = (tokens, np.cumsum(weights) / weights.sum())
        return self._tables[key]

    def sample(self, history: Sequence[int], rng: np.random.Generator, greedy: bool) -> int:
        for n in range(self.order - 1, -1, -1):
            context = tuple(history[len(history) - n :]) if n else ()
            if len(context) == n and context in self.counts[n]:
                tokens, cdf = self._table(n, context)
                if greedy:
                    return int(tokens[np.argmax(np.diff(cdf, prepend=0.0))])
                return int(tokens[min(np.searchsorted(cdf, rng.random()), len(tokens) - 1)])
        raise ConfigError("the n-gram model was fitted on no text; give it some stories")


@dataclass
class NGramAgent(TokenAgent):
    """Samples each token from an n-gram model given the observation's last tokens."""

    model: NGramModel
    pad_id: int
    seed: int | None = None
    rng: np.random.Generator = field(init=False)

    def __post_init__(self) -> None:
        self.rng = np.random.default_rng(self.seed)

    def act(self, rows: np.ndarray, deterministic: bool) -> np.ndarray:
        """Each row's next token from the n-gram model (the most frequent if ``deterministic``)."""
        context = self.model.order - 1
        actions = np.empty(len(rows), dtype=np.int64)
        for i, row in enumerate(rows):
            length = int(np.count_nonzero(row != self.pad_id))
            history = row[max(0, length - context) : length].tolist()
            actions[i] = self.model.sample(history, self.rng, deterministic)
        return actions


def seed_stories() -> list[str]:
    """A few short stories written for this project, used when no corpus is given."""
    text = resources.files("story_env.agents").joinpath("data/seed_stories.txt").read_text("utf-8")
    return [s.strip() for s in text.split("\n\n") if s.strip()]


class RandomStudent:
    """The ``random`` student: byte vocabulary, uniformly random tokens."""

    name = "random"

    def __init__(self) -> None:
        self.tokenizer: StoryTokenizer = ByteTokenizer()

    def make_agent(self, *, seed: int | None = None) -> RandomAgent:
        return RandomAgent(self.tokenizer.vocab_size, seed)


class NGramStudent:
    """The ``ngram`` student: a byte n-gram model trained on stories.

    Args:
        order: n of the n-gram model (default 5: four bytes of context).
        text_file: A UTF-8 file of stories separated by blank lines; default: the
            project's seed stories.
    """

    name = "ngram"

    def __init__(self, *, order: int = 5, text_file: str | None = None) -> None:
        self.tokenizer: StoryTokenizer = ByteTokenizer()
        if text_file is None:
            stories = seed_stories()
        else:
            try:
                with open(text_file, encoding="utf-8") as fh:
                    stories = [s.strip() for s in fh.read().split("\n\n") if s.strip()]
            except OSError as exc:
                raise ConfigError(f"cannot read n-gram text_file {text_file!r}: {exc}") from exc
        eos = self.tokenizer.eos_token_id
        self.model = NGramModel(order).fit(
            [*self.tokenizer.encode(" " + story), eos] for story in stories
        )

    def make_agent(self, *, seed: int | None = None) -> NGramAgent:
        return NGramAgent(self.model, pad_id=self.tokenizer.vocab_size, seed=seed)
