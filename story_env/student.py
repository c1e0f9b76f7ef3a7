"""The student contract: a tokenizer (the env's vocabulary) and an agent that writes.

The env takes its action space from the chosen student's tokenizer, so a policy's
action ids and the env's token ids always agree. Agents follow stable-baselines3's
``predict`` signature, so a trained SB3 model and a baseline agent are used the same way.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

import numpy as np


@runtime_checkable
class StoryTokenizer(Protocol):
    """The few tokenizer operations the env needs."""

    vocab_size: int
    eos_token_id: int

    def encode(self, text: str) -> list[int]:
        """Token ids of ``text`` (no special tokens added)."""
        ...

    def decode(self, ids: Sequence[int]) -> str:
        """Text of ``ids``; special tokens are dropped."""
        ...


class ByteTokenizer:
    """UTF-8 bytes as tokens (ids 0..255) plus an end-of-story token (id 256).

    Works offline with no training; the default vocabulary of the baseline students.
    """

    vocab_size = 257
    eos_token_id = 256

    def encode(self, text: str) -> list[int]:
        return list(text.encode("utf-8"))

    def decode(self, ids: Sequence[int]) -> str:
        return bytes(int(i) for i in ids if 0 <= int(i) < 256).decode("utf-8", errors="replace")

    def __repr__(self) -> str:
        return "ByteTokenizer(vocab_size=257)"


@runtime_checkable
class Agent(Protocol):
    """Anything with stable-baselines3's ``predict``: observations in, token ids out."""

    def predict(
        self,
        observation: np.ndarray,
        state: Any = None,
        episode_start: np.ndarray | None = None,
        deterministic: bool = False,
    ) -> tuple[np.ndarray, Any]:
        """Return the next token id for each observation row (and a recurrent state)."""
        ...


class TokenAgent:
    """Base of the agents that pick each row's next token on their own (no recurrent state).

    Subclasses implement ``act``; ``predict`` gives it the observation as a batch of rows
    and returns one token id for a single observation, an array for a batch, as
    stable-baselines3's ``predict`` does.
    """

    def predict(
        self,
        observation: np.ndarray,
        state: Any = None,
        episode_start: np.ndarray | None = None,
        deterministic: bool = False,
    ) -> tuple[np.ndarray, None]:
        """Return the next token id for each observation row (and no recurrent state)."""
        obs = np.asarray(observation)
        actions = self.act(obs[None, :] if obs.ndim == 1 else obs, deterministic)
        return (actions if obs.ndim > 1 else actions[0]), None

    def act(self, rows: np.ndarray, deterministic: bool) -> np.ndarray:
        """The next token id of each row of ``rows`` (batch, seq), as int64 (batch,)."""
        raise NotImplementedError


@runtime_checkable
class Student(Protocol):
    """What a student plugin's factory returns."""

    name: str
    tokenizer: StoryTokenizer

    def make_agent(self, *, seed: int | None = None) -> Agent:
        """An agent that writes with this student's vocabulary."""
        ...


@runtime_checkable
class TrainableStudent(Student, Protocol):
    """A student that ``storytelling train`` can fine-tune (registered ``trainable=True``).

    Besides the tokenizer and agent of every student, it has ``model``: a transformers
    causal LM (``config``, ``get_output_embeddings()``) whose LM head scores the
    tokenizer's vocabulary. The RL policy copies it as its actor, the KL reference keeps a
    frozen copy. ``context_length`` is the model's window in tokens, if known.
    """

    model: Any
    context_length: int | None


def is_trainable(student: object) -> bool:
    """Whether ``student`` keeps the ``TrainableStudent`` contract (its model included)."""
    model = getattr(student, "model", None)
    return (
        isinstance(student, TrainableStudent)
        and hasattr(model, "config")
        and callable(getattr(model, "get_output_embeddings", None))
    )
