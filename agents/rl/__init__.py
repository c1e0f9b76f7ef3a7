"""The stable-baselines3 side of an LM student.

* :mod:`~story_env.agents.rl.policy`: the actor-critic policy whose action logits are the LM head,
  with a value head on the last hidden state.
* :mod:`~story_env.agents.rl.kvcache`: per-env-slot key/value caches, so a rollout step costs one
  token and a PPO update re-reads whole episodes in one teacher-forced pass.
* :mod:`~story_env.agents.rl.buffers`: rollout buffers that keep episodes together for that pass.
* :mod:`~story_env.agents.rl.reference`: the frozen reference model: the KL penalty and top-p
  action masks.
* :mod:`~story_env.agents.rl.trpo`: TRPO's policy variant.
"""
