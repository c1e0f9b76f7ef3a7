"""Evaluate a student or a trained policy.

``evaluate`` writes a fixed number of stories per env slot at fixed seeds and reports
the mean and 95% CI of every dimension under the training teacher and under held-out
judges that were never the reward (``story_env.run.comparison`` compares algorithms
with it).
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from story_env.agents.rl.reference import ReferenceVecEnv
from story_env.arguments import EVAL_STORIES, MAX_ENVS, MAX_STORIES
from story_env.errors import ConfigError
from story_env.registry import get_algorithm
from story_env.run.algorithms import build_algorithm, untrainable_student
from story_env.run.config import TrainConfig
from story_env.run.diversity import MIN_MAUVE_STORIES, check_mauve, diversity, story_words
from story_env.run.judging import JudgeSpec, judge_stories, resolve_judges
from story_env.run.stats import CI_METHOD, mean_ci
from story_env.run.training import story_wave, uses_masks
from story_env.run_folder import CHECKPOINT, STORIES, load_model
from story_env.teacher import StoryRequest

logger = logging.getLogger(__name__)


def _run_config(run: Path) -> dict[str, Any]:
    """A run folder's ``config.json``, checked to name an algorithm and a student."""
    from story_env.errors import RunFolderError
    from story_env.run_folder import CONFIG, read_json

    data = read_json(run / CONFIG, "run config")
    if (
        not isinstance(data, dict)
        or not isinstance(data.get("algorithm"), str)
        or not isinstance(data.get("student"), str)
    ):
        raise RunFolderError(
            f"run config {str(run / CONFIG)!r} does not name an algorithm and a student; "
            "the run folder is damaged"
        )
    return data


#: The settings a trained policy is tied to: its model and tokenizer (the student), its
#: observation's shape (the prompts and ``max_new_tokens``), the reward it learned
#: (``length_bonus``, ``weights``). ``evaluate`` takes them from the run's ``config.json``.
RUN_SETTINGS = (
    "student",
    "student_kwargs",
    "max_new_tokens",
    "prompts",
    "prompt_file",
    "length_bonus",
    "weights",
)
# an override of these cannot work: the policy's model or its observation would change
_FIXED_BY_RUN = ("student", "student_kwargs", "max_new_tokens", "prompts", "prompt_file")


def run_settings(
    checkpoint: str | Path, given: Mapping[str, Any], teacher: str | None = None
) -> dict[str, Any]:
    """The env settings to evaluate a trained run with: the run's own (``RUN_SETTINGS``
    of its ``config.json``), and of ``given`` those the user set (not ``None``).

    Args:
        checkpoint: A run folder or its ``checkpoint.zip``.
        given: The caller's settings; ``None`` means "the run's".
        teacher: The teacher that grades; the run's ``weights`` follow its own teacher's
            dimensions, so another teacher grades with its default weights.

    Raises:
        ConfigError: A given setting that the trained policy cannot use (another
            student, ``student_kwargs`` or ``max_new_tokens``): named with the run's value.
    """
    path = Path(checkpoint)
    run_dir = path if path.is_dir() else path.parent
    run = _run_config(run_dir)
    settings = {name: run.get(name) for name in RUN_SETTINGS}
    settings["student_kwargs"] = dict(settings["student_kwargs"] or {})
    if settings["max_new_tokens"] is None:
        settings["max_new_tokens"] = TrainConfig().max_new_tokens
    if settings["length_bonus"] is None:
        settings["length_bonus"] = 0.0
    if teacher is not None and teacher != run.get("teacher"):
        settings["weights"] = None
    for name in _FIXED_BY_RUN:
        value = given.get(name)
        if name == "prompts" and value is not None:
            value = list(value)
        if value is None or value == settings[name] or (name == "student_kwargs" and not value):
            continue
        flag = "--" + name.replace("_", "-")
        raise ConfigError(
            f"the policy in {str(run_dir)!r} was trained with {name} {settings[name]!r}; "
            f"{flag} {value!r} cannot work with it (its model or its observations would "
            f"change). Drop {flag}: evaluation uses the run's own settings"
        )
    return settings


