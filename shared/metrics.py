"""Thread-safe named counters: every rejected message, duplicate and error is counted here, and exported.

`MetricsFile` writes a component's counters every few seconds in the Prometheus text format (atomically:
write, then rename) under `state_dir/metrics/`, where node-exporter's textfile collector, an operator's
`cat` or `cardiomesh metrics` can read them. Rejections by reason are `cardiomesh_rejected_total`, the
rest `cardiomesh_events_total`.
"""

from __future__ import annotations

import contextlib
import os
import re
import threading
import time
from collections import Counter
from pathlib import Path

_LABEL = re.compile(r'[\\"\n]')


class Counters:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: Counter[str] = Counter()

    def inc(self, name: str, by: int = 1) -> None:
        with self._lock:
            self._counts[name] += by

    def get(self, name: str) -> int:
        with self._lock:
            return self._counts[name]

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return dict(self._counts)

    def total(self, prefix: str) -> int:
        with self._lock:
            return sum(v for k, v in self._counts.items() if k.startswith(prefix))


def _label(value: str) -> str:
    return _LABEL.sub(lambda m: "\\" + {"\n": "n"}.get(m.group(0), m.group(0)), value)


def to_prometheus(component: str, counts: dict[str, int]) -> str:
    """Counters as Prometheus text: rejections by reason, everything else by name."""
    c = _label(component)
    rejected = sorted((k.removeprefix("rejected."), v) for k, v in counts.items() if k.startswith("rejected."))
    events = sorted((k, v) for k, v in counts.items() if not k.startswith("rejected."))
    lines = ["# HELP cardiomesh_rejected_total Messages and commands refused at a boundary, by reason.",
             "# TYPE cardiomesh_rejected_total counter"]
    lines += [f'cardiomesh_rejected_total{{component="{c}",reason="{_label(r)}"}} {v}' for r, v in rejected]
    lines += ["# HELP cardiomesh_events_total Everything else a component counts (accepted, duplicates, retries).",
              "# TYPE cardiomesh_events_total counter"]
    lines += [f'cardiomesh_events_total{{component="{c}",name="{_label(k)}"}} {v}' for k, v in events]
    return "\n".join(lines) + "\n"


def metrics_path(state_dir: Path | str, component: str) -> Path:
    return Path(state_dir) / "metrics" / f"{re.sub(r'[^A-Za-z0-9_.-]', '-', component)[:64]}.prom"


class MetricsFile:
    """Writes one component's counters to `path` every `every_s` seconds (and once more on stop)."""

    def __init__(self, counters: Counters, component: str, path: Path, *, every_s: float = 5.0) -> None:
        self.counters, self.component, self.path, self.every_s = counters, component, path, every_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def write(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(f".tmp{os.getpid()}")
        tmp.write_text(to_prometheus(self.component, self.counters.snapshot())
                       + f"# written {time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())}\n")
        tmp.replace(self.path)

    def start(self) -> MetricsFile:
        self.write()
        self._thread = threading.Thread(target=self._loop, name=f"metrics-{self.component}", daemon=True)
        self._thread.start()
        return self

    def _loop(self) -> None:
        while not self._stop.wait(self.every_s):
            with contextlib.suppress(OSError):  # a full or read-only disk must not stop the component
                self.write()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2)
        with contextlib.suppress(OSError):
            self.write()
