"""Training through TRL (GRPO): the same task, budget, KL and run folder as the SB3 path.

``storytelling train --algorithm grpo`` lands here (an ``AlgorithmSpec`` with
``framework="trl"``). TRL's trainer writes whole completions from the prompt pool and the
teacher grades them through ``story_env.trl.TeacherReward``. What maps to what:

* ``steps`` (env steps) = completion tokens, end-of-story tokens included, as the env
  counts them; ``word_budget`` = interactive words (prompt words + teacher words);
* ``num_envs`` = completions per optimizer step (``per_device_train_batch_size``; the
  generation batch is ``num_envs * steps_per_generation``); ``num_generations`` (GRPO's
  group size) defaults to ``num_envs``;
* ``kl_coef`` = ``beta`` (KL to a frozen copy of the starting student, TRL's k3
  estimator in the loss rather than a per-token reward);
* ``max_new_tokens`` = ``max_completion_length``; sampling at temperature 1 from the full
  distribution, as the SB3 policy samples;
* ``algo_kwargs`` = fields of the TRL config (``learning_rate``, ``num_generations``,
  ``num_iterations``, ``loss_type``...; ``use_cpu``, ``bf16``, ``use_vllm`` move a run
  from the default, float32 on the CPU, to a GPU).

Under a multi-process launch (``accelerate launch``, ``torchrun``) every process trains
on its own ``num_envs`` completions per step and grades them with its own teacher (or one
served teacher); the graded stories of all processes reach every process in rank order
(``ProcessGroup.gather``), so the counters and the budget's stop agree, and rank 0 alone
owns the run folder: it writes the story log and declares each checkpoint once every
process has written its part.

TRL lacks the run folder's pieces, so callbacks add them: every graded story appended to
``stories.jsonl`` in the SB3 runs' record format, TensorBoard scalars against env steps,
checkpoints (TRL's own ``trainer/checkpoint-N`` folders, made current by an atomic write
of ``checkpoint.json``), the token and word budgets, and ``resume``. The current
checkpoint folder is a transformers model folder, so ``evaluate`` scores a TRL run as a
student folder (``trl_student_folder``).
"""

from __future__ import annotations

import contextlib
import logging
import math
import shutil
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from story_env.errors import ConfigError
from story_env.registry import AlgorithmSpec, get_algorithm
from story_env.run.algorithms import check_algo_kwargs
from story_env.run.callbacks import has_tensorboard, log_story
from story_env.run.config import TrainConfig
from story_env.run.processes import ProcessGroup
from story_env.run_folder import (
    CHECKPOINT_META,
    STORIES,
    flush_log,
    open_run,
    open_story_log,
    read_json,
    read_state,
    write_meta,
)

TRAINER_DIR = "trainer"  # TRL's checkpoint-N folders

#: TRL config fields the run sets from its own TrainConfig fields (and which ones).
_RESERVED = {
    "beta": "kl_coef",
    "max_completion_length": "max_new_tokens",
    "per_device_train_batch_size": "num_envs",
    "seed": "seed",
    "max_steps": "steps",
    "output_dir": "the run folder (--out)",
    "save_strategy": "checkpoint_every",
    "save_steps": "checkpoint_every",
    "report_to": "(the run folder's TensorBoard logs)",
}


def trl_student_folder(checkpoint: str | Path) -> Path | None:
    """The trained student of a TRL run folder (a transformers folder), else ``None``.

    ``None`` for anything that is not a TRL run (an SB3 run folder, a ``checkpoint.zip``).

    Raises:
        ConfigError: a TRL run that has written no checkpoint yet.
    """
    run = Path(checkpoint)
    config_file, meta_file = run / "config.json", run / CHECKPOINT_META
    if not run.is_dir() or not config_file.is_file():
        return None
    algorithm = read_json(config_file, "run config").get("algorithm", "ppo")
    if get_algorithm(algorithm).framework != "trl":
        return None
    if not meta_file.is_file():
        raise ConfigError(
            f"{run} is a {algorithm} run without a checkpoint yet; train it longer "
            "(or resume it) before evaluating"
        )
    return run / read_json(meta_file, "checkpoint counters")["checkpoint"]


