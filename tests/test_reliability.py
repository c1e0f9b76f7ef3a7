"""Reliability (issue 13): bad input as a new user gives it, and what the project does.

One section per class of the issue: numbers, context and size, files, runs, eval,
ecosystem edges (secrets are in ``test_teacher_api.py``, fuzzing in
``test_fuzz_teachers.py``). Each bad input is the concrete one the review tried; each
test checks that the message names the value and the fix, and that run folders keep
every story. The misbehaving teacher below is named failure injection.
"""

from __future__ import annotations

import json
import logging
import math
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import story_env
from story_env import run_folder
from story_env.env import StorytellingEnv
from story_env.errors import ConfigError, RunFolderError, StorytellingError, TeacherError
from story_env.registry import get_algorithm
from story_env.run.algorithms import check_algo_kwargs
from story_env.run.callbacks import log_story, planned_end
from story_env.run.cli import main
from story_env.run.config import TrainConfig
from story_env.run.evaluation import evaluate
from story_env.run.stats import CI_METHOD, mean_ci
from story_env.run.training import train
from story_env.run_folder import append_story, flush_log, open_story_log, repair_story_log
from story_env.teacher import DEFAULT_DIMENSIONS, Scores, StoryRequest
from story_env.teachers.judge import JudgeTeacher
from story_env.teachers.policy import FallbackScores


def one_line_error(capsys, argv: list[str]) -> str:
    """Run the CLI, expect exit status 2 and a single ``storytelling: error:`` line."""
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("storytelling: error: ") and "\n" not in err, err
    assert "Traceback" not in err
    return err


def strict_json_lines(path: Path) -> list[dict]:
    """Every line of a story log, parsed as strict JSON (NaN / Infinity refused)."""

    def refuse(name: str):
        raise AssertionError(f"{name} in {path}: not strict JSON")

    text = path.read_text(encoding="utf-8")
    assert text.endswith("\n") or not text
    return [json.loads(line, parse_constant=refuse) for line in text.splitlines()]


def assert_every_story_kept(run: Path) -> list[dict]:
    """The log holds exactly the checkpoint's stories, numbered 1..N without gaps."""
    state = json.loads((run / "checkpoint.json").read_text())
    rows = strict_json_lines(run / "stories.jsonl")
    assert [r["story_index"] for r in rows] == list(range(1, state["stories"] + 1))
    assert not list(run.glob("*.tmp*"))
    return rows


# --- numbers -------------------------------------------------------------------------------
class MisbehavingTeacher:
    """Failure injection: a teacher that returns what the review's teachers returned."""

    name = "misbehaving"
    dimensions = DEFAULT_DIMENSIONS

    def __init__(self, *, behaviour: str, max_score: float = 3.0) -> None:
        self.behaviour, self.max_score = behaviour, max_score

    def score(self, requests):
        b, dims, top = self.behaviour, self.dimensions, self.max_score
        if b == "raises":
            raise RuntimeError("model crashed: CUDA error 700")
        if b == "hangs":
            time.sleep(30)
        if b == "none":
            return None
        if b == "none_items":
            return [None for _ in requests]
        if b == "generator":
            return (Scores.from_values(dict.fromkeys(dims, 1.0), top) for _ in requests)
        if b == "too_few":
            return []
        if b == "wrong_dims":
            return [Scores(values={"humour": 1.0}, total=1.0 / top) for _ in requests]
        if b == "total_nan":
            return [Scores(values=dict.fromkeys(dims, 1.0), total=math.nan) for _ in requests]
        value = {"nan": math.nan, "inf": math.inf, "seven": 7.0, "minus_two": -2.0}[
            b.removesuffix("_direct")
        ]
        if b.endswith("_direct"):  # built by hand, bypassing Scores.from_values
            return [Scores(values=dict.fromkeys(dims, value), total=value / top) for _ in requests]
        return [Scores.from_values(dict.fromkeys(dims, value), top) for _ in requests]


class MisbehavingPlugin:
    @story_env.hookimpl
    def storytelling_register_teachers(self, register):
        register("misbehaving", lambda **kw: MisbehavingTeacher(**kw))


