"""MkDocs hooks for the documentation site (mkdocs.yml names this file under ``hooks``).

* on load: mkdocstrings reads the source statically, and the repository keeps
  ``agents/``, ``teachers/`` and ``plugins/`` beside ``story_env/`` although they install
  as its subpackages. This hook builds ``build/apisrc/story_env/``: links to every entry
  of ``story_env/`` plus ``agents``, ``teachers`` and ``plugins`` under their installed
  names, so references such as ``story_env.agents.rl.policy.CausalLMPolicy`` resolve.
* ``on_page_markdown``: on the API page, the marker ``<!-- api: story_env.__all__ -->``
  becomes one mkdocstrings block per name of ``story_env.__all__``, in that order. A class
  or function is documented where it is defined (``story_env.teacher.Scores``), so names
  the package exports lazily resolve too; any other object (a constant, a marker) as an
  attribute of ``story_env``.
* ``on_post_build``: the API page must show every name of ``story_env.__all__``; a
  missing one is logged as a warning, which ``mkdocs build --strict`` turns into a failed
  build.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import logging
import os
import shutil
from pathlib import Path
from typing import Any

log = logging.getLogger("mkdocs.plugins.storytelling")

ROOT = Path(__file__).resolve().parents[1]
SOURCE = ROOT / "build" / "apisrc"
SUBPACKAGES = {"agents": "agents", "teachers": "teachers", "plugins": "plugins"}
API_PAGE = Path("api") / "index.html"
API_SOURCE = "api.md"
MARKER = "<!-- api: story_env.__all__ -->"


def public_names() -> list[str]:
    """``story_env.__all__``, read from the source without importing the package."""
    tree = ast.parse((ROOT / "story_env" / "__init__.py").read_text(encoding="utf-8"))
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets
        ):
            return [str(v) for v in ast.literal_eval(node.value)]
    raise RuntimeError("story_env/__init__.py defines no __all__")


def build_source_tree() -> Path:
    """``build/apisrc/story_env`` laid out as the installed package, as links."""
    package = SOURCE / "story_env"
    if SOURCE.exists():
        shutil.rmtree(SOURCE)
    package.mkdir(parents=True)
    for entry in (ROOT / "story_env").iterdir():
        if entry.name == "__pycache__":
            continue
        os.symlink(entry, package / entry.name)
    for installed, folder in SUBPACKAGES.items():
        os.symlink(ROOT / folder, package / installed, target_is_directory=True)
    return SOURCE


# Built when mkdocs loads this hook, before any plugin reads its configuration:
# mkdocstrings drops a search path that does not exist yet, so building it in
# ``on_config`` left a fresh clone's first build without the installed layout.
build_source_tree()


def documented_path(name: str) -> str:
    """Where the API page documents ``story_env.<name>``: its definition, if it has one."""
    package = importlib.import_module("story_env")
    obj = getattr(package, name)
    if inspect.isclass(obj) or inspect.isfunction(obj):
        return f"{obj.__module__}.{obj.__qualname__}"
    return f"story_env.{name}"


def api_blocks() -> str:
    """One mkdocstrings block per public name, in ``__all__``'s order."""
    return "\n\n".join(f"::: {documented_path(name)}" for name in public_names())


def on_page_markdown(markdown: str, page: Any, **kwargs: Any) -> str:
    if page.file.src_uri == API_SOURCE and MARKER in markdown:
        return markdown.replace(MARKER, api_blocks())
    return markdown


def on_post_build(config: Any) -> None:
    page = Path(config["site_dir"]) / API_PAGE
    html = page.read_text(encoding="utf-8") if page.exists() else ""
    missing = [n for n in public_names() if f'id="{documented_path(n)}"' not in html]
    if missing:
        log.warning(
            "the API reference (%s) lacks these names of story_env.__all__: %s",
            API_PAGE,
            ", ".join(missing),
        )
