"""The plugin manager and the registry of teachers, students and algorithms.

``plugin_manager()`` builds (once per process) a pluggy manager: it adds the hookspecs,
registers the built-in plugins from ``plugins/``, loads third-party plugins from the
``storytelling`` entry-point group unless ``STORYTELLING_DISABLE_PLUGIN_AUTOLOAD`` is set,
and runs ``check_pending()``. ``registry()`` asks every plugin to register its names.
"""

from __future__ import annotations

import functools
import importlib
import importlib.metadata
import os
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any, Literal

import pluggy

from story_env import hookspecs
from story_env.errors import (
    ConfigError,
    DependencyMissingError,
    DuplicatePluginError,
    PluginError,
    PluginLoadError,
    StorytellingError,
    UnknownPluginError,
)

ENTRY_POINT_GROUP = "storytelling"
DISABLE_AUTOLOAD_ENV = "STORYTELLING_DISABLE_PLUGIN_AUTOLOAD"
BUILTIN_PLUGINS = (
    "story_env.plugins.teachers",
    "story_env.plugins.students",
    "story_env.plugins.algorithms",
    "story_env.plugins.commands",
)
Kind = Literal["teacher", "student", "algorithm", "command"]


@dataclass(frozen=True)
class AlgorithmSpec:
    """How to build an RL algorithm and what it needs.

    Attributes:
        load: Returns the class whose constructor takes the run's ``algo_kwargs``
            (imported lazily): the algorithm, e.g. ``stable_baselines3.PPO``, or for a TRL
            algorithm its config class, e.g. ``trl.GRPOConfig``.
        needs_action_masks: The algorithm calls ``action_masks()`` (MaskablePPO).
        recurrent: The policy keeps a recurrent state between steps (RecurrentPPO).
        q_values: The algorithm learns discrete Q-values (DQN, QR-DQN).
        on_policy: The algorithm learns from fresh rollouts (PPO family, A2C, TRPO).
        defaults: Default constructor keyword arguments for this task.
        framework: Who runs it: ``"sb3"`` (a stable-baselines3-style class trained on the
            vector env) or ``"trl"`` (a TRL trainer that writes whole completions, with the
            teacher as its reward function; see ``story_env.run.trl_training``).
        trainer: For ``framework="trl"``: returns the trainer class, e.g. ``trl.GRPOTrainer``.
    """

    load: Callable[[], type]
    needs_action_masks: bool = False
    recurrent: bool = False
    q_values: bool = False
    on_policy: bool = True
    defaults: dict[str, Any] = field(default_factory=dict)
    framework: Literal["sb3", "trl"] = "sb3"
    trainer: Callable[[], type] | None = None

    def __post_init__(self) -> None:
        if self.framework not in ("sb3", "trl"):
            raise ConfigError(f"framework must be 'sb3' or 'trl', got {self.framework!r}")
        if self.framework == "trl" and self.trainer is None:
            raise ConfigError("an AlgorithmSpec with framework='trl' needs trainer=<loader>")


@dataclass(frozen=True)
class Entry:
    """One registered name."""

    kind: Kind
    name: str
    obj: Any
    plugin: str
    distribution: str
    description: str = ""
    aliases: tuple[str, ...] = ()
    trainable: bool = False


_HOOKS: dict[Kind, str] = {
    "teacher": "storytelling_register_teachers",
    "student": "storytelling_register_students",
    "algorithm": "storytelling_register_algorithms",
    "command": "storytelling_register_commands",
}


def import_object(path: str, extra: str | None = None) -> Any:
    """Import ``"package.module:attribute"`` and return the attribute.

    With ``extra``, a missing package raises ``DependencyMissingError`` naming the
    project extra that installs it.
    """
    module_name, _, attr = path.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        if extra is None:
            raise
        raise DependencyMissingError(
            f"{path} needs a package that is not installed ({exc}); "
            f"run `pip install 'storytelling[{extra}]'`"
        ) from exc
    return getattr(module, attr)