def train_trl(
    config: TrainConfig, out_dir: str | Path, *, resume: bool = False, progress: bool = True
) -> dict[str, Any]:
    """Run (or resume) one TRL training run; returns the same summary as ``train``."""
    spec = get_algorithm(config.algorithm)
    _check_task(config)
    trainer_class = spec.trainer()  # type: ignore[misc]  # raises the install hint first
    check_algo_kwargs(config.algorithm, spec, config.algo_kwargs)  # names only the user's keys
    out = Path(out_dir)
    args = _trl_args(spec, config, out)  # TRL's own checks, before the run folder is touched
    group = ProcessGroup.current()  # after the config: it starts accelerate's process group
    out.mkdir(parents=True, exist_ok=True)
    # rank 0 opens (or repairs) the run folder; every process continues from its counters
    state, resume_from = group.from_main(lambda: _open_run(config, out, resume, group.count))

    with _quiet_transformers():
        _run(args, trainer_class, config, out, state, resume_from, progress, group)
    return {**state, "tokens_per_s": state["steps"] / max(1e-9, state["wall_s"])}


def _run(
    args: Any,
    trainer_class: type,
    config: TrainConfig,
    out: Path,
    state: dict[str, Any],
    resume_from: str | None,
    progress: bool,
    group: ProcessGroup,
) -> None:
    import torch
    from transformers import TrainerCallback

    from story_env.prompts import load_prompts
    from story_env.registry import resolve_student
    from story_env.trl import teacher_reward_function

    torch.manual_seed(config.seed)
    student = resolve_student(config.student, config.student_kwargs)
    tokenizer = getattr(getattr(student, "tokenizer", None), "hf", None)
    if tokenizer is None or getattr(type(student), "model", None) is None:
        raise ConfigError(
            f"algorithm {config.algorithm!r} trains a transformers causal LM; student "
            f"{config.student!r} is not one. Use tiny, smollm2, or a model folder"
        )
    prompts = load_prompts(list(config.prompts) if config.prompts else None, None)
    _check_prompt_ids(tokenizer, student.tokenizer, prompts)
    tb = _tensorboard_writer(out) if group.main else None
    wall0, started = state["wall_s"], time.perf_counter()

    def wall() -> float:
        return wall0 + time.perf_counter() - started

    story_log = open_story_log(out / STORIES) if group.main else contextlib.nullcontext()
    with story_log as log_file:
        callback = _run_callback(
            TrainerCallback, config, args, out, log_file, state, tb, wall, group
        )
        reward = teacher_reward_function(
            config.teacher,
            length_bonus=config.length_bonus,
            max_new_tokens=config.max_new_tokens,
            teacher_fallback=config.teacher_fallback,
            teacher_timeout_s=config.teacher_timeout_s,
            on_graded=callback.on_graded,
            **dict(config.teacher_kwargs),
        )
        _TIED_ON_RESUME.model = student.model
        trainer = trainer_class(
            model=student.model,
            reward_funcs=reward,
            args=args,
            train_dataset=_prompt_dataset(prompts, args, config),
            processing_class=tokenizer,
            callbacks=[callback],
        )
        _drop_printers(trainer)
        bar = _progress_bar(config, state["steps"], progress and group.main)
        callback.bar = bar
        started = time.perf_counter()  # like the SB3 path: building the models is not training
        try:
            if state["steps"] < config.steps and not _words_spent(config, state):
                trainer.train(resume_from_checkpoint=resume_from)
        finally:
            bar.close()
            reward.close()
            if tb is not None:
                tb.close()
    state["wall_s"] = wall()
    if group.main:
        write_meta(out, state)


