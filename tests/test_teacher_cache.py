"""The SQLite grade cache: hits, keys, and two processes writing at once."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import textwrap

import pytest

from story_env.errors import ConfigError
from story_env.teacher import Scores, StoryRequest
from story_env.teachers.cache import GradeCache, config_hash, grade_key, open_cache
from story_env.teachers.judge import JudgeTeacher

PROMPT = "Once upon a time,"


def story(i: int) -> str:
    return f" a fox named Pip number {i} found a key and opened the door to a garden."


class CountingJudge(JudgeTeacher):
    """Answers a deterministic grade per story and counts the stories it was asked."""

    name = "counting"

    def __init__(self, model: str = "m1", **kwargs) -> None:
        super().__init__(**kwargs)
        self.model, self.calls = model, 0

    def grade_config(self):
        return {"teacher": self.name, "model": self.model}

    def _complete(self, requests):
        self.calls += len(requests)
        return [f"{len(r.story) % 4} 2 1" if "bad" not in r.story else "garbage" for r in requests]


def test_same_100_stories_twice_call_the_backend_100_times(tmp_path):
    path = tmp_path / "grades.sqlite"
    requests = [StoryRequest(PROMPT, story(i)) for i in range(100)]
    judge = CountingJudge(cache=str(path), batch_size=16)
    first = judge.score(requests)
    second = judge.score(requests)
    assert judge.calls == 100 and first == second
    assert judge.stats["cache_hits"] == 100 and judge.stats["backend_calls"] == 100
    again = CountingJudge(cache=str(path)).score(requests)  # a new teacher, same file
    assert again == first and len(GradeCache(path)) == 100
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_key_depends_on_config_rubric_prompt_and_story(tmp_path):
    path = str(tmp_path / "grades.sqlite")
    request = StoryRequest(PROMPT, story(1))
    a, b = CountingJudge(cache=path), CountingJudge(model="m2", cache=path)
    a.score([request])
    b.score([request])
    assert a.calls == b.calls == 1  # another model is another key
    digest = config_hash({"teacher": "counting", "model": "m1"})
    keys = {
        grade_key(digest, "v1", request),
        grade_key(digest, "v2", request),
        grade_key(digest, "v1", StoryRequest("Another prompt", request.story)),
        grade_key(digest, "v1", StoryRequest(PROMPT, request.story + "!")),
    }
    assert len(keys) == 4


def test_failures_and_short_stories_are_not_cached(tmp_path):
    path = str(tmp_path / "grades.sqlite")
    judge = CountingJudge(cache=path, retries=0)
    requests = [StoryRequest(PROMPT, " a bad story about a bad day."), StoryRequest(PROMPT, " ok")]
    judge.score(requests)
    judge.score(requests)
    assert judge.calls == 2 and len(GradeCache(path)) == 0


def test_open_cache_arguments(tmp_path):
    assert open_cache(None) is None and open_cache(False) is None
    assert isinstance(open_cache(str(tmp_path / "x.sqlite")), GradeCache)
    with pytest.raises(ConfigError, match="cache must be None, True"):
        open_cache(3)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="cannot open the teacher cache"):
        GradeCache(tmp_path)  # a folder, not a file


def test_values_round_trip(tmp_path):
    cache = GradeCache(tmp_path / "g.sqlite")
    grade = Scores.from_values({"readability": 1.5, "coherence": 2.0}, 3.0, raw="1.5 2")
    cache.put_many([("k", grade), ("f", Scores.failed("x"))], teacher="t", digest="d", rubric="r")
    assert cache.get_many(["k", "f", "missing"]) == {"k": grade}


WORKER = textwrap.dedent(
    """
    import sys
    from story_env.teacher import StoryRequest
    from story_env.teachers.judge import JudgeTeacher

    class Worker(JudgeTeacher):
        name = "counting"
        def _complete(self, requests):
            return [f"{len(r.story) % 4} {len(r.story) % 3} 1" for r in requests]

    path, offset = sys.argv[1], int(sys.argv[2])
    judge = Worker(cache=path, batch_size=1)
    for i in range(offset, offset + 150):  # one write transaction per story
        judge.score([StoryRequest("Once upon a time,", f" fox {i} found a key to the old door.")])
    print(judge.stats["cache_hits"], judge.stats["backend_calls"])
    """
)


def test_two_processes_grading_at_once_corrupt_nothing(tmp_path):
    path = str(tmp_path / "shared.sqlite")
    GradeCache(path)  # create the schema once, as a run would
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, path, str(offset)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for offset in (0, 75)  # stories 75..149 are graded by both
    ]
    outs = [p.communicate(timeout=120) for p in procs]
    assert all(p.returncode == 0 for p in procs), [err for _, err in outs]
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        rows = conn.execute("SELECT grade_values, raw FROM grades").fetchall()
    assert len(rows) == 225
    for values, raw in rows:  # every stored grade is the one its answer says
        assert list(json.loads(values).values()) == [float(v) for v in raw.split()]
