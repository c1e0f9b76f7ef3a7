"""Which process of a multi-process launch this one is (``accelerate launch``, ``torchrun``).

A launcher starts one copy of ``storytelling train`` per process and tells each its rank
and the number of processes through environment variables (``RANK`` and ``WORLD_SIZE``
for torchrun, which ``accelerate launch`` uses; the MPI names for ``mpirun``), the same
ones accelerate reads. They are read here before any process group exists, because the
run folder's owner (rank 0, ``run_owner.own_run``) is settled before the trainer starts.
Only the TRL algorithms train in several processes; the stable-baselines3 ones run in one.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any, TypeVar

from story_env import errors
from story_env.errors import ConfigError, StorytellingError

T = TypeVar("T")

_RANK = ("RANK", "OMPI_COMM_WORLD_RANK", "MV2_COMM_WORLD_RANK", "PMI_RANK")
_SIZE = ("WORLD_SIZE", "OMPI_COMM_WORLD_SIZE", "MV2_COMM_WORLD_SIZE", "PMI_SIZE")


def _from_env(names: tuple[str, ...], default: int, least: int) -> int:
    for name in names:
        raw = os.environ.get(name)
        if raw is None:
            continue
        try:
            value = int(raw)
        except ValueError:
            value = least - 1
        if value < least:
            raise ConfigError(
                f"environment variable {name}={raw!r} is not a whole number >= {least}; it is "
                "set by a multi-process launcher (accelerate launch, torchrun): unset it to "
                "run one process, or start the run through the launcher"
            )
        return value
    return default


def process_index() -> int:
    """This process's rank in the launch (0 outside a multi-process launch)."""
    return _from_env(_RANK, 0, 0)


def process_count() -> int:
    """How many processes the launch started (1 outside a multi-process launch)."""
    return _from_env(_SIZE, 1, 1)


def is_main_process() -> bool:
    """Rank 0: the process that owns and writes the run folder."""
    return process_index() == 0


def check_processes(algorithm: str, framework: str) -> None:
    """Refuse a multi-process launch of an algorithm that trains in one process.

    Raises:
        ConfigError: more than one process and ``framework`` is not ``"trl"``.
    """
    count = process_count()
    if count > 1 and framework != "trl":
        raise ConfigError(
            f"algorithm {algorithm!r} (stable-baselines3) trains in one process, but this "
            f"launch started {count} (WORLD_SIZE={count}); run `storytelling train` without "
            "accelerate launch or torchrun (more envs: --num-envs), or use --algorithm grpo "
            "or rloo, which train in several processes through accelerate"
        )


class ProcessGroup:
    """The steps a multi-process TRL run takes together, over accelerate's process group.

    Every process trains; rank 0 alone opens the run folder, writes the story log and
    declares checkpoints. One process (``count == 1``) needs no process group and no
    accelerate. Each method is a collective: every process calls it at the same point.

    Args:
        count: How many processes train (accelerate's ``num_processes``).
        index: This process's rank.
    """

    def __init__(self, count: int = 1, index: int = 0) -> None:
        self.count, self.index = count, index
        self.main = index == 0

    @classmethod
    def current(cls) -> ProcessGroup:
        """The launch's group (built by the trainer's config; one process without it)."""
        if process_count() == 1:
            return cls()
        from accelerate import PartialState

        state = PartialState()
        return cls(state.num_processes, state.process_index)

    def from_main(self, work: Callable[[], T]) -> T:
        """Run ``work`` on rank 0 and hand its result (or its error) to every process.

        An error on rank 0 travels as plain strings (``handed_error``): its class name,
        message and kind. Rank 0 raises its own error; the other processes raise the
        project's error of that name rebuilt from the strings (``rebuilt_error``), so an
        error that does not pickle or unpickle cleanly, or one that is not an
        ``Exception`` (Ctrl-C), still releases them at once.
        """
        if self.count == 1:
            return work()
        from accelerate.utils import broadcast_object_list

        box: list[Any] = [None]
        if self.main:
            try:
                box[0] = (True, work())
            except BaseException as exc:
                box[0] = (False, handed_error(exc))
                broadcast_object_list(box, from_process=0)
                raise
        broadcast_object_list(box, from_process=0)
        ok, value = box[0]
        if not ok:
            raise rebuilt_error(*value)
        return value

    def gather(self, items: list[Any]) -> list[Any]:
        """Every process's ``items``, concatenated in rank order, on every process."""
        if self.count == 1:
            return list(items)
        from accelerate.utils import gather_object

        return list(gather_object(list(items)))

    def barrier(self) -> None:
        """Wait until every process gets here."""
        if self.count > 1:
            from accelerate import PartialState

            PartialState().wait_for_everyone()


def handed_error(exc: BaseException) -> tuple[str, str, str]:
    """What rank 0 tells the other processes about its error: plain strings only.

    The class name, the message and the error's ``kind`` (``GradingError``'s failure
    kind; empty when it has none). The exception object itself is not sent: unpickling
    it calls its constructor with the message alone, which fails for
    ``UnknownPluginError`` and drops ``GradingError``'s kind.
    """
    kind = getattr(exc, "kind", "")
    return type(exc).__name__, str(exc), kind if isinstance(kind, str) else ""


def rebuilt_error(name: str, message: str, kind: str = "") -> StorytellingError:
    """The error a process other than rank 0 raises for rank 0's ``handed_error``.

    The ``story_env.errors`` class of that name when there is one (``except
    UnknownPluginError`` works on every rank), with the same message and kind; for any
    other error (``OSError``, ``KeyboardInterrupt``...) a ``StorytellingError`` that names
    it. Either way it carries ``handed_from_main = True``: rank 0 reports the error, so
    the command line leaves it unsaid on the other ranks.
    """
    cls = getattr(errors, name, None)
    if isinstance(cls, type) and issubclass(cls, StorytellingError):
        # not cls(message): a class's own constructor may want other arguments
        exc = cls.__new__(cls)
        Exception.__init__(exc, message)
        if kind:
            exc.kind = kind  # type: ignore[attr-defined]
    else:
        said = f": {message}" if message else ""
        exc = StorytellingError(f"rank 0 stopped with {name}{said}")
    exc.handed_from_main = True  # type: ignore[attr-defined]
    return exc
