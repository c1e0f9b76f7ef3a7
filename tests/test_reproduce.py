"""The reproduction experiment: NWP-equivalent arithmetic, the report's tables, the
issue-14 config, and an end-to-end smoke run."""

from __future__ import annotations

import dataclasses
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from story_env.agents.probes import PROBES
from story_env.agents.students.baselines import seed_stories
from story_env.errors import ConfigError
from story_env.run.config import TrainConfig
from story_env.run.judging import default_judges
from story_env.run.reproduce import (
    ReproConfig,
    _guard,
    estimate,
    nwp_equivalent,
    plan,
    run,
    smoke_config,
)
from story_env.run.reproduce_references import reference_stories
from story_env.run.reproduce_report import halfway, within_length_gain, write_report

EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "reproduce"
PROBE_ROWS = {*PROBES, "formal mean", "mean"}


def test_nwp_equivalent_interpolates_in_log_words():
    budgets, starts = [1_000, 10_000, 100_000], [0.1, 0.3, 0.5]
    assert nwp_equivalent(budgets, starts, 0.3) == pytest.approx(10_000)
    assert nwp_equivalent(budgets, starts, 0.4) == pytest.approx(
        31_622.8, rel=1e-4
    )  # geometric middle
    assert nwp_equivalent(budgets, starts, 0.05) == 1_000
    assert nwp_equivalent(budgets, starts, 0.9) is None  # beyond the ladder
    assert nwp_equivalent(budgets, [0.1, 0.05, 0.5], 0.2) == pytest.approx(
        10 ** (4 + 0.25), rel=1e-4
    )


def test_halfway_says_met_or_missed_and_by_how_much():
    assert halfway(0.5, 0.2, 0.6).endswith(
        "halfway mark 0.400 between word-shuffled (0.200) and real stories (0.600): "
        "met, by 0.100 (it lies 0.75 of the way from shuffled to real)"
    )
    assert "missed, by 0.100 (it lies 0.25 of the way" in halfway(0.3, 0.2, 0.6)
    assert "met, by 0.000" in halfway(0.5, 0.25, 0.75)  # exactly halfway meets the goal


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    """One smoke experiment (every stage on tiny budgets), run once for the tests below."""
    tmp = tmp_path_factory.mktemp("reproduce")
    corpus = tmp / "stories.txt"
    corpus.write_text("\n".join(" ".join(s.split()) for s in seed_stories()) + "\n")
    config = smoke_config(str(corpus), str(corpus))
    logged: list[str] = []
    result = run(config, tmp / "exp", progress=False, log=logged.append, rates=(3e3, 1e2, 0.5, 30))
    return config, tmp / "exp", result, logged


def test_smoke_experiment_runs_end_to_end_and_resumes(smoke):
    config, out, result, _ = smoke
    results = json.loads((out / "results.json").read_text())
    controls = {k for k in results if k.startswith("control/")}
    assert controls == {f"control/{b}-seed{s}" for b in (2_000, 10_000) for s in (0, 1)}
    assert len(results) == 5 * 2 + 2 * 2  # every budget x seed, plus the controls x seeds
    assert all(results[k]["teacher"] == "random" for k in controls)
    assert all(0.0 <= r["start"] <= 1.0 and 0.0 <= r["end"] <= 1.0 for r in results.values())
    # words per evaluation story, before and after: with or without the audit stages
    assert all(r["words_start"][0] > 0 and r["words_end"][0] > 0 for r in results.values())
    # a checkpoint is evaluated once before RL, whatever the number of seeds
    assert results["rl/1000-seed0"]["start"] == results["rl/1000-seed1"]["start"]
    assert results["control/2000-seed1"]["start"] == results["rl/2000-seed0"]["start"]
    table = (out / "results.md").read_text()
    assert "NWP words equivalent" in table and "random-reward control" in table
    # the teacher's table, the judge's, the words table, the audit's and the probes'
    assert table.count("\n| 1,000 |") == 5
    assert (out / "curves.png").stat().st_size > 0
    assert "Held-out judge `random` (never the reward)" in table
    assert all("random" in r["judges_end"] for r in results.values())
    assert set(result["timings"]) == set(plan(config))  # every stage's wall time
    assert result["timings"]["pretrain"] > 0 and result["timings"]["references"] > 0
    # the pretraining run takes the experiment's learning rate
    assert json.loads((out / "pretrain" / "config.json").read_text())["lr"] == config.pretrain_lr
    assert "| control | 4 |" in table and "| start | 5 |" in table
    assert "| audit | 19 |" in table
    assert "Words per story of the same evaluation stories" in table
    said: list[str] = []
    again = run(config, out, progress=False, log=said.append, rates=(3e3, 1e2, 0.5, 30))
    assert again["results"] == results  # every stage is skipped on a rerun:
    assert said[0].startswith("plan: 0 of 40 stages to run")
    assert not [line for line in said if line.startswith("stage ")]


