"""The project's error classes: one base, narrow subclasses.

Every message says what was wrong, the value that was given, and how to fix it.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class StorytellingError(Exception):
    """Base class of every error this project raises on purpose."""


class ConfigError(StorytellingError, ValueError):
    """A keyword argument, flag or config value is invalid."""


class UnknownPluginError(StorytellingError, KeyError):
    """A teacher, student or algorithm name is not registered."""

    def __init__(self, kind: str, name: str, known: Iterable[str]) -> None:
        known = sorted(known)
        close = difflib.get_close_matches(name, known, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        message = (
            f"unknown {kind} {name!r}.{hint} Registered {kind}s: {', '.join(known) or '(none)'}. "
            f"Run `storytelling plugins` to see every plugin and the package that provides it."
        )
        super().__init__(message)
        self.kind, self.name, self.known = kind, name, known

    def __str__(self) -> str:  # KeyError would otherwise repr() the message
        return str(self.args[0])


class DuplicatePluginError(StorytellingError):
    """Two plugins registered the same name."""


class PluginLoadError(StorytellingError, ImportError):
    """A third-party plugin failed to import or to register."""


class PluginError(StorytellingError, RuntimeError):
    """A plugin's hook or factory raised an error that is not the project's own: the
    message names the plugin, its package and the error."""


class DependencyMissingError(StorytellingError, ImportError):
    """An optional dependency is not installed; the message names the extra to install."""


class EpisodeError(StorytellingError, RuntimeError):
    """The environment was used out of order (e.g. ``step`` after the episode ended)."""


class TeacherError(StorytellingError, RuntimeError):
    """A teacher failed to grade a story and the failure policy says to raise."""


class GradingError(StorytellingError):
    """One story could not be graded: a judge's backend failed or its answer is unusable.

    A judge (``story_env.teachers.judge.JudgeTeacher``) turns it into a failed grade whose error
    starts with ``kind``; the failure policy then decides (``TeacherError`` is what it
    raises). The narrow subclasses keep a builtin base as well, so ``except ValueError``
    or ``except RuntimeError`` written against them still works.

    Attributes:
        kind: The failure's kind, the prefix of the failed grade's error
            (``"format"``, ``"range"``, ``"timeout"``, ``"http"``, ``"backend"``...).
    """

    kind: str = "backend"

    def __init__(self, message: str, kind: str | None = None) -> None:
        super().__init__(message)
        if kind is not None:
            self.kind = kind


class AnswerError(GradingError, ValueError):
    """A judge's answer is not three integers in range.

    Attributes:
        kind: ``"format"`` (not three integers) or ``"range"`` (an integer out of range).
    """


class BackendError(GradingError, RuntimeError):
    """An HTTP request of the ``api`` teacher failed for good (after its transport retries).

    Attributes:
        kind: ``"timeout"``, ``"connection"``, ``"http"``, ``"response"`` or ``"other"``.
    """


class LlamaCppError(GradingError, RuntimeError):
    """The ``llamacpp`` teacher's in-process server answered with an error (kind ``"backend"``)."""


def did_you_mean(name: str, known: Iterable[str]) -> str:
    """Return ``" Did you mean 'x'?"`` for the closest known name, or an empty string."""
    close = difflib.get_close_matches(name, list(known), n=1)
    return f" Did you mean {close[0]!r}?" if close else ""


class ActionError(StorytellingError, ValueError):
    """An action is not a token id of the student's vocabulary."""


class RenderModeError(ConfigError, TypeError):
    """A ``render_mode`` the env does not support.

    Also a ``TypeError``: stable-baselines3's ``make_vec_env`` passes
    ``render_mode="rgb_array"`` to every env it makes and retries without it only when the
    constructor raises ``TypeError``, so this lets SB3 build the env unchanged.
    """


class RunFolderError(StorytellingError, OSError):
    """A run folder or another file the project reads or writes is unusable.

    The message names the path, what is wrong with it (missing, a directory, not UTF-8,
    read-only, disk full, damaged) and the fix.
    """


def describe_os_error(exc: OSError) -> str:
    """A short reason for an ``OSError``: ``"Permission denied"``, ``"No space left on device"``."""
    return exc.strerror or type(exc).__name__


class MissingFileError(RunFolderError, FileNotFoundError):
    """A file the project needs does not exist: a corpus split, a work file, a model file.

    Also a ``FileNotFoundError``; the message names the path and how to make or install it.
    """


class GenerationError(StorytellingError, RuntimeError):
    """The model that writes the corpus answered a request with an error, not a story."""
