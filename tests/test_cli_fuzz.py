"""Every value checked at the boundary (issue 34): the CLI's ``main``, called in-process
with a random bad value for any flag of the commands that train, evaluate or probe, ends
with exit status 2 and one error line, never a traceback.

Nothing trains: each command's other arguments end in a cheap refusal once every value
has passed its checks (a student that cannot be trained, a checkpoint that is missing, a
teacher that does not exist), so a value that slips through the checks still exits 2,
and one that reaches a library shows as a traceback or another status.
"""

from __future__ import annotations

import contextlib
import io
import json
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from story_env.registry import registry
from story_env.run.cli import build_parser, main

# each command's arguments that refuse cheaply after the checks (paths below tmp_path)
BASE = {
    "train": ["train", "--student", "ngram", "--out", "{tmp}/train"],
    "compare": ["compare", "--student", "ngram", "--out", "{tmp}/compare"],
    "eval": ["eval", "--checkpoint", "{tmp}/missing", "--no-judge"],
    "probe": ["probe", "--checkpoint", "{tmp}/missing"],
    "play": ["play", "--teacher", "no-such-teacher", "--episodes", "1"],
    "pretrain": ["pretrain", "--words", "100", "--out", "{tmp}/pre", "--train-file", "{tmp}/no"],
}
NAMES = {"--student", "--teacher", "--algorithm", "--agent", "--algorithms", "--judge"}
PATHS = {"--out", "--config", "--json", "--checkpoint", "--train-file", "--val-file"}


def _flags() -> list[tuple[str, str]]:
    """Every (command, flag) of ``BASE``'s commands that takes a value."""
    parser = build_parser()
    commands = next(a for a in parser._actions if a.dest == "command").choices
    found = []
    for command in BASE:
        for action in commands[command]._actions:
            if action.option_strings and action.nargs != 0 and action.dest != "help":
                found.append((command, action.option_strings[-1]))
    return found


FLAGS = _flags()
NUMBERS = st.one_of(
    st.integers(min_value=-(2**80), max_value=2**80).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.sampled_from(["nan", "inf", "-inf", "1e30", "1.5", "-0", "0x10", "1_0", "4294967296"]),
)
BAD_JSON = st.one_of(
    st.dictionaries(
        st.sampled_from(["n_steps", "n_epochs", "learning_rate", "batch_size", "seed", "gamma"]),
        st.one_of(
            st.integers(min_value=-(2**70), max_value=2**70),
            st.floats(allow_nan=False, allow_infinity=False, width=64),
            st.text(max_size=5),
            st.none(),
        ),
        min_size=1,
        max_size=3,
    ).map(json.dumps),
    st.sampled_from(["{", "[]", "1", '"x"', "null", "{seed: 1}", '{"seed": NaN}']),
)
# text that is not an option (argparse reads "-x" as one) and not a registered name
WORDS = st.text(
    st.characters(codec="utf-8", exclude_categories=["Cs"]), min_size=0, max_size=12
).filter(lambda t: not t.startswith("-"))


def _registered() -> set[str]:
    reg = registry()
    return {n for kind in ("teacher", "student", "algorithm") for n in reg.names(kind)}


def _values(flag: str, tmp: Path) -> st.SearchStrategy[str]:
    if flag in PATHS:  # never a path outside tmp_path
        folder = tmp / "foreign"
        folder.mkdir(exist_ok=True)
        (folder / "mine.txt").write_text("mine")
        return st.sampled_from(["", " ", str(folder), str(folder / "mine.txt"), str(tmp / "a\0b")])
    if flag.endswith("kwargs"):
        return BAD_JSON
    if flag in NAMES:
        known = _registered()
        return WORDS.filter(lambda t: t.strip() not in known and "," not in t)
    return st.one_of(NUMBERS, WORDS, st.sampled_from(["", "a,b", "0,0", "1,,2", " "]))


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("fuzz")


def run_cli(argv: list[str]) -> tuple[int, str]:
    err, out = io.StringIO(), io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
        try:
            status = main(argv)
        except SystemExit as exc:  # argparse's usage errors
            status = exc.code
    return status, err.getvalue()


@settings(
    max_examples=250,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
def test_any_bad_flag_value_is_one_line_and_exit_status_2(folder, monkeypatch, data):
    monkeypatch.chdir(folder)  # a relative path a value names stays in the test's folder
    command, flag = data.draw(st.sampled_from(FLAGS), label="flag")
    value = data.draw(_values(flag, folder), label="value")
    base = [arg.replace("{tmp}", str(folder)) for arg in BASE[command]]
    status, err = run_cli([*base, flag, value])
    lines = err.strip().splitlines()
    assert "Traceback" not in err, err
    assert status == 2, (status, err)
    assert len(lines) == 1 and lines[0].startswith("storytelling"), err


def test_the_fuzzed_flags_cover_every_value_flag_of_train():
    flags = {f for c, f in FLAGS if c == "train"}
    assert {"--steps", "--seed", "--algo-kwargs", "--num-envs", "--top-p", "--out"} <= flags


@pytest.mark.parametrize(
    ("argv", "shown"),
    [
        (["train", "--steps", "1e30"], "argument --steps: expected a count from 0 to 1e+12"),
        (["train", "--steps", "2.5"], "argument --steps: expected a whole count"),
        (["train", "--seed", "4294967296"], "a seed must be from 0 to 4294967295"),
        (["compare", "--seeds", "a,b"], "expected a seed (a whole number from 0 to"),
        (["compare", "--seeds", "0,0"], "argument --seeds: seed 0 is given twice"),
        (["compare", "--algorithms", "ppo,ppo"], "argument --algorithms: name ppo is given twice"),
        (["compare", "--eval-stories", "0"], "argument --eval-stories: expected a whole number"),
        (["pretrain", "--lr", "nan"], "argument --lr: expected a finite number, got 'nan'"),
        (
            ["train", "--algo-kwargs", '{"n_steps": 0}'],
            "algo_kwargs n_steps=0 for 'ppo_story' must be >= 1",
        ),
        (
            ["train", "--algo-kwargs", '{"n_epochs": 0}'],
            "algo_kwargs n_epochs=0 for 'ppo_story' must be >= 1",
        ),
        (
            ["train", "--algo-kwargs", '{"learning_rate": -0.001}'],
            "algo_kwargs learning_rate=-0.001 for 'ppo_story' must be >= 0",
        ),
        (
            ["train", "--algo-kwargs", '{"n_steps": 100000000000000000000}'],
            "is too large",
        ),
        (
            ["play", "--teacher", "random", "--teacher-kwargs", '{"seed": "abc"}'],
            "the random teacher's seed must be a whole number",
        ),
    ],
)
def test_each_case_of_the_issue_is_refused_before_anything_is_built(folder, argv, shown):
    out = folder / f"case-{time.monotonic_ns()}"
    extra = ["--out", str(out)] if argv[0] in ("train", "compare", "pretrain") else []
    if argv[0] == "pretrain":
        extra += ["--words", "100"]
    status, err = run_cli([*argv, *extra])
    assert status == 2 and shown in err and len(err.strip().splitlines()) == 1, err
    assert not out.exists()  # nothing was written: refused before any run began