def test_the_plan_and_its_estimate_are_said_before_any_stage(smoke):
    config, _, _, logged = smoke
    est = estimate(config, 3e3, 1e2, 0.5, 30)
    assert logged[0] == (
        f"plan: 40 of 40 stages to run, about {est['total'] / 60:,.0f} min (estimated from "
        "pretraining tokens/s 3000, RL steps/s 100, evaluation stories/s 0.5, probe items/s 30)"
    )
    assert logged[1:7] == [
        f"    1 x {est['pretrain'] / 60:6.1f} min  pretrain",
        f"    1 x {est['references'] / 60:6.1f} min  references",
        f"    5 x {est['start'] / 60:6.1f} min  start/500 .. start/10000",
        f"   19 x {est['audit'] / 60:6.1f} min  audit/start/500 .. audit/control/10000-seed1",
        f"   10 x {est['rl'] / 60:6.1f} min  rl/500-seed0 .. rl/10000-seed1",
        f"    4 x {est['rl'] / 60:6.1f} min  control/2000-seed0 .. control/10000-seed1",
    ]
    assert logged[7].startswith("stage pretrain: 10,000 words")


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=repo, capture_output=True, text=True, check=True
    ).stdout


def test_the_committing_script_records_each_stage_and_the_report_but_no_weights(
    smoke, tmp_path, tool
):
    """With tools/reproduce_committed.py's callback, each stage and the report so far are committed from the out folder
    (what its .gitignore allows); other changes in the repository stay uncommitted."""
    config, out, result, _ = smoke
    repo = tmp_path / "repo"
    repo.mkdir()
    for args in (("init", "-q"), ("config", "user.email", "t@e.org"), ("config", "user.name", "t")):
        _git(repo, *args)
    (repo / ".gitignore").write_text("*.pt\n*.safetensors\n*.zip\n**/pretrain/words-*/\n")
    (repo / "other.txt").write_text("the lead's work\n")
    exp = repo / "exp"
    shutil.copytree(out, exp)
    results = json.loads((exp / "results.json").read_text())
    del results["control/10000-seed1"]  # one stage left to run
    shutil.rmtree(exp / "control" / "10000-seed1")
    (exp / "results.json").write_text(json.dumps(results))
    script = tool("reproduce_committed")
    again = run(
        config, exp, progress=False, log=lambda *_: None, on_stage=script.stage_committer(exp)
    )
    assert not script.commit_report(exp)  # each stage's commit held the report so far
    assert set(again["results"]) == set(result["results"])
    log = _git(repo, "log", "--format=%s").splitlines()
    # the run again, then its audit (the old one was of the run it replaced); each
    # stage's commit holds the report too, so the final one had nothing to add
    assert len(log) == 2
    assert log[1].startswith("reproduce exp: stage control/10000-seed1 done in ")
    assert log[0].startswith("reproduce exp: stage audit/control/10000-seed1 done in ")
    assert log[0].endswith("(40 of 40 stages), committed as it goes")
    tracked = _git(repo, "ls-files").splitlines()
    assert "exp/results.json" in tracked and "exp/results.md" in tracked
    assert not [f for f in tracked if f.endswith((".pt", ".safetensors", ".zip"))]
    assert _git(repo, "status", "--porcelain").splitlines() == ["?? .gitignore", "?? other.txt"]


def test_the_committing_script_outside_a_repository_fails_before_any_stage(tmp_path, tool, capsys):
    out = tmp_path / "exp"
    assert tool("reproduce_committed").main(["--smoke", "--out", str(out)]) == 2
    assert "rev-parse" in capsys.readouterr().err
    assert not out.exists()


def test_a_checkout_without_the_pretraining_weights_builds_them_again(smoke, tmp_path):
    """git keeps each checkpoint's pretraining.json, not its weights: a later checkout
    of a finished pretraining stage runs it again (same seed and data: same numbers),
    and records the perplexities before and after the rebuild."""
    config, out, _, _ = smoke
    exp = tmp_path / "exp"
    shutil.copytree(out, exp)
    pre = exp / "pretrain"
    weights = pre / "words-000000002000" / "model.safetensors"
    weights.unlink()
    (pre / "state.pt").unlink(missing_ok=True)
    logged: list[str] = []
    again = run(config, exp, progress=False, log=logged.append)
    assert weights.exists() and again["results"] == json.loads((out / "results.json").read_text())
    assert [line for line in logged if line.startswith("stage ")] == [
        "stage pretrain: 10,000 words, checkpoints at [500, 1000, 2000, 5000, 10000]"
    ]
    (rebuild,) = json.loads((pre / "rebuilds.json").read_text())
    assert rebuild["now"] == pytest.approx(rebuild["was"], rel=1e-4)
    # the stage's time stays the first run's; the rebuild's is in its record
    assert (
        again["timings"]["pretrain"] == json.loads((out / "timings.json").read_text())["pretrain"]
    )
    assert rebuild["seconds"] > 0
    assert set(rebuild["was"]) == {str(b) for b in config.budgets}


def test_a_folder_begun_before_a_setting_existed_resumes(smoke, tmp_path):
    config, out, result, _ = smoke
    exp = tmp_path / "exp"
    shutil.copytree(out, exp)
    saved = json.loads((exp / "config.json").read_text())
    del saved["rl"]["kl_per_story"], saved["audit"]  # settings added after a folder began
    (exp / "config.json").write_text(json.dumps(saved))
    assert run(config, exp, progress=False, log=lambda *_: None)["results"] == result["results"]
    with pytest.raises(ConfigError, match=r"audit True -> False"):
        run(dataclasses.replace(config, audit=False), exp, progress=False, log=lambda *_: None)


