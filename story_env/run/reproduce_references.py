"""The ladder's two reference rows (``story_env.run.reproduce``, stage 2): real
validation stories and the same stories word-shuffled, graded as the students' are."""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any

from story_env.agents.corpus.load import read_stories
from story_env.errors import ConfigError
from story_env.prompts import PAPER_PROMPT
from story_env.run.judging import JudgeSpec, judge_stories, judge_totals
from story_env.teacher import StoryRequest
from story_env.teachers.contrasts import truncate_words, word_shuffle

#: Seed of the word shuffle of the reference stories.
SHUFFLE_SEED = 0


def reference_stories(val_file: str | None, count: int) -> dict[str, list[str]]:
    """Up to ``count`` real validation stories (``val_file``, default the packaged split)
    from the second half of the split (the half the ``lm`` teacher's calibration never
    read), cut to about 80 words as the teacher's calibration cuts them, and the same
    stories with each sentence's words shuffled (seed ``SHUFFLE_SEED``).

    Raises:
        ConfigError: The validation split has fewer than two stories.
    """
    val = read_stories(val_file, "validation")
    if len(val) < 2:
        raise ConfigError(
            f"the validation stories ({val_file or 'the packaged split'}) hold "
            f"{len(val)}; the ladder's reference rows need at least 2"
        )
    real = [truncate_words(story) for story in val[len(val) // 2 :][:count]]
    rng = random.Random(SHUFFLE_SEED)
    return {"real": real, "shuffled": [word_shuffle(story, rng) for story in real]}


def references(
    val_file: str | None, count: int, teacher: JudgeSpec, judges: Sequence[JudgeSpec]
) -> dict[str, Any]:
    """The reference stories after the paper's prompt, graded by ``teacher`` (total:
    mean and 95% CI) and the held-out ``judges``, as the students' stories are."""
    out: dict[str, Any] = {"seed": SHUFFLE_SEED}
    for name, texts in reference_stories(val_file, count).items():
        requests = [StoryRequest(PAPER_PROMPT, " " + text) for text in texts]
        out[name] = {
            "stories": len(texts),
            "teacher": judge_stories([teacher], requests)[teacher.label].get("total"),
            "judges": judge_totals(judge_stories(judges, requests)),
        }
    return out


__all__ = ["SHUFFLE_SEED", "reference_stories", "references"]
