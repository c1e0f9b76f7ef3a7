"""The paper's random-reward control: grades that ignore the story.

The paper compares learning from a real teacher with learning from a teacher that
answers at random. ``RandomTeacher`` gives each dimension an integer drawn uniformly from
``0..3``, so any gain a student shows under it comes from the training set-up (the
length bonus, the KL penalty, more steps), not from feedback about the story.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from story_env.errors import ConfigError
from story_env.teacher import DEFAULT_DIMENSIONS, Scores, StoryRequest


class RandomTeacher:
    """Grades every dimension with a uniform random integer in ``0..max_score``.

    Reproducible: the same seed and the same sequence of batch sizes give the same
    grades. Each call to ``score`` draws one block of numbers for the whole batch.

    Attributes:
        name: The registry name, ``"random"``.
        dimensions: ``("readability", "coherence", "creativity")``.
        max_score: ``3.0``, as in the paper's rubric.
    """

    name = "random"
    dimensions: tuple[str, ...] = DEFAULT_DIMENSIONS
    max_score = 3.0

    def __init__(self, *, seed: int = 0) -> None:
        """Create the teacher.

        Args:
            seed: Seed of the ``numpy.random.default_rng`` generator that draws the grades.
        """
        if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**32:
            raise ConfigError(
                f"the random teacher's seed must be a whole number from 0 to {2**32 - 1}, "
                f"got {seed!r}; e.g. --teacher-kwargs '{{\"seed\": 1}}'"
            )
        self.seed = seed
        self._rng = np.random.default_rng(seed)

    def score(self, requests: Sequence[StoryRequest]) -> list[Scores]:
        """Grade a batch at random; the stories and prompts are not read.

        Args:
            requests: The stories to grade.

        Returns:
            One ``Scores`` per request, each dimension an integer in ``0..3`` (as a float),
            with the drawn numbers as ``raw`` (e.g. ``"2 0 3"``, the paper's answer format).
        """
        top = int(self.max_score)
        draws = self._rng.integers(0, top + 1, size=(len(requests), len(self.dimensions)))
        results: list[Scores] = []
        for row in draws.tolist():
            values = {dim: float(value) for dim, value in zip(self.dimensions, row, strict=True)}
            raw = " ".join(str(value) for value in row)
            results.append(Scores.from_values(values, self.max_score, raw=raw))
        return results