def _forget(exp, stage):
    """Drop ``stage``'s recorded result from the experiment in ``exp``: it runs again."""
    results = json.loads((exp / "results.json").read_text())
    del results[stage]
    (exp / "results.json").write_text(json.dumps(results))


def test_an_unfinished_run_without_its_weights_starts_over(smoke, tmp_path):
    """A later checkout holds an unfinished run's log and counters (committed or
    recovered) but not its weights: the stage runs again from the start."""
    config, out, result, _ = smoke
    exp = tmp_path / "exp"
    shutil.copytree(out, exp)
    _forget(exp, "rl/500-seed1")
    (exp / "rl" / "500-seed1" / "checkpoint.zip").unlink()
    logged: list[str] = []
    again = run(config, exp, progress=False, log=logged.append)
    assert f"stage rl/500-seed1: {exp / 'rl' / '500-seed1'} has its log but not its weights" in (
        "\n".join(logged)
    )
    assert again["results"]["rl/500-seed1"] == result["results"]["rl/500-seed1"]


def test_a_moved_folders_run_with_its_weights_resumes_from_the_same_checkpoint(smoke, tmp_path):
    """A run's config.json names its student by the path the experiment had when it ran:
    in a copy elsewhere (or under another spelling of --out) the run resumes from the same
    checkpoint at the new place, and says so; a run of another checkpoint is still refused."""
    config, out, _, _ = smoke
    exp = tmp_path / "exp"
    shutil.copytree(out, exp)
    _forget(exp, "rl/500-seed1")
    run_config = exp / "rl" / "500-seed1" / "config.json"
    assert json.loads(run_config.read_text())["student"] == str(
        out / "pretrain" / "words-000000000500"
    )
    logged: list[str] = []
    again = run(config, exp, progress=False, log=logged.append)
    new = str(exp / "pretrain" / "words-000000000500")
    assert json.loads(run_config.read_text())["student"] == new
    assert f"the experiment's folder moved: resumes from {new}" in "\n".join(logged)
    # resumed, not begun again: the run's story log still starts with the first run's
    stories = (exp / "rl" / "500-seed1" / "stories.jsonl").read_text().splitlines()
    first = (out / "rl" / "500-seed1" / "stories.jsonl").read_text().splitlines()
    assert stories[: len(first) // 2] == first[: len(first) // 2]
    assert again["results"]["rl/500-seed1"]["interactive_words"] >= config.interactive_words
    # another checkpoint's name is not a move: the run's guard names the change
    saved = json.loads(run_config.read_text())
    saved["student"] = str(exp / "pretrain" / "words-000000001000")
    run_config.write_text(json.dumps(saved))
    _forget(exp, "rl/500-seed1")
    with pytest.raises(ConfigError, match="student"):
        run(config, exp, progress=False, log=lambda *_: None)


def test_stages_run_in_two_processes_in_dependency_order_and_a_failure_keeps_the_rest(
    smoke, tmp_path
):
    """``jobs=2``: the stages left run two at a time in spawned processes; an RL run waits
    for its checkpoint's start, an audit for its stage; this process records every result
    and calls ``on_stage`` once per stage; a failed stage lets the others finish and be
    recorded, then raises."""
    config, out, result, _ = smoke
    exp = tmp_path / "exp"
    shutil.copytree(out, exp)
    files = {
        f: json.loads((exp / f).read_text()) for f in ("results.json", "starts.json", "audit.json")
    }
    redo = ["start/1000", "rl/1000-seed0", "rl/500-seed1", "control/2000-seed0", "rl/2000-seed1"]
    for stage in redo:
        kind, name = stage.split("/")
        key = name if kind == "start" else stage
        (files["starts.json"] if kind == "start" else files["results.json"]).pop(key)
        files["audit.json"].pop(stage)
    for name, data in files.items():
        (exp / name).write_text(json.dumps(data))
    for stage in redo[1:]:  # the runs train again
        shutil.rmtree(exp / stage)
    # failure injection: a file where rl/2000-seed1's run folder goes
    (exp / "rl" / "2000-seed1").write_text("in the way")
    notes: list[str] = []
    with pytest.raises(OSError, match="2000-seed1"):
        run(config, exp, progress=False, log=lambda *_: None, jobs=2, on_stage=notes.append)
    results = json.loads((exp / "results.json").read_text())
    audited = json.loads((exp / "audit.json").read_text())
    starts = json.loads((exp / "starts.json").read_text())
    # the first two stages ran beside each other; none started after the failure
    assert "1000" in starts and "rl/500-seed1" in results and "rl/2000-seed1" not in results
    recorded = {s for s in redo if s in results or s.removeprefix("start/") in starts}
    recorded |= {f"audit/{s}" for s in redo if s in audited}
    assert {s.removeprefix("audit/") for s in recorded} <= recorded  # an audit after its stage
    if "rl/1000-seed0" in results:  # it started after its checkpoint's start was recorded
        assert results["rl/1000-seed0"]["start"] == starts["1000"]["teacher"][0]
    assert sorted(n.split()[1] for n in notes) == sorted(recorded)  # once per stage

    (exp / "rl" / "2000-seed1").unlink()  # mended
    logged: list[str] = []
    again = run(
        config,
        exp,
        progress=False,
        log=logged.append,
        jobs=2,
        on_stage=notes.append,
        rates=(3e3, 1e2),
    )
    assert logged[-1] == "  (minutes one by one; the stages after pretraining run 2 at a time)"
    assert set(again["results"]) == set(result["results"])
    noted = sorted(n.split()[1] for n in notes)  # "stage S done in M min (k of n stages)"
    assert noted == sorted([*redo, *(f"audit/{s}" for s in redo)])  # each stage once
    assert set(again["timings"]) == set(plan(config))
    with pytest.raises(ConfigError, match="jobs must be a whole number >= 1, got 0"):
        run(config, exp, progress=False, log=lambda *_: None, jobs=0)


def test_no_audit_stages_when_audit_is_off(smoke):
    config = smoke[0]
    stages = plan(dataclasses.replace(config, audit=False))
    assert stages == [s for s in plan(config) if not s.startswith("audit/")]


def test_controls_are_reported_per_budget_under_teacher_and_judges(smoke):
    _, out, result, _ = smoke
    table = (out / "results.md").read_text()
    for budget in (2_000, 10_000):
        runs = [result["results"][f"control/{budget}-seed{s}"] for s in (0, 1)]
        ends = sorted(r["end"] for r in runs)
        row = f"| {budget:,} + random-reward control | teacher `heuristic` | "
        assert (
            f"{row}{runs[0]['start']:.3f} | {sum(ends) / 2:.3f} ({ends[0]:.3f}..{ends[1]:.3f}) |"
            in table
        )
        assert f"| {budget:,} + random-reward control | judge `random` | " in table


def test_probes_before_and_after_every_run(smoke):
    _, out, result, _ = smoke
    results = result["results"]
    for key, r in results.items():
        assert set(r["probes_start"]) == set(r["probes_end"]) == PROBE_ROWS, key
        assert all(0.0 <= lo <= acc <= hi <= 1.0 for acc, lo, hi in r["probes_end"].values())
    # the start is probed once per checkpoint: every seed and the control share it
    assert results["rl/2000-seed0"]["probes_start"] == results["control/2000-seed1"]["probes_start"]
    starts = json.loads((out / "starts.json").read_text())
    assert starts["2000"]["probes"] == results["rl/2000-seed1"]["probes_start"]
    table = (out / "results.md").read_text()
    assert "Probes (`storytelling probe`, 4 items per probe" in table
    runs = [results[f"rl/5000-seed{s}"] for s in (0, 1)]
    start = runs[0]["probes_start"]["entity_tracking"][0]
    end = sum(r["probes_end"]["entity_tracking"][0] for r in runs) / 2
    formal = runs[0]["probes_start"]["formal mean"][0]
    probe_table = table.split("Probes (")[1]
    row = next(line for line in probe_table.splitlines() if line.startswith("| 5,000 |"))
    cells = [cell.strip() for cell in row.strip("|").split("|")]
    assert cells[1] == f"{formal:.3f}" and cells[4] == f"{start:.3f}"
    assert cells[5].startswith(f"{end:.3f} (") and cells[6] == f"{end - start:+.3f}"
    assert "| 10,000 + random-reward control | " in probe_table
    assert "\n| entity_tracking | " in table  # the per-probe table


def test_ladder_has_perplexity_samples_references_and_the_halfway_line(smoke):
    config, out, _, _ = smoke
    ladder = (out / "ladder.md").read_text()
    for budget in config.budgets:
        meta = json.loads(
            (out / "pretrain" / f"words-{budget:012d}" / "pretraining.json").read_text()
        )
        row = f"\n| {budget:,} | {meta['words_seen']:,} | {meta['epochs']:.2f} | {meta['val_perplexity']:.1f} | "
        assert row in ladder
        section = ladder.split(f"### {budget:,} words\n")[1].split("###")[0]
        assert re.findall(r"^(\d)\. ", section, re.M) == ["1", "2", "3"]
    assert (
        "\n| real validation stories | " in ladder and "\n| the same, words shuffled | " in ladder
    )
    refs = json.loads((out / "references.json").read_text())
    assert refs["real"]["stories"] == refs["shuffled"]["stories"] == 6  # 2nd half of 12
    # the heuristic teacher tells real stories from word-shuffled ones (the random judge cannot)
    assert refs["real"]["teacher"][0] > refs["shuffled"]["teacher"][0] + 0.1
    starts = json.loads((out / "starts.json").read_text())
    top = starts["10000"]["judges"]["random"][0]
    line = halfway(
        top, refs["shuffled"]["judges"]["random"][0], refs["real"]["judges"]["random"][0]
    )
    assert f"Halfway goal under judge `random`, top checkpoint (10,000 words): {line}." in ladder


def test_reference_stories_are_the_real_ones_and_their_word_shuffles(tmp_path):
    stories = [
        f"Story {k} begins here. The cat sat on the mat today. It was happy." for k in range(6)
    ]
    path = tmp_path / "val.txt"
    path.write_text("\n".join(stories) + "\n")
    refs = reference_stories(str(path), 2)
    assert refs["real"] == stories[3:5]  # the second half, at most eval_stories
    for real, shuffled in zip(refs["real"], refs["shuffled"], strict=True):
        assert shuffled != real and sorted(shuffled.split()) == sorted(real.split())
    assert reference_stories(str(path), 2) == refs  # seeded
    path.write_text(stories[0] + "\n")
    with pytest.raises(ConfigError, match="hold 1; the ladder's reference rows need at least 2"):
        reference_stories(str(path), 64)


def _fake_run(budget: int, seed: int, start: float, end: float, entity: tuple[float, float]):
    probes = {name: [0.5, 0.4, 0.6] for name in PROBE_ROWS}
    return {
        "budget": budget,
        "seed": seed,
        "start": start,
        "end": end,
        "judges_start": {"lm:gemma": [start / 2, 0.0, 1.0]},
        "judges_end": {"lm:gemma": [end / 2, 0.0, 1.0]},
        "probes_start": {**probes, "entity_tracking": [entity[0], 0.0, 1.0]},
        "probes_end": {**probes, "entity_tracking": [entity[1], 0.0, 1.0]},
        "words_start": [70.0, 60.0, 80.0],
        "words_end": [70.0 + 100 * (end - start), 60.0, 80.0],
    }


def test_report_tables_from_known_numbers(tmp_path):
    config = ReproConfig(
        budgets=(1_000, 10_000), seeds=(0, 1), rl={"teacher": "lm"}, judges=("lm:gemma",)
    )
    results = {
        "rl/1000-seed0": _fake_run(1_000, 0, 0.2, 0.3, (0.5, 0.6)),
        "rl/1000-seed1": _fake_run(1_000, 1, 0.2, 0.5, (0.5, 0.8)),
        "rl/10000-seed0": _fake_run(10_000, 0, 0.4, 0.4, (0.5, 0.5)),
        "rl/10000-seed1": _fake_run(10_000, 1, 0.4, 0.4, (0.5, 0.5)),
        "control/10000-seed0": _fake_run(10_000, 0, 0.4, 0.1, (0.5, 0.4)),
        "control/10000-seed1": _fake_run(10_000, 1, 0.4, 0.3, (0.5, 0.5)),
    }
    starts = {
        str(b): {"teacher": [s, 0.0, 1.0], "judges": {"lm:gemma": [s / 2, 0.0, 1.0]}, "samples": []}
        for b, s in ((1_000, 0.2), (10_000, 0.4))
    }
    refs = {
        "seed": 0,
        "real": {"stories": 4, "teacher": [0.7, 0.6, 0.8], "judges": {"lm:gemma": [0.6, 0.5, 0.7]}},
        "shuffled": {
            "stories": 4,
            "teacher": [0.1, 0.0, 0.2],
            "judges": {"lm:gemma": [0.1, 0.0, 0.2]},
        },
    }
    (tmp_path / "starts.json").write_text(json.dumps(starts))
    (tmp_path / "references.json").write_text(json.dumps(refs))
    table = write_report(config, results, {"rl/1000-seed0": 60.0, "rl/1000-seed1": 120.0}, tmp_path)
    assert "| 1,000 | 0.200 | 0.400 (0.300..0.500) | +0.200 | 10,000 (+9,000) |" in table
    assert "20,000 interactive words of `ppo`;" in table  # the algorithm the runs used
    control = "| 10,000 + random-reward control |"
    assert f"{control} teacher `lm` | 0.400 | 0.200 (0.100..0.300) | -0.200 | +0.000 |" in table
    assert f"{control} judge `lm:gemma` | 0.200 | 0.100 (0.050..0.150) | -0.100 | +0.000 |" in table
    assert (
        "| 1,000 | 0.500 | 0.500 (0.500..0.500) | +0.000 | 0.500 | 0.700 (0.600..0.800) | +0.200 |"
        in table
    )
    assert (
        f"{control} 0.500 | 0.500 (0.500..0.500) | +0.000 | 0.500 | 0.450 (0.400..0.500) | -0.050 |"
        in table
    )
    assert "| entity_tracking | 0.500 | 0.600 | +0.100 |" in table  # the 4 runs with the teacher
    assert "| rl | 2 | 60..120 | 3.0 |" in table
    # words per story, start -> end over seeds, runs and controls apart
    assert "| 1,000 | 70.0 -> 90.0 (80.0..100.0) |" in table
    assert f"{control} 70.0 -> 50.0 (40.0..60.0) |" in table
    ladder = (tmp_path / "ladder.md").read_text()
    assert "| 1,000 | not recorded | not recorded | not recorded | 0.200 [0.000, 1.000] |" in ladder
    # top checkpoint: judge 0.2 against (0.1 + 0.6) / 2 = 0.35
    assert "top checkpoint (10,000 words): 0.200 against the halfway mark 0.350" in ladder
    assert "missed, by 0.150" in ladder


def test_config_file_round_trips_and_rejects_unknown_fields(tmp_path):
    path = tmp_path / "config.json"
    path.write_text(
        json.dumps(
            {"budgets": [10, 20], "seeds": [3], "model": {"n_layer": 2}, "control_budgets": [20]}
        )
    )
    config = ReproConfig.from_json(path)
    assert config.budgets == (10, 20) and config.seeds == (3,) and config.model.n_layer == 2
    assert config.controls == (20,)
    path.write_text(json.dumps({"budget": [10, 20]}))
    with pytest.raises(ConfigError, match="unknown fields \\['budget'\\]"):
        ReproConfig.from_json(path)


def test_the_old_single_control_is_refused_with_the_fix(tmp_path):
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"budgets": [10, 20], "control_budget": 20}))
    with pytest.raises(ConfigError, match='write "control_budgets": \\[20\\] instead'):
        ReproConfig.from_json(path)
    # a folder an earlier version started: refused before any stage runs
    old = tmp_path / "old"
    old.mkdir()
    (old / "config.json").write_text(json.dumps({"budgets": [10, 20], "control_budget": None}))
    with pytest.raises(ConfigError, match="start anew with another --out"):
        run(ReproConfig(budgets=(10, 20)), old, log=lambda *_: None)
    assert sorted(p.name for p in old.iterdir()) == ["config.json"]


