"""A real Celery worker subprocess for integration tests, stopped (by its pid) and logged on the way out."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

REPO_ROOT = Path(__file__).resolve().parents[3]
T = TypeVar("T")


@contextlib.contextmanager
def celery_worker(*, queue: str, env: dict[str, str], log_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    """`python -m celery … worker --pool=solo` consuming `queue` and its emergency queue (`queue`-emergency, where a
    `cardiomesh cloud` with CARDIOMESH_CELERY_QUEUE=`queue` sends emergency episodes' reports) with `env`."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("CARDIOMESH_")}
    full_env = {**clean, **env, "CARDIOMESH_CELERY_QUEUE": queue, "PYTHONPATH": str(REPO_ROOT)}
    command = [sys.executable, "-m", "celery", "-A", "cloud_expert.worker.celery_app", "worker", "--pool=solo",
               "-c", "1", "--without-heartbeat", "--without-gossip", "--without-mingle",
               "-Q", f"{queue}-emergency,{queue}", "-n", f"{queue}@%h", "-l", "INFO"]
    with log_path.open("wb") as log:
        process = subprocess.Popen(command, cwd=REPO_ROOT, env=full_env, stdout=log, stderr=subprocess.STDOUT)
        try:
            yield process
        finally:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=5)


def wait_for(probe: Callable[[], T | None], *, timeout_s: float, what: str, log_path: Path | None = None) -> T:
    """Poll `probe` until it returns something; fail with the worker log when it never does."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = probe()
        if value is not None:
            return value
        time.sleep(0.1)
    tail = log_path.read_text(errors="replace")[-4000:] if log_path and log_path.exists() else ""
    raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}\n--- worker log ---\n{tail}")
