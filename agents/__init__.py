"""Student agents, the RL policy side, and the data that pretrains students.

Subpackages (each imports only ``story_env``'s bottom layer and its siblings listed
before it, never the run layer ``story_env.run``):

* :mod:`agents.corpus`: the offline children's-story corpus (generation, cleaning,
  the packaged train/validation split).
* :mod:`agents.pretraining`: next-word pretraining of a small causal LM on that corpus,
  budgeted by words seen; the ``pretrain`` and ``build-student`` commands.
* :mod:`agents.students`: the students a run can use: baselines (random, n-gram), causal
  LM students loaded from a folder or a GGUF, and the embedded ``tiny`` student.
* :mod:`agents.rl`: what stable-baselines3 trains: the LM actor-critic policy with its
  per-slot KV cache, the episode rollout buffer, the KL reference model, TRPO's policy.
* :mod:`agents.probes`: formal and functional linguistic probes of a student LM.
"""
