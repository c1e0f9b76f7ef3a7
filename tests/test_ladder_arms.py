"""tools/ladder_arms.py: two arms of the paper's experiment side by side."""

from __future__ import annotations

import json


def _folder(path, algorithm, starts, runs):
    """A reproduce folder with ``starts`` {budget: teacher} and ``runs`` {key: (start, end)}."""
    path.mkdir()
    (path / "config.json").write_text(json.dumps({"rl": {"algorithm": algorithm}}))
    (path / "starts.json").write_text(
        json.dumps(
            {
                str(b): {"teacher": [s, 0, 1], "judges": {"lm:gemma": [s / 2, 0, 1]}}
                for b, s in starts.items()
            }
        )
    )
    results = {
        key: {
            "start": s,
            "end": e,
            "judges_start": {"lm:gemma": [s / 2, 0, 1]},
            "judges_end": {"lm:gemma": [e / 2, 0, 1]},
        }
        for key, (s, e) in runs.items()
    }
    (path / "results.json").write_text(json.dumps(results))
    return path


def test_rungs_both_arms_ran_side_by_side_with_equivalents_on_one_curve(tmp_path, tool):
    ppo = _folder(
        tmp_path / "ppo",
        "ppo",
        {1_000: 0.2, 10_000: 0.4, 100_000: 0.6},
        {
            "rl/1000-seed0": (0.2, 0.3),
            "rl/1000-seed1": (0.2, 0.3),
            "rl/10000-seed0": (0.4, 0.4),
            "rl/100000-seed0": (0.6, 0.6),
            "control/10000-seed0": (0.4, 0.2),
        },
    )
    story = _folder(
        tmp_path / "story",
        "ppo_story",
        {1_000: 0.2, 100_000: 0.6},
        {
            "rl/1000-seed0": (0.2, 0.3),
            "rl/1000-seed1": (0.2, 0.5),
            "rl/100000-seed0": (0.6, 0.7),
            "control/10000-seed0": (0.4, 0.3),
        },
    )
    out = tool("ladder_arms").table([ppo, story], ppo)
    lines = out.splitlines()
    assert lines[0].startswith("| rung | arm | teacher: start -> end (gain) | NWP equivalent |")
    assert "lm:gemma: start -> end (gain)" in lines[0]
    # 0.4 lies on the first folder's curve at 10,000 words (the story arm has no such rung)
    assert (
        "| 1,000 | `ppo_story` (2 seeds) | 0.200 -> 0.400 (0.300..0.500) (+0.200) | 10,000 |" in out
    )
    assert "| 1,000 | `ppo` (2 seeds) | 0.200 -> 0.300 (0.300..0.300) (+0.100) | 3,162 |" in out
    assert (
        "| 100,000 | `ppo_story` (1 seed) | 0.600 -> 0.700 (0.700..0.700) (+0.100) | > 100,000 |"
        in out
    )
    assert not any(line.startswith("| 10,000 |") for line in lines)  # one arm ran it only
    control = [line for line in lines if "random-reward control" in line]
    assert len(control) == 2 and control[1].endswith("(0.150..0.150) (-0.050) |  |")