def lazy(path: str, extra: str | None = None) -> Callable[..., Any]:
    """A stand-in for ``"module:callable"`` that imports it at its first call.

    Plugins register these as factories and command builders, so that listing the
    registry imports no backend: ``register("heuristic", lazy("story_env.teachers.heuristic:HeuristicTeacher"))``.
    """

    def call(*args: Any, **kwargs: Any) -> Any:
        return import_object(path, extra)(*args, **kwargs)

    call.__name__ = call.__qualname__ = path.rpartition(":")[2]
    call.__doc__ = f"Import and call {path}."
    return call


class Registry:
    """Every registered teacher, student, algorithm and command, with the plugin that provided it."""

    def __init__(self, entries: list[Entry]) -> None:
        self._entries = entries
        self._index: dict[tuple[Kind, str], Entry] = {}
        for entry in entries:
            for key in (entry.name, *entry.aliases):
                self._index[(entry.kind, key)] = entry

    def names(self, kind: Kind) -> list[str]:
        """Registered names of one kind (aliases not included), sorted."""
        return sorted(e.name for e in self._entries if e.kind == kind)

    def entries(self, kind: Kind | None = None) -> Iterator[Entry]:
        """All entries, or those of one kind, in registration order."""
        return (e for e in self._entries if kind is None or e.kind == kind)

    def get(self, kind: Kind, name: str) -> Entry:
        """Look a name (or alias) up; raise ``UnknownPluginError`` with the valid names."""
        try:
            return self._index[(kind, name)]
        except KeyError:
            known = [k for (k_kind, k) in self._index if k_kind == kind]
            raise UnknownPluginError(kind, name, known) from None


def _distribution_of(module: ModuleType | object) -> str:
    package = getattr(module, "__name__", type(module).__module__).split(".")[0]
    names = importlib.metadata.packages_distributions().get(package, [])
    if not names:
        return "storytelling"
    version = importlib.metadata.version(names[0])
    return f"{names[0]} {version}"


def _load_entry_points(pm: pluggy.PluginManager) -> None:
    for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        dist = f"{ep.dist.name} {ep.dist.version}" if ep.dist else "unknown distribution"
        if pm.get_plugin(ep.name) is not None:
            continue
        try:
            plugin = ep.load()
        except (Exception, SystemExit) as exc:  # a plugin calling sys.exit must not end us
            raise PluginLoadError(
                f"plugin {ep.name!r} (entry point {ep.value!r} in group {ENTRY_POINT_GROUP!r}, "
                f"from {dist}) failed to import: {type(exc).__name__}: {exc}. Fix or uninstall "
                f"that package, or set {DISABLE_AUTOLOAD_ENV}=1 to skip third-party plugins."
            ) from exc
        pm.register(plugin, name=ep.name)
        _DISTRIBUTIONS[ep.name] = dist


_DISTRIBUTIONS: dict[str, str] = {}


@functools.cache
def plugin_manager() -> pluggy.PluginManager:
    """Build the process-wide plugin manager (built-ins, then entry points)."""
    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    for module_name in BUILTIN_PLUGINS:
        pm.register(importlib.import_module(module_name), name=module_name)
        _DISTRIBUTIONS[module_name] = _distribution_of(importlib.import_module(module_name))
    if not os.environ.get(DISABLE_AUTOLOAD_ENV):
        _load_entry_points(pm)
    pm.check_pending()
    return pm


