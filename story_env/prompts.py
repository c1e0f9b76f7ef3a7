"""Prompt pools: the paper's fixed prompt by default, or a list or file of prompts."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from story_env.errors import ConfigError, describe_os_error

PAPER_PROMPT = "Let me tell you a long, magical tale. Once upon a time, in a faraway land,"


def read_text_file(path: str | Path, what: str) -> str:
    """Read a UTF-8 text file the user named, or raise one clear ``ConfigError``.

    Args:
        path: The file.
        what: What the file is for, as the user knows it (``"prompt_file"``, ``"--config"``).

    Raises:
        ConfigError: The path is missing, a directory or another file that is not a
            regular one (a FIFO), unreadable, not UTF-8 text or holds a NUL byte; the
            message names the path and the fix. A UTF-8 byte-order mark is removed.
    """
    file = Path(path)
    if file.is_dir():
        raise ConfigError(f"{what} {str(file)!r} is a directory; give the path of a text file")
    if not file.exists():
        raise ConfigError(f"{what} {str(file)!r} does not exist; check the path")
    if not file.is_file():  # a FIFO, a socket, a device: reading it may never end
        raise ConfigError(
            f"{what} {str(file)!r} is not a regular file (a pipe, socket or device); "
            "give the path of a text file"
        )
    try:
        data = file.read_bytes()
    except OSError as exc:
        raise ConfigError(
            f"cannot read {what} {str(file)!r} ({describe_os_error(exc)}); "
            "check its permissions or give another file"
        ) from exc
    if b"\0" in data:
        line = data[: data.index(b"\0")].count(b"\n") + 1
        raise ConfigError(
            f"{what} {str(file)!r} holds a NUL byte at line {line}, so it is not text; "
            "remove it or give the right file"
        )
    try:
        return data.decode("utf-8").removeprefix("\ufeff")  # a byte-order mark is not text
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise ConfigError(
            f"{what} {str(file)!r} is not UTF-8 text (byte {data[exc.start]:#04x} at line "
            f"{line}); save it as UTF-8, e.g. `iconv -t UTF-8 FILE`"
        ) from exc


def _check_encodable(pool: tuple[str, ...], source: str) -> None:
    for k, prompt in enumerate(pool):
        if "\0" in prompt:
            raise ConfigError(
                f"prompt {k} of {source} holds a NUL byte at position {prompt.index(chr(0))}; "
                "remove it"
            )
        try:
            prompt.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise ConfigError(
                f"prompt {k} of {source} holds {prompt[exc.start : exc.end]!r} at position "
                f"{exc.start}, which is not text UTF-8 can encode (a lone surrogate); "
                "remove it or decode the source text properly"
            ) from exc


def load_prompts(prompts: Sequence[str] | None, prompt_file: str | None) -> tuple[str, ...]:
    """Return the prompt pool.

    Args:
        prompts: Prompts given inline; ``None`` for the default.
        prompt_file: A UTF-8 text file with one prompt a line (blank lines skipped).

    Raises:
        ConfigError: both sources are given, the file is missing, a directory, unreadable
            or not UTF-8, a prompt is not encodable text, or a pool is empty.
    """
    if prompts is not None and prompt_file is not None:
        raise ConfigError("give either prompts=[...] or prompt_file=..., not both")
    if prompt_file is not None:
        if not isinstance(prompt_file, str | Path):
            raise ConfigError(f"prompt_file must be a path, got {prompt_file!r}")
        text = read_text_file(prompt_file, "prompt_file")
        pool = tuple(line.strip() for line in text.splitlines() if line.strip())
        if not pool:
            raise ConfigError(
                f"prompt_file {str(prompt_file)!r} holds no prompts; write one prompt per line"
            )
        _check_encodable(pool, f"prompt_file {str(prompt_file)!r}")
        return pool
    if prompts is None:
        return (PAPER_PROMPT,)
    if isinstance(prompts, str):
        raise ConfigError(
            f"prompts must be a list of strings, got the string {prompts[:40]!r}; "
            "write prompts=[...] or prompt_file='path'"
        )
    if not isinstance(prompts, Sequence):
        raise ConfigError(f"prompts must be a list of strings, got {type(prompts).__name__}")
    bad = [p for p in prompts if not isinstance(p, str)]
    if bad:
        raise ConfigError(
            f"prompts must be strings, got {bad[0]!r} ({type(bad[0]).__name__}); "
            "write prompts=['Once upon a time,', ...]"
        )
    pool = tuple(prompts)
    if not pool or not all(p.strip() for p in pool):
        raise ConfigError(f"prompts must be a non-empty list of non-empty strings, got {pool!r}")
    _check_encodable(pool, "prompts")
    return pool
