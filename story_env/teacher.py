"""The teacher contract: what a grader receives and what it returns.

A teacher grades finished stories on a few named dimensions, each on a ``0..max_score``
scale (the paper's rubric: readability, narrative coherence, creativity, 0..3 each).
Teachers are batched: ``score`` takes a list of requests and returns one ``Scores`` per
request, in order. A teacher never turns a failure into a silent number: it returns a
``Scores`` whose ``error`` is set (and whose values are empty), and the caller's failure
policy decides what happens next.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

DEFAULT_DIMENSIONS: tuple[str, ...] = ("readability", "coherence", "creativity")


@dataclass(frozen=True)
class StoryRequest:
    """One story to grade.

    Attributes:
        prompt: The text the story was asked to continue; teachers do not grade it.
        story: The student's continuation only (decoded text, without the prompt).
    """

    prompt: str
    story: str


@dataclass(frozen=True)
class Scores:
    """A teacher's grade of one story.

    Attributes:
        values: Per-dimension scores, each in ``0..max_score`` (fractions allowed).
            Empty when ``error`` is set.
        total: The unweighted mean of ``values`` divided by ``max_score``, in [0, 1];
            ``None`` when ``error`` is set.
        raw: The teacher's raw answer (model text, or a short trace for heuristics).
        error: Why grading failed, or ``None`` on success.
    """

    values: Mapping[str, float] = field(default_factory=dict)
    total: float | None = None
    raw: str = ""
    error: str | None = None

    @property
    def ok(self) -> bool:
        """True when the teacher produced a grade."""
        return self.error is None

    @classmethod
    def from_values(cls, values: Mapping[str, float], max_score: float, raw: str = "") -> Scores:
        """Build a successful grade; ``total`` is the mean score scaled to [0, 1]."""
        total = sum(values.values()) / (len(values) * max_score) if values else 0.0
        return cls(values=dict(values), total=min(1.0, max(0.0, total)), raw=raw)

    @classmethod
    def failed(cls, error: str, raw: str = "") -> Scores:
        """Build a failed grade carrying the reason."""
        return cls(values={}, total=None, raw=raw, error=error)


@runtime_checkable
class Teacher(Protocol):
    """What every teacher provides. Plugins register a factory that returns one."""

    name: str
    dimensions: tuple[str, ...]
    max_score: float

    def score(self, requests: Sequence[StoryRequest]) -> list[Scores]:
        """Grade a batch of stories; return one ``Scores`` per request, in order."""
        ...