def _check_task(config: TrainConfig) -> None:
    if config.top_p is not None or config.top_k is not None:
        raise ConfigError(
            f"top_p/top_k masks need an algorithm that uses action masks; {config.algorithm!r} "
            "writes whole completions. Drop top_p/top_k or use maskable_ppo"
        )
    if config.kl_target is not None:
        raise ConfigError(
            f"kl_target adapts the KL coefficient of the SB3 algorithms; {config.algorithm!r} "
            "takes a fixed kl_coef (TRL's beta). Drop kl_target"
        )
    if config.kl_per_story:
        raise ConfigError(
            f"kl_per_story shapes the SB3 algorithms' per-token KL reward; {config.algorithm!r} "
            "puts the KL in its loss, averaged over each completion's tokens, which does not "
            "favour short completions. Drop kl_per_story"
        )
    reserved = sorted(set(config.algo_kwargs) & set(_RESERVED))
    if reserved:
        hints = ", ".join(f"{k} -> {_RESERVED[k]}" for k in reserved)
        raise ConfigError(
            f"algo_kwargs {reserved} are set by the run itself ({hints}); "
            "use those run settings instead"
        )


def _open_run(
    config: TrainConfig, out: Path, resume: bool, processes: int = 1
) -> tuple[dict[str, Any], str | None]:
    """The run folder's guard (``run_folder.open_run``) plus TRL's checkpoint folder.

    ``processes`` is the number of training processes: it multiplies the batch of every
    optimizer step, so a run resumes with the number it started with.
    """
    resuming = resume and (out / CHECKPOINT_META).exists()
    # runs saved before the key trained in one process
    started = read_state(out).get("processes", 1) if resuming else processes
    if started != processes:
        raise ConfigError(
            f"cannot resume {out}: it trained in {started} process(es) and this launch "
            f"started {processes}; the processes share each optimizer step's batch "
            f"({config.num_envs} completions each), so resume it with {started} "
            f"(accelerate launch --num_processes {started}, or no launcher for 1), or start "
            "over with another --out"
        )
    state = open_run(
        out, config.to_dict(), resume, checkpoint=None, defaults=TrainConfig().to_dict()
    )
    state["processes"] = processes
    if not resuming:
        shutil.rmtree(out / TRAINER_DIR, ignore_errors=True)  # a run killed before its first save
        return state, None
    checkpoint = out / str(state.get("checkpoint", TRAINER_DIR))
    if not (checkpoint / "trainer_state.json").is_file():
        raise ConfigError(
            f"cannot resume {out}: its checkpoint {str(checkpoint)!r} is missing or "
            "incomplete; restore it, or start over with another --out"
        )
    return state, str(checkpoint)


def _check_prompt_ids(tokenizer: Any, story_tokenizer: Any, prompts: tuple[str, ...]) -> None:
    """TRL tokenizes prompts itself; they must be the env's prompt ids."""
    for prompt in prompts:
        trl_ids = list(tokenizer(text=[prompt])["input_ids"][0])
        env_ids = story_tokenizer.encode(prompt)
        if trl_ids != env_ids:
            raise ConfigError(
                f"the student's tokenizer adds tokens to the prompt {prompt[:40]!r} "
                f"({trl_ids[:6]}... vs the env's {env_ids[:6]}...); TRL would train on other "
                "prompt ids than the env's. Use a tokenizer that adds no special tokens"
            )


def _trl_args(spec: AlgorithmSpec, config: TrainConfig, out: Path) -> Any:
    """The TRL config of the run: the task's settings, then spec defaults and algo_kwargs."""
    kwargs: dict[str, Any] = {
        "lr_scheduler_type": "constant",  # SB3's default; the budget, not max_steps, ends a run
        "activation_checkpointing": False,  # TRL's default saves memory at ~30% more compute
        "num_generations": config.num_envs,
        # float32 on the CPU unless algo_kwargs choose a GPU (use_cpu false, bf16, use_vllm)
        "use_cpu": True,
        "bf16": False,
        "fp16": False,
        # every weight of a causal LM takes part in the loss: no search for unused ones
        "ddp_find_unused_parameters": False,
        **spec.defaults,
        **dict(config.algo_kwargs),
    }
    try:
        args = spec.load()(
            output_dir=str(out / TRAINER_DIR),
            per_device_train_batch_size=config.num_envs,
            max_completion_length=config.max_new_tokens,
            beta=config.kl_coef,
            seed=config.seed,
            max_steps=1,  # replaced below, once the generation batch is known
            report_to="none",
            save_strategy="no",  # the run callback decides when to save
            logging_steps=1,
            disable_tqdm=True,
            dataloader_num_workers=0,
            **kwargs,
        )
    except (TypeError, ValueError) as exc:
        raise ConfigError(
            f"{config.algorithm!r} rejects the run's settings (num_envs={config.num_envs}, "
            f"algo_kwargs={dict(config.algo_kwargs)}): {exc}"
        ) from exc
    # Every completion holds at least one token, so this many generations spend the budget.
    generations = math.ceil(config.steps / args.generation_batch_size)
    args.max_steps = generations * args.steps_per_generation * args.num_iterations
    return args


