"""``accelerate launch`` of ``storytelling train`` in several CPU processes, for the tests.

The command is the one docs/scaling.md gives: ``--multi_gpu`` picks accelerate's torchrun
launcher, which starts the processes (``--cpu`` alone starts one); with no GPU each
process trains on the CPU and they talk over gloo.
"""

from __future__ import annotations

import os
import socket
import sys
from pathlib import Path


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now (the launch's rendezvous; tests run side by side)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def accelerate_train(processes: int, *train_args: str, port: int | None = None) -> list[str]:
    """The command line that trains ``storytelling train TRAIN_ARGS`` in ``processes``."""
    return [
        *(str(Path(sys.executable).with_name("accelerate")), "launch"),
        *("--multi_gpu", "--num_processes", str(processes), "--num_machines", "1"),
        *("--mixed_precision", "no", "--dynamo_backend", "no"),
        *("--main_process_port", str(port or free_port())),
        *("-m", "story_env.run.cli", "train", *train_args),
    ]


def one_thread_env() -> dict[str, str]:
    """The environment with one math thread per process (the machine has few cores)."""
    return {**os.environ, "OMP_NUM_THREADS": "1"}