def test_controls_default_and_bad_settings():
    config = ReproConfig(budgets=(1, 2, 3, 4, 5, 6), seeds=(0, 1, 2))
    assert config.controls == (4, 6)  # the middle budget and the top one
    assert [s for s in plan(config) if s.startswith("control/")] == [
        f"control/{b}-seed{s}" for b in (4, 6) for s in (0, 1, 2)
    ]
    assert ReproConfig(budgets=(1, 2), control_budgets=()).controls == ()
    with pytest.raises(ConfigError, match=r"control_budgets \[7\] are not among the budgets"):
        ReproConfig(budgets=(1, 2), control_budgets=(2, 7))
    with pytest.raises(
        ConfigError, match=r"probe_pairs must be a whole number >= 0 \(0 = no probes\), got -1"
    ):
        ReproConfig(probe_pairs=-1)
    with pytest.raises(ConfigError, match="teacher_kwargs must be a dict"):
        ReproConfig(rl={"teacher_kwargs": "bfloat16"})
    with pytest.raises(ConfigError, match=r"rl sets \['seed'\], which each stage sets itself"):
        ReproConfig(rl={"seed": 3})
    with pytest.raises(ConfigError, match="rl: .*'num_env'"):
        ReproConfig(rl={"num_env": 3})
    with pytest.raises(ConfigError, match="rl must be a JSON object of TrainConfig fields"):
        ReproConfig(rl=[1])  # type: ignore[arg-type]


