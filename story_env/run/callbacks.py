"""What a training run does while stable-baselines3 learns: the ``RunCallback``.

Every finished story is appended to the run's log (flushed at once, fsynced before a
checkpoint), counted toward the interactive word budget, and its reward reaches
TensorBoard; checkpoints are atomic; stories whose grade was deferred are graded at the
rollout's end in one teacher batch and their rewards written into the rollout buffer
before returns are computed; the KL reference closes the rollout's penalty. An
algorithm with ``whole_stories`` (``StoryPPO``) grades its rollouts and computes its
advantages itself: the callback only logs the stories it graded.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import numpy as np
from stable_baselines3.common.callbacks import BaseCallback

from story_env.agents.rl.reference import ReferenceVecEnv
from story_env.run.config import TrainConfig
from story_env.run_folder import append_story, flush_log, save_checkpoint

TEACHER_ANSWER_WORDS = 3  # the paper counts ~3 words of teacher output per story


class RunCallback(BaseCallback):
    """Logs finished stories, checkpoints atomically, enforces the word budget, grades
    each rollout's deferred stories in one teacher batch and ends the rollout's KL penalty.

    Args:
        config: The run's settings.
        out: The run folder (checkpoints are written there).
        log_file: The open story log (``run_folder.open_story_log``).
        state: The run's counters (steps, stories, interactive words, wall time), updated
            in place and saved with each checkpoint.
        progress: Show a self.progress bar.
        wall: Seconds of training so far, the resumed part included.
    """

    def __init__(
        self,
        config: TrainConfig,
        out: Path,
        log_file: IO[str],
        state: dict[str, Any],
        progress: bool,
        wall: Callable[[], float],
    ) -> None:
        super().__init__()
        self.config, self.out, self.log_file, self.state = config, out, log_file, state
        self.progress, self.wall = progress, wall
        self.bar: Any = None
        self.last_checkpoint = self.state["steps"]
        self.recent: list[float] = []
        # stories whose grade is deferred to the rollout's end: (buffer row, env, step)
        self.pending: list[tuple[int, int, int]] = []

    def _on_training_start(self) -> None:
        from tqdm.auto import tqdm

        rollout = rollout_tokens(self.model)
        # the bar's total is where the run ends: --steps rounded up to whole rollouts; with
        # whole stories a rollout's tokens are not known ahead (slots wait), so --steps
        story = self.whole_stories
        end = planned_end(self.num_timesteps, self.config.steps, rollout)
        self.bar = tqdm(
            total=max(self.config.steps, self.num_timesteps) if story else end,
            initial=self.num_timesteps,
            unit="tok",
            disable=not self.progress,
            desc=f"{self.config.algorithm} seed {self.config.seed} (--steps {self.config.steps:,} "
            f"in rollouts of {'up to ' if story else ''}{rollout:,})",
        )

    @property
    def whole_stories(self) -> bool:
        """The algorithm grades its own rollouts (``StoryPPO``): log what it graded."""
        return bool(getattr(self.model, "whole_stories", False))

    def _on_step(self) -> bool:
        infos, dones = self.locals["infos"], self.locals["dones"]
        for i in np.flatnonzero(dones):
            if "pending_grade" in infos[i]:
                if self.whole_stories:
                    continue  # graded by the algorithm at the rollout's end
                # SB3 stores this step's reward at rollout_buffer.pos after this call
                self.pending.append((self.model.rollout_buffer.pos, int(i), self.num_timesteps))
            elif "story" in infos[i]:
                log_story(self.log_file, self.state, int(i), infos[i], self.num_timesteps)
                self.recent.append(float(infos[i]["reward"]))
        flush_log(self.log_file, Path(self.log_file.name))
        if self.recent and len(self.recent) >= self.config.num_envs:
            self.logger.record("story/reward_mean", float(np.mean(self.recent)))
            self.recent.clear()
        self.bar.update(self.num_timesteps - self.bar.n)
        if self.num_timesteps - self.last_checkpoint >= self.config.checkpoint_every:
            self.save()
        if (
            self.config.word_budget is not None
            and self.state["interactive_words"] >= self.config.word_budget
        ):
            return False
        return True

    def grade_rollout(self, buffer: Any = None) -> bool:
        """Grade the deferred stories in one teacher batch, log them, and add each
        reward to its step's row of ``buffer`` (if given). True if any were graded."""
        if not self.pending:
            return False
        graded = self.training_env.grade_pending()
        for (row, i, step), info in zip(self.pending, graded, strict=True):
            if buffer is not None:
                buffer.rewards[row, i] += info["reward"]
            log_story(self.log_file, self.state, i, info, step)
            self.recent.append(float(info["reward"]))
        self.pending.clear()
        flush_log(self.log_file, Path(self.log_file.name))
        self.logger.record("story/reward_mean", float(np.mean(self.recent)))
        self.recent.clear()
        return True

    def _log_graded(self) -> None:
        """Log the stories the algorithm graded at its rollout's end (``whole_stories``)."""
        graded = self.locals.pop("graded", [])
        for i, step, info in graded:
            log_story(self.log_file, self.state, i, info, step)
            self.recent.append(float(info["reward"]))
        if graded:
            flush_log(self.log_file, Path(self.log_file.name))
            self.logger.record("story/reward_mean", float(np.mean(self.recent)))
            self.recent.clear()

    def _on_rollout_end(self) -> None:
        if self.whole_stories:
            self._log_graded()
            return
        env, buffer = self.training_env, self.model.rollout_buffer
        changed = self.grade_rollout(buffer)
        if isinstance(env, ReferenceVecEnv):
            changed |= env.end_rollout(
                buffer, self.config.kl_target, self.logger.record, self.locals["dones"]
            )
        if changed:
            buffer.compute_returns_and_advantage(
                last_values=self.locals["values"], dones=self.locals["dones"]
            )

    def save(self) -> None:
        self.state["steps"] = self.num_timesteps
        self.state["wall_s"] = self.wall()  # so a resumed run reports its whole training time
        self.last_checkpoint = self.num_timesteps
        # the stories the checkpoint counts reach the disk before the checkpoint does
        flush_log(self.log_file, Path(self.log_file.name), durable=True)
        save_checkpoint(self.model, self.out, self.state)

    def _on_training_end(self) -> None:
        # a run stopped mid-rollout still logs its last stories
        self._log_graded() if self.whole_stories else self.grade_rollout()
        self.save()
        if self.bar.n > self.bar.total:  # a whole-story rollout ran past --steps
            self.bar.total = self.bar.n
            self.bar.refresh()
        self.bar.close()


