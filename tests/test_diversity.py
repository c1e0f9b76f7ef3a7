"""Diversity and distribution metrics: distinct-n, compression, openings, words per story,
MAUVE, and their place in ``eval``."""

from __future__ import annotations

import dataclasses
import json
import random
import zlib

import numpy as np
import pytest

from story_env.errors import ConfigError, DependencyMissingError
from story_env.run import diversity as div
from story_env.run.cli import main
from story_env.run.stats import BOOTSTRAP_RESAMPLES, bootstrap_ci, jackknife_ci, mean_ci

HAND_MADE = ["The cat sat", "the cat ran", "a dog"]


def test_distinct_n_matches_hand_counts():
    # words: the cat sat | the cat ran | a dog -> 8 unigrams, 6 unique (case folded)
    assert div.distinct_n(HAND_MADE, 1) == pytest.approx(6 / 8)
    # bigrams: the-cat, cat-sat, the-cat, cat-ran, a-dog -> 5, 4 unique (none spans stories)
    assert div.distinct_n(HAND_MADE, 2) == pytest.approx(4 / 5)
    # trigrams: the-cat-sat, the-cat-ran -> 2, both unique ("a dog" has none)
    assert div.distinct_n(HAND_MADE, 3) == 1.0
    # punctuation stays on its word: "cat." is not "cat"
    assert div.distinct_n(["cat. cat", "cat"], 1) == pytest.approx(2 / 3)
    assert div.distinct_n(["a", "b"], 2) is None  # no bigram at all: undefined, not 0
    with pytest.raises(ConfigError, match="n >= 1"):
        div.distinct_n(HAND_MADE, 0)


def test_compression_ratio_is_lower_for_repetitive_stories():
    rng = random.Random(0)
    varied = [
        "".join(rng.choice("abcdefghijklmnopqrstuvwxyz ") for _ in range(400)) for _ in range(8)
    ]
    repeated = ["the cat sat on the mat. " * 16] * 8
    assert div.compression_ratio(repeated) < 0.05 < 0.5 < div.compression_ratio(varied)
    joined = "\n".join(HAND_MADE).encode()  # the definition: zlib bytes / raw bytes
    assert div.compression_ratio(HAND_MADE) == len(zlib.compress(joined)) / len(joined)
    assert div.compression_ratio([""]) is None  # no text: undefined, not 0


def test_top_opening_and_its_share_on_a_hand_made_set():
    stories = ["There lived a king.", "there lived, a queen", "Once upon a time", "The sun rose"]
    assert div.opening("\u201cThere lived\u201d a fox") == "there lived"
    assert div.top_opening(stories) == ("there lived", 0.5)
    figures = div.diversity(stories, mauve=False)
    assert figures["top_opening"] == "there lived"
    assert figures["top_opening_share"][0] == 0.5
    assert 0.0 <= figures["top_opening_share"][1] <= 0.5 <= figures["top_opening_share"][2] <= 1.0


def test_words_per_story_distribution_and_reference_of_the_same_lengths():
    stories = ["one", "one two", "one two three", "one two three four"]
    figures = div.diversity(stories, mauve=False)
    assert figures["words_mean"][0] == 2.5
    assert figures["words_median"][0] == 2.5
    assert (figures["words_q1"][0], figures["words_q3"][0]) == (1.75, 3.25)
    ref = figures["reference"]
    assert ref["stories"] == 4 and ref["words_mean"][0] == 2.5  # real stories cut the same
    assert figures["mauve"] is None and ref["mauve"] is None and "mauve" not in figures["seconds"]
    few = div.diversity(stories, mauve=True)  # too few stories: said, not measured
    assert few["mauve"] is None and "fewer than 20 stories" in few["mauve_note"]
    assert [len(s.split()) for s in div.real_stories([3, 5, 40], 0)] == [3, 5, 40]
    first, second = div.real_stories([20] * 5, 0), div.real_stories([20] * 5, 1)
    assert not set(first) & set(second)  # the reference and MAUVE's held-out set differ


