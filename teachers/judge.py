"""``JudgeTeacher``: the grading loop shared by the LLM teachers (hf, llamacpp, api).

A subclass supplies the backend: ``_complete`` (one answer text per story, or an
exception) for generate-and-parse teachers, or ``_grade_batch`` (one ``Scores`` per
story) for teachers that read scores another way. The base class does the rest, in this
order, for every batch:

1. the rubric's short-story rule: an empty or sub-sentence story is ``0 0 0`` at once;
2. the cache (``story_env.teachers.cache``): a story graded before under the same configuration
   and rubric version is not sent again;
3. the backend, in chunks of ``batch_size``; each answer is parsed strictly
   (``story_env.teachers.rubric.parse_answer``);
4. the failure policy (``story_env.teachers.policy``) for stories still without a grade after
   ``retries`` extra attempts; every outcome is counted in ``stats``.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypedDict, Unpack

from story_env.errors import ConfigError, DependencyMissingError, TeacherError
from story_env.teacher import Scores, StoryRequest, check_scores, report_graded
from story_env.teachers import rubric
from story_env.teachers.cache import GradeCache, config_hash, grade_key, open_cache
from story_env.teachers.policy import FailureCounts, FailurePolicy, FallbackScores, failure_kind

logger = logging.getLogger("story_env.teachers")

SHORT_STORY_RAW = f"[{rubric.RUBRIC_VERSION}: shorter than one sentence -> 0 0 0]"


@dataclass(frozen=True)
class JudgeOptions:
    """How a judge batches, caches and handles failures: the options every LLM judge
    (``hf``, ``llamacpp``, ``api``, ``lm``) takes, declared and validated here once.

    Each judge class sets its defaults in ``default_options``; its constructor takes the
    same names as keyword arguments (``JudgeKwargs``), which override them.
    """

    batch_size: int = 8
    """Stories sent to the backend at once."""
    on_failure: str = "skip"
    """``"raise"``, ``"skip"`` or ``"fallback"`` after the retries (see ``story_env.teachers.policy``)."""
    retries: int = 1
    """Extra attempts for a story whose grade failed."""
    fallback_score: float | None = None
    """Per-dimension score for ``on_failure="fallback"``."""
    cache: str | bool | None = None
    """``None`` (no cache), ``True``/``"default"`` or a SQLite file path."""
    policy: FailurePolicy = field(init=False, repr=False, compare=False)
    """The failure policy built from ``on_failure``, ``retries`` and ``fallback_score``."""

    def __post_init__(self) -> None:
        size = self.batch_size
        if isinstance(size, bool) or not isinstance(size, int) or size < 1:
            raise ConfigError(f"batch_size must be an int >= 1, got {size!r}")
        policy = FailurePolicy(self.on_failure, self.retries, self.fallback_score)  # type: ignore[arg-type]
        object.__setattr__(self, "policy", policy)

    def override(self, owner: str, overrides: JudgeKwargs) -> JudgeOptions:
        """These options with ``overrides`` (a judge's keyword arguments) applied.

        Raises:
            TypeError: For a name that is not an option, worded as Python words an
                unknown keyword argument of ``owner`` (the registry turns it into a
                ``ConfigError`` that lists the arguments given).
            ConfigError: For an invalid value.
        """
        names = {f.name for f in dataclasses.fields(self) if f.init}
        for key in overrides:
            if key not in names:
                raise TypeError(f"{owner}() got an unexpected keyword argument {key!r}")
        return dataclasses.replace(self, **overrides)


class JudgeKwargs(TypedDict, total=False):
    """The keyword arguments that set ``JudgeOptions`` (for typing ``**options``)."""

    batch_size: int
    on_failure: str
    retries: int
    fallback_score: float | None
    cache: str | bool | None


class JudgeTeacher:
    """Base class of the teachers that ask a language model to apply the rubric.

    Args:
        **options: ``batch_size``, ``on_failure``, ``retries``, ``fallback_score`` and
            ``cache``: see ``JudgeOptions``; unset ones come from ``default_options``.

    Attributes:
        options: The validated options.
        policy: The failure policy (``options.policy``).
        cache: The grade cache, or ``None``.
    """

    name = "judge"
    dimensions: tuple[str, ...] = rubric.DIMENSIONS
    max_score: float = float(rubric.MAX_SCORE)
    rubric_version: str = rubric.RUBRIC_VERSION
    default_options: ClassVar[JudgeOptions] = JudgeOptions()

    def __init__(self, **options: Unpack[JudgeKwargs]) -> None:
        self.options = self.default_options.override(f"{type(self).__name__}.__init__", options)
        self.policy = self.options.policy
        self.policy.check_range(self.max_score)
        self.cache: GradeCache | None = open_cache(self.options.cache)
        self.counts = FailureCounts()
        self._digest: str | None = None

    @property
    def batch_size(self) -> int:
        """Stories sent to the backend at once (``options.batch_size``)."""
        return self.options.batch_size

    def close(self) -> None:
        """Release what the judge holds: the grade cache's SQLite connection.

        Subclasses release their backend too (and call this). Idempotent; the judge stays
        usable: its next ``score`` reopens what it needs.
        """
        if self.cache is not None:
            self.cache.close()

    # --- what subclasses provide --------------------------------------------------------
    def grade_config(self) -> dict[str, Any]:
        """What determines this teacher's grades (JSON-able, no secrets); keys the cache."""
        return {"teacher": self.name}

    def _complete(self, requests: Sequence[StoryRequest]) -> list[str | Exception]:
        """Ask the backend; one answer text (or the exception that stopped it) per story."""
        raise NotImplementedError(f"{type(self).__name__} must implement _complete or _grade_batch")

    def _grade_batch(self, requests: Sequence[StoryRequest]) -> list[Scores]:
        """Grade one chunk (at most ``batch_size`` stories); failures as failed ``Scores``."""
        out = []
        for answer in self._complete(requests):
            if isinstance(answer, Exception):
                out.append(Scores.failed(_describe(answer)))
                continue
            try:
                values = rubric.parse_answer(answer, self.dimensions, int(self.max_score))
            except rubric.AnswerError as exc:
                out.append(Scores.failed(f"{exc.kind}: {exc}", raw=answer))
            else:
                out.append(
                    Scores.from_values(
                        values, self.max_score, raw=answer, dimensions=self.dimensions
                    )
                )
        return out

    # --- the loop -----------------------------------------------------------------------
    @property
    def config_digest(self) -> str:
        """Hash of ``grade_config()`` (computed once)."""
        if self._digest is None:
            self._digest = config_hash(self.grade_config())
        return self._digest

    @property
    def stats(self) -> dict[str, Any]:
        """Counts of stories, cache hits, backend calls and failures (see ``FailureCounts``)."""
        return self.counts.as_dict()

    def score(self, requests: Sequence[StoryRequest]) -> list[Scores]:
        """Grade a batch of stories; one ``Scores`` per request, in order.

        Raises:
            TeacherError: If a story cannot be graded and ``on_failure="raise"``.
        """
        requests = list(requests)
        out: list[Scores | None] = [None] * len(requests)
        self.counts.stories += len(requests)
        pending: list[int] = []
        for i, request in enumerate(requests):
            if rubric.is_below_one_sentence(request.story):
                out[i] = Scores.from_values(
                    dict.fromkeys(self.dimensions, 0.0), self.max_score, raw=SHORT_STORY_RAW
                )
                self.counts.rubric_zeros += 1
            else:
                pending.append(i)
        keys: dict[int, str] = {}
        if self.cache is not None and pending:
            keys = {
                i: grade_key(self.config_digest, self.rubric_version, requests[i]) for i in pending
            }
            found = self.cache.get_many(keys.values())
            for i in pending:
                if keys[i] in found:
                    out[i] = found[keys[i]]
            self.counts.cache_hits += sum(out[i] is not None for i in pending)
            pending = [i for i in pending if out[i] is None]
        fresh: list[int] = []
        errors: list[str] = []
        attempt = 0
        while pending:
            results = self._attempt([requests[i] for i in pending])
            retry: list[int] = []
            for i, result in zip(pending, results, strict=True):
                if result.ok:
                    out[i] = result
                    fresh.append(i)
                    continue
                error = result.error or "other: unknown failure"
                self.counts.failures[failure_kind(error)] += 1
                if attempt < self.policy.retries:
                    self.counts.retried += 1
                    logger.info(
                        "teacher %s: attempt %d failed (%s); retrying",
                        self.name,
                        attempt + 1,
                        error,
                    )
                    retry.append(i)
                else:
                    out[i] = self._give_up(result, errors)
            pending, attempt = retry, attempt + 1
        if self.cache is not None and fresh:
            self.cache.put_many(
                [(keys[i], out[i]) for i in fresh if out[i] is not None],
                teacher=self.name,
                digest=self.config_digest,
                rubric=self.rubric_version,
            )
        self.counts.graded += sum(
            s is not None and s.ok and not isinstance(s, FallbackScores) for s in out
        )
        if errors:
            raise TeacherError(
                f"teacher {self.name!r} failed to grade {len(errors)} of {len(requests)} stories "
                f"after {self.policy.retries} retries: {errors[0]}. Pass on_failure='skip' or "
                "on_failure='fallback' with fallback_score=<0..3> to continue instead."
            )
        return [s if s is not None else Scores.failed("other: not graded") for s in out]

    def _attempt(self, requests: list[StoryRequest]) -> list[Scores]:
        """Grade ``requests`` chunk by chunk; a misbehaving backend gives failed grades.

        A backend that raises, returns the wrong type or count, or a grade that is not
        finite and in ``0..max_score`` with this teacher's dimensions, yields failed
        ``Scores`` naming what it returned, which the retries and the failure policy then
        handle. Setup errors (``ConfigError``, ``DependencyMissingError``) still raise.
        """
        results: list[Scores] = []
        size = self.options.batch_size
        for start in range(0, len(requests), size):
            chunk = requests[start : start + size]
            self.counts.backend_calls += len(chunk)
            try:
                graded = self._grade_batch(chunk)
            except (ConfigError, DependencyMissingError):
                raise
            except Exception as exc:
                error = f"backend: {type(exc).__name__}: {exc}"
                results.extend(Scores.failed(error) for _ in chunk)
                continue
            finally:
                report_graded(len(chunk))
            if not isinstance(graded, list | tuple) or len(graded) != len(chunk):
                got = f"{len(graded)} grades" if isinstance(graded, list | tuple) else repr(graded)
                error = (
                    f"count: teacher {self.name!r} backend returned {got[:80]} for "
                    f"{len(chunk)} stories"
                )
                results.extend(Scores.failed(error) for _ in chunk)
                continue
            for grade in graded:
                problem = check_scores(grade, self.dimensions, self.max_score)
                if problem is None:
                    results.append(grade)
                else:
                    raw = (
                        grade.raw
                        if isinstance(grade, Scores) and isinstance(grade.raw, str)
                        else ""
                    )
                    results.append(Scores.failed(problem, raw=raw))
        return results

    def _give_up(self, failed: Scores, errors: list[str]) -> Scores:
        error = failed.error or "other: unknown failure"
        if self.policy.on_failure == "raise":
            self.counts.raised += 1
            errors.append(error)
            logger.warning("teacher %s: grade failed, raising: %s", self.name, error)
            return failed
        if self.policy.on_failure == "skip":
            self.counts.skipped += 1
            logger.warning("teacher %s: grade failed, story skipped: %s", self.name, error)
            return failed
        self.counts.fallbacks += 1
        score = float(self.policy.fallback_score or 0.0)
        logger.warning("teacher %s: grade failed, fallback %s used: %s", self.name, score, error)
        values = dict.fromkeys(self.dimensions, score)
        total = score / self.max_score
        return FallbackScores(
            values=values,
            total=total,
            raw=f"FALLBACK {score} ({error}); answer: {failed.raw}",
            fallback_error=error,
        )


def _describe(exc: Exception) -> str:
    """A failure string ``"kind: message"`` for a backend exception."""
    kind = getattr(exc, "kind", None) or "backend"
    return f"{kind}: {type(exc).__name__}: {exc}"
