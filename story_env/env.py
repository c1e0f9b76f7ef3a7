"""``StorytellingEnv``: a student writes a story one token per step; a teacher grades it."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from story_env.core import EnvConfig, StoryBatch
from story_env.errors import RenderModeError
from story_env.teacher import close_teacher


class StorytellingEnv(gym.Env[np.ndarray, np.int64]):
    """Write a story token by token; the teacher's grade of the finished story is the reward.

    ## Description
    The episode starts from a prompt (by default the paper's "Let me tell you a long,
    magical tale. Once upon a time, in a faraway land,"). Each step the agent appends
    one token of the student's vocabulary. When the story ends, a teacher (a plugin:
    heuristic, random, an LLM judge, ...) grades it on readability, narrative coherence
    and creativity, and that grade is the reward.

    ## Action Space
    ``Discrete(vocab_size)``: a token id of the chosen student's tokenizer. The
    tokenizer's end-of-sequence id ends the story.

    ## Observation Space
    ``Box(0, vocab_size, (context_len,), int64)``: the prompt's token ids followed by the
    story's, left-aligned and padded with ``vocab_size`` (never an action, so the length
    is ``(obs != vocab_size).sum()``). ``context_len`` = longest prompt + ``max_new_tokens``.

    ## Rewards
    0 on every step but the last. On the last step: the weighted teacher score in
    [0, 1], or with the paper's length bonus ``b``:
    ``(teacher + b * min(1, words / max_new_tokens)) / (1 + b)``.

    ## Starting State
    A prompt drawn from the prompt pool with ``self.np_random``.

    ## Episode End
    Terminated when the agent emits the end-of-sequence token; truncated after
    ``max_new_tokens`` story tokens. The final step's ``info`` holds ``prompt``,
    ``story``, ``scores`` (per dimension), ``teacher_score``, ``reward``,
    ``teacher_raw``, ``teacher_error``, ``words`` and ``tokens``.

    ## Arguments
    See ``story_env.core.EnvConfig``: ``teacher``, ``student``, ``max_new_tokens``,
    ``prompts`` / ``prompt_file``, ``weights``, ``length_bonus``, ``teacher_kwargs``,
    ``student_kwargs``, ``teacher_fallback``, ``teacher_timeout_s``; plus
    ``render_mode="ansi"``. The longest prompt plus ``max_new_tokens`` must fit the
    student's context window (and the env's cap, ``core.MAX_CONTEXT_TOKENS``).

    ## Version History
    * v0: initial version. Later additions that keep v0's spaces and rewards: grades are
      validated (a non-finite or out-of-range grade is a failed grade, never clipped),
      ``teacher_timeout_s``, the context-window check.
    """

    metadata = {"render_modes": ["ansi"], "render_fps": 30}

    def __init__(
        self,
        teacher: str = "heuristic",
        student: str = "random",
        max_new_tokens: int = 90,
        prompts: Sequence[str] | None = None,
        prompt_file: str | None = None,
        weights: Sequence[float] | Mapping[str, float] | None = None,
        length_bonus: float = 0.0,
        teacher_kwargs: Mapping[str, Any] | None = None,
        student_kwargs: Mapping[str, Any] | None = None,
        teacher_fallback: float | None = None,
        teacher_timeout_s: float | None = None,
        render_mode: str | None = None,
    ) -> None:
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise RenderModeError(
                f"render_mode {render_mode!r} is not supported; use 'ansi' or None"
            )
        self.config = EnvConfig(
            teacher,
            student,
            max_new_tokens,
            prompts,
            prompt_file,
            weights,
            length_bonus,
            dict(teacher_kwargs or {}),
            dict(student_kwargs or {}),
            teacher_fallback,
            teacher_timeout_s,
        )
        self.student, self._batch = StoryBatch.build(1, self.config)
        self.teacher, self.reward_config = self._batch.teacher, self._batch.reward
        self.tokenizer = self.student.tokenizer
        self.render_mode = render_mode
        self.action_space = spaces.Discrete(self._batch.vocab_size)
        self.observation_space = spaces.Box(
            0, self._batch.vocab_size, shape=(self._batch.context_len,), dtype=np.int64
        )

    @property
    def pad_id(self) -> int:
        """The padding id of observations (= ``vocab_size``)."""
        return self._batch.pad

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        self._batch.reset_slot(0, self.np_random)
        return self._batch.tokens[0].copy(), {
            "prompt": self._batch.prompts[self._batch.prompt_index[0]]
        }

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        actions = self._batch.validate(action)
        rewards, terminated, truncated, infos = self._batch.step(actions)
        return (
            self._batch.tokens[0].copy(),
            float(rewards[0]),
            bool(terminated[0]),
            bool(truncated[0]),
            infos.get(0, {}),
        )

    def render(self) -> str | None:
        if self.render_mode == "ansi":
            return self._batch.render(0)
        return None

    def close(self) -> None:
        """Release the teacher's resources (HTTP clients, caches, servers); idempotent."""
        close_teacher(self.teacher)
        super().close()
