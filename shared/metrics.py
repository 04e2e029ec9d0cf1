"""Thread-safe named counters, latency histograms and gauges: every rejected message, duplicate and error is
counted here, every hop a component times is observed here, and all of it is exported.

Two exports, one format (Prometheus text): `MetricsServer` answers `GET /metrics` on a component's own port
(`CARDIOMESH_METRICS_PORT`, scraped by the compose Prometheus), and `MetricsFile` writes the same text every
few seconds under `state_dir/metrics/` (atomically: write, then rename) for node-exporter's textfile
collector, an operator's `cat` or `cardiomesh metrics`. Rejections by reason are `cardiomesh_rejected_total`,
other counts `cardiomesh_events_total`, latencies `cardiomesh_latency_ms` (a histogram per name), levels such
as queue depths and outbox backlogs `cardiomesh_gauge`. No patient data is ever a label.
"""

from __future__ import annotations

import bisect
import contextlib
import logging
import os
import re
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

log = logging.getLogger(__name__)

_LABEL = re.compile(r'[\\"\n]')
#: Upper bounds (ms) of the latency histograms: from a sub-millisecond edge decision to a minute-long report.
LATENCY_BUCKETS_MS: tuple[float, ...] = (0.5, 1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10_000, 30_000,
                                         60_000, 120_000)


@dataclass(slots=True)
class Histogram:
    counts: list[int] = field(default_factory=lambda: [0] * (len(LATENCY_BUCKETS_MS) + 1))  # last: +Inf
    total: float = 0.0
    n: int = 0

    def observe(self, value: float) -> None:
        self.counts[bisect.bisect_left(LATENCY_BUCKETS_MS, value)] += 1
        self.total += value
        self.n += 1

    def copy(self) -> Histogram:
        return Histogram(list(self.counts), self.total, self.n)

    def quantile(self, q: float) -> float | None:
        """The bucket bound holding quantile `q` (an upper estimate, as Prometheus' histogram_quantile)."""
        if not self.n:
            return None
        rank, seen = q * self.n, 0
        for bound, count in zip((*LATENCY_BUCKETS_MS, float("inf")), self.counts, strict=True):
            seen += count
            if seen >= rank:
                return bound
        return float("inf")


class Counters:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: Counter[str] = Counter()
        self._histograms: dict[str, Histogram] = {}
        self._gauges: dict[str, Callable[[], float]] = {}

    def observe(self, name: str, value_ms: float) -> None:
        """One latency, in milliseconds (`cardiomesh_latency_ms{name=…}`)."""
        with self._lock:
            self._histograms.setdefault(name, Histogram()).observe(value_ms)

    def gauge(self, name: str, read: Callable[[], float]) -> None:
        """A level read when exported (queue depth, outbox backlog); a read that fails is left out."""
        with self._lock:
            self._gauges[name] = read

    def histograms(self) -> dict[str, Histogram]:
        with self._lock:
            return {k: h.copy() for k, h in self._histograms.items()}

    def gauges(self) -> dict[str, float]:
        with self._lock:
            reads = dict(self._gauges)
        out = {}
        for name, read in reads.items():
            try:
                out[name] = float(read())
            except Exception:  # a closed store at shutdown, say: the scrape still answers
                log.debug("gauge %s unreadable", name, exc_info=True)
        return out

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


def render(component: str, counters: Counters) -> str:
    """Everything a component measures as Prometheus text: counts, latency histograms, gauges."""
    c = _label(component)
    lines = [to_prometheus(component, counters.snapshot()).rstrip("\n")]
    histograms = counters.histograms()
    if histograms:
        lines += ["# HELP cardiomesh_latency_ms Latencies a component times (ms), by what is timed.",
                  "# TYPE cardiomesh_latency_ms histogram"]
    for name, h in sorted(histograms.items()):
        labels = f'component="{c}",name="{_label(name)}"'
        running = 0
        for bound, count in zip((*LATENCY_BUCKETS_MS, float("inf")), h.counts, strict=True):
            running += count
            le = "+Inf" if bound == float("inf") else f"{bound:g}"
            lines.append(f'cardiomesh_latency_ms_bucket{{{labels},le="{le}"}} {running}')
        lines += [f"cardiomesh_latency_ms_sum{{{labels}}} {h.total:.3f}",
                  f"cardiomesh_latency_ms_count{{{labels}}} {h.n}"]
    gauges = counters.gauges()
    if gauges:
        lines += ["# HELP cardiomesh_gauge Levels read at scrape time (queue depths, outbox backlog, open episodes).",
                  "# TYPE cardiomesh_gauge gauge"]
        lines += [f'cardiomesh_gauge{{component="{c}",name="{_label(k)}"}} {v:g}' for k, v in sorted(gauges.items())]
    return "\n".join(lines) + "\n"


class MetricsServer:
    """`GET /metrics` for one component on its own port (Prometheus scrapes it); nothing else is served."""

    def __init__(self, counters: Counters, component: str, *, host: str = "127.0.0.1", port: int = 0) -> None:
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path.split("?")[0] != "/metrics":
                    self.send_error(404, "only /metrics here")
                    return
                body = render(outer.component, outer.counters).encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                return

        self.counters, self.component = counters, component
        self._server = ThreadingHTTPServer((host, port), Handler)
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def start(self) -> MetricsServer:
        self._thread = threading.Thread(target=self._server.serve_forever, name=f"metrics-http-{self.component}",
                                        daemon=True)
        self._thread.start()
        log.info("metrics served", extra={"component": self.component, "port": self.port})
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


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
        tmp.write_text(render(self.component, self.counters)
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