def test_the_rl_settings_are_a_train_config_and_old_flat_folders_still_resume(tmp_path):
    """``rl`` is a ``TrainConfig`` (each setting declared once); a folder started when
    the RL settings sat at the top of config.json resumes with the same settings in
    ``rl``, and is refused, naming the field, with other ones."""
    config = ReproConfig.from_json(EXAMPLES / "ladder.json")
    stage = config.rl_config("ckpt", control=False, seed=2)
    assert (stage.algorithm, stage.student, stage.seed, stage.word_budget) == (
        "ppo",
        "ckpt",
        2,
        20_000,
    )
    assert stage.env == dataclasses.replace(config.rl.env, student="ckpt")
    saved = json.loads((EXAMPLES.parent.parent / "results/reproduction/config.json").read_text())
    assert "rl" not in saved and saved["num_envs"] == 16  # the earlier, flat form
    folder = tmp_path / "old"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps(saved))
    _guard(config, folder)  # the same experiment: resumes
    other = dataclasses.replace(config, rl=dataclasses.replace(config.rl, num_envs=8))
    with pytest.raises(ConfigError, match=r"rl.num_envs 16 -> 8"):
        _guard(other, folder)
    # another algorithm keeps its own settings, not the paper's PPO's
    story = ReproConfig.from_json(EXAMPLES / "ladder-story.json")
    assert story.rl.algorithm == "ppo_story" and story.rl.algo_kwargs == {}
    assert story.rl_config("ckpt", control=True, seed=0).teacher == "random"
    # a new folder keeps the nested form, and reads back as the same config
    new = tmp_path / "new"
    new.mkdir()
    _guard(config, new)
    written = json.loads((new / "config.json").read_text())
    assert written["rl"]["algorithm"] == "ppo" and "seed" not in written["rl"]
    assert ReproConfig.from_json(new / "config.json") == config


