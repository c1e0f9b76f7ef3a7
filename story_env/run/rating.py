"""Blind pairwise rating by people: the stories, their pairs and the votes, in SQLite.

``storytelling rate`` (``story_env.run.rating_web``) shows a person two stories written
for the same prompt at the same seed by two systems (run folders, checkpoints, the
untrained student or ``storytelling eval --json`` files), sides randomised and names
hidden, and stores each vote here. ``story_env.run.rating_stats`` turns the votes into
win rates, Bradley-Terry ratings and each automatic grader's agreement with the people.

The database (SQLite in WAL mode) holds the stories, every grader's grade of each story,
the pairs and the votes. A vote is one row per rater and pair (a unique constraint), so
a double submit, a reload or two raters at once never store a vote twice, and a rater
who comes back is shown only the pairs they have not voted on or skipped.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from story_env.errors import ConfigError
from story_env.prompts import PAPER_PROMPT

#: What a rater may answer; ``skip`` is stored (the pair is not shown again) but not counted.
CHOICES = ("left", "right", "tie", "skip")
#: The longest rater name the page accepts.
MAX_RATER = 64

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS stories (
    id INTEGER PRIMARY KEY, system TEXT NOT NULL, seed INTEGER NOT NULL,
    idx INTEGER NOT NULL, prompt TEXT NOT NULL, text TEXT NOT NULL,
    UNIQUE (system, seed, idx));
CREATE TABLE IF NOT EXISTS grades (
    story_id INTEGER NOT NULL REFERENCES stories(id), grader TEXT NOT NULL, total REAL,
    PRIMARY KEY (story_id, grader));
CREATE TABLE IF NOT EXISTS pairs (
    id INTEGER PRIMARY KEY, story_a INTEGER NOT NULL REFERENCES stories(id),
    story_b INTEGER NOT NULL REFERENCES stories(id), UNIQUE (story_a, story_b));
CREATE TABLE IF NOT EXISTS votes (
    id INTEGER PRIMARY KEY, pair_id INTEGER NOT NULL REFERENCES pairs(id),
    rater TEXT NOT NULL, left_story INTEGER NOT NULL REFERENCES stories(id),
    right_story INTEGER NOT NULL REFERENCES stories(id),
    choice TEXT NOT NULL CHECK (choice IN ('left', 'right', 'tie', 'skip')),
    voted_at TEXT NOT NULL, UNIQUE (rater, pair_id));
"""


@dataclass(frozen=True)
class RatedStory:
    """One story of one system.

    Attributes:
        system: The source it came from, named by ``source_name`` (an absolute path, or
            ``student:NAME``).
        seed: The evaluation seed it was written at.
        index: Its place among the stories of that seed (``evaluate``'s order).
        prompt: The text it continues.
        text: The story (model output: shown escaped, never as markup).
    """

    system: str
    seed: int
    index: int
    prompt: str
    text: str


@dataclass(frozen=True)
class Pair:
    """Two stories shown side by side, in the order the rater sees them.

    ``token`` is what the page's form sends back instead of ``id`` and the story ids: an
    HMAC (keyed by the database's secret salt) of the rater, the pair and the story on
    the left, so the form says nothing about which system wrote which side.
    """

    id: int
    left: dict[str, Any]
    right: dict[str, Any]
    token: str = ""


def check_rater(name: object) -> str:
    """A rater's name, stripped; a ``ConfigError`` for an empty, long or odd one."""
    if not isinstance(name, str) or not name.strip():
        raise ConfigError("give a rater name (any short name, e.g. your initials)")
    name = name.strip()
    if len(name) > MAX_RATER or any(ord(c) < 32 or ord(c) == 127 for c in name):
        raise ConfigError(
            f"rater name {name[:80]!r} must be at most {MAX_RATER} printable characters"
        )
    return name


def source_name(source: str) -> str:
    """The one name a source is stored and compared under.

    A file or folder is named by its absolute path with links resolved (``a.json``,
    ``./a.json`` and ``runs/demo/`` name the same source as their full path does);
    ``student:NAME`` stays as given (unless a file of that name exists). A run folder's
    ``checkpoint.zip`` is named by its folder: both give the same trained policy.
    """
    from story_env.run_folder import CHECKPOINT, CONFIG

    if source.startswith("student:") and not Path(source).exists():
        return source
    path = Path(source).expanduser().resolve()
    if path.name == CHECKPOINT and (path.parent / CONFIG).is_file():
        path = path.parent
    return str(path)


