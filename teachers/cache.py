"""A SQLite cache of grades, shared by every teacher and safe across processes.

A grade is stored under a key that hashes the teacher's configuration (only what changes
grades: model, mode, sampling; never secrets, URLs' credentials or batch sizes), the
rubric version, the prompt and the story. Only real grades are stored, never failures
or fallbacks, so a failed story is asked again next time.

The database runs in WAL mode with a busy timeout, so several processes (vector-env
workers, parallel runs) can read and write one file at once; writes are short
``BEGIN IMMEDIATE`` transactions and ``INSERT OR REPLACE`` makes racing writers of the
same key harmless (both wrote an equally valid grade).
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import threading
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from story_env.errors import ConfigError
from story_env.teacher import Scores, StoryRequest

SCHEMA_VERSION = 1
_SCHEMA = """
CREATE TABLE IF NOT EXISTS grades (
    key TEXT PRIMARY KEY,
    teacher TEXT NOT NULL,
    config_hash TEXT NOT NULL,
    rubric TEXT NOT NULL,
    grade_values TEXT NOT NULL,
    total REAL NOT NULL,
    raw TEXT NOT NULL,
    created REAL NOT NULL
)
"""


def default_cache_path() -> Path:
    """``<user cache dir>/storytelling/teacher_grades.sqlite`` (from ``platformdirs``)."""
    import platformdirs

    return Path(platformdirs.user_cache_dir("storytelling")) / "teacher_grades.sqlite"


def config_hash(config: Mapping[str, Any]) -> str:
    """A short, stable hash of a JSON-able teacher configuration.

    Raises:
        ConfigError: If ``config`` is not JSON-able.
    """
    try:
        text = json.dumps(config, sort_keys=True, separators=(",", ":"))
    except TypeError as exc:
        raise ConfigError(f"teacher config must be JSON-able to key the cache: {exc}") from exc
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def grade_key(config_digest: str, rubric_version: str, request: StoryRequest) -> str:
    """The cache key of one story under one teacher configuration and rubric."""
    payload = json.dumps([config_digest, rubric_version, request.prompt, request.story])
    return hashlib.sha256(payload.encode()).hexdigest()


class GradeCache:
    """Grades stored in one SQLite file.

    Args:
        path: The database file (created with its folder if missing), or ``":memory:"``.
        timeout_s: How long a writer waits for another process's lock.
    """

    def __init__(self, path: str | os.PathLike[str], *, timeout_s: float = 30.0) -> None:
        self.path = str(path)
        self.timeout_s = float(timeout_s)
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None
        self._pid = -1
        if self.path != ":memory:":
            Path(self.path).expanduser().parent.mkdir(parents=True, exist_ok=True)
        self._connection()  # fail early on a bad path

    def __repr__(self) -> str:
        return f"GradeCache({self.path!r})"

    def _connection(self) -> sqlite3.Connection:
        # A connection must not cross a fork: reopen in a child process.
        if self._conn is None or self._pid != os.getpid():
            try:
                conn = sqlite3.connect(
                    os.path.expanduser(self.path),
                    timeout=self.timeout_s,
                    isolation_level=None,
                    check_same_thread=False,
                )
                conn.execute(f"PRAGMA busy_timeout = {int(self.timeout_s * 1000)}")
                conn.execute("PRAGMA journal_mode = WAL")
                conn.execute("PRAGMA synchronous = NORMAL")
                conn.execute(_SCHEMA)
            except sqlite3.Error as exc:
                raise ConfigError(
                    f"cannot open the teacher cache at {self.path!r}: {exc}. Pass cache=None "
                    "to grade without a cache, or a writable file path."
                ) from exc
            self._conn, self._pid = conn, os.getpid()
        return self._conn

    def get_many(self, keys: Iterable[str]) -> dict[str, Scores]:
        """Look keys up; return the grades found (missing keys are absent)."""
        keys = list(dict.fromkeys(keys))
        found: dict[str, Scores] = {}
        with self._lock:
            conn = self._connection()
            for start in range(0, len(keys), 500):
                chunk = keys[start : start + 500]
                marks = ",".join("?" * len(chunk))
                rows = conn.execute(
                    f"SELECT key, grade_values, total, raw FROM grades WHERE key IN ({marks})",
                    chunk,
                ).fetchall()
                for key, values, total, raw in rows:
                    found[key] = Scores(values=json.loads(values), total=total, raw=raw)
        return found

    def put_many(
        self, items: Iterable[tuple[str, Scores]], *, teacher: str, digest: str, rubric: str
    ) -> int:
        """Store successful grades; failed ones are ignored. Returns how many were stored."""
        rows = [
            (key, teacher, digest, rubric, json.dumps(dict(s.values)), s.total, s.raw, time.time())
            for key, s in items
            if s.ok and s.total is not None and not getattr(s, "fallback_error", "")
        ]
        if not rows:
            return 0
        with self._lock:
            conn = self._connection()
            conn.execute("BEGIN IMMEDIATE")
            try:
                conn.executemany("INSERT OR REPLACE INTO grades VALUES (?,?,?,?,?,?,?,?)", rows)
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
        return len(rows)

    def __len__(self) -> int:
        with self._lock:
            return int(self._connection().execute("SELECT COUNT(*) FROM grades").fetchone()[0])

    def close(self) -> None:
        """Close this process's SQLite connection. Idempotent; the next use reopens it."""
        with self._lock:
            if self._conn is not None and self._pid == os.getpid():
                self._conn.close()
            self._conn = None


def open_cache(cache: str | bool | None) -> GradeCache | None:
    """Turn a teacher's ``cache`` kwarg into a cache.

    Args:
        cache: ``None``/``False`` for no cache, ``True`` or ``"default"`` for
            ``default_cache_path()``, otherwise a file path.

    Returns:
        The cache, or ``None``.
    """
    if cache is None or cache is False:
        return None
    if cache is True or cache == "default":
        return GradeCache(default_cache_path())
    if not isinstance(cache, str | os.PathLike):
        raise ConfigError(
            f"cache must be None, True, 'default' or a file path, got {cache!r} "
            f"({type(cache).__name__})"
        )
    return GradeCache(cache)
