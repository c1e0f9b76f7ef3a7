"""README code that must keep working: each block is taken from README.md and run."""

from __future__ import annotations

import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def _python_block(containing: str) -> str:
    """The one fenced python block of the README that contains ``containing``."""
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), re.S)
    found = [b for b in blocks if containing in b]
    assert len(found) == 1, f"{len(found)} README python blocks contain {containing!r}"
    return found[0]


def test_readme_vecmonitor_snippet_gives_episode_statistics(capsys):
    code = _python_block("VecMonitor(")
    namespace: dict = {}
    exec(compile(code, f"{README}:VecMonitor block", "exec"), namespace)  # the README's code
    stories = list(namespace["model"].ep_info_buffer)
    # 1,024 tokens in stories of at most 32 tokens: at least 32 stories, each recorded
    assert len(stories) >= 32
    assert all(1 <= s["l"] <= 32 and 0.0 <= s["r"] <= 1.0 for s in stories)
    mean = sum(s["r"] for s in stories) / len(stories)
    assert capsys.readouterr().out == f"{len(stories)} stories, mean reward {mean:.3f}\n"
