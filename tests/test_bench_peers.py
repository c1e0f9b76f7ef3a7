"""bench/bench_peers.py's own arithmetic: exclusive phase timing, gains, flag checks.

The benchmark itself trains three systems for minutes; these tests run one 32-token
run, to check that bench_ppo_settings.py's changes reach it.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

_PATH = Path(__file__).resolve().parents[1] / "bench" / "bench_peers.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_peers", _PATH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_phase_timer_counts_nested_calls_once_and_restores_methods(bench, monkeypatch):
    now = [0.0]  # a fake clock: the work below advances it, so the figures are exact

    def sleep(seconds: float) -> None:
        now[0] += seconds

    monkeypatch.setattr(bench, "time", SimpleNamespace(perf_counter=lambda: now[0]))

    class Work:
        def outer(self):
            sleep(0.01)
            self.inner()

        def inner(self):
            sleep(0.2)

    class Child(Work):
        pass

    timer = bench.PhaseTimer()
    original = Work.__dict__["outer"]
    with timer.patch(Work, "outer", "rollout"), timer.patch(Child, "inner", "teacher"):
        Child().outer()
    assert timer.seconds["rollout"] == pytest.approx(0.01)  # the inner call's 0.2 s is not in it
    assert timer.seconds["teacher"] == pytest.approx(0.2)
    assert Work.__dict__["outer"] is original
    assert "inner" not in Child.__dict__  # an inherited method is inherited again
    phases = timer.breakdown(wall_s=1.0)
    assert list(phases) == list(bench.PHASES)
    assert phases["other"] == pytest.approx(
        1.0 - timer.seconds["rollout"] - timer.seconds["teacher"]
    )


def test_teacher_gain_compares_the_first_and_last_32_stories(bench):
    scores = [0.5] * 32 + [float("nan")] + [0.6] * 68 + [0.7] * 32
    gain = bench.teacher_gain(scores)
    assert gain["stories"] == 132  # the ungraded story is left out
    assert gain["first"] == pytest.approx(0.5)
    assert gain["last"] == pytest.approx(0.7)
    assert gain["per_100"] == pytest.approx(0.2 * 100 / 100)
    assert bench.teacher_gain([0.5] * 63)["per_100"] is None


@pytest.mark.parametrize("judge", ["random", "heuristic", "random:{}"])
def test_judge_must_be_held_out(bench, monkeypatch, judge):
    monkeypatch.setattr(sys, "argv", ["bench_peers.py", "--judge", judge])
    with pytest.raises(SystemExit):
        bench._parse()


def test_the_judge_is_held_out_from_the_chosen_teacher(bench, monkeypatch):
    argv = ["bench_peers.py", "--teacher", "lm", "--teacher-kwargs", '{"dtype": "bfloat16"}']
    monkeypatch.setattr(sys, "argv", [*argv, "--judge", "lm:gemma"])
    assert bench._parse().teacher == ("lm", {"dtype": "bfloat16"})
    monkeypatch.setattr(sys, "argv", [*argv, "--judge", "lm"])  # the reward itself
    with pytest.raises(SystemExit):
        bench._parse()
    monkeypatch.setattr(sys, "argv", ["bench_peers.py", "--teacher-kwargs", "[1]"])
    with pytest.raises(SystemExit):
        bench._parse()


def test_systems_are_checked(bench, monkeypatch):
    monkeypatch.setattr(sys, "argv", ["bench_peers.py", "--systems", "ppo,trl"])
    assert bench._parse().systems == ["ppo", "trl"]
    monkeypatch.setattr(sys, "argv", ["bench_peers.py", "--systems", "ppo,dqn"])
    with pytest.raises(SystemExit):
        bench._parse()


def test_ppo_settings_changes_reach_the_run(bench):
    # bench_ppo_settings.py's --num-envs, --kl-coef and --algo-kwargs: a short real run
    run = bench.run_ours(
        "ppo", 32, 0, {"num_envs": 2, "kl_coef": 0.0, "n_steps": 16, "batch_size": 32}
    )
    assert run["tokens"] == 2 * 16  # one rollout of 16 steps in each of 2 envs, not 16 envs
    assert len(run["stories"]) == 2  # the critic's warm-start wave: one story per env


def test_ppo_story_runs_ppo_with_the_story_advantage(bench):
    # one rollout of one story length per env
    assert bench.OURS["ppo_story"][0] == "ppo_story"
    run = bench.run_ours("ppo_story", 2 * 90, 0, {"num_envs": 2, "batch_size": 180})
    # each 90-step rollout writes exactly one whole story per env (a slot whose story
    # ends early waits), and the tokens counted are the stories' tokens, waits excluded
    stories = len(run["stories"])
    assert stories % 2 == 0 and 2 * 90 <= run["tokens"] <= 90 * stories


def test_pool_joins_files_of_different_seeds_and_refuses_a_seed_twice(bench, tmp_path):
    import json

    def runs(system, seeds, teacher, judge):
        return [
            {
                "system": system,
                "seed": s,
                "teacher_gain": {"per_100": t},
                "judge_gain": {"per_100": j},
            }
            for s, t, j in zip(seeds, teacher, judge, strict=True)
        ]

    a, b = tmp_path / "a.json", tmp_path / "b.json"
    a.write_text(
        json.dumps(
            {
                "runs": runs("ppo_story", [1, 2], [0.01, 0.03], [0.0, 0.02])
                + runs("trl", [1, 2], [0.02, 0.02], [0.01, 0.01])
            }
        )
    )
    b.write_text(
        json.dumps(
            {"runs": runs("ppo_story", [3], [0.02], [0.01]) + runs("trl", [3], [0.02], [0.01])}
        )
    )
    lines = bench.pool([a, b])
    # ppo_story teacher: mean 0.02, sd 0.01, SE 0.01 / sqrt(3); trl: 0.02 with SE 0
    assert f"| {bench.SYSTEMS['ppo_story']} | 3 | +0.0200 (0.0058) | +0.0100 (0.0058) |" in lines
    assert f"| {bench.SYSTEMS['trl']} | 3 | +0.0200 (0.0000) | +0.0100 (0.0000) |" in lines
    assert (
        "held-out judge: ppo_story - trl = +0.0000 (standard error 0.0058; 95% interval "
        "-0.0113 to +0.0113)" in lines
    )
    with pytest.raises(SystemExit, match="ppo_story seed 1 is in two runs"):
        bench.pool([a, a])


def test_pool_measures_gains_from_the_common_start(bench, tmp_path):
    import json

    def run(system, seed, first, last):
        windows = {"first": first, "last": last, "per_100": (last - first) * 100 / 100}
        return {
            "system": system,
            "seed": seed,
            "teacher_gain": {**windows, "stories": 132},
            "judge_gain": dict(windows),
        }

    # every first window averages 0.5 over the four runs; ppo_story's are lower by chance
    runs = [run("ppo_story", 1, 0.4, 0.6), run("ppo_story", 2, 0.4, 0.8)]
    runs += [run("trl", 1, 0.6, 0.6), run("trl", 2, 0.6, 0.8)]
    path = tmp_path / "runs.json"
    path.write_text(json.dumps({"runs": runs}))
    lines = bench.pool([path])
    # own first window: ppo_story gains 0.3 per 100 stories, trl 0.1
    assert "held-out judge: ppo_story - trl = +0.2000 (standard error 0.1414; 95% interval " in (
        "\n".join(lines)
    )
    # from the common start 0.5 both gain (0.6 - 0.5) and (0.8 - 0.5): the same
    assert "From the common start (teacher 0.5000, judge 0.5000):" in lines
    assert f"| {bench.SYSTEMS['trl']} | 2 | +0.2000 (0.1000) | +0.2000 (0.1000) |" in lines
    assert any(line.startswith("held-out judge: ppo_story - trl = +0.0000") for line in lines)
    assert any(line.startswith("held-out judge start: ppo_story - trl = -0.2000") for line in lines)


def test_ppo_settings_refuses_the_reward_as_judge(monkeypatch):
    path = _PATH.with_name("bench_ppo_settings.py")
    spec = importlib.util.spec_from_file_location("bench_ppo_settings", path)
    settings = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(settings)
    monkeypatch.setattr(sys, "argv", ["bench_ppo_settings.py", "--judge", "heuristic"])
    with pytest.raises(SystemExit):
        settings.main()  # refused before any training
