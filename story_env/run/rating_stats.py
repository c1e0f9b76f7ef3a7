"""What the people's votes say: win rates, Bradley-Terry ratings, graders' agreement.

``results`` reads a rating database (``story_env.run.rating``) and reports

- for each two systems, how often the first won among the votes that were not ties,
  with a 95% Wilson interval, and the ties beside it;
- a Bradley-Terry rating per system (Elo-like scale: ``1000 + 400 log10(strength)``, the
  strengths' geometric mean 1; a tie counts half a win each way) with a 95% bootstrap
  interval from resampling the votes (a resample that leaves a system without a vote
  is dropped: the interval comes from the resamples where every system played);
- for each automatic grader (teacher or judge), the share of non-tie votes where it
  graded the people's choice higher, with a 95% Wilson interval.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from story_env.errors import DependencyMissingError, StorytellingError
from story_env.run.rating import RatingDB

#: Bootstrap rounds of the Bradley-Terry intervals.
BOOTSTRAP = 1000
#: Virtual votes per two systems that met, half a win each way (a Bradley-Terry prior):
#: a system that never won keeps a finite rating.
BT_PRIOR = 1.0
#: Most MM iterations of one Bradley-Terry fit before it is called non-convergent.
BT_MAX_ITER = 10_000


class ConvergenceError(StorytellingError, RuntimeError):
    """The Bradley-Terry fit did not converge within its iteration limit."""


def wilson(successes: int, trials: int) -> list[float] | None:
    """``[share, low, high]``: the share and its 95% Wilson score interval; ``None`` for
    no trials."""
    try:
        from scipy.stats import binomtest
    except ImportError as exc:
        raise DependencyMissingError(
            'the rating results need scipy; pip install "storytelling[rate]"'
        ) from exc

    if trials == 0:
        return None
    ci = binomtest(successes, trials).proportion_ci(confidence_level=0.95, method="wilson")
    return [successes / trials, float(ci.low), float(ci.high)]


def win_rates(votes: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per two systems (names in sorted order): wins of each, ties, the first's share of
    the decisive votes with its Wilson interval."""
    table: dict[tuple[str, str], dict[str, Any]] = {}
    for v in votes:
        if v["choice"] == "skip":
            continue
        a, b = sorted((v["left_system"], v["right_system"]))
        row = table.setdefault((a, b), {"a": a, "b": b, "a_wins": 0, "b_wins": 0, "ties": 0})
        if v["choice"] == "tie":
            row["ties"] += 1
        else:
            row["a_wins" if v["winner"] == a else "b_wins"] += 1
    for row in table.values():
        row["a_win_rate"] = wilson(row["a_wins"], row["a_wins"] + row["b_wins"])
    return [table[k] for k in sorted(table)]


def _outcomes(votes: Sequence[dict[str, Any]], index: dict[str, int]) -> np.ndarray:
    """``(votes, 3)``: left system, right system, the left one's score (1, 0.5 or 0)."""
    score = {"left": 1.0, "tie": 0.5, "right": 0.0}
    rows = [
        (index[v["left_system"]], index[v["right_system"]], score[v["choice"]])
        for v in votes
        if v["choice"] != "skip"
    ]
    return np.array(rows, dtype=float).reshape(-1, 3)


def fit_bradley_terry(
    outcomes: np.ndarray,
    systems: int,
    prior: float = BT_PRIOR,
    max_iter: int = BT_MAX_ITER,
    tol: float = 1e-10,
) -> np.ndarray:
    """Bradley-Terry strengths by Hunter's MM iteration, geometric mean 1.

    Args:
        outcomes: ``(votes, 3)`` rows of (i, j, score of i against j), scores in {0, .5, 1}.
        systems: How many systems.
        prior: Virtual votes added per two systems that met, split half a win each way.
        max_iter: Most iterations.
        tol: Converged when no strength moves by more than this in one iteration.

    Raises:
        ValueError: A system with no vote (its strength is not defined), or, with no
            prior, one that never won nor tied (its strength would be 0).
        ConvergenceError: No convergence within ``max_iter`` iterations.
    """
    wins = np.zeros((systems, systems))  # wins[i, j]: i's (fractional) wins over j
    i, j, s = outcomes[:, 0].astype(int), outcomes[:, 1].astype(int), outcomes[:, 2]
    np.add.at(wins, (i, j), s)
    np.add.at(wins, (j, i), 1.0 - s)
    games = wins + wins.T
    met = games > 0
    wins = wins + met * prior / 2
    games = wins + wins.T
    unplayed = np.flatnonzero(games.sum(axis=1) == 0)
    if len(unplayed):
        raise ValueError(f"systems {unplayed.tolist()} have no vote: their strength is undefined")
    winless = np.flatnonzero(wins.sum(axis=1) == 0)
    if len(winless):
        raise ValueError(
            f"systems {winless.tolist()} never won nor tied: with no prior their strength "
            "would be 0; give prior > 0"
        )
    strength = np.ones(systems)
    step = np.inf
    for _ in range(max_iter):
        denom = (games / (strength[:, None] + strength[None, :])).sum(axis=1)
        new = wins.sum(axis=1) / denom
        new = new / np.exp(np.log(new).mean())
        step = float(np.max(np.abs(new - strength)))
        strength = new
        if step < tol:
            return strength
    raise ConvergenceError(
        f"the Bradley-Terry fit did not converge in {max_iter} iterations (last step "
        f"{step:.3g}, tolerance {tol:g}); its strengths would be unreliable"
    )


