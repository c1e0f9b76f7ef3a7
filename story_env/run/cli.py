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
        p = sub.add_parser(entry.name, help=help_line, aliases=list(entry.aliases))
        entry.obj(p)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``storytelling`` console script.

    The project's errors print as one line (``storytelling: error: ...``) with exit
    status 2; so do file errors (``OSError``: they name the path) that escaped a more
    specific message. A closed output pipe (``storytelling plugins | head -1``) ends
    the command quietly.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        args = build_parser().parse_args(argv)  # loads the plugins: their errors are one line
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
        print(f"storytelling: error: {message}", file=sys.stderr)
        return 2
    except ValueError as exc:
        if "null byte" not in str(exc):
            raise
        print(
            "storytelling: error: a path given contains a NUL byte (\\0), which no file name "
            "can hold; check the paths on the command line and in the config",
            file=sys.stderr,
        )
        return 2
    except OSError as exc:
        where = f" {exc.filename!r}" if exc.filename else ""
        print(
            f"storytelling: error: cannot use file{where}: {redact_text(str(exc.strerror or exc))}; check the "
            "path, its permissions and the free disk space",
            file=sys.stderr,
        )
        return 2


def resume_hint(argv: Sequence[str]) -> str:
    """What to run after Ctrl-C: for ``train`` and ``compare``, the same command with
    ``--resume`` (their run folders keep the last checkpoint)."""
    import shlex

    if not argv or argv[0] not in ("train", "compare"):
        return "Run the command again to start it over."
    if _launch()[1] > 1:  # several processes: the launcher's command resumes them
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
