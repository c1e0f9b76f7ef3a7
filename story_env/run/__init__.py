"""The run layer: everything that trains, evaluates and reports, above the environment.

It may import ``agents`` and ``teachers``; nothing in ``story_env``'s bottom layer,
``agents`` or ``teachers`` imports it.

* :mod:`~story_env.run.training`: ``TrainConfig``, building the algorithm, ``train``.
* :mod:`~story_env.run.trl_training`: the same run through a TRL trainer (GRPO, RLOO).
* :mod:`~story_env.run_folder`: a run's folder: atomic writes, the resume guard,
  append-only logs.
* :mod:`~story_env.run.judging` and :mod:`~story_env.run.stats`: held-out judges and
  bootstrap confidence intervals.
* :mod:`~story_env.run.reproduce`: the paper's data-efficiency experiment.
* :mod:`~story_env.run.probing`: linguistic probes of a student or a checkpoint.
* :mod:`~story_env.run.cli` and :mod:`~story_env.run.commands`: the ``storytelling``
  command line.
"""