def test_distinct_n_interval_is_a_jackknife_that_repeats_cannot_bias():
    rng = random.Random(1)
    words = [f"w{k}" for k in range(300)]
    stories = [" ".join(rng.choice(words) for _ in range(12)) for _ in range(20)]
    value, low, high = div.diversity(stories, mauve=False)["distinct_1"]
    assert value == pytest.approx(div.distinct_n(stories, 1))
    assert low < value < high
    # a bootstrap's resample repeats a third of the stories: its values sit below the
    # estimate (the reason for the jackknife)
    boot = bootstrap_ci(
        lambda idx: np.array([div.distinct_n([stories[i] for i in row], 1) for row in idx]),
        len(stories),
        resamples=200,
    )
    assert boot[0] == value and boot[2] < value
    # the jackknife of a mean is the textbook interval: mean +- 1.96 * s / sqrt(n)
    x = np.arange(10.0)
    mean, _lo, hi = jackknife_ci(lambda keep: x[keep].mean(), 10)
    assert (hi - mean) == pytest.approx(1.96 * x.std(ddof=1) / np.sqrt(10))
    # a normal interval, reported uncut: three stories give one past 1. Leaving out each
    # story: "c d a b e" 5/5, "a b a b e" 3/5, "a b c d" 4/4
    few = div.diversity(["a b", "c d", "a b e"], mauve=False)["distinct_1"]
    left_out = np.array([1.0, 0.6, 1.0])
    se = np.sqrt(2 / 3 * ((left_out - left_out.mean()) ** 2).sum())
    assert few == pytest.approx([5 / 7, 5 / 7 - 1.96 * se, 5 / 7 + 1.96 * se])
    assert few[2] > 1.0


def test_undefined_figures_are_none_with_the_reason_and_na_in_tables():
    # "a b" and "c" hold no 3-gram at all; only "a b c" holds a 3-gram, so leaving it out
    # leaves none: distinct-3 has a value but no delete-one interval
    none = div.diversity(["a b", "c"], mauve=False)
    assert none["distinct_3"] is None and none["distinct_2"] is None  # one bigram, "a b"
    assert none["not_measured"]["distinct_3"] == "no 3-grams: no story has 3 words"
    assert none["distinct_1"] == pytest.approx([1.0, 1.0, 1.0])  # defined: measured
    lonely = div.diversity(["a b c", "d e"], mauve=False)
    assert lonely["distinct_3"] is None and lonely["distinct_2"] is not None
    assert "leaving out one story leaves no 3-grams" in lonely["not_measured"]["distinct_3"]
    assert "distinct_1" not in lonely["not_measured"]
    assert div.diversity([""], mauve=False)["compression_ratio"] is None
    table = div.table_lines([("few words", none)])
    row = next(line for line in table if line.startswith("| few words"))
    assert row.split(" | ")[1:4] == ["1.000 [1.000, 1.000]", "n/a", "n/a"]
    assert "few words distinct-3: no 3-grams: no story has 3 words" in table[-1]
    text = "\n".join(div.text_lines(none))
    assert "these stories' distinct-3: no 3-grams" in text
    assert "real stories' distinct-3: no 3-grams" in text  # real stories of 2 and 1 words
    with pytest.raises(ConfigError, match="without item 0"):
        jackknife_ci(lambda keep: div.distinct_n(["a b c", "d e"], 3) if 0 in keep else None, 2)


def test_words_per_story_mean_is_the_evaluations_own_interval():
    rng = random.Random(2)
    stories = [" ".join(["w"] * rng.randint(1, 40)) for _ in range(30)]
    words = [len(s.split()) for s in stories]
    assert div.diversity(stories, mauve=False)["words_mean"] == list(mean_ci(words))
    assert f"{BOOTSTRAP_RESAMPLES:,} resamples" in div.DIVERSITY_CI_METHOD


class _FakeMauve:
    """Failure injection: a stand-in for the mauve-text module returning a set value."""

    def __init__(self, value: float) -> None:
        self.value = value

    def compute_mauve(self, **_: object) -> object:
        return type("Out", (), {"mauve": self.value})()


