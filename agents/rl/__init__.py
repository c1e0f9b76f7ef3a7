"""The stable-baselines3 side of an LM student.

* :mod:`~agents.rl.policy`: the actor-critic policy whose action logits are the LM head,
  with a value head on the last hidden state.
* :mod:`~agents.rl.kvcache`: per-env-slot key/value caches, so a rollout step costs one
  token and a PPO update re-reads whole episodes in one teacher-forced pass.
* :mod:`~agents.rl.buffers`: rollout buffers that keep episodes together for that pass.
* :mod:`~agents.rl.reference`: the frozen reference model: the KL penalty and top-p
  action masks.
* :mod:`~agents.rl.trpo`: TRPO's policy variant.
"""
