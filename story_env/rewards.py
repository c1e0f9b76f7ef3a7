"""Turning a teacher's grade into a scalar reward."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from story_env.errors import ConfigError
from story_env.teacher import Scores


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
        """Validate user input and build the config; errors name the value and the fix."""
        dims = tuple(dimensions)
        if weights is None:
            w = tuple(1.0 for _ in dims)
        elif isinstance(weights, Mapping):
            unknown = sorted(set(weights) - set(dims))
            if unknown:
                raise ConfigError(
                    f"reward weights name unknown dimensions {unknown}; "
                    f"the teacher's dimensions are {list(dims)}"
                )
            w = tuple(float(weights.get(d, 0.0)) for d in dims)
        else:
            w = tuple(float(x) for x in weights)
            if len(w) != len(dims):
                raise ConfigError(
                    f"reward weights {list(weights)} have length {len(w)}, but the teacher has "
                    f"{len(dims)} dimensions {list(dims)}; give one weight per dimension"
                )
        if any(x < 0 for x in w) or sum(w) <= 0:
            raise ConfigError(f"reward weights {list(w)} must be non-negative with a positive sum")
        if length_bonus < 0:
            raise ConfigError(f"length_bonus must be >= 0, got {length_bonus}; the paper uses 0.4")
        total = sum(w)
        return cls(
            dims, float(max_score), tuple(x / total for x in w), length_bonus, max_new_tokens
        )

    def teacher_score(self, scores: Scores) -> float:
        """The weighted mean of the dimensions, scaled to [0, 1]."""
        value = sum(
            wt * scores.values[d] for wt, d in zip(self.weights, self.dimensions, strict=True)
        )
        return min(1.0, max(0.0, value / self.max_score))

    def reward(self, scores: Scores, words: int) -> float:
        """The final-step reward for a graded story of ``words`` words."""
        teacher = self.teacher_score(scores)
        if not self.length_bonus:
            return teacher
        length = min(1.0, words / self.max_new_tokens)
        return (teacher + self.length_bonus * length) / (1.0 + self.length_bonus)
