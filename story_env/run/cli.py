"""The ``storytelling`` command line: one subcommand per registered command.

Commands come from plugins through the ``storytelling_register_commands`` hook, the
built-in ones included (``story_env.plugins.commands``), so a plugin package adds a subcommand the
same way it adds a teacher. ``main`` turns the project's errors into one line.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import NoReturn

from story_env.errors import StorytellingError
from story_env.secrets import redact_text


class OneLineParser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose usage errors are one line, as the project's errors are:
    the message and where the full usage is, then exit status 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message}; see `{self.prog} --help`\n")


def build_parser() -> argparse.ArgumentParser:
    """The parser with a subcommand for each registered command, in registration order."""
    from story_env import __version__
    from story_env.registry import registry

    parser = OneLineParser(
        prog="storytelling",
        description="Storytelling-v0: train and compare small language models that learn to "
        "tell stories from a teacher's grades.",
    )
    parser.add_argument("--version", action="version", version=f"storytelling {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    for entry in registry().entries("command"):
        # argparse formats help with %: a literal percent sign in a description is doubled
        help_line = entry.description.replace("%", "%%")
        # the description opens `storytelling NAME --help`; argparse %-formats it only
        # when it holds %(prog), so it is passed as written
        p = sub.add_parser(
            entry.name,
            help=help_line,
            description=entry.description,
            aliases=list(entry.aliases),
        )
        p.set_defaults(command_name=entry.name)  # the registered name, not the alias typed
        entry.obj(p)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``storytelling`` console script.

    The project's errors print as one line (``storytelling: error: ...``) with exit
    status 2; so do file errors (``OSError``: they name the path) that escaped a more
    specific message. A closed output pipe (``storytelling plugins | head -1``) ends
    the command quietly.

    Under a multi-process launch only ``train`` runs (``check_one_process``), and an
    error every process has (``said_by_rank_0``) is printed by rank 0 alone.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        args = build_parser().parse_args(argv)  # loads the plugins: their errors are one line
        check_one_process(args.command_name)
        status = int(args.func(args))
        sys.stdout.flush()  # a closed pipe shows here, not in the interpreter's exit flush
        return status
    except KeyboardInterrupt:
        if _launch()[0] == 0:  # in a multi-process launch, rank 0 says it once
            print(f"storytelling: interrupted. {resume_hint(argv)}", file=sys.stderr)
        return 130  # 128 + SIGINT, as a shell reports a command ended by Ctrl-C
    except BrokenPipeError:
        return _quiet_broken_pipe()
    except StorytellingError as exc:
        message = " ".join(redact_text(str(exc)).splitlines())  # one line, always
        _say_error(message, every_rank_has_it=said_by_rank_0(exc))
        return 2
    except ValueError as exc:
        if "null byte" not in str(exc):
            raise
        if _launch()[0] != 0:  # the same command line in every process: rank 0 says it
            return 2
        print(
            "storytelling: error: a path given contains a NUL byte (\\0), which no file name "
            "can hold; check the paths on the command line and in the config",
            file=sys.stderr,
        )
        return 2
    except OSError as exc:
        where = f" {exc.filename!r}" if exc.filename else ""
        _say_error(
            f"cannot use file{where}: {redact_text(str(exc.strerror or exc))}; check the "
            "path, its permissions and the free disk space",
            every_rank_has_it=False,
        )
        return 2


def check_one_process(command: str) -> None:
    """Refuse a multi-process launch of any command but ``train``.

    Only ``train`` shares one run folder between the processes of ``accelerate launch``
    or ``torchrun``; any other command would run as that many full copies writing the
    same files.

    Raises:
        ConfigError: the launch started more than one process and ``command`` is not
            ``train``.
    """
    from story_env.errors import ConfigError
    from story_env.run.processes import process_count

    count = process_count()
    if count > 1 and command != "train":
        raise ConfigError(
            f"`storytelling {command}` runs in one process, but this launch started {count} "
            f"(WORLD_SIZE={count}); run it in one process, without accelerate launch or "
            "torchrun (only `storytelling train` trains in several)"
        )


def said_by_rank_0(exc: BaseException) -> bool:
    """Whether rank 0 reports ``exc`` too, so the other processes can leave it unsaid.

    True for an error handed over from rank 0 (``ProcessGroup.from_main``) and for an
    error in the command line, its config or its plugins, the same in every process;
    a failure at run time (a teacher, a file) may be one process's own.
    """
    from story_env.errors import (
        ConfigError,
        DependencyMissingError,
        DuplicatePluginError,
        PluginLoadError,
        UnknownPluginError,
    )

    inputs = (
        ConfigError,
        UnknownPluginError,
        DependencyMissingError,
        DuplicatePluginError,
        PluginLoadError,
    )
    return bool(getattr(exc, "handed_from_main", False)) or isinstance(exc, inputs)


def _say_error(message: str, *, every_rank_has_it: bool) -> None:
    """Print ``storytelling: error: MESSAGE``: on rank 0 always; on another rank only an
    error of its own, named with its rank (rank 0 may not have it)."""
    rank, count = _launch()
    if rank == 0:
        print(f"storytelling: error: {message}", file=sys.stderr)
    elif not every_rank_has_it:
        print(f"storytelling: error: rank {rank} of {count}: {message}", file=sys.stderr)


def resume_hint(argv: Sequence[str]) -> str:
    """What to run after Ctrl-C: for ``train`` and ``compare``, the same command with
    ``--resume`` (their run folders keep the last checkpoint)."""
    import shlex

    if not argv or argv[0] not in ("train", "compare"):
        return "Run the command again to start it over."
    if argv[0] == "train" and _launch()[1] > 1:  # the launcher's command resumes them
        return (
            "The run folder keeps its last checkpoint; continue with the same launch "
            "command (accelerate launch ... train ...) plus --resume"
        )
    again = [*argv] if "--resume" in argv else [*argv, "--resume"]
    return "The run folder keeps its last checkpoint; continue with: " + shlex.join(
        ["storytelling", *again]
    )


def _launch() -> tuple[int, int]:
    """This process's rank and the launch's process count ((0, 1) for a lone process)."""
    from story_env.errors import ConfigError
    from story_env.run.processes import process_count, process_index

    try:
        return process_index(), process_count()
    except ConfigError:  # a bad launcher variable: the command said so already
        return 0, 1


def _quiet_broken_pipe() -> int:
    """The reader of stdout went away: point stdout at /dev/null so exit stays quiet."""
    import os

    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass
    return 141  # 128 + SIGPIPE, as a shell reports a command ended by a closed pipe


if __name__ == "__main__":
    sys.exit(main())
