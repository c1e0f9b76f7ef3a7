"""What the people's votes say: win rates, Bradley-Terry ratings, graders' agreement.

``results`` reads a rating database (``story_env.run.rating``) and reports

- for each two systems, how often the first won among the votes that were not ties,
  with a 95% Wilson interval, and the ties beside it;
- a Bradley-Terry rating per system (Elo-like scale: ``1000 + 400 log10(strength)``, the
  strengths' geometric mean 1; a tie counts half a win each way) with a 95% bootstrap
  interval from resampling the votes;
- for each automatic grader (teacher or judge), the share of non-tie votes where it
  graded the people's choice higher, with a 95% Wilson interval.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from story_env.errors import DependencyMissingError
from story_env.run.rating import RatingDB

#: Bootstrap rounds of the Bradley-Terry intervals.
BOOTSTRAP = 1000
#: Virtual votes per two systems that met, half a win each way (a Bradley-Terry prior):
#: a system that never won keeps a finite rating.
BT_PRIOR = 1.0


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


def fit_bradley_terry(outcomes: np.ndarray, systems: int, prior: float = BT_PRIOR) -> np.ndarray:
    """Bradley-Terry strengths by Hunter's MM iteration, geometric mean 1.

    Args:
        outcomes: ``(votes, 3)`` rows of (i, j, score of i against j), scores in {0, .5, 1}.
        systems: How many systems.
        prior: Virtual votes added per two systems that met, split half a win each way.
    """
    wins = np.zeros((systems, systems))  # wins[i, j]: i's (fractional) wins over j
    i, j, s = outcomes[:, 0].astype(int), outcomes[:, 1].astype(int), outcomes[:, 2]
    np.add.at(wins, (i, j), s)
    np.add.at(wins, (j, i), 1.0 - s)
    games = wins + wins.T
    met = games > 0
    wins = wins + met * prior / 2
    games = wins + wins.T
    strength = np.ones(systems)
    for _ in range(10_000):
        denom = (games / (strength[:, None] + strength[None, :])).sum(axis=1)
        new = np.where(denom > 0, wins.sum(axis=1) / np.where(denom > 0, denom, 1), 1.0)
        new = new / np.exp(np.log(new).mean())
        if np.max(np.abs(new - strength)) < 1e-10:
            return new
        strength = new
    return strength


def _rating(strength: np.ndarray) -> np.ndarray:
    return 1000 + 400 * np.log10(strength)


def bradley_terry(
    votes: Sequence[dict[str, Any]], rounds: int = BOOTSTRAP, seed: int = 0
) -> list[dict[str, Any]]:
    """Each system's rating and its 95% bootstrap interval (percentiles of ``rounds``
    refits on votes drawn with replacement), best first."""
    names = sorted({v[k] for v in votes for k in ("left_system", "right_system")})
    index = {name: i for i, name in enumerate(names)}
    outcomes = _outcomes(votes, index)
    if not len(outcomes):
        return []
    rating = _rating(fit_bradley_terry(outcomes, len(names)))
    rng = np.random.default_rng(seed)
    draws = np.array(
        [
            _rating(
                fit_bradley_terry(
                    outcomes[rng.integers(0, len(outcomes), len(outcomes))], len(names)
                )
            )
            for _ in range(rounds)
        ]
    )
    low, high = np.percentile(draws, [2.5, 97.5], axis=0)
    rows = [
        {"system": n, "rating": float(rating[i]), "ci": [float(low[i]), float(high[i])]}
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
        lines.append(f"  {r['system']}: {r['rating']:.0f}  [{r['ci'][0]:.0f}, {r['ci'][1]:.0f}]")
    lines.append("agreement of each grader with the people (non-tie votes):")
    for r in res["agreement"]:
        lines.append(
            f"  {r['grader']}: {_share(r['agreement'])}  ({r['agree']} of {r['votes']}; "
            f"{r['grader_ties']} graded equal, {r['not_graded']} not graded)"
        )
    return "\n".join(lines)
