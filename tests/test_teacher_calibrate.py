"""The calibration set, the rank correlation and ``storytelling calibrate``."""

from __future__ import annotations

import math

import pytest

from story_env.errors import ConfigError
from story_env.run.cli import main
from story_env.teachers.calibrate import load_calibration, spearman


def test_calibration_set_covers_every_kind_with_valid_labels():
    stories = load_calibration()
    kinds = {s.kind for s in stories}
    assert kinds == {"good", "middling", "bad", "hacking"} and len(stories) >= 20
    assert len({s.id for s in stories}) == len(stories)
    for s in stories:
        assert set(s.labels) == {"readability", "coherence", "creativity"}
        assert all(v in (0, 1, 2, 3) for v in s.labels.values())
    hacks = [s for s in stories if s.kind == "hacking"]
    assert all(sum(s.labels.values()) <= 4 for s in hacks)  # they are poor stories


def test_spearman_matches_known_values():
    assert spearman([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1.0)
    assert spearman([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    # ties take average ranks: x -> 1 2.5 2.5 4 5, y -> 1 4 2.5 2.5 5; Pearson = 7.25 / 9.5
    assert spearman([1, 2, 2, 3, 4], [1, 3, 2, 2, 5]) == pytest.approx(7.25 / 9.5)
    assert math.isnan(spearman([1, 1, 1], [1, 2, 3]))


def test_calibrate_command_prints_correlations_and_hacking_scores(capsys):
    assert main(["calibrate", "--teacher", "heuristic"]) == 0
    out = capsys.readouterr().out
    for dim in ("readability", "coherence", "creativity"):
        rho = float(out.split(f"  {dim}")[1].split()[0])
        assert rho > 0.5, out
    assert out.count("hacking-") == 5
    assert "hacking cases at top marks (total >= 0.89): 0%" in out


@pytest.mark.parametrize(("x", "y"), [([1, 2, 3], [1, 2]), ([1], [1])])
def test_spearman_refuses_unequal_or_too_short_sequences_with_the_fix(x, y):
    with pytest.raises(ConfigError, match=rf"got {len(x)} and {len(y)} values; pass one score"):
        spearman(x, y)
