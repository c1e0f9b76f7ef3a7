"""The docs are reference, and their code runs.

Every python block of the README and of docs/*.md is executed (each page's blocks in
order, in one namespace, in a scratch folder), unless marked to skip; and no page but
the changelog carries commit hashes, issue numbers, or headings with dates or "round".
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from doc_snippets import DOCS, README, ROOT, blocks, pages, python_blocks, text_outside_code

# pages that are history, where hashes, issue numbers and dates belong
HISTORY = {DOCS / "changelog.md"}
COMMIT_HASH = re.compile(r"\b(?=[0-9a-f]*[a-f])(?=[0-9a-f]*\d)[0-9a-f]{7,40}\b")
ISSUE_NUMBER = re.compile(r"\bissues?[ _-]?\d+|(?<![\w&/])#\d+\b", re.IGNORECASE)
DATE = re.compile(r"\b\d{4}-\d{2}-\d{2}\b")
ROUND = re.compile(r"\brounds?\b", re.IGNORECASE)
ALLOWED_SKIPS = {"lands with the API", "loads two language models"}

REFERENCE_PAGES = [p for p in pages() if p not in HISTORY]


def _id(path: Path) -> str:
    return str(path.relative_to(ROOT))


@pytest.mark.parametrize("page", REFERENCE_PAGES, ids=_id)
def test_reference_pages_carry_no_commit_hashes_or_issue_numbers(page):
    text = page.read_text(encoding="utf-8")
    hashes = COMMIT_HASH.findall(text)
    issues = ISSUE_NUMBER.findall(text)
    assert not hashes, f"{_id(page)}: commit hashes {hashes}; history goes to CHANGELOG.md"
    assert not issues, f"{_id(page)}: issue numbers {issues}; name what it is instead"


@pytest.mark.parametrize("page", REFERENCE_PAGES, ids=_id)
def test_reference_pages_have_no_dated_or_round_headings(page):
    bad = [
        f"line {n}: {line}"
        for n, line in text_outside_code(page)
        if line.startswith("#") and (DATE.search(line) or ROUND.search(line))
    ]
    assert not bad, f"{_id(page)}: headings of a diary, not a reference: {bad}"


def test_the_checks_catch_what_they_are_for():
    assert COMMIT_HASH.findall("fixed in 7a05cb0 and af88c5a") == ["7a05cb0", "af88c5a"]
    assert not COMMIT_HASH.findall("80,000 tokens, 1234567 words, a deadbeef, e.g. 1e-4")
    assert ISSUE_NUMBER.findall("issue 14, Issue14 and #15") == ["issue 14", "Issue14", "#15"]
    assert not ISSUE_NUMBER.findall("[Results](results.md#the-papers-experiment) &#39;")
    assert DATE.search("### Speed work (2026-12-01)") and ROUND.search("## Fourth round")


@pytest.mark.parametrize("page", pages(), ids=_id)
def test_skip_markers_are_the_documented_ones(page):
    reasons = {b.skip for b in blocks(page) if b.skip}
    assert reasons <= ALLOWED_SKIPS, f"{_id(page)}: unknown skip markers {reasons - ALLOWED_SKIPS}"


RUNNABLE = [p for p in pages() if any(b.skip is None for b in python_blocks(p))]


@pytest.mark.parametrize("page", RUNNABLE, ids=_id)
def test_python_blocks_run(page, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # snippets that write runs/... write here
    namespace: dict = {"__name__": "__doc_snippet__"}
    for block in python_blocks(page):
        if block.skip is None:
            exec(compile(block.code, block.where, "exec"), namespace)  # the page's own code


def test_every_page_is_in_the_site_navigation():
    nav = (ROOT / "mkdocs.yml").read_text(encoding="utf-8")
    missing = [p.name for p in DOCS.glob("*.md") if f": {p.name}" not in nav]
    assert not missing, f"pages not in mkdocs.yml's nav: {missing}"


def test_readme_is_a_front_door():
    lines = README.read_text(encoding="utf-8").splitlines()
    assert len(lines) <= 150, f"README.md has {len(lines)} lines; keep it to 150"
    first_screen = "\n".join(lines[:30])
    assert "Gymnasium" in first_screen and "make install" in first_screen
