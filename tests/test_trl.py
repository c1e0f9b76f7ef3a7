"""Teachers as TRL reward functions, and the ``grpo`` algorithm plugin's errors.

The reward function is called exactly as TRL 1.16's ``GRPOTrainer`` calls reward
functions (``_calculate_rewards``), on a real trainer when TRL is installed. Training
runs are in ``test_trl_training.py`` (slow).
"""

from __future__ import annotations

import math
import sys
from collections.abc import Sequence

import pytest

from story_env.errors import ConfigError, DependencyMissingError, TeacherError
from story_env.registry import get_algorithm
from story_env.rewards import RewardConfig
from story_env.run.config import TrainConfig
from story_env.run.training import train
from story_env.teacher import Scores, StoryRequest
from story_env.teachers.heuristic import HeuristicTeacher
from story_env.trl import TeacherReward, teacher_reward_function

PROMPT = "Let me tell you a long, magical tale. Once upon a time, in a faraway land,"
STORIES = [
    " a little fox found a red ball. She played with it all day. Then she went home.",
    " the the the the",
    " Max had a boat. The boat was blue. One day the boat sailed away and Max cried.",
    "",
]


class CountingHeuristic(HeuristicTeacher):
    """The real heuristic teacher, counting its ``score`` calls."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[int] = []

    def score(self, requests: Sequence[StoryRequest]) -> list[Scores]:
        self.calls.append(len(requests))
        return super().score(requests)


class FailsOnMarker(HeuristicTeacher):
    """Failure injection: a story containing ``FAIL`` gets a failed grade."""

    def score(self, requests: Sequence[StoryRequest]) -> list[Scores]:
        grades = super().score(requests)
        return [
            Scores.failed("format: injected failure") if "FAIL" in r.story else g
            for r, g in zip(requests, grades, strict=True)
        ]


class Raises(HeuristicTeacher):
    """Failure injection: the backend is down."""

    def score(self, requests: Sequence[StoryRequest]) -> list[Scores]:
        raise ConnectionError("backend down")


def _adapter(teacher, **kwargs) -> TeacherReward:
    config = RewardConfig.build(teacher.dimensions, teacher.max_score, None, 0.0, 90)
    return TeacherReward(teacher, reward_config=config, **kwargs)


def _trl_kwargs(n: int) -> tuple[dict, dict]:
    """The keyword arguments GRPOTrainer adds, and what they collected."""
    from transformers import TrainerState

    logged: dict = {"extra": {}, "metrics": {}}
    kwargs = {
        "topic": ["sea"] * n,  # a dataset column: TRL passes every column through
        "trainer_state": TrainerState(),
        "log_extra": lambda column, values: logged["extra"].setdefault(column, []).extend(values),
        "log_metric": lambda name, value: logged["metrics"].setdefault(name, []).append(value),
    }
    return kwargs, logged


def test_reward_function_grades_the_batch_in_one_call_with_the_envs_reward():
    teacher = CountingHeuristic()
    graded: list[dict] = []
    reward = _adapter(teacher, on_graded=graded.extend)
    kwargs, logged = _trl_kwargs(len(STORIES))
    ids = [[5] * (k + 1) for k in range(len(STORIES))]
    # GRPOTrainer: reward_func(prompts=..., completions=..., completion_ids=..., **reward_kwargs)
    rewards = reward(
        prompts=[PROMPT] * len(STORIES), completions=STORIES, completion_ids=ids, **kwargs
    )
    assert teacher.calls == [len(STORIES)]  # one batched teacher call
    expected = [
        reward.reward_config.reward(s, len(story.split()))
        for s, story in zip(
            HeuristicTeacher().score([StoryRequest(PROMPT, s) for s in STORIES]),
            STORIES,
            strict=True,
        )
    ]
    assert rewards == pytest.approx(expected) and all(isinstance(r, float) for r in rewards)
    assert [g["story"] for g in graded] == STORIES and [g["tokens"] for g in graded] == [1, 2, 3, 4]
    assert set(graded[0]) >= {
        "prompt", "story", "scores", "teacher_score", "reward", "teacher_raw",
        "teacher_error", "teacher_fallback", "words",
    }  # fmt: skip
    assert logged["extra"]["heuristic/coherence"] == [g["scores"]["coherence"] for g in graded]
    assert logged["metrics"]["heuristic/failed_fraction"] == [0.0]
    assert reward.__name__ == "teacher_heuristic"


def test_a_grpo_trainer_calls_the_reward_function(tmp_path):
    """TRL's own reward computation, on a real (randomly initialised) trainer."""
    pytest.importorskip("trl")
    from datasets import Dataset
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast
    from trl import GRPOConfig, GRPOTrainer

    words = sorted({w for s in [PROMPT, *STORIES] for w in s.split()})
    vocab = {"<eos>": 0, "<unk>": 1, **{w: i + 2 for i, w in enumerate(words)}}
    backend = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend, eos_token="<eos>", pad_token="<eos>", unk_token="<unk>"
    )
    model = GPT2LMHeadModel(GPT2Config(vocab_size=len(vocab), n_embd=16, n_layer=1, n_head=2))
    teacher = CountingHeuristic()
    reward = _adapter(teacher, skip_failed=True)
    args = GRPOConfig(
        output_dir=str(tmp_path),
        use_cpu=True,
        bf16=False,
        activation_checkpointing=False,
        per_device_train_batch_size=4,
        num_generations=4,
        max_completion_length=8,
        report_to="none",
    )
    data = Dataset.from_dict({"prompt": [PROMPT] * 4, "topic": ["sea"] * 4})
    trainer = GRPOTrainer(
        model=model, reward_funcs=reward, args=args, train_dataset=data, processing_class=tokenizer
    )
    inputs = [dict(row) for row in data]
    ids = [tokenizer.encode(s) for s in STORIES]
    rewards = trainer._calculate_rewards(inputs, [PROMPT] * 4, STORIES, ids)  # (4, 1)
    assert teacher.calls == [4]
    assert rewards[:, 0].tolist() == pytest.approx(
        reward(prompts=[PROMPT] * 4, completions=STORIES, completion_ids=ids)
    )
    assert trainer.reward_func_names == ["teacher_heuristic"]


