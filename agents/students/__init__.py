"""Students: what writes the stories.

* :mod:`~story_env.agents.students.baselines`: the random and n-gram baselines (no model).
* :mod:`~story_env.agents.students.lm`: a causal LM student from a local folder or a GGUF file.
* :mod:`~story_env.agents.students.tiny`: the embedded default, a small LM pretrained here on the
  packaged corpus and cached in the user cache.

Each follows ``story_env.student.Student``; the plugins in ``story_env.plugins.students`` register
them by name.
"""