def _prompt_dataset(prompts: tuple[str, ...], args: Any, config: TrainConfig) -> Any:
    """Prompts drawn from the pool (seeded), enough for one pass over the whole budget."""
    from datasets import Dataset

    per_generation = args.generation_batch_size // args.num_generations
    generations = args.max_steps // (args.steps_per_generation * args.num_iterations)
    rows = max(per_generation, min(4096, generations * per_generation))
    rng = np.random.default_rng(config.seed)
    picks = rng.integers(len(prompts), size=rows) if len(prompts) > 1 else np.zeros(rows, int)
    return Dataset.from_dict({"prompt": [prompts[int(k)] for k in picks]})


def _words_spent(config: TrainConfig, state: dict[str, Any]) -> bool:
    return config.word_budget is not None and state["interactive_words"] >= config.word_budget


def _run_callback(
    base: type,
    config: TrainConfig,
    args: Any,
    out: Path,
    log_file: Any,
    state: dict[str, Any],
    tb: Any,
    wall: Any,
    group: ProcessGroup,
) -> Any:
    generate_every = args.steps_per_generation * args.num_iterations

    class RunCallback(base):  # type: ignore[misc, valid-type]
        """Story log, budgets, checkpoints and TensorBoard for a TRL trainer."""

        def __init__(self) -> None:
            self.bar: Any = None
            self.last_checkpoint = state["steps"]
            self.recent: list[float] = []

        def on_graded(self, infos: list[dict[str, Any]]) -> None:
            """Log every graded completion (called by the reward function).

            Every process grades its own completions; all of them reach every process,
            in rank order, so the counters (and the budget's stop) agree everywhere and
            rank 0 logs each story once, ``env`` being its place in the whole batch.
            """
            for slot, info in enumerate(group.gather(infos)):
                state["steps"] += info["tokens"]
                log_story(log_file, state, slot, info, state["steps"])
                if info["reward"] is not None:
                    self.recent.append(float(info["reward"]))
            if log_file is not None:
                flush_log(log_file, out / STORIES)
            if self.bar is not None:
                self.bar.update(min(state["steps"], config.steps) - self.bar.n)

        def on_step_end(self, args: Any, trainer_state: Any, control: Any, **_: Any) -> None:
            if trainer_state.global_step % generate_every:
                return  # a saved or stopped run must start with a fresh generation
            if tb is not None and self.recent:
                tb.add_scalar("story/reward_mean", float(np.mean(self.recent)), state["steps"])
                self.recent.clear()
            done = (
                state["steps"] >= config.steps
                or _words_spent(config, state)
                or trainer_state.global_step >= args.max_steps
            )
            if done or state["steps"] - self.last_checkpoint >= config.checkpoint_every:
                control.should_save = True
            if done:
                control.should_training_stop = True

        def on_save(self, args: Any, trainer_state: Any, control: Any, **_: Any) -> None:
            group.barrier()  # every process has written its part (its RNG state) of the folder
            current = f"{TRAINER_DIR}/checkpoint-{trainer_state.global_step}"
            state["checkpoint"] = current
            state["wall_s"] = wall()  # so a resumed run reports its whole training time
            self.last_checkpoint = state["steps"]
            if log_file is None:
                return  # rank 0 declares the checkpoint
            flush_log(log_file, out / STORIES, durable=True)  # the stories it counts
            write_meta(out, state)  # atomic: from here on, `current` is the checkpoint
            for old in (out / TRAINER_DIR).glob("checkpoint-*"):
                if old.name != current.rsplit("/", 1)[1]:
                    shutil.rmtree(old, ignore_errors=True)

        def on_log(
            self, args: Any, trainer_state: Any, control: Any, logs: Any = None, **_: Any
        ) -> None:
            if tb is None or not logs:
                return
            for key, value in logs.items():
                if isinstance(value, int | float) and math.isfinite(value):
                    tb.add_scalar(f"train/{key}", value, state["steps"])
            tb.flush()

    return RunCallback()


