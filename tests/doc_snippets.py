"""Code blocks of the README and the docs, as the tests run them.

A fenced ``python`` block runs unless the line right before its fence (blank lines
aside) is a skip marker, ``<!-- skip-test: REASON -->``: used for blocks that need names
the package does not export yet (``lands with the API``) or that load language models.
A line ``--8<-- "path"`` inside a block is replaced by that file of the repository, as
the docs site's snippets extension does, so an included example runs as it is shown.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DOCS = ROOT / "docs"
SKIP = re.compile(r"^<!-- skip-test: (?P<reason>[^>]+?) -->$")
INCLUDE = re.compile(r'^--8<-- "(?P<path>[^"]+)"$')
FENCE = re.compile(r"^(?P<indent> *)```(?P<lang>[\w+-]*)\s*$")


@dataclass(frozen=True)
class Block:
    """One fenced code block of a Markdown file."""

    path: Path
    line: int  # 1-based line of the opening fence
    lang: str
    code: str
    skip: str | None  # the skip marker's reason, if any

    @property
    def where(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}"


def pages() -> list[Path]:
    """The README and every page of the docs site."""
    return [README, *sorted(DOCS.glob("*.md"))]


def blocks(path: Path) -> list[Block]:
    """Every fenced block of ``path``, with its skip marker and includes expanded."""
    lines = path.read_text(encoding="utf-8").splitlines()
    found: list[Block] = []
    i = 0
    while i < len(lines):
        match = FENCE.match(lines[i])
        if not match:
            i += 1
            continue
        indent, start = len(match["indent"]), i
        body: list[str] = []
        i += 1
        while i < len(lines) and lines[i].strip() != "```":
            body.append(lines[i][indent:])
            i += 1
        before = next((lines[j].strip() for j in range(start - 1, -1, -1) if lines[j].strip()), "")
        skip = SKIP.match(before)
        found.append(
            Block(path, start + 1, match["lang"], _expand(body), skip["reason"] if skip else None)
        )
        i += 1
    return found


def _expand(body: list[str]) -> str:
    out = []
    for line in body:
        include = INCLUDE.match(line.strip())
        out.append((ROOT / include["path"]).read_text(encoding="utf-8") if include else line)
    return "\n".join(out) + "\n"


def python_blocks(path: Path) -> list[Block]:
    return [b for b in blocks(path) if b.lang == "python"]


def text_outside_code(path: Path) -> list[tuple[int, str]]:
    """``(line number, line)`` of every line that is not inside a fenced block."""
    inside, out = False, []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if FENCE.match(line) or (inside and line.strip() == "```"):
            inside = not inside
            continue
        if not inside:
            out.append((n, line))
    return out