def check_distinct(sources: Sequence[str]) -> list[str]:
    """The sources' names (``source_name``); a ``ConfigError`` naming any two that are the
    same source written two ways."""
    seen: dict[str, str] = {}
    for given in sources:
        name = source_name(given)
        if name in seen and seen[name] == given:
            raise ConfigError(f"source {given!r} is given twice; give each source once")
        if name in seen:
            raise ConfigError(
                f"sources {seen[name]!r} and {given!r} are the same source ({name}); "
                "give each source once"
            )
        seen[name] = given
    return list(seen)


def build_pairs(systems: dict[str, list[RatedStory]]) -> list[tuple[RatedStory, RatedStory]]:
    """Every two systems' stories of the same seed, index and prompt, paired.

    Raises:
        ConfigError: Fewer than two systems, or two systems with no story in common.
    """
    names = list(systems)
    if len(names) < 2:
        raise ConfigError(f"rate needs two or more sources to compare, got {len(names)}")
    keyed = {
        name: {(s.seed, s.index, s.prompt): s for s in stories} for name, stories in systems.items()
    }
    pairs = []
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            common = [key for key in keyed[a] if key in keyed[b]]
            if not common:
                raise ConfigError(
                    f"sources {a!r} and {b!r} share no story of the same seed, index and "
                    "prompt; write them at the same --seed with the same prompt"
                )
            pairs += [(keyed[a][key], keyed[b][key]) for key in sorted(common, key=str)]
    return pairs


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def _digest(*parts: object) -> bytes:
    return hashlib.sha256("\0".join(str(p) for p in parts).encode("utf-8")).digest()


