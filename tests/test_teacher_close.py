"""Closing a teacher: ``close_teacher`` and what a judge's ``close()`` releases.

The API teacher's HTTP client (tests/test_teacher_api.py), llama.cpp servers
(tests/test_teacher_llamacpp.py) and the models of the hf and lm teachers
(tests/test_teacher_hf.py, tests/test_teacher_lm.py) are tested beside their teachers;
here: the contract, and the grade cache's SQLite file that every judge closes.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from story_env.registry import create_teacher
from story_env.teacher import StoryRequest, Teacher, close_teacher
from story_env.teachers.judge import JudgeTeacher

PROMPT = "Once upon a time,"


class CountingJudge(JudgeTeacher):
    """Answers ``2 1 3`` for every story and counts the stories it was asked."""

    name = "counting"

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.calls = 0

    def _complete(self, requests):
        self.calls += len(requests)
        return ["2 1 3"] * len(requests)


def open_handles(path: Path) -> int:
    """How many of this process's file descriptors point at ``path`` (Linux)."""
    fds = Path("/proc/self/fd")
    if not fds.is_dir():
        pytest.skip("counting open files needs /proc/self/fd")
    target = str(path.resolve())
    count = 0
    for fd in fds.iterdir():
        try:
            count += os.readlink(fd) == target
        except OSError:  # closed while listing (the listing's own descriptor)
            continue
    return count


def requests(n: int) -> list[StoryRequest]:
    return [StoryRequest(PROMPT, f" a fox named Pip number {i} found a key.") for i in range(n)]


def test_close_teacher_calls_close_when_there_is_one_and_leaves_others_alone():
    closed = []

    class Closable:
        def close(self) -> None:
            closed.append(True)

    close_teacher(Closable())
    assert closed == [True]
    heuristic = create_teacher("heuristic")  # holds nothing, defines no close
    assert isinstance(heuristic, Teacher) and not hasattr(heuristic, "close")
    close_teacher(heuristic)
    close_teacher(object())


def test_close_closes_the_cache_file_twice_safely_and_the_next_score_reopens_it(tmp_path):
    path = tmp_path / "grades.sqlite"
    wal = tmp_path / "grades.sqlite-wal"
    judge = CountingJudge(cache=str(path))
    first = judge.score(requests(3))
    assert open_handles(path) == 1 and wal.exists()
    close_teacher(judge)
    close_teacher(judge)  # idempotent
    assert open_handles(path) == 0
    assert not wal.exists()  # SQLite's last connection checkpointed and removed its log
    assert judge.score(requests(3)) == first  # reopened: every story from the cache
    assert judge.calls == 3 and judge.stats["cache_hits"] == 3 and open_handles(path) == 1
    judge.close()
    assert open_handles(path) == 0


def test_a_judge_without_a_cache_closes_too():
    judge = CountingJudge()
    judge.close()
    judge.close()
    assert judge.score(requests(1))[0].ok