def evaluate(
    *,
    student: str | None = None,
    checkpoint: str | Path | None = None,
    model: Any = None,
    teacher: str | None = None,
    stories: int = EVAL_STORIES,
    seed: int = 0,
    num_envs: int = 16,
    max_new_tokens: int | None = None,
    student_kwargs: Mapping[str, Any] | None = None,
    teacher_kwargs: Mapping[str, Any] | None = None,
    top_p: float | None = None,
    top_k: int | None = None,
    judges: Sequence[JudgeSpec | str] | None = None,
    progress: bool | None = None,
    prompts: Sequence[str] | None = None,
    prompt_file: str | None = None,
    mauve: bool = True,
) -> dict[str, Any]:
    """Score ``stories`` stories at fixed seeds; per-dimension mean and 95% CI.

    With ``checkpoint`` (a training run folder or its ``checkpoint.zip``) the trained
    policy writes, under the top-p / top-k masks it was trained with, if any; with
    ``model`` (a trained stable-baselines3 model in memory, e.g. ``StoryPPO`` from a
    plain SB3 script) that model writes; without either the untrained policy, i.e. the
    pretrained student, sampling inside its own top-p / top-k set when ``top_p`` /
    ``top_k`` are given.

    A checkpoint is evaluated with the settings its run was trained with
    (``run_settings``: student, prompts, ``max_new_tokens``, reward shape, masks);
    ``student`` and ``max_new_tokens`` default to the run's, and another value is refused.
    Without a checkpoint they default to ``tiny`` and 90.

    The stories are graded by ``teacher`` (default: the run's own teacher for a
    checkpoint, else ``heuristic``) and by every judge in ``judges`` (default: the
    held-out judge of ``story_env.run.judging.default_judges``; ``[]`` for none), reported
    under ``summary["judges"]``. ``progress``: a bar on stderr while each judge loads and
    grades (``None``: only when stderr is a terminal; ``False``: never).

    Beside the grades, ``summary["diversity"]`` holds the stories' diversity and
    distribution and a reference row of real stories of the same lengths
    (``story_env.run.diversity``); ``mauve=False`` leaves MAUVE out (it loads
    SmolLM2-135M and needs the ``mauve`` extra, checked before any story is written).
    """
    _check_counts(stories, seed, num_envs)
    import torch

    from story_env.run.trl_training import trl_student_folder

    if mauve and stories >= MIN_MAUVE_STORIES:
        check_mauve()  # before any story is written: the fix is named at once

    if teacher is None:  # the run's own teacher, never silently another one
        teacher, teacher_kwargs = _run_teacher(checkpoint, teacher_kwargs)
    judge_specs = resolve_judges(judges, teacher, teacher_kwargs)
    given = {"student": student, "student_kwargs": student_kwargs}
    given.update(max_new_tokens=max_new_tokens, prompts=prompts, prompt_file=prompt_file)
    env: dict[str, Any] = {
        "student": student or "tiny",
        "student_kwargs": dict(student_kwargs or {}),
        "max_new_tokens": 90 if max_new_tokens is None else max_new_tokens,
        "prompts": prompts,
        "prompt_file": prompt_file,
    }
    if checkpoint is not None:
        env = run_settings(checkpoint, given, teacher)
    if checkpoint is not None and top_p is None and top_k is None:
        trained = trl_student_folder(checkpoint)  # a TRL run (grpo): a transformers folder
        if trained is not None:
            env.update(student=str(trained), student_kwargs={})
            checkpoint = None
    config = TrainConfig(
        teacher=teacher,
        num_envs=num_envs,
        teacher_kwargs=dict(teacher_kwargs or {}),
        **env,
    )
    if model is None and checkpoint is None and top_p is None and top_k is None:
        model = _baseline_agent(config, seed)
    if model is not None:
        if checkpoint is not None or top_p is not None or top_k is not None:
            raise ConfigError(
                "evaluate writes with one policy: give model, or checkpoint (and top_p/top_k "
                "for the untrained student), not both"
            )
        from story_env.sb3 import make_sb3_vec_env

        venv, masked = make_sb3_vec_env(num_envs=num_envs, **config.env_kwargs()), False
    else:
        model, venv, masked = _policy_and_env(config, checkpoint, top_p, top_k)
    torch.manual_seed(seed)
    venv.seed(seed)
    wave = story_wave(model, venv, per_slot=-(-stories // num_envs), masked=masked)
    results = [info for _, info in wave[:stories]]
    venv.close()
    return _summary(results, seed, teacher, judge_specs, progress, mauve)


def _check_counts(stories: Any, seed: Any, num_envs: Any) -> None:
    """Refuse a number of stories, a seed or a number of envs ``evaluate`` cannot use.

    Raises:
        ConfigError: The value, named with its range and an example.
    """
    if isinstance(stories, bool) or not isinstance(stories, int) or stories < 1:
        raise ConfigError(
            f"stories must be a whole number >= 1, got {stories!r}; e.g. --stories {EVAL_STORIES}"
        )
    if stories > MAX_STORIES:
        raise ConfigError(
            f"stories must be <= {MAX_STORIES}, got {stories}; e.g. --stories {EVAL_STORIES}"
        )
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**32:
        raise ConfigError(f"seed must be a whole number from 0 to {2**32 - 1}, got {seed!r}")
    if isinstance(num_envs, bool) or not isinstance(num_envs, int) or not 1 <= num_envs <= MAX_ENVS:
        raise ConfigError(f"num_envs must be a whole number from 1 to {MAX_ENVS}, got {num_envs!r}")


def _baseline_agent(config: TrainConfig, seed: int) -> Any:
    """The agent of a student with no causal LM (``random``, ``ngram``), which writes as
    it is (there is no policy to build from it); ``None`` for a trainable student."""
    student = untrainable_student(config.student, dict(config.student_kwargs))
    return None if student is None else student.make_agent(seed=seed)


def _policy_and_env(
    config: TrainConfig, checkpoint: str | Path | None, top_p: float | None, top_k: int | None
) -> tuple[Any, Any, bool]:
    """The policy that writes (the trained one of ``checkpoint``, else the untrained
    student), its env (under the top-p / top-k masks it writes with), and whether it
    samples under masks."""
    from story_env.sb3 import make_sb3_vec_env

    venv = make_sb3_vec_env(num_envs=config.num_envs, **config.env_kwargs())
    if checkpoint is not None and (top_p is not None or top_k is not None):
        raise ConfigError(
            "top_p/top_k apply to the untrained student; a checkpoint is evaluated under the "
            "masks it was trained with (its config.json). Drop top_p/top_k or the checkpoint"
        )
    mask_student, mask_student_kwargs = config.student, dict(config.student_kwargs)
    model = algorithm = None
    if checkpoint is not None:
        path = Path(checkpoint)
        path = path / CHECKPOINT if path.is_dir() else path
        if not path.is_file():
            raise ConfigError(
                f"no checkpoint at {str(path)!r}; give a `storytelling train` run folder"
            )
        run_config = _run_config(path.parent)
        algorithm = run_config["algorithm"]
        model = load_model(get_algorithm(algorithm).load(), path, device="cpu")
        # a policy trained under top-p/top-k masks writes under them, so it is judged
        # under them too (without, it samples tokens it never learned about)
        top_p, top_k = run_config.get("top_p"), run_config.get("top_k")
        mask_student = run_config["student"]
        mask_student_kwargs = run_config.get("student_kwargs") or {}
    if top_p is not None or top_k is not None:
        venv = ReferenceVecEnv(venv, mask_student, mask_student_kwargs, top_p=top_p, top_k=top_k)
    if model is None:
        if top_p is not None or top_k is not None:
            config = dataclasses.replace(config, algorithm="maskable_ppo", top_p=top_p, top_k=top_k)
        algorithm = config.algorithm
        model = build_algorithm(config, venv)
    return model, venv, uses_masks(algorithm, venv)


def _summary(
    results: list[dict[str, Any]],
    seed: int,
    teacher: str,
    judges: Sequence[JudgeSpec],
    progress: bool | None = None,
    mauve: bool = True,
) -> dict[str, Any]:
    """Mean and 95% CI per dimension and of the teacher score; the stories (``texts``) and
    their words (each story's count in ``story_words``, their mean and CI in ``words``:
    ``diversity``'s ``words_mean``, one computation); the judges' grades; the stories'
    diversity beside real stories (``diversity``)."""
    summary: dict[str, Any] = {"stories": len(results), "seed": seed, "teacher": teacher}
    summary["ci_method"] = CI_METHOD
    for dim in results[0]["scores"]:
        summary[dim] = mean_ci([r["scores"][dim] for r in results])
    summary["teacher_score"] = mean_ci([r["teacher_score"] for r in results])
    # length is reported beside every grade: a grader that prefers short text can be
    # gamed by writing less, and the words per story show when a gain came with that
    summary["texts"] = [r["story"] for r in results]
    summary["story_words"] = [len(story_words(text)) for text in summary["texts"]]
    figures = diversity(summary["texts"], mauve=mauve)
    summary["words"] = tuple(figures["words_mean"])
    summary["samples"] = summary["texts"][:3]
    requests = [StoryRequest(r["prompt"], r["story"]) for r in results]
    summary["judges"] = judge_stories(judges, requests, progress=progress)
    summary["diversity"] = figures
    return summary


def _run_teacher(
    checkpoint: str | Path | None, teacher_kwargs: Mapping[str, Any] | None
) -> tuple[str, dict[str, Any]]:
    """The teacher (and its kwargs) a training run was graded by; ``heuristic`` without one."""
    if checkpoint is None:
        return "heuristic", dict(teacher_kwargs or {})
    path = Path(checkpoint)
    run = _run_config(path if path.is_dir() else path.parent)
    return run.get("teacher", "heuristic"), dict(teacher_kwargs or run.get("teacher_kwargs") or {})


def learning_curve(run_dir: Path, window: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """(steps, moving-average teacher score) from a run's story log."""
    rows = [json.loads(line) for line in (run_dir / STORIES).read_text().splitlines() if line]
    if not rows:
        return np.zeros(0), np.zeros(0)
    steps = np.array([r["step"] for r in rows])
    scores = np.array([r["teacher_score"] for r in rows], dtype=float)
    kernel = min(window, len(scores))
    smooth = np.convolve(scores, np.ones(kernel) / kernel, mode="valid")
    return steps[kernel - 1 :], smooth
