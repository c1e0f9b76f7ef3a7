"""``api`` teacher: the rubric through any OpenAI-compatible chat-completions server.

Works with vLLM, llama.cpp's server, Ollama, LM Studio or a hosted API: it sends
``POST {base_url}/chat/completions`` with the rubric's two messages and parses the answer
strictly. Stories of a batch go out concurrently (``concurrency`` at a time) over one
pooled HTTP client. Each request has a timeout and is retried with exponential backoff
on a timeout, a lost connection, HTTP 429 (waiting as long as ``Retry-After`` says, up
to ``max_wait_s``) and HTTP 5xx; other HTTP errors fail at once.

The API key is read from the environment variable named by ``api_key_env`` when a
request is sent. It is never stored on the teacher, never part of its repr, its config
or the cache key. The key and any credentials written into ``base_url`` are masked
(``***``, see ``story_env.secrets``) in every string the teacher keeps or returns: the
server's answers (so a server that echoes the key does not put it in ``teacher_raw``,
the story log or the cache), error texts and fallback records.

Example::

    env = gym.make("Storytelling-v0", teacher="api", teacher_kwargs={
        "base_url": "http://127.0.0.1:8080/v1", "model": "llama-3.1-8b-instruct",
        "api_key_env": "OPENAI_API_KEY"})
"""

from __future__ import annotations

import email.utils
import os
import random
import threading
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Unpack

from story_env.errors import BackendError, ConfigError, DependencyMissingError
from story_env.secrets import (
    MASK,
    Redactor,
    basic_auth_from_url,
    body_secrets,
    is_secret_name,
    redact_config,
    redact_logger,
    redact_url,
    strip_url_credentials,
    url_query,
    url_secrets,
)
from story_env.teacher import StoryRequest
from story_env.teachers import rubric
from story_env.teachers.judge import JudgeKwargs, JudgeOptions, JudgeTeacher


def retry_after_seconds(value: str | None, now: float | None = None) -> float | None:
    """Read an HTTP ``Retry-After`` header: delay seconds or an HTTP date.

    Returns:
        Seconds to wait (>= 0), or ``None`` if the header is missing or unreadable.
    """
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