def test_estimate_counts_every_stage_and_the_probes():
    config = ReproConfig(
        budgets=(1_000, 10_000),
        seeds=(0, 1),
        eval_stories=10,
        probe_pairs=3,
        control_budgets=(1_000, 10_000),
    )
    est = estimate(config, 1_000.0, 100.0, 2.0, len(PROBES) * 3 / 7.0)
    assert est["start"] == pytest.approx(5.0 + 7.0)  # 10 stories at 2/s, probes 7 s
    assert est["references"] == pytest.approx(10.0)  # two sets of 10 stories, graded
    runs = 2 * 2 + 2 * 2  # budgets x seeds, and the controls (both budgets) x seeds
    assert est["audit"] == pytest.approx(5.0 / 2)
    assert est["total"] == pytest.approx(
        est["pretrain"]
        + est["references"]
        + 2 * est["start"]
        + runs * est["rl"]
        + (2 + runs) * est["audit"]
    )
    quiet = estimate(dataclasses.replace(config, probe_pairs=0), 1_000.0, 100.0, 2.0)
    assert est["total"] - quiet["total"] == pytest.approx((2 + runs) * 7.0)


def test_the_ladder_config_with_kl_per_step_loads_and_plans_its_stages():
    config = ReproConfig.from_json(EXAMPLES / "ladder-kl-per-step.json")
    budgets = sorted(config.budgets)
    assert len(budgets) >= 6 and budgets[-1] / budgets[0] >= 100 and budgets[-1] >= 10_000_000
    assert len(config.seeds) >= 3 and config.interactive_words >= 20_000
    assert config.teacher == "lm" and config.teacher_kwargs == {"dtype": "bfloat16"}
    # its judge is the lm teacher's default held-out judge, named
    assert (
        [j.label for j in config.judge_specs]
        == [j.label for j in default_judges("lm", config.teacher_kwargs)]
        == ["lm:gemma"]
    )
    assert len(config.controls) >= 2 and config.probe_pairs >= 100
    stages = plan(config)
    assert len(stages) == 2 + 6 + 6 * 3 + 2 * 3 + 30  # and every evaluation audited,
    assert stages[3::2] == [f"audit/{s}" for s in stages[2::2]]  # right after it
    assert estimate(config, 5_000.0, 265.0)["total"] > 0


