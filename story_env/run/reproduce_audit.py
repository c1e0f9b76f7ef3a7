"""The reproduction's audit: an evaluation written again at the same seeds and measured
by what the graders of the run could not see (``story_env.run.reproduce``, stage 6)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from story_env.run.evaluation import evaluate
from story_env.run.judging import judge_totals

#: The audit's judge of another kind: rule-based (word frequencies, sentence and story
#: structure) with a length gate (full marks need 30 words), never the reward here.
AUDIT_JUDGE = "heuristic"


def audit(
    eval_kwargs: dict[str, Any], checkpoint: Path | None, recorded: list[str] | None
) -> dict[str, Any]:
    """One evaluation (``evaluate``'s keyword arguments, of ``checkpoint`` or of the
    student before RL) written again at the same seeds: the stories, words per story
    (each story's count, and their mean and 95% CI), the total of ``AUDIT_JUDGE`` and of
    every held-out judge under the grading code of now (``versions`` names it), the
    stories' diversity beside real stories of the same lengths (``diversity``). The
    stories are the graded ones when generation is deterministic: given the ``recorded``
    samples, ``same_stories`` says whether the first ones match."""
    from story_env.teachers.lm import CALIBRATION_VERSION as LM_CALIBRATION
    from story_env.teachers.rubric import RUBRIC_VERSION

    kwargs = {**eval_kwargs, "teacher": AUDIT_JUDGE, "teacher_kwargs": {}}
    result = evaluate(checkpoint=checkpoint, **kwargs)
    entry = {
        "words": list(result["words"]),
        "story_words": result["story_words"],
        AUDIT_JUDGE: list(result["teacher_score"]),
        "judges": judge_totals(result["judges"]),
        "versions": {"lm": LM_CALIBRATION, "rubric": RUBRIC_VERSION},
        "stories": result["texts"],
        "diversity": result["diversity"],
    }
    if recorded is not None:
        entry["same_stories"] = result["samples"] == recorded
    return entry
