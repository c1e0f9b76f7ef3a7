"""Turning a teacher's grade into a scalar reward."""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from story_env.errors import ConfigError, TeacherError
from story_env.teacher import ROUNDING, Scores

# A validated grade may sit float rounding past the top (``teacher.ROUNDING``), and the
# normalised weights sum to 1 only up to rounding: this tolerance absorbs that and nothing
# else, since the scores themselves are validated before they get here.
_ROUNDING = 2 * ROUNDING


def finite_number(name: str, value: Any, hint: str = "") -> float:
    """``value`` as a float, or a ``ConfigError`` naming ``name`` if it is not a finite number.

    Args:
        name: The setting's name, for the message.
        value: What the user gave.
        hint: The fix, appended to the message (e.g. ``"the paper uses 0.4"``).
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ConfigError(f"{name} must be a number, got {value!r}" + (f"; {hint}" if hint else ""))
    number = float(value)
    if not math.isfinite(number):
        raise ConfigError(
            f"{name} must be a finite number, got {number}" + (f"; {hint}" if hint else "")
        )
    return number


def check_length_bonus(value: Any) -> float:
    """The paper's length bonus ``b`` as a float, or a ``ConfigError`` naming the value."""
    bonus = finite_number("length_bonus", value, "the paper uses 0.4 (0 = off)")
    if bonus < 0:
        raise ConfigError(f"length_bonus must be >= 0, got {value}; the paper uses 0.4")
    return bonus


@dataclass(frozen=True)
class RewardConfig:
    """How per-dimension scores become one reward in [0, 1].

    Attributes:
        dimensions: The teacher's dimension names, in order.
        max_score: The top of the teacher's scale (3 in the paper's rubric).
        weights: One non-negative weight per dimension (normalised to sum 1).
        length_bonus: The paper's ``b``: reward = (teacher + b * words / max_new_tokens) / (1 + b).
        max_new_tokens: The story length limit used by the length bonus.
    """

    dimensions: tuple[str, ...]
    max_score: float
    weights: tuple[float, ...]
    length_bonus: float
    max_new_tokens: int

    @classmethod
    def build(
        cls,
        dimensions: Sequence[str],
        max_score: float,
        weights: Sequence[float] | Mapping[str, float] | None,
        length_bonus: float,
        max_new_tokens: int,
    ) -> RewardConfig:
        """Validate user input and build the config; errors name the value and the fix.

        Raises:
            ConfigError: A weight, the length bonus or the teacher's ``max_score`` is not a
                finite number in its range, or the weights do not match the dimensions.
        """
        dims = tuple(dimensions)
        if not dims:
            raise ConfigError("the teacher declares no dimensions; a teacher needs at least one")
        top = finite_number("the teacher's max_score", max_score)
        if top <= 0:
            raise ConfigError(f"the teacher's max_score must be > 0, got {max_score!r}")
        if weights is None:
            w = tuple(1.0 for _ in dims)
        elif isinstance(weights, Mapping):
            unknown = sorted(str(k) for k in set(weights) - set(dims))
            if unknown:
                raise ConfigError(
                    f"reward weights name unknown dimensions {unknown}; "
                    f"the teacher's dimensions are {list(dims)}"
                )
            w = tuple(
                finite_number(f"reward weight {d!r}", weights.get(d, 0.0), "give weights >= 0")
                for d in dims
            )
        elif isinstance(weights, str | bytes) or not isinstance(weights, Sequence):
            raise ConfigError(
                f"reward weights must be a list (one per dimension {list(dims)}) or a dict, "
                f"got {weights!r}"
            )
        else:
            w = tuple(
                finite_number(f"reward weight {i} ({x!r})", x, "give weights >= 0")
                for i, x in enumerate(weights)
            )
            if len(w) != len(dims):
                raise ConfigError(
                    f"reward weights {list(weights)} have length {len(w)}, but the teacher has "
                    f"{len(dims)} dimensions {list(dims)}; give one weight per dimension"
                )
        if any(x < 0 for x in w) or sum(w) <= 0:
            raise ConfigError(f"reward weights {list(w)} must be non-negative with a positive sum")
        bonus = check_length_bonus(length_bonus)
        total = sum(w)
        if not math.isfinite(total):
            raise ConfigError(f"reward weights {list(w)} are too large to sum; scale them down")
        return cls(dims, top, tuple(x / total for x in w), bonus, max_new_tokens)

    def teacher_score(self, scores: Scores) -> float:
        """The weighted mean of the dimensions, scaled to [0, 1].

        Raises:
            TeacherError: If the result is not in [0, 1] (the scores were not validated).
        """
        value = sum(
            wt * scores.values[d] for wt, d in zip(self.weights, self.dimensions, strict=True)
        )
        score = value / self.max_score
        if not -_ROUNDING <= score <= 1.0 + _ROUNDING:  # also False for NaN
            raise TeacherError(
                f"teacher score {score} is outside [0, 1]; the grade {dict(scores.values)} "
                f"was not validated against 0..{self.max_score:g}"
            )
        return min(1.0, max(0.0, score))  # rounding only (see _ROUNDING)

    def reward(self, scores: Scores, words: int) -> float:
        """The final-step reward for a graded story of ``words`` words."""
        teacher = self.teacher_score(scores)
        if not self.length_bonus:
            return teacher
        length = min(1.0, words / self.max_new_tokens)
        return (teacher + self.length_bonus * length) / (1.0 + self.length_bonus)
