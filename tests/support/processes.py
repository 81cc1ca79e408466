"""`octavia serve` / `octavia worker` as real subprocesses, for tests of a deployment."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path
from typing import IO

ROOT = Path(__file__).resolve().parents[2]
OCTAVIA = Path(sys.executable).parent / "octavia"  # the console script


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Processes:
    """Named Octavia processes sharing one environment; each logs to `<folder>/<name>.log`
    and has its own data directory `<folder>/<name>`. `close()` stops them all."""

    def __init__(self, folder: Path, env: dict[str, str]) -> None:
        self.folder = folder
        self.env = {**os.environ, "PYTHONPATH": str(ROOT), **env}
        self.running: dict[str, subprocess.Popen[bytes]] = {}
        self._logs: list[IO[bytes]] = []

    def start(self, name: str, *command: str, **env: str) -> subprocess.Popen[bytes]:
        log = open(self.folder / f"{name}.log", "wb")  # noqa: SIM115 (closed in close())
        self._logs.append(log)
        process = subprocess.Popen(
            [str(OCTAVIA), *command], cwd=ROOT,
            env={**self.env, "OCTAVIA_DATA_DIR": str(self.folder / name), **env},
            stdout=subprocess.DEVNULL, stderr=log)
        self.running[name] = process
        return process

    def log(self, name: str) -> str:
        return (self.folder / f"{name}.log").read_text(errors="replace")

    def close(self) -> None:
        for process in self.running.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in self.running.values():
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        for log in self._logs:
            log.close()
