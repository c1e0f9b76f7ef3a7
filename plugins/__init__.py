"""Built-in plugins, registered through the same hooks as third-party ones.

* :mod:`~story_env.plugins.teachers`: heuristic, lm, random, hf, llamacpp, api.
* :mod:`~story_env.plugins.students`: random, ngram, tiny, smollm2, hf (a model folder).
* :mod:`~story_env.plugins.algorithms`: PPO, A2C, TRPO, MaskablePPO, GRPO and RLOO (TRL), and the
  ones ``train`` refuses with a reason (RecurrentPPO, DQN, QR-DQN).
* :mod:`~story_env.plugins.commands`: every ``storytelling`` subcommand.

Each registers names with lazy factories: nothing heavy is imported until it is used.
"""

if __name__ != "story_env.plugins":  # the repository folder, imported by its own name
    raise ImportError(
        f"this folder installs as story_env.plugins; import that instead of {__name__}"
    )
