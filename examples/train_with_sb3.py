"""Train the tiny student with plain stable-baselines3, then grade it with a held-out judge.

python examples/train_with_sb3.py --steps 20000
"""

import argparse

from story_env import CausalLMPolicy, StoryPPO, evaluate, make_sb3_vec_env


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20_000, help="tokens to train on")
    parser.add_argument("--teacher", default="heuristic", help="the reward, e.g. lm")
    parser.add_argument("--judge", default="lm:gemma", help="a judge the reward never saw")
    parser.add_argument("--stories", type=int, default=64, help="stories graded after training")
    parser.add_argument("--num-envs", type=int, default=16, help="stories written at once")
    args = parser.parse_args(argv)

    env = make_sb3_vec_env(num_envs=args.num_envs, student="tiny", teacher=args.teacher)
    model = StoryPPO(CausalLMPolicy, env, policy_kwargs={"student": "tiny"}, seed=0)
    model.learn(args.steps)

    result = evaluate(
        model=model, teacher=args.teacher, judges=[args.judge], stories=args.stories, seed=0
    )
    print(f"teacher {args.teacher} (the reward): {result['teacher_score'][0]:.3f}")
    for judge, grades in result["judges"].items():
        print(f"held-out judge {judge}: {grades['total'][0]:.3f}")
    return result


if __name__ == "__main__":
    main()