def _rating(strength: np.ndarray) -> np.ndarray:
    return 1000 + 400 * np.log10(strength)


def bradley_terry(
    votes: Sequence[dict[str, Any]], rounds: int = BOOTSTRAP, seed: int = 0
) -> list[dict[str, Any]]:
    """Each system that has a vote (skips are none): its rating and its 95% bootstrap
    interval, best first.

    The interval is the percentile interval of refits on ``rounds`` resamples of the
    votes drawn with replacement; a resample in which some system has no vote is dropped
    (that system's strength is not defined there), and each row's ``resamples`` says how
    many were kept. ``ci`` is ``None`` when none was.
    """
    decisive = [v for v in votes if v["choice"] != "skip"]
    names = sorted({v[k] for v in decisive for k in ("left_system", "right_system")})
    index = {name: i for i, name in enumerate(names)}
    outcomes = _outcomes(decisive, index)
    if not len(outcomes):
        return []
    rating = _rating(fit_bradley_terry(outcomes, len(names)))
    rng = np.random.default_rng(seed)
    draws = []
    for _ in range(rounds):
        sample = outcomes[rng.integers(0, len(outcomes), len(outcomes))]
        if len(np.unique(sample[:, :2])) < len(names):
            continue  # a system without a vote in this resample
        draws.append(_rating(fit_bradley_terry(sample, len(names))))
    low = high = None
    if draws:
        low, high = np.percentile(np.array(draws), [2.5, 97.5], axis=0)
    rows = [
        {
            "system": n,
            "rating": float(rating[i]),
            "ci": None if low is None or high is None else [float(low[i]), float(high[i])],
            "resamples": len(draws),
        }
        for i, n in enumerate(names)
    ]
    return sorted(rows, key=lambda r: -r["rating"])


def agreement(
    votes: Sequence[dict[str, Any]], grades: dict[str, dict[int, float | None]]
) -> list[dict[str, Any]]:
    """Per grader: of the non-tie votes on stories it graded both of, the share where it
    graded the people's choice higher (Wilson interval); its own ties and the stories it
    failed on are counted apart."""
    rows = []
    for grader, totals in sorted(grades.items()):
        agree = total = ties = ungraded = 0
        for v in votes:
            if v["choice"] not in ("left", "right"):
                continue
            left, right = totals.get(v["left_story"]), totals.get(v["right_story"])
            if left is None or right is None:
                ungraded += 1
            elif left == right:
                ties += 1
            else:
                total += 1
                agree += (left > right) == (v["choice"] == "left")
        rows.append(
            {
                "grader": grader,
                "agree": agree,
                "votes": total,
                "grader_ties": ties,
                "not_graded": ungraded,
                "agreement": wilson(agree, total),
            }
        )
    return rows


def results(db: RatingDB, rounds: int = BOOTSTRAP) -> dict[str, Any]:
    """Everything the results page and ``storytelling rate --results`` show."""
    votes = db.votes()
    return {
        "database": str(db.path),
        "sources": db.sources() or [],
        "progress": db.progress(),
        "skips": sum(v["choice"] == "skip" for v in votes),
        "ci_method": "Wilson score (shares); bootstrap percentiles over votes (ratings)",
        "bootstrap_rounds": rounds,
        "bt_prior": BT_PRIOR,
        "win_rates": win_rates(votes),
        "bradley_terry": bradley_terry(votes, rounds),
        "agreement": agreement(votes, db.grades()),
    }


def _share(value: list[float] | None) -> str:
    if value is None:
        return "no votes"
    return f"{value[0]:.3f}  95% CI [{value[1]:.3f}, {value[2]:.3f}]"


def results_text(res: dict[str, Any]) -> str:
    """The results as the few lines ``storytelling rate --results`` prints."""
    p = res["progress"]
    lines = [
        f"{res['database']}: {p['votes']} votes by {p['raters']} raters on {p['pairs']} pairs "
        f"({res['skips']} skipped)",
        "win rate (share of the non-tie votes the first system won):",
    ]
    for r in res["win_rates"]:
        lines.append(
            f"  {r['a']} over {r['b']}: {_share(r['a_win_rate'])}  "
            f"({r['a_wins']}-{r['b_wins']}, {r['ties']} ties)"
        )
    lines.append("Bradley-Terry rating (1000 + 400 log10 strength; 95% bootstrap interval):")
    for r in res["bradley_terry"]:
        ci = "no interval" if r["ci"] is None else f"[{r['ci'][0]:.0f}, {r['ci'][1]:.0f}]"
        kept = r["resamples"]
        dropped = res["bootstrap_rounds"] - kept
        note = f"  ({kept} resamples; {dropped} left a system without a vote)" if dropped else ""
        lines.append(f"  {r['system']}: {r['rating']:.0f}  {ci}{note}")
    lines.append("agreement of each grader with the people (non-tie votes):")
    for r in res["agreement"]:
        lines.append(
            f"  {r['grader']}: {_share(r['agreement'])}  ({r['agree']} of {r['votes']}; "
            f"{r['grader_ties']} graded equal, {r['not_graded']} not graded)"
        )
    return "\n".join(lines)