def log_story(log_file: Any, state: dict[str, Any], env: int, info: dict, step: int) -> None:
    """Append one finished story to the run's log and count its interactive words.

    ``log_file`` is ``None`` in a worker process of a multi-process run: it counts the
    story (every process keeps the same counters) and rank 0 writes it.
    """
    state["stories"] += 1
    state["interactive_words"] += len(info["prompt"].split()) + TEACHER_ANSWER_WORDS
    record = {
        "story_index": state["stories"],
        "step": step,
        "env": env,
        "prompt": info["prompt"],
        "story": info["story"],
        "scores": info["scores"],
        # a failed grade has no teacher score: null in the log (teacher_error says why)
        "teacher_score": _grade_or_none(info["teacher_score"]),
        "reward": info["reward"],
        "teacher_raw": info["teacher_raw"],
        "teacher_error": info["teacher_error"],
        "teacher_fallback": info.get("teacher_fallback"),
        "words": info["words"],
        "tokens": info["tokens"],  # the steps it took, its end-of-story token included
        "interactive_words": state["interactive_words"],
    }
    if log_file is not None:
        append_story(log_file, record, Path(log_file.name))


def _grade_or_none(value: Any) -> float | None:
    """A teacher score, or ``None`` for the NaN an ungraded story carries in its info."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return float(value)


def rollout_tokens(model: Any) -> int:
    """Env steps one rollout of ``model`` collects (``n_steps`` x envs; 1 if it has none)."""
    return int(getattr(model, "n_steps", 1) or 1) * int(getattr(model, "n_envs", 1) or 1)


def planned_end(start: int, steps: int, rollout: int) -> int:
    """Where a run at ``start`` that trains to ``steps`` stops: whole rollouts past ``start``.

    SB3 collects whole rollouts, so a run ends at the first rollout boundary at or past
    ``steps``: less than one rollout past it.
    """
    if start >= steps:
        return start
    return start + math.ceil((steps - start) / rollout) * rollout


def has_tensorboard() -> bool:
    try:
        import tensorboard  # noqa: F401
    except ImportError:
        return False
    return True
