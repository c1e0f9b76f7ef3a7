"""Next-word pretraining of a small student on the corpus, budgeted by words seen.

* :mod:`~story_env.agents.pretraining.pretrain`: the model config, the resumable training loop and
  the saved student folder.
* :mod:`~story_env.agents.pretraining.commands`: the ``pretrain`` and ``build-student`` commands.
"""