def test_audit_writes_every_evaluation_again_and_measures_its_length(smoke):
    config, out, _, _ = smoke
    audit = json.loads((out / "audit.json").read_text())
    evaluated = [s for s in plan(config) if s.startswith(("start/", "rl/", "control/"))]
    assert sorted(audit) == sorted(evaluated)
    for entry in audit.values():
        assert len(entry["story_words"]) == len(entry["stories"]) == config.eval_stories
        assert entry["words"][0] == pytest.approx(sum(entry["story_words"]) / config.eval_stories)
        assert 0.0 <= entry["heuristic"][0] <= 1.0
        assert set(entry["judges"]) == {"random"}
        assert entry["versions"]["lm"].startswith("lm-calibration-v")
    # the same seeds write the same stories as the graded evaluation
    assert all(audit[f"start/{b}"]["same_stories"] for b in config.budgets)
    table = (out / "results.md").read_text()
    assert "| 1,000 | " in table.split("Audit: each evaluation written again")[1]


def test_audit_table_from_known_numbers(tmp_path):
    config = ReproConfig(
        budgets=(1_000, 10_000), seeds=(0, 1), rl={"teacher": "lm"}, judges=("lm:gemma",)
    )
    results = {
        "rl/1000-seed0": _fake_run(1_000, 0, 0.2, 0.3, (0.5, 0.6)),
        "rl/1000-seed1": _fake_run(1_000, 1, 0.2, 0.5, (0.5, 0.8)),
    }

    def entry(words, heuristic, judge):
        return {
            "words": [words, 0, 0],
            "heuristic": [heuristic, 0, 1],
            "judges": {"lm:gemma": [judge, 0, 1]},
            "versions": {"lm": "lm-calibration-v9"},
        }

    audit = {
        "start/1000": entry(70.0, 0.6, 0.5),
        "rl/1000-seed0": entry(10.0, 0.2, 0.1),
        "rl/1000-seed1": entry(40.0, 0.4, 0.6),
    }
    (tmp_path / "audit.json").write_text(json.dumps(audit))
    table = write_report(config, results, {}, tmp_path)
    assert "grading code of the audit (lm lm-calibration-v9)" in table
    assert (
        "| 1,000 | 70.0 -> 25.0 (10.0..40.0) | 0.600 -> 0.300 (0.200..0.400) (-0.300) | "
        "0.500 -> 0.350 (0.100..0.600) (-0.150) |" in table
    )


def test_audit_table_shows_the_rule_based_judge_once_when_it_is_also_a_judge(tmp_path):
    config = ReproConfig(
        budgets=(1_000, 10_000), seeds=(0,), rl={"teacher": "lm"}, judges=("lm:gemma", "heuristic")
    )
    results = {"rl/1000-seed0": _fake_run(1_000, 0, 0.2, 0.3, (0.5, 0.6))}

    def entry(heuristic):
        grade = [heuristic, 0, 1]
        return {
            "words": [70.0, 0, 0],
            "heuristic": grade,
            "judges": {"lm:gemma": [0.5, 0, 1], "heuristic": grade},
        }

    audit = {"start/1000": entry(0.6), "rl/1000-seed0": entry(0.7)}
    (tmp_path / "audit.json").write_text(json.dumps(audit))
    grades = {"teacher": [0.2, 0, 1], "judges": {"lm:gemma": [0.5, 0, 1], "heuristic": [0.6, 0, 1]}}
    (tmp_path / "starts.json").write_text(json.dumps({"1000": grades}))
    table = write_report(config, results, {}, tmp_path)
    # the ladder has no rule-based column of its own: there the judge keeps its column
    ladder = (tmp_path / "ladder.md").read_text()
    assert "| teacher `lm` | judge `lm:gemma` | judge `heuristic` |" in ladder
    assert "| 0.200 [0.000, 1.000] | 0.500 [0.000, 1.000] | 0.600 [0.000, 1.000] |" in ladder
    header = next(line for line in table.splitlines() if "`lm:gemma`: start -> end" in line)
    assert header.count("`heuristic`") == 1
    row = (
        "| 1,000 | 70.0 -> 70.0 (70.0..70.0) | 0.600 -> 0.700 (0.700..0.700) (+0.100) | "
        "0.500 -> 0.500 (0.500..0.500) (+0.000) |"
    )
    assert row in table


