"""Students: what writes the stories.

* :mod:`~agents.students.baselines`: the random and n-gram baselines (no model).
* :mod:`~agents.students.lm`: a causal LM student from a local folder or a GGUF file.
* :mod:`~agents.students.tiny`: the embedded default, a small LM pretrained here on the
  packaged corpus and cached in the user cache.

Each follows ``story_env.student.Student``; the plugins in ``plugins.students`` register
them by name.
"""