def registry() -> Registry:
    """Ask every registered plugin for its teachers, students and algorithms."""
    pm = plugin_manager()
    entries: list[Entry] = []
    owners: dict[tuple[Kind, str], Entry] = {}
    for kind, hook_name in _HOOKS.items():
        hook = getattr(pm.hook, hook_name)
        for impl in reversed(hook.get_hookimpls()):  # registration order
            plugin_name = impl.plugin_name
            dist = _DISTRIBUTIONS.get(plugin_name) or _distribution_of(impl.plugin)

            def register(
                name: str,
                obj: Any,
                *,
                description: str = "",
                aliases: tuple[str, ...] = (),
                trainable: bool = False,
                _kind: Kind = kind,
                _plugin: str = plugin_name,
                _dist: str = dist,
            ) -> None:
                check_declaration(_kind, name, obj, f"plugin {_plugin!r}, {_dist}")
                entry = Entry(
                    _kind, name, obj, _plugin, _dist, description, tuple(aliases), trainable
                )
                for key in (name, *entry.aliases):
                    if (_kind, key) in owners:
                        other = owners[(_kind, key)]
                        raise DuplicatePluginError(
                            f"{_kind} name {key!r} is registered twice: by plugin {other.plugin!r} "
                            f"({other.distribution}) and by plugin {_plugin!r} ({_dist}). "
                            f"Uninstall one of them or rename the {_kind}."
                        )
                    owners[(_kind, key)] = entry
                entries.append(entry)

            try:
                impl.function(register=register)
            except StorytellingError:
                raise
            except (Exception, SystemExit) as exc:
                raise PluginError(
                    f"plugin {plugin_name!r} ({dist}) failed in its {hook_name} hook: "
                    f"{_describe(exc)}. Fix or uninstall that package, or set "
                    f"{DISABLE_AUTOLOAD_ENV}=1 to skip third-party plugins."
                ) from exc
    return Registry(entries)


def _describe(exc: BaseException) -> str:
    """``"ValueError: the message"``, on one line."""
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text[:300]}" if text else type(exc).__name__


def check_declaration(kind: Kind, name: str, obj: Any, where: str) -> None:
    """A teacher's declared ``dimensions`` must be a sequence of names, not a string (a
    string would be read as one dimension per letter).

    Raises:
        PluginError: Naming the teacher, where it comes from, and the fix.
    """
    if kind != "teacher":
        return
    dims = getattr(obj, "dimensions", None)
    if dims is None or isinstance(obj, type(check_declaration)):
        return
    if isinstance(dims, str) or not all(isinstance(d, str) and d for d in dims):
        raise PluginError(
            f"teacher {name!r} ({where}) declares dimensions {dims!r}; declare a tuple of "
            f'dimension names, e.g. dimensions = ("{dims if isinstance(dims, str) else "quality"}",)'
        )


def create_teacher(name: str, **kwargs: Any) -> Any:
    """Instantiate the teacher registered as ``name`` with keyword arguments."""
    return _create("teacher", name, kwargs)


def create_student(name: str, **kwargs: Any) -> Any:
    """Instantiate the student registered as ``name`` with keyword arguments."""
    return _create("student", name, kwargs)


def resolve_student(name: str, kwargs: Mapping[str, Any]) -> Any:
    """Create a registered student, or load a local model folder given as the name."""
    if (
        os.sep in name
        or name.startswith(".")
        or (os.path.isdir(name) and name not in registry().names("student"))
    ):
        return create_student("hf", path=name, **dict(kwargs))
    return create_student(name, **dict(kwargs))


def get_algorithm(name: str) -> AlgorithmSpec:
    """Return the ``AlgorithmSpec`` registered as ``name``."""
    return registry().get("algorithm", name).obj


def _create(kind: Kind, name: str, kwargs: dict[str, Any]) -> Any:
    entry = registry().get(kind, name)
    where = f"plugin {entry.plugin!r}, {entry.distribution}"
    try:
        made = entry.obj(**kwargs)
    except (StorytellingError, OSError):  # the project's own, and file errors naming a path
        raise
    except TypeError as exc:
        if "unexpected keyword argument" in str(exc) or "positional argument" in str(exc):
            raise ConfigError(
                f"bad keyword arguments {sorted(kwargs)} for {kind} {name!r} "
                f"(from {entry.distribution}): {exc}"
            ) from exc
        raise _failed(kind, name, where, exc) from exc
    except (Exception, SystemExit) as exc:
        raise _failed(kind, name, where, exc) from exc
    check_declaration(kind, name, made, where)
    return made


def _failed(kind: Kind, name: str, where: str, exc: BaseException) -> PluginError:
    return PluginError(
        f"{kind} {name!r} ({where}) failed to start: {_describe(exc)}. Check its "
        f"{kind}_kwargs, or fix or uninstall that package"
    )
