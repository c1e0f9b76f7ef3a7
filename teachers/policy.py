"""What a teacher does when it fails to grade a story, and the counts of those failures.

A failure is anything that leaves a story without a valid grade: the backend is down,
times out or answers with an HTTP error, or the answer does not parse or is out of
range. A failure is never silently a number. Every teacher built on ``JudgeTeacher``
declares one ``FailurePolicy``:

* ``retries=N``: ask again up to N times (a fresh request; transport retries with
  backoff happen inside the backend before this), then apply ``on_failure``;
* ``on_failure="raise"``: raise ``TeacherError``;
* ``on_failure="skip"``: return a failed ``Scores`` (``error`` set, no values); the env's
  ``teacher_fallback`` then gives a flagged reward, or the env raises if it is ``None``;
* ``on_failure="fallback"``: return ``FallbackScores`` with the declared
  ``fallback_score`` on every dimension; its ``raw`` starts with ``FALLBACK`` and its
  ``fallback_error`` says why, so logs and the info dict can tell it from a real grade.

Each outcome is counted in ``FailureCounts`` and logged at WARNING level.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Literal

from story_env.errors import ConfigError
from story_env.teacher import Scores

logger = logging.getLogger("story_env.teachers")

OnFailure = Literal["raise", "skip", "fallback"]
ON_FAILURE_CHOICES: tuple[str, ...] = ("raise", "skip", "fallback")


@dataclass(frozen=True)
class FallbackScores(Scores):
    """A declared fallback grade standing in for a failed one.

    Attributes:
        fallback_error: The failure that the fallback replaced.
    """

    fallback_error: str = ""


@dataclass(frozen=True)
class FailurePolicy:
    """How a teacher handles a story it could not grade.

    Attributes:
        on_failure: ``"raise"``, ``"skip"`` or ``"fallback"`` after the retries are spent.
        retries: Extra attempts per story after a failure (0 = no retry).
        fallback_score: Per-dimension score used by ``"fallback"``, in ``0..max_score``.
    """

    on_failure: OnFailure = "skip"
    retries: int = 1
    fallback_score: float | None = None

    def __post_init__(self) -> None:
        if self.on_failure not in ON_FAILURE_CHOICES:
            raise ConfigError(
                f"on_failure must be one of {', '.join(ON_FAILURE_CHOICES)}, got "
                f"{self.on_failure!r}; for retries pass retries=N together with one of them"
            )
        if isinstance(self.retries, bool) or not isinstance(self.retries, int) or self.retries < 0:
            raise ConfigError(f"retries must be an int >= 0, got {self.retries!r}")
        if self.on_failure == "fallback" and self.fallback_score is None:
            raise ConfigError(
                "on_failure='fallback' needs a declared fallback_score (e.g. fallback_score=0.0)"
            )
        if self.on_failure != "fallback" and self.fallback_score is not None:
            raise ConfigError(
                f"fallback_score={self.fallback_score!r} is only used with on_failure='fallback', "
                f"got on_failure={self.on_failure!r}"
            )

    def check_range(self, max_score: float) -> None:
        """Raise ``ConfigError`` if ``fallback_score`` is outside ``0..max_score``."""
        if self.fallback_score is not None and not 0 <= self.fallback_score <= max_score:
            raise ConfigError(
                f"fallback_score must be in 0..{max_score}, got {self.fallback_score!r}"
            )


@dataclass
class FailureCounts:
    """Running counts of one teacher's grading work (per process).

    Attributes:
        stories: Stories asked for.
        graded: Stories that got a real grade (from the backend, the cache or the rubric).
        cache_hits: Grades served from the cache.
        rubric_zeros: Stories scored 0 0 0 by the short-story rule without a backend call.
        backend_calls: Stories sent to the backend (each attempt counts).
        failures: Failed attempts, by kind (``format``, ``range``, ``http``, ``timeout``...).
        retried: Attempts repeated after a failure.
        skipped: Stories returned as failed ``Scores`` (``on_failure="skip"``).
        fallbacks: Stories given the declared fallback score.
        raised: Failures that raised ``TeacherError``.
    """

    stories: int = 0
    graded: int = 0
    cache_hits: int = 0
    rubric_zeros: int = 0
    backend_calls: int = 0
    failures: Counter[str] = field(default_factory=Counter)
    retried: int = 0
    skipped: int = 0
    fallbacks: int = 0
    raised: int = 0

    def as_dict(self) -> dict[str, Any]:
        """A JSON-able snapshot."""
        return {
            "stories": self.stories,
            "graded": self.graded,
            "cache_hits": self.cache_hits,
            "rubric_zeros": self.rubric_zeros,
            "backend_calls": self.backend_calls,
            "failures": dict(self.failures),
            "failed_attempts": sum(self.failures.values()),
            "retried": self.retried,
            "skipped": self.skipped,
            "fallbacks": self.fallbacks,
            "raised": self.raised,
        }


def failure_kind(error: str) -> str:
    """The kind prefix of an error string written as ``"kind: message"``."""
    head, sep, _ = error.partition(":")
    return head.strip() if sep and head.strip().isidentifier() else "other"
