"""Train a student with an RL algorithm on Storytelling-v0: ``train``.

``train`` builds the batched env (with the reference wrapper when KL shaping or masks are
on), the algorithm named in the plugin registry with the causal-LM policy of the chosen
student, and runs it with: a JSONL log of every finished story (appended and flushed),
TensorBoard scalars, atomic checkpoints, a progress bar, an optional interactive word
budget (prompt words + teacher words, as the paper counts), and ``resume``. A TRL
algorithm (``framework="trl"``) runs through ``story_env.run.trl_training`` instead.
"""

from __future__ import annotations

import contextlib
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np

from story_env.agents.rl.reference import ReferenceVecEnv
from story_env.registry import get_algorithm
from story_env.run.algorithms import (
    build_algorithm,
    check_algo_kwargs,
    check_trainable,
    make_env,
)
from story_env.run.callbacks import RunCallback, has_tensorboard, log_story, rollout_tokens
from story_env.run.config import TrainConfig
from story_env.run.processes import check_processes, is_main_process
from story_env.run_folder import (
    CHECKPOINT,
    CHECKPOINT_META,
    STORIES,
    load_model,
    open_run,
    open_story_log,
    prepare,
    write_meta,
)
from story_env.run_owner import check_out, own_run

logger = logging.getLogger("story_env.run.training")


def _predict(model: Any, venv: Any, obs: np.ndarray, masked: bool) -> np.ndarray:
    """Sample one token per env from the policy; ``masked``: under the env's action masks."""
    if masked:
        masks = np.stack(venv.env_method("action_masks"))
        return model.predict(obs, action_masks=masks)[0]
    return model.predict(obs, deterministic=False)[0]


def story_wave(
    model: Any, venv: Any, per_slot: int = 1, masked: bool = False
) -> list[tuple[int, dict]]:
    """The first ``per_slot`` stories of every env slot, slot-major, as ``(slot, info)``.

    Taking a fixed number per slot, rather than the first N stories to finish, keeps
    the sample free of a bias toward short stories. ``masked``: the policy samples under
    the env's action masks (an algorithm whose ``AlgorithmSpec.needs_action_masks``).
    """
    obs = venv.reset()
    done: list[list[dict]] = [[] for _ in range(venv.num_envs)]
    while any(len(d) < per_slot for d in done):
        obs, _, dones, infos = venv.step(_predict(model, venv, obs, masked))
        for i in np.flatnonzero(dones):
            if "story" in infos[i] and len(done[i]) < per_slot:
                done[i].append(infos[i])
    return [(i, info) for i, d in enumerate(done) for info in d]


def uses_masks(algorithm: str, venv: Any) -> bool:
    """Whether ``algorithm`` samples under action masks and ``venv`` provides them."""
    return get_algorithm(algorithm).needs_action_masks and venv.has_attr("action_masks")


def _warm_start_critic(
    model: Any, venv: Any, log_file: Any, state: dict[str, Any], masked: bool
) -> float:
    """Grade one story per env with the starting policy; start the critic at their mean.

    A zero critic bootstraps every story a rollout cuts off to 0 while finished stories
    earn their grade, and per-batch advantage normalisation then makes the end-of-story
    token look good: PPO's first updates taught the tiny student to end stories early
    (training score 0.56 -> 0.37). The wave's stories are logged and counted.
    """
    import torch

    wave = story_wave(model, venv, masked=masked)
    for i, info in wave:
        log_story(log_file, state, i, info, 0)
    log_file.flush()
    start = float(np.mean([info["reward"] for _, info in wave]))
    with torch.no_grad():
        model.policy.value_net.bias += start
    if isinstance(venv, ReferenceVecEnv):
        venv.pop_ref_logps()  # the wave is not a rollout
    return start


def train(
    config: TrainConfig, out_dir: str | Path, *, resume: bool = False, progress: bool = True
) -> dict[str, Any]:
    """Run (or resume) one training run; returns its summary.

    The run holds its folder for its lifetime (``run_owner.own_run``): a second writer
    is refused with the holder's PID, and a folder of foreign files is never taken over.
    Under a multi-process launch (a TRL algorithm only) rank 0 owns and writes the folder.
    """
    out = check_out(out_dir)  # a bad --out is the first thing to say
    spec = get_algorithm(config.algorithm)
    check_algo_kwargs(config.algorithm, spec, config.algo_kwargs)
    check_processes(config.algorithm, spec.framework)
    prepare(out)
    check_trainable(config.student, config.student_kwargs)
    owner = own_run(out) if is_main_process() else contextlib.nullcontext(out)
    with owner as owned:
        return _train(config, owned, resume=resume, progress=progress)


def _train(config: TrainConfig, out_dir: Path, *, resume: bool, progress: bool) -> dict[str, Any]:
    if get_algorithm(config.algorithm).framework == "trl":  # GRPO: TRL's trainer
        from story_env.run.trl_training import train_trl

        return train_trl(config, out_dir, resume=resume, progress=progress)
    out = Path(out_dir)
    resuming = resume and (out / CHECKPOINT_META).exists()
    # the run folder's guard: names changed settings, repairs or refuses the story log
    state = open_run(out, config.to_dict(), resume, defaults=TrainConfig().to_dict())

    import torch

    torch.manual_seed(config.seed + state["steps"])
    venv = make_env(config, seed_offset=state["steps"])
    tb = str(out / "tensorboard") if has_tensorboard() else None
    if resuming:
        spec = get_algorithm(config.algorithm)
        model = load_model(
            spec.load(), out / CHECKPOINT, env=venv, device="cpu", tensorboard_log=tb
        )
    else:
        model = build_algorithm(config, venv, tensorboard_log=tb)
    rollout = rollout_tokens(model)
    if rollout > config.steps - state["steps"] > 0:
        logger.warning(
            "one rollout (n_steps %d x %d envs = %d tokens) is longer than the %d steps left "
            "of --steps %d: the run trains %d tokens; pass --algo-kwargs '{\"n_steps\": N}' "
            "for shorter rollouts",
            rollout // config.num_envs,
            config.num_envs,
            rollout,
            config.steps - state["steps"],
            config.steps,
            rollout,
        )
    wall0, started = state["wall_s"], time.perf_counter()

    def wall() -> float:
        return wall0 + time.perf_counter() - started

    with open_story_log(out / STORIES) as log_file:
        if not resuming and getattr(model, "uses_critic", True):
            masked = uses_masks(config.algorithm, venv)
            state["critic_start"] = _warm_start_critic(model, venv, log_file, state, masked)
        venv.defer_grading(True)  # each rollout's stories are graded in one teacher batch
        callback = RunCallback(config, out, log_file, state, progress, wall)
        remaining = config.steps - state["steps"]
        if remaining > 0:
            model.learn(
                remaining,
                callback=callback,
                reset_num_timesteps=not state["steps"],
                tb_log_name="run",
            )
    state["wall_s"] = wall()
    write_meta(out, state)
    venv.close()
    return {**state, "tokens_per_s": state["steps"] / max(1e-9, state["wall_s"])}
