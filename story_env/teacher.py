"""The teacher contract: what a grader receives and what it returns.

A teacher grades finished stories on a few named dimensions, each on a ``0..max_score``
scale (the paper's rubric: readability, narrative coherence, creativity, 0..3 each).
Teachers are batched: ``score`` takes a list of requests and returns one ``Scores`` per
request, in order. A teacher never turns a failure into a silent number: it returns a
``Scores`` whose ``error`` is set (and whose values are empty), and the caller's failure
policy decides what happens next.
"""

from __future__ import annotations

import contextlib
import math
import numbers
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

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
    def from_values(
        cls,
        values: Mapping[str, float],
        max_score: float,
        raw: str = "",
        dimensions: Sequence[str] | None = None,
    ) -> Scores:
        """Build a grade from per-dimension values; ``total`` is their mean scaled to [0, 1].

        The values are validated, never clipped: a value that is not a finite number in
        ``0..max_score`` (or, with ``dimensions``, a missing or extra dimension) gives a
        failed grade whose ``error`` names the value, so the caller's failure policy
        handles it like any other failed grade.

        Args:
            values: Score per dimension.
            max_score: The top of the scale.
            raw: The teacher's raw answer.
            dimensions: The dimensions the teacher promised, if they should be checked.

        Returns:
            A successful ``Scores``, or a failed one (``error`` starting ``"range:"`` for a
            value outside the scale, ``"invalid:"`` otherwise).
        """
        if not isinstance(values, Mapping):
            return cls.failed(
                f"invalid: expected a mapping of dimension -> score, got {_short(values)}", raw
            )
        problem = check_values(values, max_score, dimensions)
        if problem is not None:
            return cls.failed(problem, raw=raw)
        if not values:
            return cls.failed("invalid: no dimension scores", raw=raw)
        top = float(max_score)
        # only float rounding (within ROUNDING of an end) is snapped; see check_values
        clean = {str(k): min(top, max(0.0, float(v))) for k, v in values.items()}
        total = sum(clean.values()) / (len(clean) * top)
        return cls(values=clean, total=min(1.0, total), raw=raw)

    @classmethod
    def failed(cls, error: str, raw: str = "") -> Scores:
        """Build a failed grade carrying the reason."""
        return cls(values={}, total=None, raw=raw, error=error)


# Relative float-rounding tolerance at the ends of a scale: an expectation computed in
# float32 (e.g. the hf teacher's probability mode) can land 1e-7 above the top. Values
# within it are rounding and count as the end; anything further out is a failed grade.
ROUNDING = 1e-6


def _short(value: Any, limit: int = 80) -> str:
    """``repr(value)`` cut to ``limit`` characters, for error messages."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _is_number(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def check_values(
    values: Mapping[Any, Any], max_score: float, dimensions: Sequence[str] | None = None
) -> str | None:
    """Why ``values`` is not a valid grade, or ``None`` if it is.

    Valid: every value a finite real number (not a bool) in ``0..max_score``; with
    ``dimensions``, exactly those keys. The reason starts ``"range:"`` for a finite value
    outside the scale and ``"invalid:"`` for anything else.
    """
    if dimensions is not None and set(values) != set(dimensions):
        missing = [d for d in dimensions if d not in values]
        extra = sorted(str(k) for k in values if k not in dimensions)
        return (
            f"invalid: grade has dimensions {sorted(str(k) for k in values)}, expected "
            f"{list(dimensions)} (missing {missing}, unexpected {extra})"
        )
    slack = ROUNDING * float(max_score)
    for key, value in values.items():
        if not _is_number(value):
            return f"invalid: score for {key!r} is {_short(value)}, not a number"
        if not math.isfinite(float(value)):
            return f"invalid: score for {key!r} is {float(value)}, not a finite number"
        if not -slack <= float(value) <= float(max_score) + slack:
            return f"range: score {float(value)} for {key!r} is outside 0..{max_score:g}"
    return None


def check_scores(scores: Any, dimensions: Sequence[str], max_score: float) -> str | None:
    """Why a teacher's returned grade is unusable, or ``None`` if it is a valid ``Scores``.

    A failed ``Scores`` (``error`` set) is valid: it is a declared failure. A successful
    one must have exactly the teacher's dimensions, each a finite number in
    ``0..max_score``, and a finite ``total`` in [0, 1].
    """
    if not isinstance(scores, Scores):
        return f"invalid: expected a Scores object, got {_short(scores)}"
    if not isinstance(scores.raw, str):
        return f"invalid: raw answer must be text, got {_short(scores.raw)}"
    if not scores.ok:
        return None if isinstance(scores.error, str) else f"invalid: error {_short(scores.error)}"
    if not isinstance(scores.values, Mapping):
        return f"invalid: values must be a mapping, got {_short(scores.values)}"
    problem = check_values(scores.values, max_score, dimensions)
    if problem is not None:
        return problem
    total = scores.total
    if not _is_number(total) or not math.isfinite(float(total)):  # type: ignore[arg-type]
        return f"invalid: total is {_short(total)}, not a finite number"
    if not -ROUNDING <= float(total) <= 1.0 + ROUNDING:  # type: ignore[arg-type]
        return f"range: total {float(total)} is outside [0, 1]"  # type: ignore[arg-type]
    return None


@runtime_checkable
class Teacher(Protocol):
    """What every teacher provides. Plugins register a factory that returns one.

    A teacher that holds resources also defines ``close() -> None``, which releases
    them: HTTP clients and their worker threads, SQLite handles of the grade cache,
    llama.cpp servers, loaded models and their caches. ``close`` is idempotent (closing
    twice is safe), and a closed teacher stays usable: its next ``score`` reopens what it
    needs. A teacher without resources need not define it (the heuristic and random
    teachers do not), so ``close`` is not part of this protocol: call
    ``close_teacher(teacher)``, which calls it when it is there. ``env.close()`` does.
    """

    name: str
    dimensions: tuple[str, ...]
    max_score: float

    def score(self, requests: Sequence[StoryRequest]) -> list[Scores]:
        """Grade a batch of stories; return one ``Scores`` per request, in order."""
        ...


def close_teacher(teacher: object) -> None:
    """Release what ``teacher`` holds: call its ``close()`` if it defines one.

    Safe to call more than once, and on any object (one without ``close`` is left alone).
    """
    close = getattr(teacher, "close", None)
    if callable(close):
        close()


_ON_GRADED: ContextVar[Callable[[int], None] | None] = ContextVar(
    "storytelling_on_graded", default=None
)


@contextlib.contextmanager
def grading_progress(callback: Callable[[int], None]) -> Iterator[None]:
    """Call ``callback(n)`` each time a teacher inside this block finishes a chunk of
    ``n`` stories (a progress bar's ``update``), for long grading such as a held-out
    judge over an evaluation's stories. Outside such a block nothing is reported.
    """
    token = _ON_GRADED.set(callback)
    try:
        yield
    finally:
        _ON_GRADED.reset(token)


def report_graded(n: int) -> None:
    """What a batched teacher calls after grading each chunk of ``n`` stories."""
    callback = _ON_GRADED.get()
    if callback is not None:
        callback(n)
