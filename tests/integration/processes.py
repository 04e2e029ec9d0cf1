"""A CardioMesh command (`python -m cardiomesh.cli …`) as a child process, for tests that kill and restart it."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from typing import IO

from shared.faults import CRASH_ENV


class Component:
    """`cardiomesh <args>` with `env`; started (optionally with a crash point) until its `ready` line shows."""

    def __init__(self, args: list[str], env: dict[str, str], ready: str) -> None:
        self.args, self.env, self.ready = args, env, ready
        self.process: subprocess.Popen[str] | None = None
        self.output: list[str] = []

    def start(self, crash_at: str | None = None, *, settle_s: float = 1.0) -> None:
        env = {k: v for k, v in self.env.items() if k != CRASH_ENV}
        if crash_at is not None:
            env[CRASH_ENV] = crash_at
        self.process = subprocess.Popen([sys.executable, "-m", "cardiomesh.cli", *self.args], env=env, text=True,
                                        stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        assert self.process.stdout is not None
        self.output = []
        up = threading.Event()

        def drain(stream: IO[str]) -> None:  # keep the pipe empty, and notice the ready line
            for line in stream:
                self.output.append(line)
                if self.ready in line:
                    up.set()

        threading.Thread(target=drain, args=(self.process.stdout,), daemon=True).start()
        assert up.wait(30), "".join(self.output)
        time.sleep(settle_s)  # connected and subscribed (its session persists, so later runs queue at the broker)

    def wait_exit(self, timeout_s: float) -> int | None:
        assert self.process is not None
        try:
            return self.process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            return None

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=15)
