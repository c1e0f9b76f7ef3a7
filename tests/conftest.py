"""Shared fixtures."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from story_env.registry import plugin_manager


@pytest.fixture
def temporary_plugin() -> Iterator[Callable[[Any, str], None]]:
    """Register plugin objects for the duration of one test, then unregister them."""
    pm = plugin_manager()
    added: list[str] = []

    def add(plugin: Any, name: str) -> None:
        pm.register(plugin, name=name)
        added.append(name)

    try:
        yield add
    finally:
        for name in added:
            with contextlib.suppress(Exception):
                pm.unregister(name=name)
