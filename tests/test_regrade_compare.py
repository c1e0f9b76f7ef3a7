"""tools/regrade_compare.py: a comparison's statistics from its runs' eval.json files."""

from __future__ import annotations

import json

import pytest


def _eval(folder, name, seed, teacher, judge, distinct_3=None):
    run = folder / f"{name}-seed{seed}"
    run.mkdir(parents=True)
    ev = {"teacher_score": [teacher, teacher - 0.01, teacher + 0.01]}
    ev["judges"] = {"lm:gemma": {"total": [judge, judge - 0.01, judge + 0.01]}}
    if distinct_3 is not None:  # an evaluation from before diversity was recorded has none
        figures = {k: [0.5, 0.4, 0.6] for k in ("distinct_1", "distinct_2", "compression_ratio")}
        ev["diversity"] = figures | {
            "distinct_3": [distinct_3, 0, 1],
            "top_opening_share": [0.25, 0, 1],
        }
    (run / "eval.json").write_text(json.dumps(ev))


def test_statistics_come_from_the_evaluations_as_they_are(tmp_path, tool, capsys):
    for seed, (a, b) in enumerate([(0.9, 0.1), (0.8, 0.2), (0.7, 0.3), (0.6, 0.4)]):
        _eval(tmp_path, "x", seed, a, b, distinct_3=0.8 + seed / 100)
        _eval(tmp_path, "y", seed, b, a)
    regrade = tool("regrade_compare")
    assert regrade.main([str(tmp_path), "--algorithms", "x,y", "--judges", "lm:gemma"]) == 0
    result = json.loads((tmp_path / "statistics.json").read_text())
    assert json.loads(capsys.readouterr().out) == result
    # four seeds: the interquartile mean is the mean of the middle two
    assert result["iqm"]["x"]["teacher"]["iqm"] == pytest.approx(0.75)
    assert result["iqm"]["y"]["judge lm:gemma"]["iqm"] == pytest.approx(0.75)
    (pair,) = result["probability_of_improvement"]
    assert (pair["x"], pair["y"]) == ("x", "y")
    assert pair["teacher"]["p"] == pytest.approx(1.0)  # every x seed above every y seed
    assert pair["judge lm:gemma"]["p"] == pytest.approx(0.0)
    assert result["diversity"]["x"]["distinct_3"] == pytest.approx(0.815)
    assert result["diversity"]["x"]["range"]["distinct_3"] == pytest.approx([0.8, 0.83])
    assert "mauve" not in result["diversity"]["x"]  # not measured: no figure, not a 0
    assert result["diversity"]["y"] == {"seeds": 0}
    assert result["pooled_diversity"]["x"] == {"stories": 0}  # no stories kept


def test_pooled_diversity_reads_every_seeds_stories_as_one_set(tmp_path, tool):
    stories = {0: ["the cat sat down", "a dog ran far"], 1: ["the cat sat up", "one owl flew"]}
    for seed, texts in stories.items():
        _eval(tmp_path, "x", seed, 0.5, 0.5)
        path = tmp_path / f"x-seed{seed}" / "eval.json"
        path.write_text(json.dumps(json.loads(path.read_text()) | {"texts": texts}))
    assert tool("regrade_compare").main([str(tmp_path), "--algorithms", "x"]) == 0
    pooled = json.loads((tmp_path / "statistics.json").read_text())["pooled_diversity"]["x"]
    assert pooled["stories"] == 4
    # 15 words, 12 distinct; 11 bigrams, "the cat" and "cat sat" twice: 9 distinct
    assert pooled["distinct_1"][0] == pytest.approx(12 / 15)
    assert pooled["distinct_2"][0] == pytest.approx(9 / 11)
    assert pooled["top_opening"] == "the cat" and pooled["top_opening_share"][0] == 0.5


def test_a_missing_algorithm_is_named(tmp_path, tool):
    _eval(tmp_path, "x", 0, 0.5, 0.5)
    with pytest.raises(SystemExit, match="no z-seed"):
        tool("regrade_compare").main([str(tmp_path), "--algorithms", "x,z"])
