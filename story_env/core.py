"""The story batch: the state and rules shared by the single and the vector env.

``StoryBatch`` holds N stories being written at once (N = 1 for ``StorytellingEnv``).
Each step appends one token per story; every story that ends in that step is decoded
and sent to the teacher in a single batch.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from story_env.errors import (
    ActionError,
    ConfigError,
    DependencyMissingError,
    EpisodeError,
    StorytellingError,
    TeacherError,
)
from story_env.prompts import load_prompts
from story_env.registry import create_teacher, resolve_student
from story_env.rewards import RewardConfig, check_length_bonus, finite_number
from story_env.student import StoryTokenizer, Student
from story_env.teacher import Scores, StoryRequest, Teacher, check_scores

# The most tokens (prompt + story) one story slot may hold, whatever the student: the env
# keeps (num_envs, prompt + max_new_tokens) token ids and SB3's rollout buffer keeps one
# such row per step, so an unbounded max_new_tokens would exhaust memory (10**9 tokens with
# the ngram student asked for 24 GB before being killed). Students with a smaller context
# window (``student.context_length``) are held to theirs.
MAX_CONTEXT_TOKENS = 32_768


@dataclass(frozen=True)
class EnvConfig:
    """The env's keyword arguments, validated. All values are plain (JSON-able).

    Attributes:
        teacher: Registered teacher name (``storytelling plugins`` lists them).
        student: Registered student name; its tokenizer is the action space.
        max_new_tokens: Story length limit in tokens; the episode is truncated there.
        prompts: Prompt pool given inline; default the paper's single fixed prompt.
        prompt_file: A file with one prompt per line, instead of ``prompts``.
        weights: Per-dimension reward weights (a list in the teacher's order, or a dict).
        length_bonus: The paper's ``b`` (0.4 in the paper; 0 = off).
        teacher_kwargs: Keyword arguments for the teacher's factory.
        student_kwargs: Keyword arguments for the student's factory.
        teacher_fallback: Reward for a story the teacher failed to grade; ``None`` raises.
        teacher_timeout_s: Seconds one ``teacher.score`` batch may take; past it the
            batch's stories count as failed grades (``None``: wait for ever).
    """

    # each field's "help" is its command-line help (story_env.run.config.add_config_flags)
    teacher: str = field(default="heuristic", metadata={"help": "teacher name"})
    student: str = field(default="random", metadata={"help": "student name or model folder"})
    max_new_tokens: int = field(default=90, metadata={"help": "story length limit in tokens"})
    prompts: Sequence[str] | None = field(default=None, metadata={"cli": False})
    prompt_file: str | None = field(
        default=None, metadata={"help": "a file of prompts, one per line (default: the paper's)"}
    )
    weights: Sequence[float] | Mapping[str, float] | None = field(
        default=None, metadata={"cli": False}
    )
    length_bonus: float = field(default=0.0, metadata={"help": "the paper's length bonus b"})
    teacher_kwargs: Mapping[str, Any] = field(
        default_factory=dict, metadata={"help": "JSON object for the teacher"}
    )
    student_kwargs: Mapping[str, Any] = field(
        default_factory=dict, metadata={"help": "JSON object for the student"}
    )
    teacher_fallback: float | None = field(
        default=None,
        metadata={
            "help": "reward in [0, 1] for a story the teacher fails to grade, flagged in the "
            "log (default: a failed grade stops the run)"
        },
    )
    teacher_timeout_s: float | None = field(
        default=None,
        metadata={
            "flag": "--teacher-timeout",
            "help": "seconds a teacher batch may take before its stories count as failed grades",
        },
    )

    def __post_init__(self) -> None:
        for name in ("teacher", "student"):
            value = getattr(self, name)
            if not isinstance(value, str) or not value:
                raise ConfigError(
                    f"{name} must be a registered name (see `storytelling plugins`), got {value!r}"
                )
        if isinstance(self.max_new_tokens, bool) or not isinstance(self.max_new_tokens, int):
            raise ConfigError(f"max_new_tokens must be an int, got {self.max_new_tokens!r}")
        if self.max_new_tokens < 1:
            raise ConfigError(
                f"max_new_tokens must be >= 1, got {self.max_new_tokens}; the paper uses 90"
            )
        if self.max_new_tokens > MAX_CONTEXT_TOKENS:
            raise ConfigError(
                f"max_new_tokens {self.max_new_tokens} is above the limit of "
                f"{MAX_CONTEXT_TOKENS} tokens a story slot may hold; lower it (the paper uses 90)"
            )
        check_length_bonus(self.length_bonus)
        for name in ("teacher_kwargs", "student_kwargs"):
            if not isinstance(getattr(self, name), Mapping):
                raise ConfigError(
                    f"{name} must be a dict of keyword arguments, got {getattr(self, name)!r}"
                )
        if self.teacher_fallback is not None:
            value = finite_number(
                "teacher_fallback", self.teacher_fallback, "give a reward in [0, 1] or None"
            )
            if not 0.0 <= value <= 1.0:
                raise ConfigError(
                    f"teacher_fallback must be in [0, 1] or None, got {self.teacher_fallback}"
                )
        if self.teacher_timeout_s is not None:
            value = finite_number(
                "teacher_timeout_s", self.teacher_timeout_s, "give seconds > 0 or None"
            )
            if value <= 0:
                raise ConfigError(
                    f"teacher_timeout_s must be > 0 seconds or None, got {self.teacher_timeout_s}"
                )


def build_components(
    config: EnvConfig,
) -> tuple[Teacher, Student, RewardConfig, tuple[str, ...]]:
    """Create the teacher and student named by ``config`` through the plugin registry."""
    teacher = create_teacher(config.teacher, **dict(config.teacher_kwargs))
    student = resolve_student(config.student, config.student_kwargs)
    reward = RewardConfig.build(
        teacher.dimensions,
        teacher.max_score,
        config.weights,
        config.length_bonus,
        config.max_new_tokens,
    )
    return teacher, student, reward, load_prompts(config.prompts, config.prompt_file)


_FALLBACK_HINT = (
    "Pass teacher_fallback=<reward in [0, 1]> to continue with a flagged fallback reward."
)


class _TeacherTimeout(TeacherError):
    """A teacher batch ran past ``teacher_timeout_s`` (handled like any teacher failure)."""


def _short(value: Any, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def check_context(
    prompt_lengths: Sequence[int],
    max_new_tokens: int,
    student_context: int | None,
    student: str,
) -> None:
    """Refuse prompts plus ``max_new_tokens`` that do not fit the student (or the cap).

    Args:
        prompt_lengths: Token count of each prompt of the pool.
        max_new_tokens: The story length limit.
        student_context: The student's context window in tokens, if it has one.
        student: The student's name, for the message.

    Raises:
        ConfigError: Naming the longest prompt's length, ``max_new_tokens`` and the limit.
    """
    longest = max(prompt_lengths)
    which = int(np.argmax(prompt_lengths))
    limit, holder = MAX_CONTEXT_TOKENS, "a story slot (the env's cap)"
    if student_context is not None and student_context < limit:
        limit, holder = int(student_context), f"student {student!r}'s context window"
    if longest + max_new_tokens <= limit:
        return
    prompt = f"prompt {which}" if len(prompt_lengths) > 1 else "the prompt"
    if longest >= limit:
        fix = f"shorten {prompt} to well under {limit} tokens"
    else:
        fix = f"lower max_new_tokens to at most {limit - longest} or shorten {prompt}"
    raise ConfigError(
        f"{prompt} ({longest} tokens) plus max_new_tokens {max_new_tokens} is "
        f"{longest + max_new_tokens} tokens, more than the {limit} tokens of {holder}; {fix}"
    )


def reward_and_info(
    reward_config: RewardConfig,
    scores: Scores,
    words: int,
    *,
    teacher: str,
    teacher_fallback: float | None,
) -> tuple[float, dict[str, Any]]:
    """The reward of one graded story and the info fields that describe its grade.

    Shared by the envs and the TRL reward function (``story_env.trl``). A failed grade is
    never silently a number: it raises ``TeacherError`` unless ``teacher_fallback``
    declares a reward, which the info flags.

    Args:
        reward_config: How per-dimension scores become the reward.
        scores: The teacher's grade of the story.
        words: The story's length in words (for the length bonus).
        teacher: The teacher's name, for the error message.
        teacher_fallback: The declared reward of an ungradable story; ``None`` raises.

    Returns:
        The reward and the info fields ``scores``, ``teacher_score``, ``reward``,
        ``teacher_error`` and ``teacher_fallback``.
    """
    if scores.ok:
        value = reward_config.reward(scores, words)
        return value, {
            "scores": dict(scores.values),
            "teacher_score": reward_config.teacher_score(scores),
            "reward": value,
            "teacher_error": None,
            # a teacher-side declared fallback grade (teachers/policy.py) is flagged here
            "teacher_fallback": getattr(scores, "fallback_error", None) or None,
        }
    if teacher_fallback is None:
        raise TeacherError(
            f"teacher {teacher!r} failed to grade a story: {scores.error}. {_FALLBACK_HINT}"
        )
    value = float(teacher_fallback)
    return value, {
        "scores": {},
        "teacher_score": float("nan"),
        "reward": value,
        "teacher_error": scores.error,
        "teacher_fallback": scores.error,
    }


def ask_teacher(
    teacher: Teacher,
    requests: list[StoryRequest],
    *,
    dimensions: Sequence[str],
    max_score: float,
    teacher_fallback: float | None,
    timeout_s: float | None = None,
) -> list[Scores]:
    """Grade ``requests``; whatever the teacher does becomes one valid ``Scores`` per story.

    A teacher that raises, runs past ``timeout_s``, returns something other than a list
    of ``Scores`` of the right length, or a grade that is not finite and in
    ``0..max_score`` on exactly ``dimensions``, gives failed grades whose ``error`` names
    the teacher and what it returned; ``reward_and_info`` then applies the failure
    policy. Without a ``teacher_fallback``, an exception raises at once (chained), as a
    ``TeacherError`` unless it already is one of the project's errors. Setup errors
    (``ConfigError``, ``DependencyMissingError``) always raise.

    Args:
        teacher: The teacher.
        requests: The stories to grade.
        dimensions: The dimensions every grade must have.
        max_score: The top of the teacher's scale.
        teacher_fallback: The declared fallback reward (``None``: failures raise).
        timeout_s: Seconds the batch may take (``None``: no limit).
    """
    name = getattr(teacher, "name", type(teacher).__name__)
    try:
        returned = _call_teacher(teacher, requests, timeout_s)
    except (ConfigError, DependencyMissingError):
        raise
    except Exception as exc:
        if isinstance(exc, _TeacherTimeout):
            error = str(exc)
        else:
            error = f"raised: teacher {name!r} raised {type(exc).__name__}: {exc}"
        if teacher_fallback is None:
            if isinstance(exc, StorytellingError) and not isinstance(exc, _TeacherTimeout):
                raise
            raise TeacherError(f"{error}. {_FALLBACK_HINT}") from exc
        return [Scores.failed(error) for _ in requests]
    if not isinstance(returned, list | tuple):
        error = (
            f"invalid: teacher {name!r} returned {_short(returned)} for {len(requests)} "
            "stories; score() must return a list with one Scores per story"
        )
        return [Scores.failed(error) for _ in requests]
    if len(returned) != len(requests):
        error = (
            f"count: teacher {name!r} returned {len(returned)} grades for "
            f"{len(requests)} stories; score() must return one Scores per story, in order"
        )
        return [Scores.failed(error) for _ in requests]
    out = []
    for grade in returned:
        problem = check_scores(grade, dimensions, max_score)
        if problem is None:
            out.append(grade)
            continue
        kind, _, reason = problem.partition(": ")
        raw = grade.raw if isinstance(grade, Scores) and isinstance(grade.raw, str) else ""
        out.append(
            Scores.failed(f"{kind}: teacher {name!r} returned an unusable grade: {reason}", raw)
        )
    return out


def _call_teacher(teacher: Teacher, requests: list[StoryRequest], timeout: float | None) -> Any:
    if timeout is None:
        return teacher.score(requests)
    box: dict[str, Any] = {}

    def work() -> None:
        try:
            box["result"] = teacher.score(requests)
        except BaseException as exc:  # handed to the caller's thread
            box["error"] = exc

    # A daemon thread: a teacher that never returns cannot be stopped from Python, so its
    # call is abandoned (its late answer is discarded) and cannot block the process's exit.
    worker = threading.Thread(target=work, name="storytelling-teacher", daemon=True)
    worker.start()
    worker.join(timeout)
    if worker.is_alive():
        name = getattr(teacher, "name", type(teacher).__name__)
        raise _TeacherTimeout(
            f"timeout: teacher {name!r} gave no answer within teacher_timeout_s={timeout:g} s "
            f"for a batch of {len(requests)} stories; raise teacher_timeout_s or fix the teacher"
        )
    if "error" in box:
        raise box["error"]
    return box["result"]


class StoryBatch:
    """N stories in progress: token buffers, lengths, and the end-of-story rules."""

    @classmethod
    def build(cls, n: int, config: EnvConfig) -> tuple[Any, StoryBatch]:
        """The student and an ``n``-story batch with the config's teacher, reward and
        prompts (the single and the vector env both start here)."""
        teacher, student, reward, pool = build_components(config)
        batch = cls(
            n,
            config,
            teacher,
            student.tokenizer,
            reward,
            pool,
            student_context=getattr(student, "context_length", None),
            student_name=getattr(student, "name", config.student),
        )
        return student, batch

    def __init__(
        self,
        n: int,
        config: EnvConfig,
        teacher: Teacher,
        tokenizer: StoryTokenizer,
        reward: RewardConfig,
        prompts: tuple[str, ...],
        student_context: int | None = None,
        student_name: str = "",
    ) -> None:
        self.n, self.config, self.teacher, self.tokenizer, self.reward = (
            n,
            config,
            teacher,
            tokenizer,
            reward,
        )
        self.prompts = prompts
        self.vocab_size = int(tokenizer.vocab_size)
        self.eos = int(tokenizer.eos_token_id)
        self.pad = self.vocab_size  # outside the action range, so padding is unambiguous
        self.prompt_ids = [np.asarray(tokenizer.encode(p), dtype=np.int64) for p in prompts]
        self.context_len = max(len(p) for p in self.prompt_ids) + config.max_new_tokens
        check_context(
            [len(p) for p in self.prompt_ids],
            config.max_new_tokens,
            student_context,
            student_name or config.student,
        )
        self.tokens = np.full((n, self.context_len), self.pad, dtype=np.int64)
        self.lengths = np.zeros(n, dtype=np.int64)
        self.prompt_lengths = np.zeros(n, dtype=np.int64)
        self.prompt_index = np.zeros(n, dtype=np.int64)
        self.active = np.zeros(n, dtype=bool)
        self._rows = np.arange(n)
        self.deferred = False
        self._pending: list[tuple[StoryRequest, int]] = []

    def reset_slot(self, i: int, rng: np.random.Generator) -> None:
        """Start a new story in slot ``i`` with a prompt drawn by ``rng``."""
        k = int(rng.integers(len(self.prompts))) if len(self.prompts) > 1 else 0
        ids = self.prompt_ids[k]
        self.tokens[i].fill(self.pad)
        self.tokens[i, : len(ids)] = ids
        self.lengths[i] = self.prompt_lengths[i] = len(ids)
        self.prompt_index[i] = k
        self.active[i] = True

    def validate(self, actions: Any) -> np.ndarray:
        """Return ``actions`` as an int array of shape (n,), or raise a clear error."""
        arr = np.asarray(actions)
        if arr.shape not in ((self.n,), ()) or (arr.shape == () and self.n != 1):
            raise ActionError(f"expected {self.n} token id(s), got an array of shape {arr.shape}")
        if not np.issubdtype(arr.dtype, np.integer):
            raise ActionError(
                f"actions must be integer token ids, got dtype {arr.dtype} ({actions!r})"
            )
        arr = arr.reshape(self.n).astype(np.int64, copy=False)
        bad = (arr < 0) | (arr >= self.vocab_size)
        if bad.any():
            raise ActionError(
                f"action {int(arr[bad][0])} is outside the student's vocabulary "
                f"[0, {self.vocab_size - 1}]; actions are token ids of the student's tokenizer"
            )
        if not self.active.all():
            raise EpisodeError(
                "step() called after the episode ended (terminated or truncated); call reset() first"
            )
        return arr

    def step(
        self, actions: np.ndarray, moving: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict[int, dict[str, Any]]]:
        """Append one token per story; grade the stories that end now.

        Args:
            actions: (n,) token ids.
            moving: (n,) booleans: the slots that take their token (None: all); the
                others keep their story as it is.

        Returns:
            rewards (n,), terminated (n,), truncated (n,), and the final info of each slot
            that ended, keyed by slot.
        """
        if moving is None:  # the hot path: every slot writes
            self.tokens[self._rows, self.lengths] = actions
            self.lengths += 1
            terminated = actions == self.eos
        else:
            rows = np.flatnonzero(moving)
            self.tokens[rows, self.lengths[rows]] = actions[rows]
            self.lengths[rows] += 1
            terminated = moving & (actions == self.eos)
        truncated = ~terminated & (self.lengths - self.prompt_lengths >= self.config.max_new_tokens)
        if moving is not None:
            truncated &= moving
        rewards = np.zeros(self.n, dtype=np.float64)
        ended = np.flatnonzero(terminated | truncated)
        infos: dict[int, dict[str, Any]] = {}
        if len(ended):
            self.active[ended] = False
            infos = self._grade(ended, rewards)
        return rewards, terminated, truncated, infos

    def story_ids(self, i: int) -> np.ndarray:
        """The generated token ids of slot ``i`` (without the end-of-story token)."""
        ids = self.tokens[i, self.prompt_lengths[i] : self.lengths[i]]
        return ids[:-1] if len(ids) and ids[-1] == self.eos else ids

    def _grade(self, slots: np.ndarray, rewards: np.ndarray) -> dict[int, dict[str, Any]]:
        requests = [
            StoryRequest(
                self.prompts[self.prompt_index[i]],
                self.tokenizer.decode(self.story_ids(i).tolist()),
            )
            for i in slots
        ]
        if self.deferred:  # graded later, with every other story of the rollout
            infos = {}
            for i, request in zip(slots, requests, strict=True):
                tokens = int(self.lengths[i] - self.prompt_lengths[i])
                infos[int(i)] = {"pending_grade": len(self._pending)}
                self._pending.append((request, tokens))
            return infos
        grades = self._ask_teacher(requests)
        infos = {}
        for i, request, scores in zip(slots, requests, grades, strict=True):
            words = len(request.story.split())
            rewards[i], info = self._reward(scores, words)
            info.update(
                prompt=request.prompt,
                story=request.story,
                words=words,
                tokens=int(self.lengths[i] - self.prompt_lengths[i]),
                teacher_raw=scores.raw,
            )
            infos[int(i)] = info
        return infos

    def grade_pending(self) -> list[dict[str, Any]]:
        """Grade every story deferred since the last call in one teacher batch.

        Returns:
            One final info per deferred story, in the order they ended (the index is the
            ``pending_grade`` their step's info carried), with the same fields as an
            immediate grade: the reward is ``info["reward"]``.
        """
        pending, self._pending = self._pending, []
        if not pending:
            return []
        grades = self._ask_teacher([request for request, _ in pending])
        infos = []
        for (request, tokens), scores in zip(pending, grades, strict=True):
            words = len(request.story.split())
            _, info = self._reward(scores, words)
            info.update(
                prompt=request.prompt,
                story=request.story,
                words=words,
                tokens=tokens,
                teacher_raw=scores.raw,
            )
            infos.append(info)
        return infos

    def _ask_teacher(self, requests: list[StoryRequest]) -> list[Scores]:
        return ask_teacher(
            self.teacher,
            requests,
            dimensions=self.reward.dimensions,
            max_score=self.reward.max_score,
            teacher_fallback=self.config.teacher_fallback,
            timeout_s=self.config.teacher_timeout_s,
        )

    def _reward(self, scores: Scores, words: int) -> tuple[float, dict[str, Any]]:
        return reward_and_info(
            self.reward,
            scores,
            words,
            teacher=self.teacher.name,
            teacher_fallback=self.config.teacher_fallback,
        )

    def render(self, i: int) -> str:
        """Prompt and story so far, as text."""
        k = self.prompt_index[i]
        return f"{self.prompts[k]}{self.tokenizer.decode(self.story_ids(i).tolist())}"
