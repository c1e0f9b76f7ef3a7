"""Teacher backends: graders that score finished stories on the rubric's dimensions.

Each module holds one teacher. Importing this package imports none of them, so a
backend's optional dependencies load only when that backend is used.
"""

if __name__ != "story_env.teachers":  # the repository folder, imported by its own name
    raise ImportError(
        f"this folder installs as story_env.teachers; import that instead of {__name__}"
    )
