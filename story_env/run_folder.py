"""The run folder: one home for its files, its resume guard and its story-log repair.

A training run folder holds ``config.json`` (the run's settings, with any password in a
URL masked), ``stories.jsonl`` (every finished story, one strict-JSON line each, appended
and flushed as it goes), ``checkpoint.zip`` (the model, with its counters inside as
``run_state.json``) and ``checkpoint.json`` (the counters at that checkpoint, written
after the model: a stop between the two writes leaves it one checkpoint behind, and a
resume takes the model's own counters). Every write is atomic (a temporary file, then
``os.replace``) and leaves no ``.tmp`` behind when it fails. Every failure to read or
write a file is a ``RunFolderError`` naming the path and the fix, never a traceback.

``open_run`` is the guard both training back ends use: a fresh start, or a resume that
names every setting that differs, lets the budgets (``steps``, ``word_budget``,
``checkpoint_every``) change, and repairs the story log to the checkpoint (saying what
it dropped) or refuses when a story the checkpoint counts is damaged or missing. Its two
halves serve every other resumable folder too (pretraining, corpus generation):
``refuse_restart`` (a folder that holds a run needs ``--resume``) and ``check_resume``
(a resume must keep the saved settings, but for those named as changeable).
``write_atomic_with`` and ``write_folder_atomic`` are the atomic writes for content that
a library writes itself (``torch.save``, ``save_pretrained``). Who may write a run folder
(one process, never a folder of foreign files) is ``story_env.run_owner``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import shutil
import tempfile
import zipfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import IO, Any

from story_env.errors import ConfigError, RunFolderError, StorytellingError, describe_os_error
from story_env.secrets import redact_config

logger = logging.getLogger("story_env.run")

CONFIG = "config.json"
CHECKPOINT = "checkpoint.zip"
CHECKPOINT_META = "checkpoint.json"
CHECKPOINT_STATE = "run_state.json"  # the counters, inside checkpoint.zip
STORIES = "stories.jsonl"

#: Settings a resumed run may change: budgets and bookkeeping, not the task.
RESUMABLE_CHANGES = ("steps", "word_budget", "checkpoint_every")

_STATE_KEYS = {"steps": int, "stories": int, "interactive_words": int, "wall_s": (int, float)}


def prepare(out: Path) -> None:
    """Create the run folder if needed and make sure it can be written.

    Raises:
        RunFolderError: ``out`` is a file, cannot be created, or is read-only.
    """
    if out.exists() and not out.is_dir():
        raise RunFolderError(
            f"run folder {str(out)!r} is a file, not a folder; give --out a folder path "
            "(it is created if missing)"
        )
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise RunFolderError(
            f"cannot create run folder {str(out)!r} ({describe_os_error(exc)}); "
            "choose a writable --out"
        ) from exc
    probe = out / f".write-test-{os.getpid()}"
    try:
        with open(probe, "wb") as fh:
            fh.write(b"ok")
    except OSError as exc:
        raise RunFolderError(
            f"cannot write in run folder {str(out)!r} ({describe_os_error(exc)}); "
            "choose a writable --out or fix its permissions"
        ) from exc
    finally:
        with contextlib.suppress(OSError):
            probe.unlink()


def dumps(record: Any) -> str:
    """Strict JSON (no NaN or infinity): a number that is not finite is a bug, not data.

    Raises:
        ValueError: If ``record`` holds a NaN or an infinity.
    """
    return json.dumps(record, allow_nan=False)


#: What a failed write's error tells the user to do once the disk or folder is fixed: in a
#: run folder, resume; elsewhere (a --json file, a calibration) the caller says.
RESUME = "rerun with --resume (the run continues from its last checkpoint)"


@contextlib.contextmanager
def _writing(path: Path, what: str, then: str = RESUME) -> Iterator[None]:
    try:
        yield
    except OSError as exc:
        raise RunFolderError(
            f"cannot write {what} {str(path)!r} ({describe_os_error(exc)}); free disk space "
            f"or fix the folder's permissions, then {then}"
        ) from exc


def write_atomic_with(
    path: Path, write: Callable[[IO[bytes]], object], what: str = "file", then: str = RESUME
) -> None:
    """Let ``write`` fill a temporary file, then ``os.replace`` it onto ``path``.

    For content a library writes into a file object itself (``torch.save``, an SB3
    model's ``save``). The file is flushed and synced before the replace; no ``.tmp``
    survives a failure, and an ``OSError`` becomes a ``RunFolderError`` naming ``what``
    and saying what to do after fixing it (``then``: resume, unless the caller says).
    """
    tmp = path.with_name(path.name + ".tmp")
    try:
        with _writing(path, what, then):
            with open(tmp, "w+b") as fh:  # readable too: a zip writer may append to it
                write(fh)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink()


def write_atomic(path: Path, data: bytes | str, what: str = "file", then: str = RESUME) -> None:
    """Write ``path`` through a temporary file and ``os.replace``; no ``.tmp`` survives."""
    payload = data.encode("utf-8") if isinstance(data, str) else data
    write_atomic_with(path, lambda fh: fh.write(payload), what, then)


def write_folder_atomic(dest: Path, fill: Callable[[Path], object], what: str = "folder") -> None:
    """Let ``fill`` write a temporary sibling folder, then swap it in for ``dest``.

    For folders a library writes (``save_pretrained``): a reader sees the old folder or
    the complete new one, never a half-written one, and no temporary folder survives.
    """
    with _writing(dest, what):
        tmp = Path(tempfile.mkdtemp(dir=dest.parent, prefix=f".{dest.name}."))
        try:
            fill(tmp)
            if dest.exists():
                shutil.rmtree(dest)
            os.replace(tmp, dest)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)


def save_checkpoint(model: Any, out: Path, state: Mapping[str, Any]) -> None:
    """Save an SB3 model and the run's counters: ``checkpoint.zip`` first, carrying the
    counters as its ``run_state.json`` member (one atomic file), then ``checkpoint.json``.

    A failure leaves no ``.tmp``. A stop between the two writes leaves ``checkpoint.json``
    one checkpoint behind the model; ``open_run`` then resumes from the model's counters.
    """

    def write(fh: IO[bytes]) -> None:
        model.save(fh)
        with zipfile.ZipFile(fh, "a") as archive:  # SB3's loader ignores the extra member
            archive.writestr(CHECKPOINT_STATE, dumps(dict(state)))

    write_atomic_with(out / CHECKPOINT, write, "checkpoint")
    write_meta(out, state)


def _model_state(path: Path) -> dict[str, Any] | None:
    """The counters saved inside a ``checkpoint.zip``; ``None`` for a model saved without
    them (before they were added) or a file that is not a zip (``load_model`` says so)."""
    try:
        with zipfile.ZipFile(path) as archive:
            raw = archive.read(CHECKPOINT_STATE)
    except (KeyError, zipfile.BadZipFile, OSError):
        return None
    try:
        state = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise RunFolderError(
            f"checkpoint {str(path)!r} holds damaged counters ({exc}); restore the file, or "
            "start over with another --out"
        ) from exc
    return _valid_state(state, f"{path}:{CHECKPOINT_STATE}")


def write_meta(out: Path, state: Mapping[str, Any]) -> None:
    """Write ``checkpoint.json`` (the run's counters) atomically."""
    write_atomic(out / CHECKPOINT_META, dumps(dict(state)), "checkpoint counters")


def read_json(path: Path, what: str) -> Any:
    """Read a JSON file of the run folder, or a ``RunFolderError`` naming it and the fix."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise RunFolderError(f"{what} {str(path)!r} is missing; the run folder is damaged") from exc
    except (OSError, UnicodeDecodeError) as exc:
        reason = describe_os_error(exc) if isinstance(exc, OSError) else "not UTF-8 text"
        raise RunFolderError(f"cannot read {what} {str(path)!r} ({reason})") from exc
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise RunFolderError(
            f"{what} {str(path)!r} is not valid JSON ({exc.msg} at line {exc.lineno}); "
            "the run folder is damaged: restore the file, or start over with another --out"
        ) from exc


def public_config(config: Mapping[str, Any]) -> dict[str, Any]:
    """The config as written to ``config.json``: JSON types, URL passwords masked."""
    plain = json.loads(json.dumps(dict(config), sort_keys=True, default=list))
    return redact_config(plain)


def config_changes(saved: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    """``"field old -> new"`` for every setting that differs (one level into dicts)."""
    changes = []
    for key in sorted(set(saved) | set(new)):
        old, now = saved.get(key), new.get(key)
        if old == now:
            continue
        if isinstance(old, dict) and isinstance(now, dict):
            for sub in sorted(set(old) | set(now)):
                if old.get(sub) != now.get(sub):
                    changes.append(f"{key}.{sub} {old.get(sub)!r} -> {now.get(sub)!r}")
        else:
            changes.append(f"{key} {old!r} -> {now!r}")
    return changes


def refuse_restart(out: Path, started: bool, resume: bool) -> None:
    """Refuse to start over a folder that already holds a run unless ``resume`` is on.

    Raises:
        ConfigError: ``started`` (the folder holds a run) and not ``resume``.
    """
    if started and not resume:
        raise ConfigError(
            f"{out} already holds a run; pass --resume to continue it or choose a new --out"
        )


def check_resume(
    saved: Mapping[str, Any],
    new: Mapping[str, Any],
    out: Path,
    *,
    allowed: Sequence[str] = (),
    source: str = CONFIG,
    fix: str = "start a new run with another --out",
    defaults: Mapping[str, Any] | None = None,
) -> list[str]:
    """Refuse a resume whose settings differ from the saved ones, but for ``allowed``.

    Args:
        saved: The settings the folder was started with (as read from ``source``).
        new: The settings of the resume (``public_config`` of them, for JSON types).
        out: The folder, for the message.
        allowed: Top-level settings a resume may change (budgets, bookkeeping).
        source: The file ``saved`` came from, for the message.
        fix: The way out the message offers besides resuming with the saved settings.
        defaults: Every setting's default: one the saved settings lack was added after
            the folder began, and the folder ran with its default.

    Returns:
        Every change (``"field old -> new"``), the allowed ones included.

    Raises:
        ConfigError: A setting outside ``allowed`` differs; every such field is named.
    """
    changes = config_changes({**(defaults or {}), **saved}, new)
    fixed = [c for c in changes if c.split(" ", 1)[0].split(".")[0] not in allowed]
    if fixed:
        may = f"only {', '.join(allowed)} may change" if allowed else "none may change"
        raise ConfigError(
            f"cannot resume {out}: these settings differ from its {source}: "
            f"{'; '.join(fixed)}. Resume with the run's own settings ({may}), or {fix}"
        )
    return changes


def read_config(out: Path, source: str = CONFIG) -> dict[str, Any]:
    """The settings a folder was started with (a JSON object), or a ``RunFolderError``."""
    saved = read_json(out / source, "run config")
    if not isinstance(saved, dict):
        raise RunFolderError(
            f"run config {str(out / source)!r} is not a JSON object; it is damaged"
        )
    return saved


def write_config(out: Path, public: Mapping[str, Any]) -> None:
    """Write ``config.json`` (``public_config`` of the settings) atomically."""
    write_atomic(out / CONFIG, json.dumps(dict(public), sort_keys=True), "run config")


def read_state(out: Path) -> dict[str, Any]:
    """The counters of the run's last checkpoint (``checkpoint.json``), validated."""
    path = out / CHECKPOINT_META
    return _valid_state(read_json(path, "checkpoint counters"), str(path))


def _valid_state(state: Any, where: str) -> dict[str, Any]:
    bad = [
        key
        for key, kind in _STATE_KEYS.items()
        if not isinstance(state, dict)
        or not isinstance(state.get(key), kind)
        or isinstance(state.get(key), bool)
        or state[key] < 0
        or not math.isfinite(state[key])
    ]
    if bad:
        raise RunFolderError(
            f"checkpoint counters {where!r} lack valid {bad}; the run folder is damaged: "
            "restore the file, or start over with another --out"
        )
    return state


def open_run(
    out: Path,
    config: Mapping[str, Any],
    resume: bool,
    *,
    checkpoint: str | None = CHECKPOINT,
    defaults: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Start or resume the run in ``out``; return the counters to continue from.

    Args:
        out: The run folder (created if missing).
        config: The run's settings (``dataclasses.asdict`` of its config).
        resume: Continue the run in ``out`` (``--resume``).
        checkpoint: The model file a resume needs, relative to ``out``; ``None`` when the
            caller checks its own checkpoint.
        defaults: Every setting's default, for settings added after the run began
            (``check_resume``).

    Returns:
        The counters (``steps``, ``stories``, ``interactive_words``, ``wall_s`` and any
        extra keys the run saved); zeros for a fresh run.

    Raises:
        ConfigError: A run exists and ``resume`` is off, or a setting other than the
            budgets differs from the run's ``config.json`` (all such fields are named).
        RunFolderError: The folder cannot be written, or its files are damaged.
    """
    prepare(out)
    public = public_config(config)
    meta = out / CHECKPOINT_META
    refuse_restart(out, meta.exists(), resume)
    if not meta.exists():
        _start_fresh(out, public, resume)
        fresh = {"steps": 0, "stories": 0, "interactive_words": 0, "wall_s": 0.0}
        if "algorithm" in config:  # saved with every checkpoint: a resume checks it
            fresh["algorithm"] = config["algorithm"]
        return fresh
    changes = check_resume(
        read_config(out),
        public,
        out,
        allowed=RESUMABLE_CHANGES,
        defaults=public_config(defaults or {}),
    )
    state = read_state(out)
    if checkpoint is not None and not (out / checkpoint).is_file():
        raise RunFolderError(
            f"cannot resume {out}: {checkpoint} is missing although checkpoint.json exists; "
            "restore it, or start over with another --out"
        )
    saved = _model_state(out / checkpoint) if checkpoint is not None else None
    check_checkpoint(out, state, saved, config.get("algorithm"), checkpoint or CHECKPOINT)
    if saved is not None and saved["steps"] > state["steps"]:
        # stopped between the model's write and checkpoint.json's: the model is newer
        logger.warning(
            "resuming %s: %s counts step %d but %s was saved at step %d (the run stopped "
            "between the two writes); resuming from the model's step %d",
            out,
            CHECKPOINT_META,
            state["steps"],
            checkpoint,
            saved["steps"],
            saved["steps"],
        )
        state = saved
        write_meta(out, state)
    if changes:
        write_config(out, public)
        logger.warning("resuming %s with changed budget: %s", out, "; ".join(changes))
    note = repair_story_log(out / STORIES, state["stories"], state["steps"])
    if note:
        logger.warning("resuming %s: %s", out, note)
    if "algorithm" in config:
        state.setdefault("algorithm", config["algorithm"])
    return state


def check_checkpoint(
    out: Path,
    state: Mapping[str, Any],
    saved: Mapping[str, Any] | None,
    algorithm: str | None,
    checkpoint: str = CHECKPOINT,
) -> None:
    """Refuse a model file (``saved``: its counters) or ``checkpoint.json`` (``state``) of
    another algorithm than the run's, and a model behind the counters (an older model put
    back would move steps backwards), with a ``RunFolderError`` naming both values."""
    for where, counters in ((CHECKPOINT_META, state), (checkpoint, saved)):
        found = counters.get("algorithm") if counters is not None else None
        if algorithm is not None and found is not None and found != algorithm:
            raise RunFolderError(
                f"cannot resume {out}: {where} is a {found!r} checkpoint but the run trains "
                f"{algorithm!r} (its {CONFIG}); restore the run's own checkpoint, or start "
                "over with another --out"
            )
    if saved is not None and saved["steps"] < state["steps"]:
        raise RunFolderError(
            f"cannot resume {out}: {checkpoint} was saved at step {saved['steps']} but "
            f"{CHECKPOINT_META} counts step {state['steps']} (an older model put back?); "
            "restore the matching pair of files, or start over with another --out"
        )


def _start_fresh(out: Path, public: Mapping[str, Any], resume: bool) -> None:
    log = out / STORIES
    orphans = _count_lines(log)
    if resume:
        logger.warning(
            "%s holds no checkpoint to resume (no %s): starting a new run there",
            out,
            CHECKPOINT_META,
        )
    if orphans:
        logger.warning(
            "%s: discarding %d stories logged before the run's first checkpoint "
            "(the run starts over)",
            out,
            orphans,
        )
    write_config(out, public)
    with _writing(log, "story log"):
        log.unlink(missing_ok=True)


def _count_lines(path: Path) -> int:
    try:
        with open(path, "rb") as fh:
            return sum(1 for _ in fh)
    except FileNotFoundError:
        return 0
    except OSError as exc:
        raise RunFolderError(
            f"cannot read story log {str(path)!r} ({describe_os_error(exc)})"
        ) from exc


def repair_story_log(path: Path, stories: int, step: int = 0) -> str | None:
    """Make the story log hold exactly the ``stories`` stories the checkpoint counts.

    Lines after them (stories logged after the checkpoint, possibly cut short by a
    kill) are dropped: training repeats those steps and logs them again.

    Args:
        path: ``stories.jsonl``.
        stories: How many stories the checkpoint counts.
        step: The checkpoint's step, for messages.

    Returns:
        What was repaired, or ``None`` if nothing needed it.

    Raises:
        RunFolderError: One of the first ``stories`` lines is cut short, not JSON, out of
            order (a gap or a duplicate ``story_index``), or missing: resuming would lose
            a story, so the message names the line and the way out.
    """
    try:
        with open(path, "rb") as fh:
            lines = fh.readlines()
    except FileNotFoundError:
        lines = []
    except OSError as exc:
        raise RunFolderError(
            f"cannot read story log {str(path)!r} ({describe_os_error(exc)})"
        ) from exc

    def refuse(problem: str) -> RunFolderError:
        return RunFolderError(
            f"cannot resume: story log {str(path)!r} {problem}, but the checkpoint at step "
            f"{step} counts {stories} stories, so resuming would lose a story. Restore the "
            "file from a backup, or start a new run with another --out"
        )

    for number, line in enumerate(lines[:stories], 1):
        if not line.endswith(b"\n"):
            raise refuse(f"line {number} is cut short (no end of line)")
        try:
            record = json.loads(line.decode("utf-8"), parse_constant=_reject_constant)
        except (UnicodeDecodeError, ValueError) as exc:
            raise refuse(f"line {number} is not valid JSON ({exc})") from exc
        index = record.get("story_index") if isinstance(record, dict) else None
        if index != number:
            raise refuse(
                f"line {number} has story_index {index!r}, expected {number} (a gap, a "
                "duplicate or an edited line)"
            )
    if len(lines) < stories:
        raise refuse(f"holds {len(lines)} stories")
    extra = len(lines) - stories
    if not extra:
        return None
    write_atomic(path, b"".join(lines[:stories]), "story log")
    return (
        f"dropped {extra} line(s) of {path.name} logged after the checkpoint at step {step} "
        "(training repeats those steps and logs their stories again)"
    )


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


@contextlib.contextmanager
def open_story_log(path: Path) -> Iterator[IO[str]]:
    """The story log, opened for appending; file errors become ``RunFolderError``.

    Closing flushes what is left; on a full disk that fails again, which must not hide
    the error that stopped the run (or leak as a bare ``OSError``).
    """
    try:
        log_file = open(path, "a", encoding="utf-8")  # noqa: SIM115 (closed below)
    except OSError as exc:
        raise RunFolderError(
            f"cannot open story log {str(path)!r} ({describe_os_error(exc)}); fix the run "
            "folder's permissions or choose another --out"
        ) from exc
    failed = False
    try:
        yield log_file
    except BaseException:
        failed = True
        raise
    finally:
        try:
            with _writing(path, "story log"):
                log_file.close()
        except RunFolderError:
            if not failed:
                raise
            with contextlib.suppress(OSError):
                log_file.close()


def append_story(log_file: IO[str], record: Mapping[str, Any], path: Path) -> None:
    """Append one story record as a strict-JSON line."""
    line = dumps(dict(record)) + "\n"
    with _writing(path, "story log"):
        log_file.write(line)


def flush_log(log_file: IO[str], path: Path, durable: bool = False) -> None:
    """Flush the story log (and ``fsync`` it when ``durable``, before a checkpoint)."""
    with _writing(path, "story log"):
        log_file.flush()
        if durable:
            os.fsync(log_file.fileno())


def load_model(algorithm_class: type, path: Path, **kwargs: Any) -> Any:
    """Load an SB3 checkpoint, or a ``RunFolderError`` saying it is damaged."""
    if path.is_dir():
        raise RunFolderError(f"checkpoint {str(path)!r} is a directory; give checkpoint.zip")
    if not path.is_file():
        raise RunFolderError(
            f"no checkpoint at {str(path)!r}; give a `storytelling train` run folder"
        )
    try:
        return algorithm_class.load(path, **kwargs)
    except StorytellingError:
        raise
    except Exception as exc:
        raise RunFolderError(
            f"checkpoint {str(path)!r} cannot be loaded ({type(exc).__name__}: "
            f"{str(exc)[:200]}); the file is damaged or from another algorithm: restore it, "
            "or start over with another --out"
        ) from exc
