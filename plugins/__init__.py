"""Built-in plugins, registered through the same hooks as third-party ones.

* :mod:`~plugins.teachers`: heuristic, lm, random, hf, llamacpp, api.
* :mod:`~plugins.students`: random, ngram, tiny, smollm2, hf (a model folder).
* :mod:`~plugins.algorithms`: PPO, A2C, TRPO, MaskablePPO, GRPO and RLOO (TRL), and the
  ones ``train`` refuses with a reason (RecurrentPPO, DQN, QR-DQN).
* :mod:`~plugins.commands`: every ``storytelling`` subcommand.

Each registers names with lazy factories: nothing heavy is imported until it is used.
"""
