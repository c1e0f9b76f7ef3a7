"""Statistics over few seeds (Agarwal et al. 2021) and ``compare``'s report of them."""

from __future__ import annotations

import json

import numpy as np
import pytest

from story_env.errors import ConfigError
from story_env.run.stats import (
    BOOTSTRAP_RESAMPLES,
    CI_METHOD,
    SEEDS_CI_METHOD,
    bootstrap_ci,
    improvement_ci,
    iqm,
    iqm_ci,
    jackknife_ci,
    mean_ci,
    percentile_ci,
    probability_of_improvement,
)


# --- hand-made scores with known answers ------------------------------------------------
def test_iqm_is_the_mean_of_the_middle_half():
    assert iqm(list(range(1, 9))) == pytest.approx(4.5)  # the mean of 3, 4, 5, 6
    assert iqm([8, 1, 7, 2, 6, 3, 5, 4]) == pytest.approx(4.5)  # order does not matter
    assert iqm([0.0, 0.5, 0.5, 100.0]) == pytest.approx(0.5)  # one wild seed is trimmed
    assert iqm([0.2, 0.4, 0.9]) == pytest.approx(0.5)  # under 4 scores: the mean
    # seeds x tasks: the scores of every task are pooled
    assert iqm([[1, 5], [2, 6], [3, 7], [4, 8]]) == pytest.approx(4.5)


def test_iqm_interval_is_seeded_holds_the_iqm_and_stays_inside_the_scores():
    scores = [0.61, 0.55, 0.7, 0.58, 0.64]
    value, low, high = iqm_ci(scores)
    assert value == pytest.approx(iqm(scores))
    assert min(scores) <= low <= value <= high <= max(scores)
    assert low < high
    assert iqm_ci(scores) == (value, low, high)  # the same scores, the same interval
    assert iqm_ci([0.3]) == (0.3, 0.3, 0.3)  # one seed: nothing to resample
    assert iqm_ci([0.4, 0.4, 0.4]) == pytest.approx((0.4, 0.4, 0.4))


def test_stratified_bootstrap_resamples_seeds_within_each_task():
    # task 0 scores 0, task 1 scores 1 on every seed: a resample that mixed tasks could
    # draw all zeros; drawn within each task, every resample pools as many of each
    per_seed = np.array([[0.0, 1.0]] * 4)
    assert iqm_ci(per_seed) == pytest.approx((0.5, 0.5, 0.5))


def test_probability_of_improvement_on_known_sets():
    assert probability_of_improvement([3, 4, 5], [0, 1, 2]) == 1.0  # every x beats every y
    assert probability_of_improvement([0, 1, 2], [3, 4, 5]) == 0.0
    assert probability_of_improvement([1, 2, 3], [1, 2, 3]) == 0.5  # identical sets
    # pairs: (2>1) (2<3) (4>1) (4>3) -> 3 of 4
    assert probability_of_improvement([2, 4], [1, 3]) == pytest.approx(0.75)
    assert probability_of_improvement([1, 1], [1, 1]) == 0.5  # ties count half
    x, y = [0.3, 0.6, 0.5], [0.4, 0.5, 0.2]
    assert probability_of_improvement(x, y) == pytest.approx(1 - probability_of_improvement(y, x))
    # per task, then averaged over tasks: X wins task 0, loses task 1
    assert probability_of_improvement([[1, 0], [1, 0]], [[0, 1], [0, 1]]) == 0.5


def test_probability_of_improvement_interval():
    assert improvement_ci([3, 4, 5], [0, 1, 2]) == (1.0, 1.0, 1.0)  # no resample changes it
    p, low, high = improvement_ci([0.5, 0.6, 0.7], [0.55, 0.6, 0.65])
    assert p == pytest.approx(0.5) and 0.0 <= low < p < high <= 1.0
    assert improvement_ci([0.5, 0.6, 0.7], [0.55, 0.6, 0.65]) == (p, low, high)