class RatingDB:
    """The rating database at ``path``: opened per use, so threads and processes share it.

    Every connection runs in WAL mode with a busy timeout; every write is one
    ``BEGIN IMMEDIATE`` transaction, so concurrent raters queue instead of failing.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        if self.path.is_dir():
            raise ConfigError(f"rating database {str(self.path)!r} is a folder; give a file path")
        with self.connect() as db:
            db.executescript(_SCHEMA)

    @contextmanager
    def connect(self) -> Iterator[sqlite3.Connection]:
        """A connection in autocommit mode (transactions are explicit), closed after use."""
        try:
            db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        except sqlite3.Error as exc:
            raise ConfigError(f"cannot open rating database {str(self.path)!r}: {exc}") from exc
        try:
            db.row_factory = sqlite3.Row
            if db.execute("PRAGMA journal_mode=WAL").fetchone()[0] != "wal":
                raise ConfigError(f"rating database {str(self.path)!r} cannot use WAL mode")
            db.execute("PRAGMA foreign_keys=ON")
            yield db
        except sqlite3.OperationalError as exc:  # locked past the timeout, read-only, disk
            raise ConfigError(
                f"rating database {str(self.path)!r} cannot be read or written ({exc}); "
                "check the file's permissions and free disk space"
            ) from exc
        except sqlite3.DatabaseError as exc:
            if type(exc) is not sqlite3.DatabaseError:
                raise  # integrity and programming errors are this module's, not the file's
            raise ConfigError(  # not an SQLite file, or a damaged one
                f"rating database {str(self.path)!r} cannot be used ({exc}); "
                "give the file `storytelling rate --db` wrote, or a new path"
            ) from exc
        finally:
            db.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One write transaction, taken before the first read (``BEGIN IMMEDIATE``)."""
        with self.connect() as db:
            db.execute("BEGIN IMMEDIATE")
            try:
                yield db
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")

    def meta(self, key: str) -> Any:
        """A JSON value of the ``meta`` table, or ``None``."""
        with self.connect() as db:
            row = db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else json.loads(row["value"])

    def sources(self) -> list[str] | None:
        """The sources the pairs came from, or ``None`` for an empty database."""
        return self.meta("sources")

    def fill(
        self,
        sources: Sequence[str],
        systems: dict[str, list[RatedStory]],
        grades: dict[str, dict[RatedStory, float | None]],
    ) -> int:
        """Store the stories, their grades and their pairs (once); the number of pairs.

        Raises:
            ConfigError: The database already holds pairs.
        """
        for name, stories in systems.items():
            keys = [(s.seed, s.index) for s in stories]
            if any(s.system != name for s in stories) or len(set(keys)) != len(keys):
                raise ConfigError(
                    f"system {name!r}: each of its stories must carry its name and a seed "
                    "and index of its own"
                )
        pairs = build_pairs(systems)
        with self.transaction() as db:
            if db.execute("SELECT COUNT(*) FROM pairs").fetchone()[0]:
                raise ConfigError(
                    f"rating database {str(self.path)!r} already holds pairs; give a new --db"
                )
            ids: dict[RatedStory, int] = {}
            for stories in systems.values():
                for s in stories:
                    cur = db.execute(
                        "INSERT INTO stories (system, seed, idx, prompt, text) VALUES (?,?,?,?,?)",
                        (s.system, s.seed, s.index, s.prompt, s.text),
                    )
                    ids[s] = int(cur.lastrowid or 0)
            for grader, graded in grades.items():
                db.executemany(
                    "INSERT INTO grades (story_id, grader, total) VALUES (?,?,?)",
                    [(ids[s], grader, total) for s, total in graded.items()],
                )
            db.executemany(
                "INSERT INTO pairs (story_a, story_b) VALUES (?,?)",
                [(ids[a], ids[b]) for a, b in pairs],
            )
            rows = {
                "sources": list(sources),
                "graders": list(grades),
                "salt": secrets.token_hex(16),  # sides and order cannot be guessed
                "created": _now(),
            }
            db.executemany(
                "INSERT INTO meta (key, value) VALUES (?, ?)",
                [(k, json.dumps(v)) for k, v in rows.items()],
            )
        return len(pairs)

    def _left_is_a(self, salt: str, rater: str, pair_id: int) -> bool:
        return _digest(salt, "side", rater, pair_id)[0] & 1 == 0

    @staticmethod
    def _token(salt: str, rater: str, pair_id: int, left_story: int) -> str:
        message = "\0".join(("pair", rater, str(pair_id), str(left_story))).encode("utf-8")
        return hmac.new(salt.encode("utf-8"), message, hashlib.sha256).hexdigest()[:32]

    def next_pair(self, rater: str) -> Pair | None:
        """The next pair ``rater`` has not answered (their own random order and sides)."""
        rater = check_rater(rater)
        salt = self.meta("salt")
        with self.connect() as db:
            left = db.execute(
                "SELECT id, story_a, story_b FROM pairs WHERE id NOT IN "
                "(SELECT pair_id FROM votes WHERE rater = ?)",
                (rater,),
            ).fetchall()
            if not left:
                return None
            row = min(left, key=lambda r: _digest(salt, "order", rater, r["id"]))
            a, b = (
                dict(
                    db.execute("SELECT id, prompt, text FROM stories WHERE id = ?", (i,)).fetchone()
                )
                for i in (row["story_a"], row["story_b"])
            )
        if not self._left_is_a(salt, rater, row["id"]):
            a, b = b, a
        return Pair(row["id"], a, b, self._token(salt, rater, row["id"], a["id"]))

    def vote_token(self, rater: str, token: str, choice: str) -> bool:
        """``vote`` on the pair whose ``Pair.token`` the page gave ``rater``.

        Raises:
            ConfigError: An unknown choice, or a token this database never gave this rater
                (a stale, altered or other rater's form).
        """
        rater = check_rater(rater)
        if choice not in CHOICES:
            raise ConfigError(f"choice {choice!r} is not one of {', '.join(CHOICES)}")
        salt = self.meta("salt")
        given = str(token).encode("utf-8")
        with self.connect() as db:
            rows = db.execute("SELECT id, story_a, story_b FROM pairs").fetchall()
        for row in rows:
            left = row["story_a"] if self._left_is_a(salt, rater, row["id"]) else row["story_b"]
            if hmac.compare_digest(self._token(salt, rater, row["id"], left).encode(), given):
                return self.vote(rater, row["id"], left, choice)
        raise ConfigError(
            f"this answer's pair ({str(token)[:40]!r}) is not one the page showed rater "
            f"{rater!r}; reload the page"
        )

    def vote(self, rater: str, pair_id: int, left_story: int, choice: str) -> bool:
        """Store ``rater``'s answer on a pair; False if they had answered it already.

        ``left_story`` is the story the page showed on the left: it must be the side this
        rater is shown for this pair (a stale or forged form is refused).

        Raises:
            ConfigError: An unknown choice, pair or side.
        """
        rater = check_rater(rater)
        if choice not in CHOICES:
            raise ConfigError(f"choice {choice!r} is not one of {', '.join(CHOICES)}")
        salt = self.meta("salt")
        with self.transaction() as db:
            row = db.execute(
                "SELECT story_a, story_b FROM pairs WHERE id = ?", (pair_id,)
            ).fetchone()
            if row is None:
                raise ConfigError(f"no pair {pair_id!r} in {str(self.path)!r}")
            a, b = row["story_a"], row["story_b"]
            left, right = (a, b) if self._left_is_a(salt, rater, pair_id) else (b, a)
            if left_story != left:
                raise ConfigError(
                    f"pair {pair_id}: story {left_story!r} is not the one shown on the left; "
                    "reload the page"
                )
            cur = db.execute(
                "INSERT OR IGNORE INTO votes (pair_id, rater, left_story, right_story, choice, "
                "voted_at) VALUES (?,?,?,?,?,?)",
                (pair_id, rater, left, right, choice, _now()),
            )
            return cur.rowcount == 1

    def progress(self, rater: str | None = None) -> dict[str, int]:
        """Pairs in all, answered (skips too) by ``rater`` if given, and of everyone the
        votes that were not skips and the raters who cast at least one."""
        with self.connect() as db:
            out = {
                "pairs": db.execute("SELECT COUNT(*) FROM pairs").fetchone()[0],
                "votes": db.execute("SELECT COUNT(*) FROM votes WHERE choice != 'skip'").fetchone()[
                    0
                ],
                "raters": db.execute(
                    "SELECT COUNT(DISTINCT rater) FROM votes WHERE choice != 'skip'"
                ).fetchone()[0],
            }
            if rater is not None:
                out["done"] = db.execute(
                    "SELECT COUNT(*) FROM votes WHERE rater = ?", (rater,)
                ).fetchone()[0]
        return out

    def votes(self) -> list[dict[str, Any]]:
        """Every answer, oldest first: pair, rater, the systems on each side, the winner."""
        query = """
            SELECT v.id AS vote, v.pair_id AS pair, v.rater, v.choice, v.voted_at,
                   l.system AS left_system, r.system AS right_system,
                   v.left_story, v.right_story, l.seed, l.idx AS story_index, l.prompt
            FROM votes v JOIN stories l ON l.id = v.left_story
            JOIN stories r ON r.id = v.right_story ORDER BY v.id"""
        with self.connect() as db:
            rows = [dict(r) for r in db.execute(query)]
        for row in rows:
            side = {"left": "left_system", "right": "right_system"}.get(row["choice"])
            row["winner"] = row[side] if side else None
        return rows

    def grades(self) -> dict[str, dict[int, float | None]]:
        """Each grader's total per story id (``None``: the grader failed on it)."""
        out: dict[str, dict[int, float | None]] = {}
        with self.connect() as db:
            for row in db.execute("SELECT story_id, grader, total FROM grades"):
                out.setdefault(row["grader"], {})[row["story_id"]] = row["total"]
        return out