# behaviour, the teacher's max_score, text the failure must show
MISBEHAVIOUR = [
    ("nan", 3.0, "nan, not a finite number"),
    ("nan_direct", 3.0, "nan, not a finite number"),
    ("inf", 3.0, "inf, not a finite number"),
    ("seven", 1.0, "score 7.0 for 'readability' is outside 0..1"),
    ("seven_direct", 1.0, "score 7.0 for 'readability' is outside 0..1"),
    ("minus_two", 1.0, "score -2.0 for 'readability' is outside 0..1"),
    ("none", 3.0, "returned None for 1 stories"),
    ("none_items", 3.0, "expected a Scores object, got None"),
    ("generator", 3.0, "returned <generator object"),
    ("too_few", 3.0, "returned 0 grades for 1 stories"),
    ("wrong_dims", 3.0, "dimensions ['humour'], expected ['readability'"),
    ("total_nan", 3.0, "total is nan"),
    ("raises", 3.0, "raised RuntimeError: model crashed: CUDA error 700"),
    ("hangs", 3.0, "gave no answer within teacher_timeout_s=0.3 s"),
]


def _misbehaving_env(temporary_plugin, behaviour, top, **kwargs) -> StorytellingEnv:
    temporary_plugin(MisbehavingPlugin(), "misbehaving-teacher")
    return StorytellingEnv(
        teacher="misbehaving",
        teacher_kwargs={"behaviour": behaviour, "max_score": top},
        teacher_timeout_s=0.3,
        **kwargs,
    )


@pytest.mark.parametrize(("behaviour", "top", "shown"), MISBEHAVIOUR)
def test_a_misbehaving_teacher_is_an_error_naming_it_and_what_it_returned(
    temporary_plugin, behaviour, top, shown
):
    env = _misbehaving_env(temporary_plugin, behaviour, top)
    env.reset(seed=0)
    with pytest.raises(TeacherError) as caught:
        env.step(env.tokenizer.eos_token_id)
    message = str(caught.value)
    assert "'misbehaving'" in message and shown in message
    assert "teacher_fallback=" in message  # the fix


@pytest.mark.parametrize(("behaviour", "top", "shown"), MISBEHAVIOUR)
def test_with_teacher_fallback_a_misbehaving_teacher_is_a_flagged_failure(
    temporary_plugin, tmp_path, behaviour, top, shown
):
    env = _misbehaving_env(temporary_plugin, behaviour, top, teacher_fallback=0.25)
    env.reset(seed=0)
    _, reward, *_, info = env.step(env.tokenizer.eos_token_id)
    assert reward == 0.25 and info["reward"] == 0.25 and info["scores"] == {}
    assert shown in info["teacher_error"] and info["teacher_fallback"] == info["teacher_error"]
    assert not (isinstance(info["teacher_score"], float) and math.isfinite(info["teacher_score"]))
    # the story log stays strict JSON and flags the story
    state = {"stories": 0, "interactive_words": 0}
    with open(tmp_path / "stories.jsonl", "a", encoding="utf-8") as log:
        log_story(log, state, 0, info, 1)
    (row,) = strict_json_lines(tmp_path / "stories.jsonl")
    assert row["teacher_score"] is None and row["reward"] == 0.25
    assert shown in row["teacher_fallback"]


@pytest.mark.parametrize(
    ("values", "top", "error"),
    [
        ({"a": math.nan}, 3.0, "invalid: score for 'a' is nan, not a finite number"),
        ({"a": 7.0}, 1.0, "range: score 7.0 for 'a' is outside 0..1"),
        ({"a": -2.0}, 1.0, "range: score -2.0 for 'a' is outside 0..1"),
        ({"a": "2"}, 3.0, "invalid: score for 'a' is '2', not a number"),
        ({"a": True}, 3.0, "invalid: score for 'a' is True, not a number"),
        ({}, 3.0, "invalid: no dimension scores"),
    ],
)
def test_scores_from_values_validates_and_never_clips(values, top, error):
    grade = Scores.from_values(values, top, raw="answer")
    assert not grade.ok and grade.error == error and grade.total is None and grade.raw == "answer"