@pytest.mark.parametrize(
    "call",
    [
        lambda: iqm([]),
        lambda: iqm_ci([0.1, float("nan")]),
        lambda: probability_of_improvement([[1, 2]], [[1]]),
    ],
    ids=["no seeds", "not finite", "different tasks"],
)
def test_bad_scores_are_refused_with_the_value(call):
    with pytest.raises(ConfigError, match=r"seed|finite|task"):
        call()


# --- statistics of a set of stories ------------------------------------------------------
def test_mean_ci_is_the_bootstrap_of_the_mean():
    values = np.random.default_rng(3).random(37)
    want = bootstrap_ci(lambda idx: values[idx].mean(axis=1), 37, resamples=BOOTSTRAP_RESAMPLES)
    assert mean_ci(values) == want
    assert f"{BOOTSTRAP_RESAMPLES:,} resamples" in CI_METHOD
    assert percentile_ci(np.arange(101.0)) == (2.5, 97.5)


def test_jackknife_interval_is_not_cut_and_refuses_an_undefined_value():
    # a share of 3 items: the normal interval passes 1 and is reported as it is
    hits = np.array([1.0, 1.0, 0.0])
    value, low, high = jackknife_ci(lambda keep: hits[keep].mean(), 3)
    assert value == pytest.approx(2 / 3) and (low, high) == pytest.approx((0.04 / 3, 3.96 / 3))
    assert high > 1.0  # se = 1/3: 2/3 + 1.96 / 3
    # undefined for the whole set, or for one delete-one set: an error naming it
    with pytest.raises(ConfigError, match="the whole set"):
        jackknife_ci(lambda keep: None, 3)
    with pytest.raises(ConfigError, match="without item 2"):
        jackknife_ci(lambda keep: float("nan") if 2 not in keep else 0.5, 3)


# --- compare over 2 algorithms x 3 seeds --------------------------------------------------
def test_compare_reports_iqms_with_intervals_and_the_probability_of_improvement(
    student, tmp_path, capsys
):
    from story_env.run.cli import main

    out = tmp_path / "cmp"
    args = [
        "compare",
        "--student",
        student,
        "--teacher",
        "heuristic",
        "--algorithms",
        "ppo,a2c",
        "--seeds",
        "0,1,2",
        "--steps",
        "32",
        "--num-envs",
        "2",
        "--max-new-tokens",
        "12",
        "--eval-stories",
        "2",
        "--judge",
        "random",
        "--algo-kwargs",
        '{"n_steps": 16, "batch_size": 32, "n_epochs": 1}',
        "--no-progress",
        "--out",
        str(out),
    ]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert (out / "results.md").read_text() in printed
    record = json.loads((out / "results.json").read_text())
    assert record["ci_method"] == SEEDS_CI_METHOD
    teacher = {
        a: [r["teacher"][0] for r in record["runs"] if r["algorithm"] == a] for a in ("ppo", "a2c")
    }
    assert [len(v) for v in teacher.values()] == [3, 3]
    for a, scores in teacher.items():
        want = iqm_ci(scores)
        got = record["iqm"][a]["teacher"]
        assert (got["iqm"], *got["ci"]) == pytest.approx(want) and got["seeds"] == 3
        assert f"| {a} | 3 | {want[0]:.3f} [{want[1]:.3f}, {want[2]:.3f}] |" in printed
        assert record["iqm"][a]["judge random"]["seeds"] == 3
    (pair,) = record["probability_of_improvement"]
    want = improvement_ci(teacher["ppo"], teacher["a2c"])
    assert (pair["x"], pair["y"]) == ("ppo", "a2c")
    assert (pair["teacher"]["p"], *pair["teacher"]["ci"]) == pytest.approx(want)
    assert "| X | Y | teacher P(X > Y) | judge random P(X > Y) |" in printed
    assert f"| ppo | a2c | {want[0]:.3f} [{want[1]:.3f}, {want[2]:.3f}] |" in printed

    # --json prints the same record instead of the table (the runs are resumed)
    assert main([*args, "--resume", "--json", "-"]) == 0
    assert json.loads(capsys.readouterr().out)["iqm"] == record["iqm"]