def _tensorboard_writer(out: Path) -> Any:
    if not has_tensorboard():
        return None
    from torch.utils.tensorboard import SummaryWriter

    return SummaryWriter(str(out / "tensorboard" / "run"))


def _drop_printers(trainer: Any) -> None:
    """The run prints its own progress bar: drop the trainer's printer and bar."""
    from transformers.trainer_callback import PrinterCallback, ProgressCallback

    for callback in (PrinterCallback, ProgressCallback):
        trainer.remove_callback(callback)


def _progress_bar(config: TrainConfig, start: int, progress: bool) -> Any:
    from tqdm.auto import tqdm

    return tqdm(
        total=config.steps,
        initial=min(start, config.steps),
        unit="tok",
        disable=not progress,
        desc=f"{config.algorithm} seed {config.seed}",
    )


@contextlib.contextmanager
def _quiet_transformers() -> Iterator[None]:
    """No weight-loading or shard-writing bars, and none of the warnings TRL causes.

    TRL 1.16 calls transformers' deprecated ``gradient_checkpointing`` names (a
    ``FutureWarning`` at every generation), and ``generate`` drops an all-ones attention
    mask, after which GPT-2 warns that the (unpadded) prompts may be padded. On resume,
    transformers 5.24's Trainer reports the LM head as missing from the checkpoint when
    it is tied to the input embeddings (and so not saved); ``_TiedHeadOnResume`` drops
    that message only when every missing key is such a tied weight.
    """
    from transformers.utils import logging as hf_logging

    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    spurious = _DropMessages(_SPURIOUS_LOGS)
    modeling_logger = hf_logging.get_logger("transformers.modeling_utils")
    modeling_logger.addFilter(spurious)
    trainer_logger = hf_logging.get_logger("transformers.trainer")
    trainer_logger.addFilter(_TIED_ON_RESUME)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings(
                "ignore",
                message=r"`(is_)?gradient_checkpointing\w*` is deprecated",
                category=FutureWarning,
            )
            yield
    finally:
        modeling_logger.removeFilter(spurious)
        trainer_logger.removeFilter(_TIED_ON_RESUME)
        if bars:
            hf_logging.enable_progress_bar()


_SPURIOUS_LOGS = ("We strongly recommend passing in an `attention_mask`",)


class _DropMessages(logging.Filter):
    """Drops log records whose message starts with one of ``prefixes``."""

    def __init__(self, prefixes: tuple[str, ...]) -> None:
        super().__init__()
        self.prefixes = prefixes

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(self.prefixes)


class _TiedHeadOnResume(logging.Filter):
    """Drops the resume warning that lists only tied weights as missing.

    ``model`` is set by the run once its student is loaded; tied weights share one
    tensor with their source, so loading the source restored them.
    """

    PREFIX = "There were missing keys in the checkpoint model loaded: "

    def __init__(self) -> None:
        super().__init__()
        self.model: Any = None

    def filter(self, record: logging.LogRecord) -> bool:
        message = str(record.msg)
        if self.model is None or not message.startswith(self.PREFIX):
            return True
        tied = getattr(self.model, "_tied_weights_keys", None) or {}
        params = dict(self.model.named_parameters(remove_duplicate=False))
        missing = [k for k in tied if params.get(k) is params.get(tied[k]) is not None]
        return message != f"{self.PREFIX}{missing}."


_TIED_ON_RESUME = _TiedHeadOnResume()