class APITeacher(JudgeTeacher):
    """Grades stories with an OpenAI-compatible chat-completions endpoint.

    Args:
        base_url: The API root, e.g. ``"http://127.0.0.1:8080/v1"`` or
            ``"https://api.openai.com/v1"``; ``/chat/completions`` is appended.
        model: The model name the server expects.
        api_key_env: Name of the environment variable holding the API key (``None``: send
            no key). The variable must be set when the teacher is created.
        temperature: Sampling temperature (the paper: 0.2).
        max_tokens: Answer length limit (the paper: 6).
        extra_body: More JSON fields for every request, e.g. a llama.cpp ``grammar``.
        concurrency: Requests in flight at once.
        timeout_s: Seconds to wait for a response (read, write and pool).
        connect_timeout_s: Seconds to wait for a connection.
        max_retries: Transport retries per request (timeout, connection, 429, 5xx).
        backoff_s: First backoff delay; doubles each retry, with jitter.
        max_wait_s: Longest single wait, also the cap on ``Retry-After``.
        **options: ``batch_size`` (default 32), ``on_failure``, ``retries``,
            ``fallback_score``, ``cache``: see ``JudgeOptions``.
    """

    name = "api"
    default_options = JudgeOptions(batch_size=32)

    def __init__(
        self,
        *,
        base_url: str,
        model: str,
        api_key_env: str | None = None,
        temperature: float = 0.2,
        max_tokens: int = 6,
        extra_body: Mapping[str, Any] | None = None,
        concurrency: int = 4,
        timeout_s: float = 30.0,
        connect_timeout_s: float = 5.0,
        max_retries: int = 3,
        backoff_s: float = 0.5,
        max_wait_s: float = 30.0,
        **options: Unpack[JudgeKwargs],
    ) -> None:
        try:
            import httpx
        except ImportError as exc:
            raise DependencyMissingError(
                "the api teacher needs httpx: pip install 'httpx>=0.27,<1'"
            ) from exc
        if not isinstance(base_url, str) or not base_url.startswith(("http://", "https://")):
            shown = redact_url(base_url) if isinstance(base_url, str) else base_url
            raise ConfigError(
                f"base_url must be an http(s) URL such as 'http://127.0.0.1:8080/v1', got {shown!r}"
            )
        if not isinstance(model, str) or not model:
            raise ConfigError(f"model must be a non-empty model name, got {model!r}")
        if api_key_env is not None:
            if not isinstance(api_key_env, str) or not api_key_env:
                raise ConfigError(
                    f"api_key_env must name an environment variable (e.g. 'OPENAI_API_KEY'), got {api_key_env!r}"
                )
            if basic_auth_from_url(base_url) is not None:
                raise ConfigError(
                    f"base_url {redact_url(base_url)!r} carries credentials (sent as HTTP Basic "
                    f"auth) and api_key_env={api_key_env!r} a Bearer key; a request has one "
                    "Authorization header, so give one of them"
                )
            if not os.environ.get(api_key_env):
                raise ConfigError(
                    f"api_key_env={api_key_env!r} names an environment variable that is not set; "
                    f"export {api_key_env}=<your key> or pass api_key_env=None for a server without keys"
                )
        for label, value, low in (
            ("concurrency", concurrency, 1),
            ("max_tokens", max_tokens, 1),
            ("max_retries", max_retries, 0),
        ):
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ConfigError(f"{label} must be an int >= {low}, got {value!r}")
        for label, value in (
            ("timeout_s", timeout_s),
            ("connect_timeout_s", connect_timeout_s),
            ("max_wait_s", max_wait_s),
        ):
            if not isinstance(value, int | float) or value <= 0:
                raise ConfigError(f"{label} must be a number of seconds > 0, got {value!r}")
        super().__init__(**options)
        # credentials in base_url travel as HTTP Basic auth and its query (``?api-key=``)
        # as request parameters, never in a URL that a message, a client or its logging
        # could show (httpx logs every request's URL at INFO level)
        redact_logger("httpx")  # it logs every request's URL, query included
        root, self._params = url_query(strip_url_credentials(base_url))
        self.base_url = root.rstrip("/")
        self._basic_auth = basic_auth_from_url(base_url)
        self._redact = Redactor([*url_secrets(base_url), *body_secrets(extra_body or {})])
        self.model = model
        self.api_key_env = api_key_env
        self.temperature = float(temperature)
        self.max_tokens = max_tokens
        self.extra_body = dict(extra_body or {})
        self.concurrency = concurrency
        self.max_retries = max_retries
        self.backoff_s = float(backoff_s)
        self.max_wait_s = float(max_wait_s)
        self._timeout = httpx.Timeout(float(timeout_s), connect=float(connect_timeout_s))
        self._client: Any = None
        self._pool: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return (
            f"APITeacher(base_url={self.base_url!r}, model={self.model!r}, "
            f"api_key_env={self.api_key_env!r}, concurrency={self.concurrency})"
        )

    def grade_config(self) -> dict[str, Any]:
        """Server, model and sampling settings (no key, no timeouts, no concurrency)."""
        config = {
            "teacher": self.name,
            "base_url": self.base_url,
            "model": self.model,
            "temperature": self.temperature,
            "max_tokens": self.max_tokens,
            "extra_body": redact_config(self.extra_body),
        }
        if self._params:  # e.g. an api-version; a key among them is masked
            config["query"] = [(k, MASK if is_secret_name(k) else v) for k, v in self._params]
        return config

    def close(self) -> None:
        """Close the HTTP client, its worker threads and the grade cache.

        Idempotent; the next ``score`` opens a new client.
        """
        with self._lock:
            if self._pool is not None:
                self._pool.shutdown(wait=True)
            if self._client is not None:
                self._client.close()
            self._pool = self._client = None
        super().close()

    def _session(self) -> tuple[Any, ThreadPoolExecutor]:
        import httpx

        with self._lock:
            if self._client is None:
                limits = httpx.Limits(
                    max_connections=self.concurrency, max_keepalive_connections=self.concurrency
                )
                self._client = httpx.Client(timeout=self._timeout, limits=limits)
                self._pool = ThreadPoolExecutor(self.concurrency, thread_name_prefix="api-teacher")
            assert self._pool is not None
            return self._client, self._pool

    def _complete(self, requests: Sequence[StoryRequest]) -> list[str | Exception]:
        _, pool = self._session()
        return list(pool.map(self._ask, requests))

    def _ask(self, request: StoryRequest) -> str | Exception:
        body = {
            "model": self.model,
            "messages": rubric.chat_messages(request),
            "temperature": self.temperature,
            "max_tokens": self.max_tokens,
            **self.extra_body,
        }
        key = os.environ.get(self.api_key_env) if self.api_key_env else None
        redact = self._redact.with_secret(key)
        try:
            return redact(self._post(body, key))
        except BackendError as exc:
            exc.args = (redact(str(exc)),)
            return exc
        except Exception as exc:  # anything else the client raised: a failed grade, masked
            return BackendError(redact(f"{type(exc).__name__}: {exc}"), "other")

    def _post(self, body: dict[str, Any], key: str | None) -> str:
        import httpx

        client, _ = self._session()
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        url = f"{self.base_url}/chat/completions"
        error: BackendError | None = None
        for attempt in range(self.max_retries + 1):
            wait: float | None = None
            try:
                response = client.post(
                    url,
                    json=body,
                    headers=headers,
                    auth=self._basic_auth,
                    params=self._params or None,
                )
            except httpx.TimeoutException as exc:
                error = BackendError(
                    f"no answer from {self.base_url} within the timeout ({type(exc).__name__})",
                    "timeout",
                )
            except httpx.TransportError as exc:
                error = BackendError(
                    f"cannot reach {self.base_url} ({type(exc).__name__}: {exc}); is the server up?",
                    "connection",
                )
            else:
                status = response.status_code
                if status == 429 or status >= 500:
                    error = BackendError(
                        f"HTTP {status} from {self.base_url}: {response.text[:200]}", "http"
                    )
                    wait = retry_after_seconds(response.headers.get("retry-after"))
                elif status >= 400:
                    raise BackendError(
                        f"HTTP {status} from {self.base_url}: {response.text[:300]} "
                        "(check base_url, model and the key in api_key_env)",
                        "http",
                    )
                else:
                    return _answer_text(response)
            if attempt == self.max_retries:
                break
            if wait is None:
                wait = self.backoff_s * 2**attempt * random.uniform(0.75, 1.25)
            time.sleep(min(wait, self.max_wait_s))
        assert error is not None
        error.args = (f"{error} (after {self.max_retries + 1} attempts)",)
        raise error


def _answer_text(response: Any) -> str:
    try:
        data = response.json()
        content = data["choices"][0]["message"]["content"]
    except (ValueError, KeyError, IndexError, TypeError) as exc:
        raise BackendError(
            f"response is not an OpenAI chat completion ({type(exc).__name__}: {exc}): "
            f"{response.text[:200]!r}",
            "response",
        ) from None
    if not isinstance(content, str):
        raise BackendError(f"answer content is not text: {content!r}", "response")
    return content
