"""Held-out judges: the same stories graded by teachers the reward never saw.

A reward is a proxy. A student trained against one teacher can raise that teacher's
grade without writing better stories (reward hacking; Gao et al. 2022 measure proxy
reward against a held-out gold judge). So every evaluation grades its stories twice:
with the training teacher, and with one or more judges built on a *different* model.

``default_judges`` picks that judge: the ``lm`` teacher on Gemma-3-270M, or on SmolLM2
when the reward itself is Gemma's (Gemma did not write the corpus, so it is the more
independent of the two). A judge is given on the command line as ``NAME``,
``NAME:MODEL`` (``lm:gemma``) or ``NAME:{JSON kwargs}``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from story_env.errors import ConfigError
from story_env.registry import create_teacher
from story_env.run.stats import CI_METHOD, mean_ci
from story_env.teacher import StoryRequest, close_teacher, grading_progress


@dataclass(frozen=True)
class JudgeSpec:
    """A teacher used as a judge.

    Attributes:
        name: Registered teacher name.
        kwargs: Keyword arguments for its factory.
    """

    name: str
    kwargs: Mapping[str, Any] = field(default_factory=dict)

    @property
    def label(self) -> str:
        """A short column name: ``lm:gemma``, ``heuristic``, ``hf{...}``."""
        if not self.kwargs:
            return self.name
        if set(self.kwargs) == {"model"}:
            return f"{self.name}:{self.kwargs['model']}"
        return f"{self.name}:{json.dumps(dict(self.kwargs), sort_keys=True)}"

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "kwargs": dict(self.kwargs)}


def parse_judge(text: str) -> JudgeSpec:
    """``NAME``, ``NAME:MODEL`` or ``NAME:{JSON object}`` as a ``JudgeSpec``.

    Raises:
        ConfigError: If the JSON part is not an object.
    """
    name, sep, rest = text.strip().partition(":")
    if not name:
        raise ConfigError(f"judge {text!r} has no teacher name; e.g. --judge lm:gemma")
    if not sep or not rest:
        return JudgeSpec(name)
    if rest.lstrip().startswith(("{", "[")):
        try:
            kwargs = json.loads(rest)
        except json.JSONDecodeError as exc:
            raise ConfigError(
                f"judge {text!r}: the part after ':' is not valid JSON ({exc.msg}); "
                'e.g. --judge \'lm:{"model": "gemma"}\''
            ) from exc
        if not isinstance(kwargs, dict):
            raise ConfigError(f"judge {text!r}: the JSON after ':' must be an object")
        return JudgeSpec(name, kwargs)
    return JudgeSpec(name, {"model": rest})


def default_judges(teacher: str, teacher_kwargs: Mapping[str, Any] | None) -> list[JudgeSpec]:
    """The held-out judge for a reward: ``lm`` on a model the reward does not use."""
    reward_model = (teacher_kwargs or {}).get("model", "smollm2") if teacher == "lm" else None
    return [JudgeSpec("lm", {"model": "smollm2" if reward_model == "gemma" else "gemma"})]


def resolve_judges(
    judges: Sequence[JudgeSpec | str] | None,
    teacher: str,
    teacher_kwargs: Mapping[str, Any] | None,
) -> list[JudgeSpec]:
    """``None`` -> the default held-out judge; ``[]`` -> none; strings are parsed."""
    if judges is None:
        return default_judges(teacher, teacher_kwargs)
    return [j if isinstance(j, JudgeSpec) else parse_judge(j) for j in judges]


def judge_totals(judged: dict[str, dict[str, Any]]) -> dict[str, list[float]]:
    """Each judge's total (mean and 95% CI) from ``judge_stories``' result; a judge that
    graded no story is left out."""
    return {label: list(v["total"]) for label, v in judged.items() if "total" in v}


def judge_stories(
    judges: Sequence[JudgeSpec],
    requests: Sequence[StoryRequest],
    *,
    progress: bool | None = None,
) -> dict[str, dict[str, Any]]:
    """Grade the same stories with every judge: per dimension and total, mean and 95% CI.

    A story a judge fails to grade is left out of that judge's means and counted in its
    ``failed`` (never scored as a number); its teacher's failure policy applies first.

    Args:
        judges: The judges.
        requests: The stories.
        progress: A bar on stderr per judge, while it loads and as it grades each batch
            (``None``: only when stderr is a terminal; ``False``: never).
    """
    from tqdm.auto import tqdm

    out: dict[str, dict[str, Any]] = {}
    for spec in judges:
        bar = tqdm(
            total=len(requests),
            desc=f"judge {spec.label}: loading",
            unit="story",
            disable=None if progress is None else not progress,
            leave=False,
        )
        try:
            judge = create_teacher(spec.name, **dict(spec.kwargs))
            bar.set_description(f"judge {spec.label}: grading")
            try:
                with grading_progress(bar.update):
                    grades = judge.score(list(requests))
            finally:
                close_teacher(judge)
        finally:
            bar.close()
        ok = [g for g in grades if g.ok and g.total is not None]
        summary: dict[str, Any] = {
            "judge": spec.as_dict(),
            "stories": len(ok),
            "failed": len(grades) - len(ok),
            "ci_method": CI_METHOD,
        }
        if ok:
            for dim in judge.dimensions:
                summary[dim] = mean_ci([g.values[dim] / judge.max_score for g in ok])
            summary["total"] = mean_ci([float(g.total) for g in ok])  # type: ignore[arg-type]
        out[spec.label] = summary
    return out