def test_mauve_past_one_by_more_than_rounding_is_an_error_not_a_clamp(monkeypatch):
    rng = np.random.default_rng(0)
    p, q = rng.normal(size=(8, 4)), rng.normal(size=(8, 4))
    rounding = 1.0 + 1e-12
    monkeypatch.setattr(div, "_mauve_module", lambda: _FakeMauve(rounding))
    assert div.mauve_ci(p, q, resamples=3) == (rounding, rounding, rounding)  # kept as it is
    monkeypatch.setattr(div, "_mauve_module", lambda: _FakeMauve(1.01))
    with pytest.raises(RuntimeError, match=r"MAUVE 1\.01, outside \[0, 1\]"):
        div.mauve_ci(p, q, resamples=3)


def test_no_mauve_help_says_when_mauve_runs_and_how_to_install_it(capsys):
    with pytest.raises(SystemExit):
        main(["eval", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    assert "runs whenever there are 20 stories or more" in help_text
    assert "pip install 'storytelling[mauve]'" in help_text


def test_mauve_of_one_distribution_is_high_and_of_two_apart_is_low():
    rng = np.random.default_rng(0)
    p, q = rng.normal(size=(64, 32)), rng.normal(size=(64, 32))
    apart = rng.normal(size=(64, 32)) + 3.0
    same, low, high = div.mauve_ci(p, q, resamples=20)
    assert same > 0.8 and 0.0 <= low <= high <= 1.0 + div.MAUVE_TOLERANCE
    assert div.mauve_ci(apart, q, resamples=20)[0] < 0.2
    with pytest.raises(ConfigError, match="at least 2"):
        div.mauve_ci(p[:1], q)


def test_missing_mauve_packages_name_the_extra(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    # failure injection: faiss reported as not installed
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "faiss" else real(name, *a)
    )
    with pytest.raises(DependencyMissingError, match=r"storytelling\[mauve\].*--no-mauve"):
        div.check_mauve()
    from story_env.run.evaluation import evaluate

    # before any story is written: an unknown student would be the error otherwise
    with pytest.raises(DependencyMissingError, match="faiss"):
        evaluate(student="no-such-student", stories=20, judges=[])


def test_eval_json_and_text_carry_the_diversity_figures(random_lm_student, capsys, tmp_path):
    out = tmp_path / "eval.json"
    args = ["eval", "--student", random_lm_student, "--teacher", "heuristic", "--no-judge"]
    args += ["--stories", "6", "--num-envs", "2", "--max-new-tokens", "12", "--no-mauve"]
    assert main([*args, "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    result = json.loads(out.read_text())
    figures = result["diversity"]
    texts = result["texts"]
    assert figures["distinct_2"][0] == pytest.approx(div.distinct_n(texts, 2))
    assert figures["compression_ratio"][0] == pytest.approx(div.compression_ratio(texts))
    assert figures["top_opening"] == div.top_opening(texts)[0]
    assert figures["mauve"] is None and figures["reference"]["stories"] == 6
    assert "teacher_score" in result and "words" in result  # the old keys stay
    assert result["words"] == figures["words_mean"]  # one interval of words per story
    assert "diversity and distribution:" in printed
    assert f"{figures['distinct_1'][0]:.3f}" in printed
    assert "real stories, same lengths" in printed and "MAUVE not measured: --no-mauve" in printed


@pytest.mark.slow
def test_mauve_tells_real_stories_from_their_word_shuffled_copies():
    from story_env.teachers.contrasts import word_shuffle

    lengths = [75] * 64
    real, other = div.real_stories(lengths, 0), div.real_stories(lengths, 1)
    rng = random.Random(0)
    shuffled = [word_shuffle(s, rng) for s in real]
    q = div.story_features(other)
    same = div.mauve_ci(div.story_features(real), q, resamples=20)
    mixed = div.mauve_ci(div.story_features(shuffled), q, resamples=20)
    assert same[0] > 0.9 and mixed[0] < 0.1 and mixed[2] < same[1]


@pytest.mark.slow
def test_eval_with_mauve_prints_it_beside_real_stories(random_lm_student, capsys, tmp_path):
    out = tmp_path / "eval.json"
    args = ["eval", "--student", random_lm_student, "--teacher", "heuristic", "--no-judge"]
    args += ["--stories", "20", "--num-envs", "4", "--max-new-tokens", "12"]
    assert main([*args, "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    figures = json.loads(out.read_text())["diversity"]
    top = 1.0 + div.MAUVE_TOLERANCE  # rounding may pass 1 (1.0000000000000002 is seen)
    for row in (figures, figures["reference"]):
        assert 0.0 <= row["mauve"][0] <= top and 0.0 <= row["mauve"][1] <= row["mauve"][2] <= top
    assert figures["seconds"]["mauve"] > 0 and "MAUVE against 20 other real stories" in printed


def test_compare_reports_each_runs_diversity_beside_real_stories(random_lm_student, tmp_path):
    from story_env.run.comparison import compare
    from story_env.run.config import TrainConfig

    base = TrainConfig(
        student=random_lm_student,
        steps=64,
        num_envs=2,
        max_new_tokens=12,
        algo_kwargs={"n_steps": 32, "batch_size": 32, "n_epochs": 1},
        checkpoint_every=10_000,
    )
    table = compare(
        base, ["ppo"], [0], tmp_path, eval_stories=4, progress=False, judges=[], mauve=False
    )
    record = json.loads((tmp_path / "results.json").read_text())
    run = record["runs"][0]
    ev = json.loads((tmp_path / "ppo-seed0" / "eval.json").read_text())
    assert run["diversity"]["distinct_1"][0] == pytest.approx(div.distinct_n(ev["texts"], 1))
    assert record["before"]["diversity"]["stories"] == 4 and "teacher" in record["before"]
    assert record["real_stories"]["stories"] == 4
    lines = table.splitlines()
    head = lines.index(next(line for line in lines if line.startswith("| stories | distinct-1")))
    labels = [line.split(" | ")[0] for line in lines[head + 2 : head + 5]]
    assert labels == [
        "| real stories (cut to the student's lengths)",
        "| before training",
        "| ppo seed 0",
    ]
    assert "MAUVE not measured (--no-mauve)" in table
    # a resumed comparison keeps a finished run's evaluation (the same checkpoint, stories,
    # seed and judges) and grades it again once the run trained further
    saved = tmp_path / "ppo-seed0" / "eval.json"
    saved.write_text(json.dumps({**ev, "texts": ["kept " + t for t in ev["texts"]]}))

    def resume(config):
        compare(config, ["ppo"], [0], tmp_path, eval_stories=4, progress=False, judges=[],
                mauve=False, resume=True)  # fmt: skip

    resume(base)
    assert json.loads(saved.read_text())["texts"][0].startswith("kept ")
    resume(dataclasses.replace(base, steps=128))
    again = json.loads(saved.read_text())
    assert not again["texts"][0].startswith("kept ") and again["checkpoint_steps"] >= 128


def test_reproduce_report_reads_the_audits_diversity():
    from story_env.run.reproduce import smoke_config
    from story_env.run.reproduce_report import diversity_lines

    stories = ["there lived a king", "there lived a fox", "the sun rose high"]
    audit = {
        "rl/500-seed1": {"diversity": div.diversity(stories[:2], mauve=False)},
        "start/500": {"diversity": div.diversity(stories, mauve=False)},
        "start/1000": {"words": [3.0, 3.0, 3.0]},  # audited before diversity was recorded
    }
    lines = diversity_lines(smoke_config("x", "x"), audit)
    rows = [line for line in lines if line.startswith("| 500")]
    assert [r.split(" | ")[0] for r in rows] == [
        "| 500: real stories, same lengths",
        "| 500: before RL",
        "| 500: after RL, seed 1",
    ]
    assert '"there lived"' in rows[2] and "1.000 [" in rows[2]  # both open "there lived"
    assert "1 audited evaluation(s) hold no diversity figures" in lines[1]
    assert diversity_lines(smoke_config("x", "x"), {"start/500": {"words": [1, 1, 1]}}) == []