def test_a_failed_grade_raises_by_default_and_is_never_a_silent_number():
    stories = [STORIES[0], " FAIL " + STORIES[2]]
    with pytest.raises(TeacherError, match="injected failure.*teacher_fallback"):
        _adapter(FailsOnMarker())(prompts=[PROMPT] * 2, completions=stories)

    graded: list[dict] = []
    fallback = _adapter(FailsOnMarker(), teacher_fallback=0.25, on_graded=graded.extend)
    rewards = fallback(prompts=[PROMPT] * 2, completions=stories)
    assert rewards[1] == 0.25 and graded[1]["teacher_fallback"] == "format: injected failure"
    assert graded[0]["teacher_fallback"] is None and fallback.failed == 1

    graded.clear()
    skip = _adapter(FailsOnMarker(), skip_failed=True, on_graded=graded.extend)
    kwargs, logged = _trl_kwargs(2)
    rewards = skip(prompts=[PROMPT] * 2, completions=stories, **kwargs)
    assert rewards[0] is not None and rewards[1] is None  # TRL: not applicable, no advantage
    assert graded[1]["teacher_error"] == "format: injected failure"
    assert math.isnan(graded[1]["teacher_score"])
    assert logged["metrics"]["heuristic/failed_fraction"] == [0.5]

    with pytest.raises(ConfigError, match="not both"):
        _adapter(FailsOnMarker(), teacher_fallback=0.0, skip_failed=True)


def test_a_teacher_that_raises_follows_the_same_rules():
    with pytest.raises(TeacherError, match="ConnectionError: backend down"):
        _adapter(Raises())(prompts=[PROMPT], completions=[STORIES[0]])
    assert _adapter(Raises(), skip_failed=True)(prompts=[PROMPT], completions=[STORIES[0]]) == [
        None
    ]
    graded: list[dict] = []
    reward = _adapter(Raises(), teacher_fallback=0.5, on_graded=graded.extend)
    assert reward(prompts=[PROMPT], completions=[STORIES[0]]) == [0.5]
    assert "backend down" in graded[0]["teacher_fallback"]


def test_teacher_kwargs_and_reward_settings_pass_through():
    a = teacher_reward_function("random", seed=3)
    b = teacher_reward_function("random", seed=3)
    c = teacher_reward_function("random", seed=4)
    prompts, stories = [PROMPT] * 3, STORIES[:3]
    assert a(prompts=prompts, completions=stories) == b(prompts=prompts, completions=stories)
    assert a(prompts=prompts, completions=stories) != c(prompts=prompts, completions=stories)
    bonus = teacher_reward_function("heuristic", length_bonus=0.4, max_new_tokens=10)
    plain = teacher_reward_function("heuristic")
    assert bonus(prompts=prompts[:1], completions=stories[:1]) != plain(
        prompts=prompts[:1], completions=stories[:1]
    )
    with pytest.raises(ConfigError, match="bad keyword arguments"):
        teacher_reward_function("heuristic", colour="red")


def test_conversational_prompts_and_completions_are_graded_by_their_text():
    reward = teacher_reward_function("heuristic")
    chat = reward(
        prompts=[[{"role": "user", "content": PROMPT}]],
        completions=[[{"role": "assistant", "content": STORIES[0]}]],
    )
    assert chat == reward(prompts=[PROMPT], completions=[STORIES[0]])
    with pytest.raises(ConfigError, match="completion must be a string"):
        reward(prompts=[PROMPT], completions=[42])
    with pytest.raises(ConfigError, match="2 prompts for 1 completions"):
        reward(prompts=[PROMPT] * 2, completions=[STORIES[0]])


