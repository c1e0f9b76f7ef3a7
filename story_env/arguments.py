"""Argument types shared by the commands of every package (argparse ``type=`` callables).

Each raises ``argparse.ArgumentTypeError`` with the value and the expected form, which
argparse prints as a one-line usage error.
"""

from __future__ import annotations

import argparse
import json
import math
from decimal import Decimal, InvalidOperation
from typing import Any

#: Seeds numpy's generators take: 0 .. 2**32 - 1.
MAX_SEED = 2**32 - 1
#: Stories written at once: past this the envs' memory, not the run, is the limit.
MAX_ENVS = 1024
#: Stories one evaluation writes at most.
MAX_STORIES = 1_000_000
#: Stories one evaluation writes by default (eval, compare, reproduce, evaluate()).
EVAL_STORIES = 64
#: The largest count a flag takes: past it a budget is a typo (1e30), not a plan.
MAX_COUNT = 10**12


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
    """A whole count that may be written in scientific notation, e.g. ``2e6``.

    Parsed exactly (``1e30`` is not rounded to a float's nearest integer) and refused
    when it is not whole, below 0 or above ``MAX_COUNT``.
    """
    try:
        value = Decimal(text.strip())
    except InvalidOperation:
        raise argparse.ArgumentTypeError(
            f"expected a count like 40000 or 2e6, got {text!r}"
        ) from None
    if not value.is_finite() or value != value.to_integral_value():
        raise argparse.ArgumentTypeError(f"expected a whole count like 40000 or 2e6, got {text!r}")
    if not 0 <= value <= MAX_COUNT:
        raise argparse.ArgumentTypeError(
            f"expected a count from 0 to {MAX_COUNT:.0e}, got {text!r}"
        )
    return int(value)


def seed(text: str) -> int:
    """A random seed: a whole number from 0 to ``MAX_SEED`` (numpy's range)."""
    try:
        value = int(text.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a seed (a whole number from 0 to {MAX_SEED}), got {text!r}"
        ) from None
    if not 0 <= value <= MAX_SEED:
        raise argparse.ArgumentTypeError(f"a seed must be from 0 to {MAX_SEED}, got {text!r}")
    return value


def seed_list(text: str) -> tuple[int, ...]:
    """Comma-separated distinct seeds, e.g. ``0,1,2``."""
    seeds = tuple(seed(x) for x in _items(text, "seeds", "0,1"))
    _no_duplicates(seeds, "seed")
    return seeds


def name_list(text: str) -> tuple[str, ...]:
    """Comma-separated distinct names, e.g. ``ppo,a2c``."""
    names = _items(text, "names", "ppo,a2c")
    _no_duplicates(names, "name")
    return names


def positive_int(text: str) -> int:
    """A whole number >= 1 (a number of stories, envs, pairs)."""
    try:
        value = int(text.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {text!r}")
    return value


def finite_float(text: str) -> float:
    """A finite number (no ``nan``, no ``inf``)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
    return value


def positive_float(text: str) -> float:
    """A finite number > 0 (a learning rate)."""
    value = finite_float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a number > 0, got {text!r}")
    return value


def _items(text: str, what: str, example: str) -> tuple[str, ...]:
    items = tuple(x.strip() for x in text.split(","))
    if not text.strip() or any(not x for x in items):
        raise argparse.ArgumentTypeError(
            f"expected comma-separated {what} like {example}, got {text!r}"
        )
    return items


def _no_duplicates(items: tuple[Any, ...], what: str) -> None:
    repeated = sorted({str(x) for x in items if items.count(x) > 1})
    if repeated:
        raise argparse.ArgumentTypeError(
            f"{what} {', '.join(repeated)} is given twice; each run must be distinct"
        )


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
