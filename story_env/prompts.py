"""Prompt pools: the paper's fixed prompt by default, or a list or file of prompts."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from story_env.errors import ConfigError

PAPER_PROMPT = "Let me tell you a long, magical tale. Once upon a time, in a faraway land,"


def load_prompts(prompts: Sequence[str] | None, prompt_file: str | None) -> tuple[str, ...]:
    """Return the prompt pool.

    Args:
        prompts: Prompts given inline; ``None`` for the default.
        prompt_file: A UTF-8 text file with one prompt a line (blank lines skipped).

    Raises:
        ConfigError: both or neither source is usable, the file is missing, or a pool is empty.
    """
    if prompts is not None and prompt_file is not None:
        raise ConfigError("give either prompts=[...] or prompt_file=..., not both")
    if prompt_file is not None:
        path = Path(prompt_file)
        if not path.is_file():
            raise ConfigError(
                f"prompt_file {str(path)!r} does not exist; give a text file "
                "with one prompt per line"
            )
        pool = tuple(line.strip() for line in path.read_text("utf-8").splitlines() if line.strip())
        if not pool:
            raise ConfigError(f"prompt_file {str(path)!r} holds no prompts")
        return pool
    if prompts is None:
        return (PAPER_PROMPT,)
    if isinstance(prompts, str):
        raise ConfigError(
            f"prompts must be a list of strings, got the string {prompts[:40]!r}; "
            "write prompts=[...] or prompt_file='path'"
        )
    pool = tuple(str(p) for p in prompts)
    if not pool or not all(p.strip() for p in pool):
        raise ConfigError(f"prompts must be a non-empty list of non-empty strings, got {pool!r}")
    return pool