@pytest.mark.parametrize(("name", "kind"), [("grpo", "GRPO"), ("rloo", "RLOO")])
def test_grpo_and_rloo_are_trl_algorithm_plugins(name, kind):
    spec = get_algorithm(name)
    assert spec.framework == "trl" and spec.trainer is not None
    assert get_algorithm("ppo").framework == "sb3"
    trl = pytest.importorskip("trl")
    assert spec.load() is getattr(trl, f"{kind}Config")
    assert spec.trainer() is getattr(trl, f"{kind}Trainer")


def test_without_trl_grpo_names_the_extra_to_install(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "trl", None)  # `import trl` raises ImportError
    with pytest.raises(DependencyMissingError, match=r"pip install 'storytelling\[trl\]'"):
        train(TrainConfig(algorithm="grpo", steps=8), tmp_path, progress=False)
    from story_env.run.cli import main

    assert main(["train", "--algorithm", "grpo", "--out", str(tmp_path), "--no-progress"]) == 2


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"top_p": 0.9}, "top_p/top_k masks need an algorithm that uses action masks"),
        ({"kl_target": 0.1}, "takes a fixed kl_coef"),
        ({"kl_coef": 0.1, "kl_per_story": True}, "puts the KL in its loss.*Drop kl_per_story"),
        ({"algo_kwargs": {"beta": 0.1}}, r"\['beta'\] are set by the run itself \(beta -> kl_coef"),
        ({"algo_kwargs": {"n_steps": 64}}, r"unknown algo_kwargs \['n_steps'\] for 'grpo'"),
        ({"num_envs": 6, "algo_kwargs": {"num_generations": 4}}, r"num_envs=6.*num_generations"),
    ],
)
def test_grpo_refuses_settings_it_cannot_honour(tmp_path, kwargs, message):
    if kwargs.get("algo_kwargs", {}).keys() - {"beta"}:
        pytest.importorskip("trl")  # checked against GRPOConfig's fields
    with pytest.raises(ConfigError, match=message):
        train(TrainConfig(algorithm="grpo", steps=8, **kwargs), tmp_path, progress=False)


@pytest.fixture(scope="module")
def random_student(tmp_path_factory) -> str:
    """A randomly initialised one-layer GPT-2 with a word-level tokenizer (a second)."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

    from story_env.agents.students.baselines import seed_stories

    words = sorted({w for s in [PROMPT, *STORIES, *seed_stories()] for w in s.split()})
    vocab = {"<eos>": 0, "<unk>": 1, **{w: i + 2 for i, w in enumerate(words)}}
    backend = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend, eos_token="<eos>", pad_token="<eos>", unk_token="<unk>"
    )
    config = GPT2Config(
        vocab_size=len(vocab), n_embd=16, n_layer=1, n_head=2, bos_token_id=0, eos_token_id=0
    )
    out = tmp_path_factory.mktemp("random-student")
    GPT2LMHeadModel(config).save_pretrained(out)
    tokenizer.save_pretrained(out)
    return str(out)


def test_grpo_run_folder_log_checkpoint_and_eval(random_student, tmp_path):
    pytest.importorskip("trl")
    import json

    import torch

    from story_env.registry import resolve_student
    from story_env.run.trl_training import trl_student_folder

    config = TrainConfig(
        algorithm="grpo",
        student=random_student,
        steps=64,
        num_envs=4,
        max_new_tokens=8,
        checkpoint_every=16,
        kl_coef=0.05,
    )
    summary = train(config, tmp_path, progress=False)
    state = json.loads((tmp_path / "checkpoint.json").read_text())
    assert summary["steps"] == state["steps"] >= 64 and summary["tokens_per_s"] > 0
    rows = [json.loads(line) for line in (tmp_path / "stories.jsonl").read_text().splitlines()]
    assert len(rows) == state["stories"] and len(rows) % 4 == 0  # whole generations
    assert [r["story_index"] for r in rows] == list(range(1, len(rows) + 1))
    assert rows[-1]["step"] == state["steps"] and rows[-1]["teacher_error"] is None
    checkpoints = [p.name for p in (tmp_path / "trainer").iterdir() if p.is_dir()]
    assert checkpoints == [state["checkpoint"].rsplit("/", 1)[1]]  # older ones removed
    # eval --checkpoint RUN scores the trained student folder (tested end to end, slow)
    folder = trl_student_folder(tmp_path)
    assert folder == tmp_path / state["checkpoint"]
    trained = resolve_student(str(folder), {}).model
    start = resolve_student(random_student, {}).model
    assert not torch.equal(trained.lm_head.weight, start.lm_head.weight)  # it learned
    assert trl_student_folder(tmp_path / "no-run") is None
    with pytest.raises(ConfigError, match="pass --resume"):
        train(config, tmp_path, progress=False)
    again = train(config, tmp_path, resume=True, progress=False)  # budget spent: no training
    assert again["steps"] == state["steps"]
