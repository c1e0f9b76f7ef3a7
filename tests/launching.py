"""``accelerate launch`` of ``storytelling train`` in several CPU processes, for the tests.

The command is the one docs/scaling.md gives: ``--multi_gpu`` picks accelerate's torchrun
launcher, which starts the processes (``--cpu`` alone starts one); with no GPU each
process trains on the CPU and they talk over gloo.
"""

from __future__ import annotations

import os
import random
import socket
import subprocess
import sys
from pathlib import Path

#: Where the rendezvous port is drawn from: below Linux's ephemeral range (32768-60999),
#: so no outgoing connection of another process can take it between the draw and the bind.
PORTS = range(20_000, 32_768)


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now (the launch's rendezvous; tests run side by side)."""
    while True:
        port = random.choice(PORTS)
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port


def accelerate_train(processes: int, *train_args: str, port: int | None = None) -> list[str]:
    """The command line that trains ``storytelling train TRAIN_ARGS`` in ``processes``."""
    return [
        *(str(Path(sys.executable).with_name("accelerate")), "launch"),
        *("--multi_gpu", "--num_processes", str(processes), "--num_machines", "1"),
        *("--mixed_precision", "no", "--dynamo_backend", "no"),
        *("--main_process_port", str(port or free_port())),
        *("-m", "story_env.run.cli", "train", *train_args),
    ]


def run_launch(
    cmd: list[str], tries: int = 3, timeout: float | None = None
) -> subprocess.CompletedProcess:
    """Run an ``accelerate launch`` command to its end and return it; a failure raises
    with the launch's stderr. A port taken between the draw and the bind (the only race
    of a test's launch) is retried on another port."""
    for _ in range(tries):
        done = subprocess.run(
            cmd, env=one_thread_env(), capture_output=True, text=True, timeout=timeout
        )
        if done.returncode == 0 or "address already in use" not in done.stderr.lower():
            break
        cmd[cmd.index("--main_process_port") + 1] = str(free_port())
    assert done.returncode == 0, f"{' '.join(cmd)} failed:\n{done.stderr[-4000:]}"
    return done


def one_thread_env() -> dict[str, str]:
    """The environment with one math thread per process (the machine has few cores)."""
    return {**os.environ, "OMP_NUM_THREADS": "1"}
