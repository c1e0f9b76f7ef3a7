"""Can DQN learn Storytelling-v0 with its Q-values initialised from the LM head?

The experiment behind the error that `storytelling train --algorithm dqn` gives
(docs/training.md, "Why not DQN"). It builds stable-baselines3's DQN around the tiny
student: Q(s, a) is the LM head's logit of token a after prefix s, for the online and
the target network, so before training the greedy policy is the student's greedy
decoding. It trains on the heuristic teacher and reports, on the same seeds:

- the score of the student as the env uses it (sampling), for reference;
- the score of DQN's greedy policy before training (= greedy decoding) and after;
- the Q-values' scale (mean max over tokens) before and after, against the rewards.

    python examples/dqn_experiment.py --steps 30000 --out results/dqn

No KV cache here (replayed prefixes come in random order): every Q-value is a full
teacher-forced pass, which is fine for the 4M-parameter student.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=30_000, help="env steps (tokens)")
    parser.add_argument("--num-envs", type=int, default=16)
    parser.add_argument("--eval-stories", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("results/dqn"))
    args = parser.parse_args()
    print(f"cores: {os.cpu_count()}  command: python {' '.join(sys.argv)}", flush=True)

    from stable_baselines3 import DQN
    from stable_baselines3.dqn.policies import DQNPolicy

    from story_env.agents.rl.kvcache import last_hidden_teacher_forced
    from story_env.agents.rl.policy import LMFeaturesExtractor
    from story_env.run.evaluation import evaluate
    from story_env.run.stats import mean_ci
    from story_env.run.training import story_wave
    from story_env.sb3 import make_sb3_vec_env

    class UncachedLM(LMFeaturesExtractor):
        """The policy's LM features, always recomputed (replay batches are random)."""

        def forward(self, observations: torch.Tensor) -> torch.Tensor:
            ids = observations.long()
            return last_hidden_teacher_forced(self.model, ids, (ids != self.pad_id).sum(dim=1))

    def make_venv() -> Any:
        return make_sb3_vec_env(num_envs=args.num_envs, student="tiny", teacher="heuristic")

    from stable_baselines3.common.vec_env import VecMonitor

    venv = VecMonitor(make_venv())
    model = DQN(
        DQNPolicy,
        venv,
        learning_rate=1e-4,
        buffer_size=50_000,
        learning_starts=2_000,
        batch_size=64,
        train_freq=4,  # every 4 vector steps = 64 tokens
        gradient_steps=4,
        target_update_interval=2_000,
        exploration_fraction=0.2,
        exploration_final_eps=0.02,
        gamma=1.0,  # the reward comes once, at the end of the story
        policy_kwargs={
            "features_extractor_class": UncachedLM,
            "features_extractor_kwargs": {"student": "tiny"},
            "net_arch": [],
        },
        seed=args.seed,
        device="cpu",
    )
    for net in (model.q_net, model.q_net_target):  # Q(s, .) = the LM head's logits
        net.q_net = torch.nn.Sequential(net.features_extractor.model.get_output_embeddings())
    model.policy.optimizer = model.policy.optimizer_class(
        model.q_net.parameters(), lr=1e-4, **model.policy.optimizer_kwargs
    )

    class Greedy:
        """DQN's policy as evaluation sees it: argmax Q, no exploration."""

        def predict(self, obs: np.ndarray, deterministic: bool = False) -> Any:
            return model.predict(obs, deterministic=True)

    def score_greedy() -> dict[str, Any]:
        eval_venv = make_venv()
        torch.manual_seed(args.seed)
        eval_venv.seed(args.seed)
        per_slot = -(-args.eval_stories // args.num_envs)
        wave = [info for _, info in story_wave(Greedy(), eval_venv, per_slot)]
        wave = wave[: args.eval_stories]
        eval_venv.close()
        return {
            "teacher_score": mean_ci([w["teacher_score"] for w in wave]),
            "mean_words": float(np.mean([len(w["story"].split()) for w in wave])),
            "samples": [w["story"] for w in wave[:3]],
        }

    def q_scale() -> float:
        obs = make_venv().reset()
        with torch.no_grad():
            return float(model.q_net(torch.as_tensor(obs).float()).max(dim=1).values.mean())

    args.out.mkdir(parents=True, exist_ok=True)
    sampling = evaluate(student="tiny", stories=args.eval_stories, seed=args.seed)
    before = score_greedy() | {"mean_max_q_at_prompt": q_scale()}
    print(f"student (sampling): {sampling['teacher_score']}", flush=True)
    print(f"DQN greedy before:  {before['teacher_score']}", flush=True)
    started = time.perf_counter()
    model.learn(total_timesteps=args.steps, progress_bar=True)
    wall = time.perf_counter() - started
    after = score_greedy() | {"mean_max_q_at_prompt": q_scale()}
    rewards = [float(info["r"]) for info in model.ep_info_buffer]
    result = {
        "command": " ".join(sys.argv),
        "steps": args.steps,
        "wall_s": round(wall, 1),
        "student_sampling": sampling["teacher_score"],
        "dqn_greedy_before": before,
        "dqn_greedy_after": after,
        "training_reward_last_100_stories": float(np.mean(rewards)) if rewards else None,
    }
    (args.out / "results.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
