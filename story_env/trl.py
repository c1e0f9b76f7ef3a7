"""Teachers as TRL reward functions.

TRL's trainers (``GRPOTrainer``, ``RLOOTrainer``) call each reward function as
``f(prompts=..., completions=..., completion_ids=..., **kwargs)`` and expect one float
per completion (``None`` where the reward does not apply). ``teacher_reward_function``
turns any registered teacher, with its keyword arguments (cache, failure policy, ...),
into such a function::

    from trl import GRPOConfig, GRPOTrainer
    from story_env.trl import teacher_reward_function

    reward = teacher_reward_function("heuristic")
    trainer = GRPOTrainer(model=..., reward_funcs=reward, args=GRPOConfig(...), ...)

One call grades the whole batch of completions with one ``teacher.score`` call, and the
reward is the env's: the same weights, length bonus and failure rules
(``story_env.core.reward_and_info``). A failed grade is never silently a number: it
raises ``TeacherError``, or gives the declared ``teacher_fallback`` reward (flagged), or
``None`` with ``skip_failed=True`` (TRL then leaves that completion out of its group's
baseline and gives it no advantage). This module does not import TRL.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from story_env.core import ask_teacher, reward_and_info
from story_env.errors import ConfigError
from story_env.rewards import RewardConfig
from story_env.teacher import Scores, StoryRequest, Teacher, close_teacher

logger = logging.getLogger(__name__)

#: Called with the info dict of every completion a reward call graded, in order.
GradedListener = Callable[[list[dict[str, Any]]], None]


class TeacherReward:
    """A teacher behind TRL's reward-function interface.

    Args:
        teacher: Any object following ``story_env.teacher.Teacher``.
        reward_config: How its per-dimension scores become one reward in [0, 1].
        teacher_fallback: The declared reward of a story the teacher failed to grade
            (flagged in the info); ``None`` raises ``TeacherError`` instead.
        skip_failed: Return ``None`` for a failed grade (TRL's "not applicable").
        teacher_timeout_s: Seconds one batch may take; past it every story of the batch
            has a failed grade (``None``: no limit), as the env's ``teacher_timeout_s``.
        on_graded: Receives the env-style info dict of every graded completion (prompt,
            story, scores, teacher_score, reward, teacher_raw, teacher_error,
            teacher_fallback, words, tokens); a training run logs stories with it.
        name: The name TRL logs the reward under (default ``teacher_<name>``).
    """

    def __init__(
        self,
        teacher: Teacher,
        *,
        reward_config: RewardConfig,
        teacher_fallback: float | None = None,
        skip_failed: bool = False,
        teacher_timeout_s: float | None = None,
        on_graded: GradedListener | None = None,
        name: str | None = None,
    ) -> None:
        if teacher_fallback is not None and skip_failed:
            raise ConfigError(
                f"give teacher_fallback={teacher_fallback!r} or skip_failed=True, not both: a "
                "failed grade gets either the declared reward or None"
            )
        if teacher_fallback is not None and not 0.0 <= teacher_fallback <= 1.0:
            raise ConfigError(f"teacher_fallback must be in [0, 1] or None, got {teacher_fallback}")
        self.teacher = teacher
        self.reward_config = reward_config
        self.teacher_fallback = teacher_fallback
        self.skip_failed = skip_failed
        self.teacher_timeout_s = teacher_timeout_s
        self.on_graded = on_graded
        self.__name__ = name or f"teacher_{teacher.name}"
        self.failed = 0  # grades the teacher failed, whatever the policy did with them

    def __call__(
        self,
        prompts: Sequence[Any],
        completions: Sequence[Any],
        completion_ids: Sequence[Sequence[int]] | None = None,
        *,
        log_extra: Callable[[str, list], None] | None = None,
        log_metric: Callable[[str, float], None] | None = None,
        **_: Any,
    ) -> list[float | None]:
        """Grade every completion in one teacher batch; one reward per completion.

        Args:
            prompts: Plain-text prompts, or conversations (lists of ``{"role", "content"}``
                messages; the last message's content is the prompt).
            completions: Plain-text completions, or lists of messages (the last one's
                content is the story).
            completion_ids: The completions' token ids (their lengths are logged as
                ``tokens``); optional.
            log_extra: TRL's per-completion column logger (per-dimension scores).
            log_metric: TRL's scalar metric logger (mean teacher score, failures).
            **_: TRL's other keyword arguments (``trainer_state``, dataset columns).

        Returns:
            One reward in [0, 1] per completion, or ``None`` for a failed grade when
            ``skip_failed`` is set.

        Raises:
            TeacherError: the teacher failed to grade a story (a failed grade, an
                exception, a timeout, or an invalid grade) and neither
                ``teacher_fallback`` nor ``skip_failed`` is set.
        """
        if len(prompts) != len(completions):
            raise ConfigError(
                f"got {len(prompts)} prompts for {len(completions)} completions; "
                "a reward function takes one prompt per completion"
            )
        if completion_ids is not None and len(completion_ids) != len(completions):
            raise ConfigError(
                f"got {len(completion_ids)} completion_ids for {len(completions)} completions"
            )
        requests = [
            StoryRequest(_text(p, "prompt"), _text(c, "completion"))
            for p, c in zip(prompts, completions, strict=True)
        ]
        grades = self._grade(requests) if requests else []
        rewards: list[float | None] = []
        infos: list[dict[str, Any]] = []
        for k, (request, scores) in enumerate(zip(requests, grades, strict=True)):
            words = len(request.story.split())
            if not scores.ok:
                self.failed += 1
                logger.warning(
                    "teacher %r failed to grade a story: %s", self.teacher.name, scores.error
                )
            value, info = self._reward(scores, words)
            info.update(
                prompt=request.prompt,
                story=request.story,
                words=words,
                tokens=len(completion_ids[k]) if completion_ids is not None else None,
                teacher_raw=scores.raw,
            )
            rewards.append(value)
            infos.append(info)
        self._log(infos, log_extra, log_metric)
        if self.on_graded is not None:
            self.on_graded(infos)
        return rewards

    def _grade(self, requests: list[StoryRequest]) -> list[Scores]:
        """One teacher call; whatever the teacher does becomes one valid grade per story.

        ``ask_teacher`` raises on a teacher exception unless failures are tolerated (a
        declared fallback, or ``skip_failed``); ``_reward`` then decides what a failed
        grade gets.
        """
        return ask_teacher(
            self.teacher,
            requests,
            dimensions=self.reward_config.dimensions,
            max_score=self.reward_config.max_score,
            teacher_fallback=0.0 if self.skip_failed else self.teacher_fallback,
            timeout_s=self.teacher_timeout_s,
        )

    def _reward(self, scores: Scores, words: int) -> tuple[float | None, dict[str, Any]]:
        if not scores.ok and self.skip_failed:
            return None, {
                "scores": {},
                "teacher_score": float("nan"),
                "reward": None,
                "teacher_error": scores.error,
                "teacher_fallback": None,
            }
        return reward_and_info(
            self.reward_config,
            scores,
            words,
            teacher=self.teacher.name,
            teacher_fallback=self.teacher_fallback,
        )

    def _log(
        self,
        infos: list[dict[str, Any]],
        log_extra: Callable[[str, list], None] | None,
        log_metric: Callable[[str, float], None] | None,
    ) -> None:
        if log_extra is not None:
            for dim in self.reward_config.dimensions:
                log_extra(f"{self.teacher.name}/{dim}", [i["scores"].get(dim) for i in infos])
        if log_metric is not None and infos:
            graded = [i["teacher_score"] for i in infos if not math.isnan(i["teacher_score"])]
            if graded:
                log_metric(f"{self.teacher.name}/teacher_score", sum(graded) / len(graded))
            failed = sum(i["teacher_error"] is not None for i in infos)
            log_metric(f"{self.teacher.name}/failed_fraction", failed / len(infos))

    def close(self) -> None:
        """Close the teacher (HTTP clients, caches, servers) if it can be closed."""
        close_teacher(self.teacher)


def teacher_reward_function(
    name: str,
    /,
    *,
    weights: Sequence[float] | Mapping[str, float] | None = None,
    length_bonus: float = 0.0,
    max_new_tokens: int = 90,
    teacher_fallback: float | None = None,
    skip_failed: bool = False,
    teacher_timeout_s: float | None = None,
    on_graded: GradedListener | None = None,
    **teacher_kwargs: Any,
) -> TeacherReward:
    """A registered teacher as a TRL reward function.

    Args:
        name: A registered teacher (``storytelling plugins`` lists them).
        weights: Per-dimension reward weights, as the env's ``weights``.
        length_bonus: The paper's length bonus ``b``, as the env's.
        max_new_tokens: The story length the length bonus is measured against (set it to
            the trainer's ``max_completion_length``).
        teacher_fallback: Declared reward of an ungradable story (flagged); ``None``
            raises ``TeacherError`` on a failed grade unless ``skip_failed``.
        skip_failed: Give a failed grade ``None`` (TRL leaves it out) instead of raising.
        teacher_timeout_s: Seconds one batch may take (``None``: no limit).
        on_graded: Receives the info dict of every graded completion.
        **teacher_kwargs: The teacher factory's keyword arguments (e.g. ``cache=``,
            ``on_failure=``, ``retries=``, ``fallback_score=``).

    Returns:
        A callable TRL accepts in ``reward_funcs``; its ``__name__`` is ``teacher_<name>``.
    """
    from story_env.registry import create_teacher

    teacher = create_teacher(name, **teacher_kwargs)
    reward_config = RewardConfig.build(
        teacher.dimensions, teacher.max_score, weights, length_bonus, max_new_tokens
    )
    return TeacherReward(
        teacher,
        reward_config=reward_config,
        teacher_fallback=teacher_fallback,
        skip_failed=skip_failed,
        teacher_timeout_s=teacher_timeout_s,
        on_graded=on_graded,
    )


def _text(item: Any, what: str) -> str:
    """The text of a plain-text or conversational prompt or completion."""
    if isinstance(item, str):
        return item
    if isinstance(item, Sequence) and item and isinstance(item[-1], Mapping):
        content = item[-1].get("content")
        if isinstance(content, str):
            return content
    raise ConfigError(
        f"a {what} must be a string or a list of chat messages whose last 'content' is a "
        f"string, got {str(item)[:80]!r}"
    )