def test_scores_from_values_checks_dimensions_and_computes_the_total():
    grade = Scores.from_values({"a": 3.0, "b": 0.0}, 3.0, dimensions=("a", "b"))
    assert grade.ok and grade.total == 0.5
    missing = Scores.from_values({"a": 3.0}, 3.0, dimensions=("a", "b"))
    assert missing.error.startswith("invalid:") and "missing ['b']" in missing.error


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (
            {"weights": [math.nan, 1, 1]},
            r"reward weight 0 \(nan\) must be a finite number, got nan; give weights >= 0",
        ),
        ({"weights": [math.inf, 1, 1]}, r"must be a finite number, got inf"),
        (
            {"weights": {"readability": math.nan}},
            r"reward weight 'readability' must be a finite number, got nan",
        ),
        ({"weights": ["heavy", 1, 1]}, r"must be a number, got 'heavy'"),
        ({"weights": "1,1,1"}, r"weights must be a list .* or a dict, got '1,1,1'"),
        (
            {"length_bonus": math.nan},
            r"length_bonus must be a finite number, got nan; the paper uses 0.4",
        ),
        ({"length_bonus": math.inf}, r"length_bonus must be a finite number, got inf"),
        (
            {"teacher_fallback": math.nan},
            r"teacher_fallback must be a finite number, got nan; give a reward in \[0, 1\]",
        ),
        ({"teacher_fallback": "0.5"}, r"teacher_fallback must be a number, got '0.5'"),
        ({"teacher_timeout_s": 0}, r"teacher_timeout_s must be > 0 seconds or None, got 0"),
        ({"teacher_timeout_s": math.nan}, r"teacher_timeout_s must be a finite number, got nan"),
    ],
)
def test_bad_env_numbers_are_clear_errors(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        StorytellingEnv(**kwargs)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"steps": "2000"}, r"steps must be a whole number, got '2000'"),
        ({"steps": 0}, r"steps must be >= 1, got 0"),
        ({"num_envs": 0}, r"num_envs must be >= 1 and <= 1024, got 0"),
        ({"kl_coef": math.nan}, r"kl_coef must be a finite number, got nan"),
        ({"length_bonus": -0.4}, r"length_bonus must be >= 0, got -0.4"),
        ({"top_p": 1.5}, r"top_p must be in \(0, 1\], got 1.5"),
        # the env's own fields: checked once, by EnvConfig
        ({"teacher_fallback": 2.0}, r"teacher_fallback must be in \[0, 1\] or None, got 2.0"),
        ({"max_new_tokens": 100_000}, r"max_new_tokens 100000 is above the limit of 32768"),
    ],
)
def test_bad_train_numbers_are_clear_errors(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        TrainConfig(**kwargs)


def test_a_judge_backend_that_raises_or_returns_junk_follows_the_failure_policy():
    class Backend(JudgeTeacher):
        name = "junk_judge"

        def __init__(self, answers, **kwargs):
            super().__init__(**kwargs)
            self.answers = answers

        def _grade_batch(self, requests):
            answer = self.answers.pop(0)
            if isinstance(answer, Exception):
                raise answer
            return answer

    request = StoryRequest("Once upon a time,", " a fox found a key. It opened a door.")
    teacher = Backend(
        [RuntimeError("backend down"), None, [Scores(values={"readability": 9.0}, total=3.0)]],
        on_failure="fallback",
        fallback_score=1.0,
        retries=2,
    )
    (grade,) = teacher.score([request])
    assert isinstance(grade, FallbackScores) and grade.values["readability"] == 1.0
    assert teacher.stats["failures"] == {"backend": 1, "count": 1, "invalid": 1}
    assert "expected ['readability', 'coherence', 'creativity']" in grade.fallback_error


# --- context and size ----------------------------------------------------------------------
def test_prompt_plus_max_new_tokens_must_fit_the_students_context(random_lm_student):
    with pytest.raises(ConfigError) as caught:
        StorytellingEnv(student=random_lm_student, max_new_tokens=400)
    message = str(caught.value)
    assert "plus max_new_tokens 400" in message and "more than the 128 tokens" in message
    assert "context window; lower max_new_tokens to at most" in message
    long_prompt = " ".join(["once upon a time there was a fox"] * 50)  # 400 words
    with pytest.raises(ConfigError, match=r"the prompt \(\d+ tokens\).*shorten the prompt"):
        StorytellingEnv(student=random_lm_student, prompts=[long_prompt], max_new_tokens=16)
    env = StorytellingEnv(student=random_lm_student, max_new_tokens=16)  # fits
    assert env.observation_space.shape[0] <= 128


def test_max_new_tokens_is_capped_for_every_student(capsys):
    with pytest.raises(ConfigError, match=r"max_new_tokens 1000000000 is above the limit of 32768"):
        StorytellingEnv(student="ngram", max_new_tokens=10**9)
    err = one_line_error(capsys, ["play", "--max-new-tokens", "100000", "--episodes", "1"])
    assert "max_new_tokens 100000" in err and "lower it" in err


# --- files ---------------------------------------------------------------------------------
@pytest.fixture
def latin1_file(tmp_path) -> Path:
    path = tmp_path / "prompts-latin1.txt"
    path.write_bytes("Il était une fois, à Paris,\n".encode("latin-1"))
    return path


def test_prompt_file_errors_name_the_file_and_the_fix(tmp_path, latin1_file):
    with pytest.raises(
        ConfigError, match=r"prompts-latin1.txt' is not UTF-8 text .*save it as UTF-8"
    ):
        StorytellingEnv(prompt_file=str(latin1_file))
    with pytest.raises(ConfigError, match=r"is a directory; give the path of a text file"):
        StorytellingEnv(prompt_file=str(tmp_path))
    with pytest.raises(ConfigError, match=r"prompt_file '.*missing.txt' does not exist"):
        StorytellingEnv(prompt_file=str(tmp_path / "missing.txt"))
    with pytest.raises(ConfigError, match=r"holds '\\ud800'.*lone surrogate"):
        StorytellingEnv(prompts=["Once \ud800 upon a time"])


@pytest.mark.parametrize(
    ("content", "shown"),
    [
        ("latin1", "is not UTF-8 text (byte 0xe9 at line 1); save it as UTF-8"),
        ("[1, 2, 3]", "holds a JSON list, but it must hold an object of TrainConfig fields"),
        ('{"stepz": 100}', "unknown keys ['stepz'] in config file"),
        ("{steps: 100}", "is not valid JSON (Expecting property name"),
        ("dir", "is a directory; give the path of a text file"),
    ],
)
def test_config_file_errors_are_one_line_naming_the_file(capsys, tmp_path, content, shown):
    path = tmp_path / "run.json"
    if content == "latin1":
        path.write_bytes(b'{"teacher": "h\xe9uristic"}')
    elif content == "dir":
        path.mkdir()
    else:
        path.write_text(content)
    err = one_line_error(capsys, ["train", "--config", str(path), "--out", str(tmp_path / "r")])
    assert str(path) in err and shown in err
    if "stepz" in content:
        assert "Did you mean 'steps'?" in err


def test_out_that_is_a_file_or_read_only_is_one_line(capsys, tmp_path):
    a_file = tmp_path / "not-a-folder"
    a_file.write_text("x")
    err = one_line_error(capsys, ["train", "--student", "ngram", "--out", str(a_file)])
    assert f"run folder '{a_file}' is a file, not a folder; give --out a folder path" in err
    if os.geteuid() == 0:  # root writes anywhere chmod allows; sysfs refuses even root
        read_only, missing = Path("/sys/kernel"), Path("/sys/storytelling-run")
    else:
        read_only = tmp_path / "ro"
        read_only.mkdir()
        read_only.chmod(0o500)
        missing = read_only / "run"
    err = one_line_error(capsys, ["train", "--out", str(read_only)])
    assert f"cannot write in run folder '{read_only}'" in err and "choose a writable --out" in err
    err = one_line_error(capsys, ["train", "--out", str(missing)])
    assert f"cannot create run folder '{missing}'" in err


def test_a_json_file_on_a_full_disk_says_run_again_not_resume(capsys, tmp_path):
    out = tmp_path / "eval.json"
    (tmp_path / "eval.json.tmp").symlink_to("/dev/full")  # every write: ENOSPC
    argv = ["eval", "--student", "ngram", "--teacher", "heuristic", "--stories", "2"]
    argv += ["--judge", "random", "--no-mauve", "--no-progress", "--json", str(out)]
    err = one_line_error(capsys, argv)
    assert f"cannot write --json file '{out}'" in err and "No space left on device" in err
    assert err.endswith("then run the command again") and "--resume" not in err
    assert not out.exists() and not list(tmp_path.glob("*.tmp*"))


def test_a_full_disk_leaves_no_tmp_and_says_how_to_continue(random_lm_student, tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    # /dev/full answers every write with ENOSPC: the checkpoint is written onto a full disk
    (run / "checkpoint.zip.tmp").symlink_to("/dev/full")
    err = one_line_error(capsys, [*_train_argv(random_lm_student, run, steps=32), "--no-progress"])
    assert "cannot write checkpoint" in err and "No space left on device" in err
    assert "free disk space" in err and "--resume" in err
    assert not list(run.glob("*.tmp*")) and not (run / "checkpoint.zip").exists()
    full = Path("/dev/full")  # the story log on a full disk: one clear error, even on close
    with (
        pytest.raises(RunFolderError, match=r"cannot write story log '/dev/full' .*No space left"),
        open_story_log(full) as log,
    ):
        append_story(log, {"story_index": 1}, full)
        flush_log(log, full)


# --- runs ----------------------------------------------------------------------------------
def _train_argv(student: str, out: Path, steps: int = 64, *extra: str) -> list[str]:
    return [
        "train",
        "--algorithm",
        "ppo",
        "--kl-coef",
        "0",
        "--student",
        student,
        "--steps",
        str(steps),
        "--num-envs",
        "2",
        "--max-new-tokens",
        "12",
        "--checkpoint-every",
        "32",
        "--algo-kwargs",
        '{"n_steps": 16, "batch_size": 32, "n_epochs": 1}',
        "--out",
        str(out),
        *extra,
    ]


def _config(student: str, steps: int = 64, **kwargs) -> TrainConfig:
    kwargs = {"algorithm": "ppo", "kl_coef": 0.0, **kwargs}  # the paper's PPO, no KL
    return TrainConfig(
        student=student,
        steps=steps,
        num_envs=2,
        max_new_tokens=12,
        checkpoint_every=32,
        algo_kwargs={"n_steps": 16, "batch_size": 32, "n_epochs": 1},
        **kwargs,
    )


@pytest.fixture(scope="module")
def finished_run(random_lm_student, tmp_path_factory) -> Path:
    """A finished 64-step PPO run folder; tests copy it before damaging it."""
    out = tmp_path_factory.mktemp("finished") / "run"
    train(_config(random_lm_student), out, progress=False)
    return out


@pytest.fixture
def run_copy(finished_run, tmp_path) -> Path:
    out = tmp_path / "run"
    shutil.copytree(finished_run, out)
    return out


def test_steps_is_the_budget_the_bar_and_a_warning_say_so(
    random_lm_student, tmp_path, caplog, capsys
):
    # a rollout is n_steps 16 x 2 envs = 32 tokens: --steps 20 trains one whole rollout
    with caplog.at_level(logging.WARNING):
        summary = train(_config(random_lm_student, steps=20), tmp_path / "run")
    assert summary["steps"] == 32
    assert (
        "one rollout (n_steps 16 x 2 envs = 32 tokens) is longer than the 20 steps" in caplog.text
    )
    assert "the run trains 32 tokens" in caplog.text
    err = capsys.readouterr().err
    assert "in rollouts of 32" in err and "32/32" in err  # the bar ends where the run ends
    assert "/20 " not in err
    assert assert_every_story_kept(tmp_path / "run")
    for start, steps, rollout, end in [(0, 2000, 8192, 8192), (0, 64, 32, 64), (40, 64, 32, 72)]:
        assert planned_end(start, steps, rollout) == end and end - steps < rollout


def test_resume_of_a_missing_or_empty_folder_says_it_starts_a_new_run(
    random_lm_student, tmp_path, caplog
):
    (tmp_path / "empty").mkdir()
    for out in (tmp_path / "missing", tmp_path / "empty"):
        with caplog.at_level(logging.WARNING):
            train(_config(random_lm_student, steps=32), out, resume=True, progress=False)
        assert (
            f"{out} holds no checkpoint to resume (no checkpoint.json): starting a new run"
            in caplog.text
        )
        assert_every_story_kept(out)
        caplog.clear()


def test_resume_of_a_run_begun_before_a_setting_existed(random_lm_student, run_copy, caplog):
    """A setting added to TrainConfig after a run began (its config.json lacks it) is read
    as its default: the run resumes; a run that set it otherwise would be refused."""
    path = run_copy / "config.json"
    saved = json.loads(path.read_text())
    del saved["kl_per_story"]
    path.write_text(json.dumps(saved))
    with caplog.at_level(logging.WARNING):
        summary = train(
            _config(random_lm_student, steps=128), run_copy, resume=True, progress=False
        )
    assert summary["steps"] >= 128 and "kl_per_story" not in caplog.text
    with pytest.raises(ConfigError, match=r"kl_per_story False -> True"):
        train(
            _config(random_lm_student, steps=192, kl_coef=0.01, kl_per_story=True),
            run_copy,
            resume=True,
            progress=False,
        )


def test_resume_names_changed_fields_and_extends_steps(random_lm_student, run_copy, caplog, capsys):
    before = assert_every_story_kept(run_copy)
    changed = _config(random_lm_student, seed=3, length_bonus=0.4)
    with pytest.raises(
        ConfigError,
        match=r"differ from its config.json: length_bonus 0.0 -> 0.4; seed 0 -> 3\. .*only steps, word_budget, checkpoint_every may change",
    ):
        train(changed, run_copy, resume=True, progress=False)
    with caplog.at_level(logging.WARNING):
        summary = train(
            _config(random_lm_student, steps=128), run_copy, resume=True, progress=False
        )
    assert "changed budget: steps 64 -> 128" in caplog.text
    assert 128 <= summary["steps"] < 128 + 32
    assert json.loads((run_copy / "config.json").read_text())["steps"] == 128
    after = assert_every_story_kept(run_copy)
    assert after[: len(before)] == before and len(after) > len(before)
    err = one_line_error(
        capsys, [*_train_argv(random_lm_student, run_copy, 128, "--seed", "3"), "--resume"]
    )
    assert "seed 0 -> 3" in err


def _lines(run: Path) -> list[bytes]:
    return (run / "stories.jsonl").read_bytes().splitlines(keepends=True)


@pytest.mark.parametrize(
    ("damage", "shown"),
    [
        ("truncate_last", "line {n} is cut short (no end of line)"),
        ("corrupt_middle", "line 2 is not valid JSON"),
        ("gap", "line 2 has story_index 3, expected 2 (a gap"),
        ("missing_lines", "holds {m} stories"),
    ],
)
def test_resume_refuses_a_log_that_lost_a_counted_story(random_lm_student, run_copy, damage, shown):
    lines = _lines(run_copy)
    n = len(lines)
    if damage == "truncate_last":
        lines[-1] = lines[-1][: len(lines[-1]) // 2]
    elif damage == "corrupt_middle":
        lines[1] = b'{"story_index": 2, "story": "a fox\n'
    elif damage == "gap":
        del lines[1]
    else:
        lines = lines[:-2]
    (run_copy / "stories.jsonl").write_bytes(b"".join(lines))
    before = (run_copy / "stories.jsonl").read_bytes()
    with pytest.raises(RunFolderError) as caught:
        train(_config(random_lm_student, steps=128), run_copy, resume=True, progress=False)
    message = str(caught.value)
    assert shown.format(n=n, m=n - 2) in message and f"counts {n} stories" in message
    assert "would lose a story" in message and "start a new run with another --out" in message
    assert (run_copy / "stories.jsonl").read_bytes() == before  # nothing dropped silently


def test_resume_drops_stories_after_the_checkpoint_and_says_so(random_lm_student, run_copy, caplog):
    lines = _lines(run_copy)
    n = len(lines)
    extra = [json.dumps({"story_index": n + 1, "story": "later"}).encode() + b"\n", b'{"story_in']
    (run_copy / "stories.jsonl").write_bytes(b"".join(lines + extra))
    with caplog.at_level(logging.WARNING):
        note = repair_story_log(run_copy / "stories.jsonl", n, 64)
    assert note.startswith(
        "dropped 2 line(s) of stories.jsonl logged after the checkpoint at step 64"
    )
    assert _lines(run_copy) == lines
    (run_copy / "stories.jsonl").write_bytes(b"".join(lines + extra))
    with caplog.at_level(logging.WARNING):
        train(_config(random_lm_student, steps=96), run_copy, resume=True, progress=False)
    assert "dropped 2 line(s)" in caplog.text
    assert_every_story_kept(run_copy)


def test_a_stop_between_the_model_and_its_counters_resumes_from_the_model(
    random_lm_student, tmp_path, monkeypatch, caplog
):
    """Failure injection: the run stops after writing checkpoint.zip at its second
    checkpoint and before writing checkpoint.json, which stays one checkpoint behind.
    Resuming from the stale counters would train past the budget (and retrain steps the
    model already learned from); the model's own counters say where it stands."""
    run, written = tmp_path / "run", []
    real_write_meta = run_folder.write_meta

    def stop_before_the_second(out: Path, state: dict) -> None:  # the injected failure
        written.append(state["steps"])
        if len(written) == 2:
            raise KeyboardInterrupt
        real_write_meta(out, state)

    monkeypatch.setattr(run_folder, "write_meta", stop_before_the_second)
    with pytest.raises(KeyboardInterrupt):
        train(_config(random_lm_student, steps=128), run, progress=False)
    monkeypatch.undo()
    stale = json.loads((run / "checkpoint.json").read_text())["steps"]
    assert stale == written[0] < written[1]
    with caplog.at_level(logging.WARNING):
        summary = train(_config(random_lm_student, steps=128), run, resume=True, progress=False)
    assert f"counts step {stale} but checkpoint.zip was saved at step {written[1]}" in caplog.text
    assert 128 <= summary["steps"] < 128 + 32  # within one rollout of the budget
    from stable_baselines3 import PPO

    assert PPO.load(run / "checkpoint.zip", device="cpu").num_timesteps == summary["steps"]
    assert_every_story_kept(run)


@pytest.mark.parametrize(
    ("name", "content", "shown"),
    [
        (
            "checkpoint.zip",
            b"PK\x03\x04 not really a zip",
            "wasn't a zip-file); the file is damaged",
        ),
        ("checkpoint.json", b'{"steps": 64, "stor', "is not valid JSON (Unterminated string"),
        ("checkpoint.json", b'{"steps": "many"}', "lack valid ['steps', 'stories'"),
        ("config.json", b"\xff\xfe", "not UTF-8 text"),
    ],
)
def test_a_damaged_checkpoint_is_one_line(
    capsys, random_lm_student, run_copy, name, content, shown
):
    (run_copy / name).write_bytes(content)
    err = one_line_error(
        capsys, [*_train_argv(random_lm_student, run_copy, 128), "--resume", "--no-progress"]
    )
    assert str(run_copy) in err and shown in err


# --- eval ----------------------------------------------------------------------------------
@pytest.mark.parametrize("stories", [0, -3])
def test_eval_rejects_fewer_than_one_story(capsys, stories):
    with pytest.raises(
        ConfigError, match=rf"stories must be a whole number >= 1, got {stories}; e.g. --stories 64"
    ):
        evaluate(student="ngram", stories=stories)
    err = one_line_error(capsys, ["eval", "--student", "ngram", "--stories", str(stories)])
    assert f"got {stories}" in err


def test_eval_intervals_stay_inside_the_scores_range():
    rare = [0.0] * 63 + [1.0]  # the normal approximation gave [-0.015, 0.046]
    mean, low, high = mean_ci(rare)
    assert mean == pytest.approx(1 / 64) and 0.0 <= low <= mean <= high <= 1.0
    near_top = [1.0] * 63 + [0.2]
    assert mean_ci(near_top)[2] <= 1.0
    assert mean_ci([0.4]) == (0.4, 0.4, 0.4) and mean_ci([0.4], (0.0, 1.0)) == (0.4, 0.0, 1.0)
    assert mean_ci(rare) == mean_ci(rare)  # seeded: the same values give the same interval
    assert "bootstrap" in CI_METHOD
    with pytest.raises(ConfigError, match="not finite"):
        mean_ci([0.5, math.nan])


# --- ecosystem edges -----------------------------------------------------------------------
@pytest.mark.filterwarnings("ignore:.*render_mode='rgb_array'")
def test_sb3_make_vec_env_accepts_its_render_mode_injection():
    from stable_baselines3.common.env_util import make_vec_env

    venv = make_vec_env("story_env:Storytelling-v0", n_envs=2, env_kwargs={"student": "ngram"})
    obs = venv.reset()
    obs, rewards, _, _ = venv.step(np.array([65, 66]))
    assert obs.shape[0] == 2 and np.isfinite(rewards).all()
    venv.close()


def test_plugins_stays_quiet_on_a_closed_pipe():
    proc = subprocess.Popen(
        [sys.executable, "-m", "story_env.run.cli", "plugins"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    proc.stdout.close()  # `| head -0`: the reader is gone before anything is written
    err = proc.stderr.read().decode()
    assert proc.wait() == 141 and err == ""


def test_plugins_marks_the_refused_algorithms(capsys):
    assert main(["plugins"]) == 0
    lines = {
        line.split()[0]: line
        for line in capsys.readouterr().out.splitlines()
        if line.startswith("  ")
    }
    for name in ("dqn", "qrdqn", "recurrent_ppo"):
        assert "REFUSED by `storytelling train`" in lines[name]
    for name in ("ppo", "a2c", "trpo", "maskable_ppo"):
        assert "REFUSED" not in lines[name]


@pytest.mark.parametrize(
    ("algo_kwargs", "shown"),
    [
        ({"n_stepz": 16}, "unknown algo_kwargs ['n_stepz'] for 'ppo'. Did you mean 'n_steps'?"),
        (
            {"n_steps": "sixteen"},
            "algo_kwargs n_steps='sixteen' for 'ppo' must be a number (the default is 2048)",
        ),
        ({"n_steps": 16.5}, "algo_kwargs n_steps=16.5 for 'ppo' must be a whole number"),
        ({"learning_rate": math.nan}, "algo_kwargs learning_rate=nan for 'ppo' must be finite"),
        ({"seed": 3}, "algo_kwargs ['seed'] for 'ppo' are set by the run itself (seed: --seed)"),
    ],
)
def test_algo_kwargs_errors_name_only_the_users_keys(capsys, algo_kwargs, shown):
    with pytest.raises(ConfigError) as caught:
        check_algo_kwargs("ppo", get_algorithm("ppo"), algo_kwargs)
    message = str(caught.value)
    assert message.startswith(shown.split(" for ")[0]) and shown in message
    assert "gae_lambda" not in message.split(".")[0]  # a default the user never passed
    assert "rollout_buffer_class" not in message.split(".")[0]


def test_the_cli_reports_bad_algo_kwargs_in_one_line(capsys, random_lm_student, tmp_path):
    argv = _train_argv(random_lm_student, tmp_path / "run")
    argv[argv.index("--algo-kwargs") + 1] = '{"n_stepz": 16}'
    err = one_line_error(capsys, [*argv, "--no-progress"])
    assert "unknown algo_kwargs ['n_stepz'] for 'ppo'. Did you mean 'n_steps'?" in err


def test_every_error_here_is_the_projects_own():
    for cls in (ConfigError, RunFolderError, TeacherError):
        assert issubclass(cls, StorytellingError)


# --- crash safety (slow) -------------------------------------------------------------------
@pytest.mark.slow
def test_sigkilled_ten_times_at_random_moments_resumes_to_the_budget(random_lm_student, tmp_path):
    """Acceptance 3: ten SIGKILLs at random moments, then a run to the end of its budget."""
    run = tmp_path / "run"
    argv = [
        sys.executable,
        "-m",
        "story_env.run.cli",
        *_train_argv(random_lm_student, run, 3000),
        "--checkpoint-every",
        "48",
        "--no-progress",
        "--resume",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    rng = random.Random(13)
    kills, resumed_from = 0, set()
    log = run / "stories.jsonl"

    def logged() -> int:
        return log.read_bytes().count(b"\n") if log.exists() else 0

    for _ in range(10):
        # a random moment of training, whatever the machine's speed: after a random number
        # of newly logged stories (imports take seconds first), plus a random delay
        target = logged() + rng.randint(1, 15)
        proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.time() + 300
        while proc.poll() is None and time.time() < deadline and logged() < target:
            time.sleep(0.01)
        time.sleep(rng.uniform(0.0, 0.3))
        if proc.poll() is not None:
            err = proc.stderr.read().decode()
            assert proc.returncode == 0, err
            break
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        kills += 1
        if (run / "checkpoint.json").exists():
            assert_every_story_kept_up_to_checkpoint(run)
            resumed_from.add(json.loads((run / "checkpoint.json").read_text())["steps"])
    assert kills >= 5, "the run finished before most kills; make it longer"
    assert len(resumed_from) >= 3, f"kills hit too few training moments: {resumed_from}"
    done = subprocess.run(argv, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    state = json.loads((run / "checkpoint.json").read_text())
    assert 3000 <= state["steps"] < 3000 + 32  # within one rollout (16 x 2 envs)
    assert_every_story_kept(run)
    from stable_baselines3 import PPO

    PPO.load(run / "checkpoint.zip", device="cpu")


def assert_every_story_kept_up_to_checkpoint(run: Path) -> None:
    """After a kill: the checkpoint's stories are all in the log, whole and in order."""
    state = json.loads((run / "checkpoint.json").read_text())
    lines = (run / "stories.jsonl").read_bytes().splitlines(keepends=True)
    assert len(lines) >= state["stories"]
    for number, line in enumerate(lines[: state["stories"]], 1):
        assert line.endswith(b"\n") and json.loads(line)["story_index"] == number
