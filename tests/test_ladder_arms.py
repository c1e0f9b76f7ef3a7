"""tools/ladder_arms.py: two arms of the paper's experiment side by side."""

from __future__ import annotations

import json

import pytest


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


def _log(folder, key, stories):
    (folder / key).mkdir(parents=True)
    lines = [json.dumps({"story": s, "teacher_score": 0.5}) for s in stories]
    (folder / key / "stories.jsonl").write_text("\n".join(lines) + "\n")


def test_diversity_of_the_training_logs_first_and_last_stories(tmp_path, tool):
    varied = [f"w{i} x{i} y{i} z{i}" for i in range(4)]  # distinct-3 1.0, every opening once
    same = ["once there was a cat"] * 4  # 3 trigrams repeated: distinct-3 0.25, one opening
    ppo = _folder(tmp_path / "ppo", "ppo", {1_000: 0.2}, {"rl/1000-seed0": (0.2, 0.3)})
    story = _folder(
        tmp_path / "story",
        "ppo_story",
        {1_000: 0.2},
        {"rl/1000-seed0": (0.2, 0.3), "rl/1000-seed1": (0.2, 0.3)},
    )
    _log(ppo, "rl/1000-seed0", varied + varied[::-1])
    _log(story, "rl/1000-seed0", varied + same)
    _log(story, "rl/1000-seed1", varied + varied[:2] + same[:2])  # distinct-3 7/10, opening 2/4
    out = tool("ladder_arms").table([ppo, story], ppo, window=4)
    assert out.splitlines()[0].endswith(
        "| distinct-3, first -> last 4 | top opening share, first -> last 4 |"
    )
    assert "| 1.000 -> 1.000 (1.000..1.000) | 0.250 -> 0.250 (0.250..0.250) |" in out
    row = next(line for line in out.splitlines() if "`ppo_story` (2 seeds)" in line)
    assert row.endswith("| 1.000 -> 0.475 (0.250..0.700) | 0.250 -> 0.750 (0.500..1.000) |")


def test_a_log_shorter_than_two_windows_is_refused_naming_it(tmp_path, tool):
    ppo = _folder(tmp_path / "ppo", "ppo", {1_000: 0.2}, {"rl/1000-seed0": (0.2, 0.3)})
    _log(ppo, "rl/1000-seed0", ["a b c"] * 5)
    with pytest.raises(SystemExit, match="rl/1000-seed0/stories.jsonl holds 5 stories"):
        tool("ladder_arms").table([ppo], ppo, window=4)
