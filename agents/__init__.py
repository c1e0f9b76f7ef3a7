"""Student agents, the RL policy side, and the data that pretrains students.

Subpackages (each imports only ``story_env``'s bottom layer and its siblings listed
before it, never the run layer ``story_env.run``):

* :mod:`story_env.agents.corpus`: the offline children's-story corpus (generation, cleaning,
  the packaged train/validation split).
* :mod:`story_env.agents.pretraining`: next-word pretraining of a small causal LM on that corpus,
  budgeted by words seen; the ``pretrain`` and ``build-student`` commands.
* :mod:`story_env.agents.students`: the students a run can use: baselines (random, n-gram), causal
  LM students loaded from a folder or a GGUF, and the embedded ``tiny`` student.
* :mod:`story_env.agents.rl`: what stable-baselines3 trains: the LM actor-critic policy with its
  per-slot KV cache, the episode rollout buffer, the KL reference model, TRPO's policy.
* :mod:`story_env.agents.probes`: formal and functional linguistic probes of a student LM.
"""

if __name__ != "story_env.agents":  # the repository folder, imported by its own name
    raise ImportError(
        f"this folder installs as story_env.agents; import that instead of {__name__}"
    )