def export_votes(db: RatingDB, path: str | Path) -> int:
    """Write every vote to ``path`` (``.jsonl`` or ``.csv``), atomically; how many.

    Raises:
        ConfigError: Another file suffix.
    """
    import csv
    import io

    from story_env.run_folder import write_atomic

    target = Path(path)
    rows = db.votes()
    if target.suffix == ".jsonl":
        text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
    elif target.suffix == ".csv":
        buffer = io.StringIO()
        fields = list(rows[0]) if rows else ["vote", "pair", "rater", "choice", "winner"]
        writer = csv.DictWriter(buffer, fieldnames=fields, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        text = buffer.getvalue()
    else:
        raise ConfigError(
            f"--export {str(target)!r}: name a .jsonl or .csv file (the suffix picks the format)"
        )
    write_atomic(target, text, "vote export", "run --export again (the votes stay in the database)")
    return len(rows)


def eval_json_stories(
    path: Path, prompt: str = PAPER_PROMPT, name: str | None = None
) -> tuple[list[RatedStory], list[Any]]:
    """The stories of a ``storytelling eval --json`` file, and the graders it names.

    The stories are the system ``name`` (default: ``source_name`` of the path).

    Its summary keeps the stories' texts and seed but not their prompt: ``prompt`` is the
    one they continue (``storytelling eval`` writes from the paper's prompt unless the
    run was trained on its own).

    Raises:
        ConfigError: A file that is not an eval summary.
    """
    from story_env.run.judging import JudgeSpec

    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(f"cannot read eval JSON {str(path)!r}: {exc}") from exc
    texts = data.get("texts") if isinstance(data, dict) else None
    seed = data.get("seed") if isinstance(data, dict) else None
    if (
        not isinstance(texts, list)
        or not texts
        or not all(isinstance(t, str) for t in texts)
        or isinstance(seed, bool)
        or not isinstance(seed, int)
    ):
        raise ConfigError(
            f"{str(path)!r} is not a `storytelling eval --json` summary (it needs a list of "
            "story 'texts' and a 'seed'); write one with `storytelling eval --json FILE`"
        )
    system = source_name(str(path)) if name is None else name
    stories = [RatedStory(system, seed, i, prompt, t) for i, t in enumerate(texts)]
    graders: list[Any] = []
    if isinstance(data.get("teacher"), str):
        graders.append(JudgeSpec(data["teacher"]))
    for judged in (data.get("judges") or {}).values():
        spec = judged.get("judge") if isinstance(judged, dict) else None
        if isinstance(spec, dict) and isinstance(spec.get("name"), str):
            graders.append(JudgeSpec(spec["name"], spec.get("kwargs") or {}))
    return stories, graders


def load_source(
    source: str, *, stories: int, seed: int, num_envs: int, prompt: str = PAPER_PROMPT
) -> tuple[list[RatedStory], list[Any]]:
    """The stories of one source, and the graders it names (its teacher and judges).

    A source is a ``storytelling eval --json`` file (its stories as written; ``prompt`` is
    the one they continue), a ``storytelling train`` run folder or its ``checkpoint.zip``,
    or ``student:NAME`` (the untrained student). A run or a student writes ``stories``
    stories at ``seed`` with ``evaluate`` (graded there by the heuristic only, without
    MAUVE: the graders grade them afterwards, story by story). The stories are named
    ``source_name(source)``.

    Raises:
        ConfigError: A source of none of these kinds, or a run that writes from several
            prompts (the evaluation does not keep which story continued which).
    """
    from story_env.prompts import load_prompts
    from story_env.run.evaluation import evaluate, run_settings
    from story_env.run.judging import JudgeSpec, default_judges
    from story_env.run_folder import CONFIG, read_json

    path, name = Path(source), source_name(source)
    kwargs: dict[str, Any] = {"stories": stories, "seed": seed, "num_envs": num_envs}
    kwargs.update(teacher="heuristic", judges=[], progress=False, mauve=False)
    if source.startswith("student:") and not path.exists():
        summary = evaluate(student=source.removeprefix("student:"), **kwargs)
        teacher, teacher_kwargs, used = "heuristic", {}, PAPER_PROMPT
    elif path.is_file() and path.suffix == ".json":
        return eval_json_stories(path, prompt, name)
    elif path.is_dir() or (path.is_file() and path.suffix == ".zip"):
        run = path if path.is_dir() else path.parent
        settings = run_settings(path, {})
        pool = load_prompts(settings["prompts"], settings["prompt_file"])
        if len(pool) != 1:
            raise ConfigError(
                f"run {str(run)!r} writes from {len(pool)} prompts; rate pairs stories by "
                "prompt and can rate runs trained on one prompt only"
            )
        config = read_json(run / CONFIG, "run config")
        teacher, teacher_kwargs = config.get("teacher", "heuristic"), config.get("teacher_kwargs")
        summary, used = evaluate(checkpoint=path, **kwargs), pool[0]
    else:
        raise ConfigError(
            f"source {source!r} is not a run folder, a checkpoint .zip, an eval .json file or "
            "student:NAME; e.g. `storytelling rate runs/demo before.json`"
        )
    written = [RatedStory(name, seed, i, used, text) for i, text in enumerate(summary["texts"])]
    teacher_kwargs = dict(teacher_kwargs or {})
    return written, [JudgeSpec(teacher, teacher_kwargs), *default_judges(teacher, teacher_kwargs)]


def grade_stories(
    systems: dict[str, list[RatedStory]], graders: Sequence[Any]
) -> dict[str, dict[RatedStory, float | None]]:
    """Every grader's total of every story (``None`` where it failed), by grader label."""
    from story_env.registry import create_teacher
    from story_env.teacher import StoryRequest, close_teacher

    everything = [s for stories in systems.values() for s in stories]
    out: dict[str, dict[RatedStory, float | None]] = {}
    for spec in graders:
        teacher = create_teacher(spec.name, **dict(spec.kwargs))
        try:
            grades = teacher.score([StoryRequest(s.prompt, s.text) for s in everything])
        finally:
            close_teacher(teacher)
        out[spec.label] = {
            s: float(g.total) if g.ok and g.total is not None else None
            for s, g in zip(everything, grades, strict=True)
        }
    return out
