"""Statistics for evaluations: the mean of a set of scores and its 95% interval."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from story_env.errors import ConfigError

#: How ``mean_ci`` computes its interval (reported with every evaluation).
CI_METHOD = "95% percentile bootstrap of the mean (10,000 resamples, seed 0)"
_BOOTSTRAP_RESAMPLES = 10_000


def mean_ci(
    values: Sequence[float], bounds: tuple[float, float] | None = None
) -> tuple[float, float, float]:
    """Mean and 95% confidence interval of the mean, by percentile bootstrap.

    The interval is the 2.5th and 97.5th percentiles of the means of 10,000 resamples
    (with replacement, seeded, so the same values give the same interval). A resampled
    mean lies between the smallest and largest value, so the interval never leaves the
    range the scores live in (a score in [0, 1] never gets a bound below 0), and nothing
    is clipped; a normal approximation (mean +- 1.96 s / sqrt(n)) did leave it for
    scores near the ends. With one value there is no spread to resample: the interval
    is ``bounds`` if given (nothing is known), else the value itself.

    Args:
        values: Finite scores.
        bounds: The range the scores live in, e.g. ``(0.0, 1.0)``; checked when given.

    Raises:
        ConfigError: No values, a value that is not finite, or one outside ``bounds``.
    """
    arr = np.asarray(values, dtype=float)
    if arr.ndim != 1 or not len(arr):
        raise ConfigError("mean_ci needs at least one value; evaluate at least one story")
    if not np.isfinite(arr).all():
        raise ConfigError(f"mean_ci got a value that is not finite: {arr[~np.isfinite(arr)][0]}")
    if bounds is not None and ((arr < bounds[0]).any() or (arr > bounds[1]).any()):
        raise ConfigError(f"mean_ci got values outside {list(bounds)}: {arr.min()}..{arr.max()}")
    mean = float(arr.mean())
    if len(arr) == 1:
        low, high = bounds if bounds is not None else (mean, mean)
        return mean, float(low), float(high)
    rng = np.random.default_rng(0)
    chunk = max(1, 1_000_000 // len(arr))  # rows per draw: bounded memory for large n
    means = np.concatenate(
        [
            arr[
                rng.integers(0, len(arr), size=(min(chunk, _BOOTSTRAP_RESAMPLES - k), len(arr)))
            ].mean(axis=1)
            for k in range(0, _BOOTSTRAP_RESAMPLES, chunk)
        ]
    )
    low, high = np.percentile(means, [2.5, 97.5])
    return mean, float(low), float(high)
