"""The plugin system: registration, errors, entry points and a real external plugin."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pluggy
import pytest

import story_env
from story_env.errors import DuplicatePluginError, UnknownPluginError
from story_env.registry import create_teacher, get_algorithm, plugin_manager, registry

ROOT = Path(__file__).resolve().parents[1]


def test_builtins_are_registered_with_their_distribution():
    reg = registry()
    assert {"heuristic", "random"} <= set(reg.names("teacher"))
    assert {"random", "ngram"} <= set(reg.names("student"))
    assert {"ppo", "a2c", "trpo", "maskable_ppo", "recurrent_ppo", "dqn", "qrdqn"} <= set(
        reg.names("algorithm")
    )
    entry = reg.get("teacher", "heuristic")
    assert entry.plugin == "story_env.plugins.teachers" and entry.distribution.startswith(
        "storytelling"
    )
    assert reg.get("student", "bigram").name == "ngram"  # alias


def test_algorithm_specs_load_real_classes():
    from sb3_contrib import MaskablePPO
    from stable_baselines3 import PPO

    assert get_algorithm("ppo").load() is PPO
    spec = get_algorithm("maskable_ppo")
    assert spec.load() is MaskablePPO and spec.needs_action_masks
    assert get_algorithm("dqn").q_values and not get_algorithm("dqn").on_policy


def test_unknown_algorithm_lists_registered_names():
    with pytest.raises(
        UnknownPluginError, match=r"unknown algorithm 'ppo2'.*Did you mean 'ppo'.*a2c"
    ):
        get_algorithm("ppo2")


class EchoTeacherPlugin:
    @story_env.hookimpl
    def storytelling_register_teachers(self, register):
        register("echo", lambda: "an echo teacher", description="test")


def test_in_process_plugin_registers_and_unregisters(temporary_plugin):
    temporary_plugin(EchoTeacherPlugin(), "echo-plugin")
    assert create_teacher("echo") == "an echo teacher"
    assert registry().get("teacher", "echo").plugin == "echo-plugin"


def test_in_process_plugin_is_gone_after_the_test():
    assert "echo" not in registry().names("teacher")


class ClashingPlugin:
    @story_env.hookimpl
    def storytelling_register_teachers(self, register):
        register("heuristic", lambda: None)


def test_duplicate_name_names_both_providers(temporary_plugin):
    temporary_plugin(ClashingPlugin(), "clashing-plugin")
    with pytest.raises(DuplicatePluginError) as err:
        registry()
    message = str(err.value)
    assert "'heuristic' is registered twice" in message
    assert "story_env.plugins.teachers" in message and "clashing-plugin" in message


class MisspelledHookPlugin:
    @story_env.hookimpl
    def storytelling_register_teacher(self, register):  # missing "s"
        pass


def test_check_pending_catches_a_misspelled_hook():
    pm = plugin_manager()
    pm.register(MisspelledHookPlugin(), name="misspelled")
    try:
        with pytest.raises(pluggy.PluginValidationError, match="storytelling_register_teacher"):
            pm.check_pending()
    finally:
        pm.unregister(name="misspelled")


def _fake_distribution(root: Path, module_body: str) -> None:
    """Write an installed-looking distribution (dist-info + module) into ``root``."""
    (root / "broken_plugin.py").write_text(module_body)
    info = root / "storytelling_broken-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: storytelling-broken\nVersion: 0.1\n"
    )
    (info / "entry_points.txt").write_text("[storytelling]\nbroken = broken_plugin\n")


def _run(code: str, path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, "PYTHONPATH": str(path), **env}
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=full_env
    )


def test_plugin_that_raises_on_import_is_named(tmp_path):
    _fake_distribution(tmp_path, "raise RuntimeError('database password missing')\n")
    code = "from story_env.registry import registry; registry()"
    result = _run(code, tmp_path)
    assert result.returncode != 0
    assert "PluginLoadError" in result.stderr
    assert "plugin 'broken' (entry point 'broken_plugin'" in result.stderr
    assert "storytelling-broken 0.1" in result.stderr
    assert "database password missing" in result.stderr
    assert "STORYTELLING_DISABLE_PLUGIN_AUTOLOAD" in result.stderr


def test_disable_autoload_skips_third_party_plugins(tmp_path):
    _fake_distribution(tmp_path, "raise RuntimeError('must not be imported')\n")
    code = "from story_env.registry import registry; print(registry().names('teacher'))"
    result = _run(code, tmp_path, STORYTELLING_DISABLE_PLUGIN_AUTOLOAD="1")
    assert result.returncode == 0, result.stderr
    assert "heuristic" in result.stdout


def test_pip_installed_example_plugin_is_usable_and_listed(tmp_path):
    target = tmp_path / "site"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "--target",
            str(target),
            str(ROOT / "examples" / "custom_teacher_plugin"),
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    code = textwrap.dedent(
        """
        import gymnasium as gym
        env = gym.make("story_env:Storytelling-v0", teacher="keywords",
                       teacher_kwargs={"keywords": ["fox", "moon"]})
        env.reset(seed=0)
        for ch in " a fox saw the sun.".encode():
            env.step(ch)
        _, reward, terminated, _, info = env.step(256)
        print(terminated, reward, info["scores"], info["teacher_raw"])
        """
    )
    result = _run(code, target)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split("\n")[0] == "True 0.5 {'keywords': 0.5} found ['fox']"
    listing = subprocess.run(
        [sys.executable, "-m", "story_env.run.cli", "plugins"],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(target)},
        check=True,
    ).stdout
    line = next(ln for ln in listing.splitlines() if ln.strip().startswith("keywords"))
    assert "storytelling-keyword-teacher 0.1.0" in line and "plugin keyword_teacher" in line


def test_pip_installed_plugin_adds_a_command(tmp_path):
    target = tmp_path / "site"
    example = ROOT / "examples" / "custom_teacher_plugin"
    pip = [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps"]
    subprocess.run(
        [*pip, "--no-build-isolation", "--target", str(target), str(example)],
        check=True,
        capture_output=True,
        text=True,
    )
    env = {**os.environ, "PYTHONPATH": str(target)}
    cli = [sys.executable, "-m", "story_env.run.cli"]
    graded = subprocess.run(
        [*cli, "keywords", "--keywords", "fox,moon", "A fox saw the sun."],
        capture_output=True,
        text=True,
        env=env,
    )
    assert graded.returncode == 0, graded.stderr
    assert graded.stdout.strip() == "0.500 found ['fox']"
    helped = subprocess.run([*cli, "--help"], capture_output=True, text=True, env=env)
    assert "grade a text by its keywords" in helped.stdout


class ClashingCommandPlugin:
    @story_env.hookimpl
    def storytelling_register_commands(self, register):
        register("train", lambda parser: None, description="a second train")


def test_a_command_name_taken_twice_names_both_plugins(temporary_plugin):
    temporary_plugin(ClashingCommandPlugin(), "clashing-commands")
    with pytest.raises(DuplicatePluginError, match=r"command name 'train' is registered twice"):
        registry()


# --- a failing plugin is one line naming its package (issue 34) ---------------------------
def _cli(path: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(path)}
    return subprocess.run(
        [sys.executable, "-m", "story_env.run.cli", *argv], capture_output=True, text=True, env=env
    )


@pytest.mark.parametrize(
    ("body", "shown"),
    [
        ("raise RuntimeError('database password missing')\n", "database password missing"),
        ("import sys\nsys.exit(3)\n", "failed to import: SystemExit: 3"),
    ],
)
def test_a_plugin_failing_at_import_is_one_line_for_every_command(tmp_path, body, shown):
    _fake_distribution(tmp_path, body)
    result = _cli(tmp_path, "plugins")
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    err = result.stderr.strip()
    assert "\n" not in err and err.startswith("storytelling: error: plugin 'broken'")
    assert "storytelling-broken 0.1" in err and shown in err


class RaisingHookPlugin:
    @story_env.hookimpl
    def storytelling_register_teachers(self, register):
        raise ValueError("no licence file")


class ExitingHookPlugin:
    @story_env.hookimpl
    def storytelling_register_teachers(self, register):
        raise SystemExit("bye")


@pytest.mark.parametrize(
    ("plugin", "shown"),
    [
        (RaisingHookPlugin(), "ValueError: no licence file"),
        (ExitingHookPlugin(), "SystemExit: bye"),
    ],
)
def test_a_register_hook_that_raises_is_one_line_naming_the_plugin(
    temporary_plugin, capsys, plugin, shown
):
    from story_env.run.cli import main

    temporary_plugin(plugin, "raising-hook")
    assert main(["plugins"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "plugin 'raising-hook'" in err and shown in err
    assert "storytelling_register_teachers" in err


class CrashingTeacher:
    """Failure injection: a teacher whose constructor fails as a backend might."""

    name = "crashing"
    dimensions = ("quality",)
    max_score = 3.0

    def __init__(self, **kwargs):
        raise RuntimeError("CUDA out of memory")


class CrashingTeacherPlugin:
    @story_env.hookimpl
    def storytelling_register_teachers(self, register):
        register("crashing", CrashingTeacher)


def test_a_teacher_constructor_that_raises_is_one_line_naming_the_plugin(temporary_plugin, capsys):
    from story_env.run.cli import main

    temporary_plugin(CrashingTeacherPlugin(), "crashing-teacher")
    assert main(["play", "--teacher", "crashing", "--episodes", "1"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err
    assert "teacher 'crashing' (plugin 'crashing-teacher'" in err
    assert "failed to start: RuntimeError: CUDA out of memory" in err


class StringDimensionsTeacher:
    name = "stringly"
    dimensions = "quality"  # the mistake: a str, not a tuple
    max_score = 3.0

    def score(self, requests):
        return []


class StringDimensionsPlugin:
    @story_env.hookimpl
    def storytelling_register_teachers(self, register):
        register("stringly", StringDimensionsTeacher)


def test_a_teacher_declaring_dimensions_as_a_string_is_refused_where_declared(
    temporary_plugin,
):
    from story_env.errors import PluginError

    temporary_plugin(StringDimensionsPlugin(), "stringly-plugin")
    with pytest.raises(PluginError) as caught:
        registry()
    message = str(caught.value)
    assert "teacher 'stringly' (plugin 'stringly-plugin'" in message
    assert "declares dimensions 'quality'" in message and 'dimensions = ("quality",)' in message
    assert "'q'" not in message  # not blamed letter by letter