def test_the_ladder_config_differs_from_its_kl_per_step_variant_only_where_it_says():
    """ladder.json: the same experiment, with the KL charged per story (no pull
    toward short stories), the heuristic as a second judge of another kind, and no
    audit stages (its evaluations report words and every judge under the same code)."""
    old = ReproConfig.from_json(EXAMPLES / "ladder-kl-per-step.json")
    new = ReproConfig.from_json(EXAMPLES / "ladder.json")
    assert new == dataclasses.replace(
        old,
        judges=("lm:gemma", "heuristic"),
        rl=TrainConfig(**{**old.rl.to_dict(), "kl_per_story": True}),
        audit=False,
    )
    assert [j.label for j in new.judge_specs] == ["lm:gemma", "heuristic"]
    assert all(not s.startswith("audit/") for s in plan(new))
    rl = new.rl_config("tiny", control=True, seed=0)
    assert rl.kl_per_story and rl.kl_coef == 0.01 and rl.teacher == "random"


def test_within_length_gain_separates_a_grade_for_length_from_a_better_story():
    rng = np.random.default_rng(0)
    first_words = rng.integers(40, 80, 300)
    last_words = rng.integers(55, 95, 300)  # RL lengthened the stories
    by_length = lambda words, bonus: [(int(w), w / 100 + bonus) for w in words]  # noqa: E731
    # a grade that pays only for length rises as logged, not within length
    gain, share = within_length_gain(by_length(first_words, 0.0), by_length(last_words, 0.0))
    assert abs(gain) < 0.01 and 0.5 < share < 1.0
    # better stories at every length: the within-length gain is that improvement
    gain, _ = within_length_gain(by_length(first_words, 0.0), by_length(last_words, 0.1))
    assert gain == pytest.approx(0.1, abs=0.01)
    # lengths that never overlap cannot be compared
    assert within_length_gain([(20, 0.1)] * 10, [(90, 0.9)] * 10) is None


def test_report_shows_the_teachers_gain_within_story_length(tmp_path):
    config = ReproConfig(
        budgets=(1_000, 10_000), seeds=(0,), rl={"teacher": "lm"}, judges=("lm:gemma",)
    )
    results = {"rl/1000-seed0": _fake_run(1_000, 0, 0.2, 0.3, (0.5, 0.5))}
    log = tmp_path / "rl" / "1000-seed0" / "stories.jsonl"
    log.parent.mkdir(parents=True)
    first = [(50 + 10 * (i % 2), (50 + 10 * (i % 2)) / 100) for i in range(256)]  # 50, 60
    last = [(60 + 10 * (i % 2), (60 + 10 * (i % 2)) / 100 + 0.05) for i in range(256)]  # 60, 70
    rows = [{"words": w, "teacher_score": g} for w, g in first + last]
    rows.insert(10, {"words": 70, "teacher_score": None})  # a failed grade is left out
    log.write_text("".join(json.dumps(r) + "\n" for r in rows))
    table = write_report(config, results, {}, tmp_path)
    # as logged: +0.05 for better stories plus +0.10 for 10 more words; within length +0.05
    assert (
        "| 1,000 | 55.0 -> 65.0 | +0.150 (+0.150..+0.150) | +0.050 (+0.050..+0.050) | 50% |"
        in table
    )


@pytest.mark.slow
def test_the_stage_processes_end_with_a_killed_run(tmp_path):
    """``--jobs 2`` killed with SIGKILL: its pool processes end too (no stage writes on
    alone into a folder that the next run resumes)."""
    import psutil

    run_cmd = [sys.executable, "-m", "story_env.run.cli", "reproduce", "--smoke"]
    parent = subprocess.Popen(
        [*run_cmd, "--out", str(tmp_path / "exp"), "--jobs", "2", "--no-progress"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    # a stage's first line comes from a pool process, once it is set up and working
    for line in parent.stdout:
        if line.startswith(("stage references", "stage start/")):
            break
    children = psutil.Process(parent.pid).children()
    workers = [c for c in children if "spawn_main" in " ".join(c.cmdline())]
    assert len(workers) == 2, "the pool's two processes did not start"
    parent.kill()
    parent.wait()
    _, alive = psutil.wait_procs(workers, timeout=30)
    assert not alive, [p.cmdline() for p in alive]
