"""Argument types shared by the commands of every package (argparse ``type=`` callables).

Each raises ``argparse.ArgumentTypeError`` with the value and the expected form, which
argparse prints as a one-line usage error.
"""

from __future__ import annotations

import argparse
import json
from typing import Any


def json_object(text: str) -> dict[str, Any]:
    """A JSON object given on the command line, e.g. ``'{"seed": 1}'``."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise argparse.ArgumentTypeError(f"not valid JSON: {text!r} ({exc})") from exc
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(
            f"expected a JSON object like '{{\"seed\": 1}}', got {text!r}"
        )
    return value


def count(text: str) -> int:
    """A whole count that may be written in scientific notation, e.g. ``2e6``."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a count like 40000 or 2e6, got {text!r}"
        ) from None
    if not value.is_integer():
        raise argparse.ArgumentTypeError(f"expected a whole count, got {text!r}")
    return int(value)


def count_list(text: str) -> tuple[int, ...]:
    """Comma-separated counts, e.g. ``1e5,1e6``."""
    return tuple(count(x.strip()) for x in text.split(",") if x.strip())


def pick(args: argparse.Namespace, *names: str, **renamed: str) -> dict[str, Any]:
    """Keyword arguments from parsed command-line arguments.

    ``pick(args, "seed", state_every_steps="state_every")`` is
    ``{"seed": args.seed, "state_every_steps": args.state_every}``.
    """
    chosen = {name: getattr(args, name) for name in names}
    chosen.update({key: getattr(args, dest) for key, dest in renamed.items()})
    return chosen
