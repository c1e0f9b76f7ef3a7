"""Statistics for evaluations: the mean of a set of scores and its 95% interval, the
statistics of a few seeds, and intervals of any statistic of a set of stories."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from story_env.errors import ConfigError

#: Resamples of every percentile bootstrap here unless told otherwise.
BOOTSTRAP_RESAMPLES = 10_000
#: How ``mean_ci`` computes its interval (reported with every evaluation).
CI_METHOD = f"95% percentile bootstrap of the mean ({BOOTSTRAP_RESAMPLES:,} resamples, seed 0)"
_CHUNK = 1_000_000  # numbers per bootstrap draw: bounded memory for many items


def percentile_ci(stats: Sequence[float] | np.ndarray) -> tuple[float, float]:
    """The 2.5th and 97.5th percentiles of a statistic's bootstrap values: the ends of
    its 95% percentile interval (every bootstrap of this project reads them here)."""
    low, high = np.percentile(np.asarray(stats, dtype=float), [2.5, 97.5])
    return float(low), float(high)


def mean_ci(
    values: Sequence[float], bounds: tuple[float, float] | None = None
) -> tuple[float, float, float]:
    """Mean and 95% confidence interval of the mean, by percentile bootstrap.

    ``bootstrap_ci`` of the mean: the interval is the 2.5th and 97.5th percentiles of the
    means of ``BOOTSTRAP_RESAMPLES`` resamples (with replacement, seeded, so the same
    values give the same interval). A resampled mean lies between the smallest and
    largest value, so the interval never leaves the range the scores live in (a score in
    [0, 1] never gets a bound below 0), and nothing is clipped; a normal approximation
    (mean +- 1.96 s / sqrt(n)) did leave it for scores near the ends. With one value
    there is no spread to resample: the interval is ``bounds`` if given (nothing is
    known), else the value itself.

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
    if len(arr) == 1 and bounds is not None:
        return float(arr[0]), float(bounds[0]), float(bounds[1])
    return bootstrap_ci(lambda idx: arr[idx].mean(axis=1), len(arr))


# --- few seeds: Agarwal et al. 2021 -----------------------------------------------------
# "Deep Reinforcement Learning at the Edge of the Statistical Precipice" (NeurIPS 2021):
# with 3-10 seeds a mean is swayed by one run and a max by luck; they report the
# interquartile mean with a stratified bootstrap interval, and the probability that one
# algorithm beats another. Their library (rliable) is archived; these are the same
# statistics, in numpy with a seeded generator.

#: How ``iqm_ci`` and ``improvement_ci`` compute their intervals (reported with them).
SEEDS_CI_METHOD = (
    f"95% percentile stratified bootstrap over seeds ({BOOTSTRAP_RESAMPLES:,} resamples, seed 0; "
    "Agarwal et al. 2021)"
)


def _seed_scores(values: Sequence[float] | Sequence[Sequence[float]], what: str) -> np.ndarray:
    """``values`` as a (seeds, tasks) array of finite numbers: a flat sequence is one task."""
    arr = np.asarray(values, dtype=float)
    if arr.ndim == 1:
        arr = arr[:, None]
    if arr.ndim != 2 or not arr.size:
        raise ConfigError(
            f"{what} needs a score per seed (or per seed and task), got shape {arr.shape}; "
            "train at least one seed"
        )
    if not np.isfinite(arr).all():
        raise ConfigError(f"{what} got a score that is not finite: {arr[~np.isfinite(arr)][0]}")
    return arr


def iqm(values: Sequence[float] | Sequence[Sequence[float]]) -> float:
    """The interquartile mean: the mean of the middle 50% of the scores.

    The lowest and highest ``floor(n / 4)`` of the ``n`` scores (all tasks pooled, as
    ``scipy.stats.trim_mean(x, 0.25)``) are left out: IQM of 1..8 is the mean of 3..6,
    4.5. With fewer than 4 scores nothing is trimmed (the mean).

    Raises:
        ConfigError: No scores, or one that is not finite.
    """
    return float(_trimmed(_seed_scores(values, "iqm").reshape(1, -1))[0])


def _trimmed(rows: np.ndarray) -> np.ndarray:
    """The interquartile mean of each row of ``rows`` (resamples, scores)."""
    n = rows.shape[1]
    cut = n // 4
    return np.sort(rows, axis=1)[:, cut : n - cut].mean(axis=1)


def _resample(arr: np.ndarray, rng: np.random.Generator, count: int) -> np.ndarray:
    """``count`` stratified resamples of a (seeds, tasks) array: seeds drawn with
    replacement within each task; (count, seeds * tasks)."""
    seeds, tasks = arr.shape
    picks = rng.integers(0, seeds, size=(count, seeds, tasks))
    return arr[picks, np.arange(tasks)].reshape(count, seeds * tasks)


def iqm_ci(
    values: Sequence[float] | Sequence[Sequence[float]], *, resamples: int = BOOTSTRAP_RESAMPLES
) -> tuple[float, float, float]:
    """Interquartile mean over seeds and its 95% stratified bootstrap interval.

    Args:
        values: One score per seed (e.g. a run's mean teacher score), or a (seeds, tasks)
            array: seeds are resampled within each task, never across tasks.
        resamples: Bootstrap resamples (seeded, so the same scores give the same interval).

    Returns:
        ``(iqm, low, high)``. With one seed the interval is that seed's score: there is
        no spread to resample, and nothing is claimed beyond the one run.
    """
    arr = _seed_scores(values, "iqm_ci")
    rng = np.random.default_rng(0)
    per = max(1, _CHUNK // arr.size)
    stats = np.concatenate(
        [_trimmed(_resample(arr, rng, min(per, resamples - k))) for k in range(0, resamples, per)]
    )
    return float(_trimmed(arr.reshape(1, -1))[0]), *percentile_ci(stats)


def _improvement(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """P(X > Y) of each resample: x (count, n, tasks), y (count, m, tasks) -> (count,)."""
    wins = x[:, :, None, :] > y[:, None, :, :]  # (count, n, m, tasks)
    ties = x[:, :, None, :] == y[:, None, :, :]
    return (wins + 0.5 * ties).mean(axis=(1, 2, 3))


def probability_of_improvement(
    x: Sequence[float] | Sequence[Sequence[float]], y: Sequence[float] | Sequence[Sequence[float]]
) -> float:
    """P(X > Y): how likely a run of algorithm X scores above a run of Y on a task.

    The mean over every pair of X's and Y's seeds of ``1[x > y] + 0.5 * 1[x == y]`` (the
    Mann-Whitney U statistic over ``n * m``), averaged over tasks: 1 when every x beats
    every y, 0.5 for the same scores, ``1 - P(Y > X)`` always.

    Raises:
        ConfigError: No scores, one that is not finite, or X and Y on different tasks.
    """
    a, b = _pair(x, y)
    return float(_improvement(a[None], b[None])[0])


def _pair(
    x: Sequence[float] | Sequence[Sequence[float]], y: Sequence[float] | Sequence[Sequence[float]]
) -> tuple[np.ndarray, np.ndarray]:
    a = _seed_scores(x, "probability_of_improvement")
    b = _seed_scores(y, "probability_of_improvement")
    if a.shape[1] != b.shape[1]:
        raise ConfigError(
            f"probability_of_improvement compares runs on the same tasks; X has "
            f"{a.shape[1]} task(s), Y has {b.shape[1]}"
        )
    return a, b


def improvement_ci(
    x: Sequence[float] | Sequence[Sequence[float]],
    y: Sequence[float] | Sequence[Sequence[float]],
    *,
    resamples: int = BOOTSTRAP_RESAMPLES,
) -> tuple[float, float, float]:
    """P(X > Y) (``probability_of_improvement``) and its 95% stratified bootstrap
    interval: X's and Y's seeds are resampled separately (within each task).

    Returns:
        ``(p, low, high)``.
    """
    a, b = _pair(x, y)
    rng = np.random.default_rng(0)
    tasks = a.shape[1]
    per = max(1, _CHUNK // (a.shape[0] * b.shape[0] * tasks))
    stats = []
    for k in range(0, resamples, per):
        count = min(per, resamples - k)
        ra = _resample(a, rng, count).reshape(count, a.shape[0], tasks)
        rb = _resample(b, rng, count).reshape(count, b.shape[0], tasks)
        stats.append(_improvement(ra, rb))
    return float(_improvement(a[None], b[None])[0]), *percentile_ci(np.concatenate(stats))


# --- statistics of a set of stories --------------------------------------------------------
def bootstrap_ci(
    statistic: Callable[[np.ndarray], np.ndarray],
    n: int,
    *,
    resamples: int = BOOTSTRAP_RESAMPLES,
    seed: int = 0,
) -> tuple[float, float, float]:
    """A statistic of ``n`` items and its 95% percentile bootstrap interval.

    ``statistic`` takes a (k, n) array of item indices (each row one resample, drawn with
    replacement; the point estimate is the row ``0..n-1``) and returns the k values, so a
    statistic can be computed for many resamples at once (a median, a share).

    Returns:
        ``(value, low, high)``; with one item the interval is the value itself.

    Raises:
        ConfigError: ``n`` below 1 or ``resamples`` below 1.
    """
    if n < 1 or resamples < 1:
        raise ConfigError(f"bootstrap_ci needs n >= 1 and resamples >= 1, got {n}, {resamples}")
    value = float(statistic(np.arange(n)[None, :])[0])
    if n == 1:
        return value, value, value
    rng = np.random.default_rng(seed)
    per = max(1, _CHUNK // n)
    stats = np.concatenate(
        [
            np.asarray(statistic(rng.integers(0, n, size=(min(per, resamples - k), n))))
            for k in range(0, resamples, per)
        ]
    )
    return value, *percentile_ci(stats)


def jackknife_ci(
    statistic: Callable[[np.ndarray], float | None], n: int
) -> tuple[float, float, float]:
    """A statistic of a set of ``n`` items and its 95% delete-one jackknife interval.

    For a statistic of the whole set that a duplicated item would bias (distinct n-grams,
    compression: a story drawn twice adds words but no new n-gram, and compresses to
    almost nothing), where a bootstrap's resamples, a third of them repeats, would shift
    every value down. ``statistic`` takes the indices of the items to use; the interval
    is ``value +- 1.96 * se`` with ``se**2 = (n - 1) / n * sum((t_i - mean(t))**2)`` over
    the ``n`` sets that leave one item out (Efron and Stein 1981). It is a normal
    interval and is reported as computed, never cut: for a statistic with a range (a
    share in [0, 1]) and a handful of items its ends can pass the range's, which says
    the interval is that wide, not that a value out there can occur.

    Returns:
        ``(value, low, high)``; with one item the interval is the value itself.

    Raises:
        ConfigError: The statistic is undefined (``None`` or not finite) for the whole
            set or for a set that leaves one item out (e.g. distinct-3 when only one
            story holds a 3-gram): an interval from the other sets would be invented.
    """
    everything = np.arange(n)
    value = _defined(statistic(everything), "the whole set")
    if n == 1:
        return value, value, value
    left_out = np.array(
        [
            _defined(statistic(np.delete(everything, i)), f"the set without item {i}")
            for i in range(n)
        ]
    )
    se = float(np.sqrt((n - 1) / n * ((left_out - left_out.mean()) ** 2).sum()))
    return value, value - 1.96 * se, value + 1.96 * se


def _defined(value: float | None, which: str) -> float:
    """``value`` as a float, or a ConfigError saying which set left the statistic undefined."""
    if value is None or not np.isfinite(value):
        raise ConfigError(
            f"jackknife_ci: the statistic is undefined ({value}) for {which}; it has no "
            "delete-one interval (report it as not measured)"
        )
    return float(value)
