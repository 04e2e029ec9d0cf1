"""`cardiomesh demo`: the whole system on one machine, with nothing installed but this package.

Broker: Mosquitto when one answers at CARDIOMESH_MQTT_URL, else the embedded amqtt broker on that
address. Cloud DB: SQLite unless CARDIOMESH_DATABASE_URL. Celery: a local folder queue unless
CARDIOMESH_CELERY_BROKER_URL. The worker is a real `celery worker` subprocess; everything else runs
in threads of this process, each with its own MQTT connection, exactly as it would on its own host.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cardiomesh.observer import Observer
from cardiomesh.runtime import mqtt_transport, stop_event_on_signals, transport_factory
from edge_hub.app import EdgeHub
from phone_agent.app import PhoneFleet
from shared import topics
from shared.embedded_broker import EmbeddedBroker, ensure_broker
from shared.messages import DecodeError, decode, utcnow
from shared.settings import Settings
from watch_agent.fleet import WatchFleet, WatchSpec

log = logging.getLogger(__name__)

SYNTHETIC_MIX = ["synthetic:tachycardia,pause", "synthetic:irregular,bradycardia", "synthetic:pause,irregular",
                 "synthetic:bradycardia,tachycardia"]
DRAIN_S = 45.0


@dataclass(frozen=True, slots=True)
class DemoOptions:
    watches: int = 4
    duration_s: float | None = None
    speed: float = 1.0
    web: bool = True


def demo_specs(settings: Settings, count: int) -> list[WatchSpec]:
    """Records with known arrhythmias, started just before an annotated episode; synthetic without data."""
    if settings.mitdb_dir is not None:
        from shared.ecg.episodes import demo_starts

        starts = demo_starts(settings.mitdb_dir)
        if starts:
            return [WatchSpec(str(settings.mitdb_dir / rec), start) for rec, start in
                    (starts[i % len(starts)] for i in range(count))]
    return [WatchSpec(SYNTHETIC_MIX[i % len(SYNTHETIC_MIX)]) for i in range(count)]


def _free_port(host: str, preferred: int) -> int:
    for port in [preferred, *range(preferred + 1, preferred + 50)]:
        with socket.socket() as sock:
            try:
                sock.bind((host, port))
                return port
            except OSError:
                continue
    raise RuntimeError(f"no free port near {preferred}")


class _Web:
    def __init__(self, settings: Settings) -> None:
        import uvicorn

        from cloud_expert.accounts import demo_account
        from cloud_expert.web.main import create_app

        self.port = _free_port(settings.web_host, settings.web_port)
        self.url = f"http://{settings.web_host}:{self.port}/"
        app = create_app(settings)
        with app.state.sessions() as session:
            self.password = demo_account(session)
            session.commit()
        config = uvicorn.Config(app, host=settings.web_host, port=self.port, log_level="warning")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, name="web", daemon=True)

    def start(self) -> None:
        self.thread.start()
        deadline = time.monotonic() + 15
        while not self.server.started and time.monotonic() < deadline:
            time.sleep(0.05)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=5)


def _start_worker(settings: Settings, log_path: Path) -> subprocess.Popen[bytes]:
    from cloud_expert.worker.celery_app import EMERGENCY_QUEUE, QUEUE

    env = dict(os.environ)
    env["CARDIOMESH_STATE_DIR"] = str(Path(settings.state_dir).resolve())
    argv = [sys.executable, "-m", "celery", "-A", "cloud_expert.worker.celery_app", "worker", "--pool=solo",
            "-c", "1", "--without-heartbeat", "--without-gossip", "--without-mingle", "--loglevel", "INFO",
            "-Q", f"{EMERGENCY_QUEUE},{QUEUE}"]  # the demo's one worker serves emergencies and the rest
    out = log_path.open("ab")
    return subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=env)


def _progress(observer: Observer, started: float, final: bool = False) -> None:
    s = observer.summary()
    d = observer.drill_summary()
    line = (f"\r[{time.monotonic() - started:6.0f} s] alerts {s['alerts']}  analyses {s['analyses']}  "
            f"responses {s['responses']}  escalations {s['escalations']}  reports {s['reports']}  "
            f"disclosures {s['disclosures']}  "
            f"drills {d['alerts']}   ")
    if sys.stderr.isatty():
        sys.stderr.write(line + ("\n" if final else ""))
        sys.stderr.flush()
    elif final or int(time.monotonic() - started) % 10 == 0:
        sys.stderr.write(line.strip() + "\n")


def run_demo(settings: Settings, options: DemoOptions) -> dict[str, Any]:
    state = Path(settings.state_dir)
    state.mkdir(parents=True, exist_ok=True)
    _log_to_file(state / "demo.log")
    stop = stop_event_on_signals()
    started = time.monotonic()
    started_at = utcnow()
    parts: list[Any] = []  # things to stop, in reverse order

    broker: EmbeddedBroker | None = ensure_broker(settings.mqtt_host, settings.mqtt_port)
    print(f"broker: {'embedded amqtt' if broker else 'existing'} at {settings.mqtt_url}", file=sys.stderr)
    try:
        from cloud_expert.db.migrate import upgrade_to_head
        from cloud_expert.service import INGEST_GROUP, CloudService

        upgrade_to_head(settings.effective_database_url)
        worker = _start_worker(settings, state / "worker.log")

        observer = Observer(since=started_at)
        watcher = mqtt_transport(settings, f"demo-observer-{os.getpid()}", clean_session=True)

        def _observe(topic: str, raw: bytes) -> None:
            with contextlib.suppress(DecodeError):
                observer.observe(decode(raw, max_bytes=settings.max_payload_bytes))

        watcher.subscribe(topics.everything(settings.site), _observe)
        watcher.start(wait_s=10)
        watcher.wait_subscribed(10)
        parts.append(watcher)

        # amqtt (the embedded broker) has no $share subscriptions: one ingest instance subscribes plainly.
        # A clean session: a demo starts its whole world at once and must not inherit a backlog of other
        # sites' escalations queued for an earlier run (`cardiomesh cloud` keeps a persistent session).
        cloud = CloudService(settings, mqtt_transport(settings, "cloud-ingest-demo", outbox=True, clean_session=True),
                             ingest_group=None if broker is not None else INGEST_GROUP)
        cloud.start()
        parts.append(cloud)

        edge_transport = mqtt_transport(settings, f"{settings.site}-edge-1", outbox=True)
        hub = EdgeHub(settings, edge_transport, edge_id="edge-1")
        hub.start()
        edge_transport.start(wait_s=10)
        parts += [edge_transport, hub]

        phones = PhoneFleet(settings, transport_factory(settings), limit=options.watches)
        phones.start()
        parts.append(phones)

        web = _Web(settings) if options.web else None
        if web is not None:
            web.start()
            parts.append(web)
            print(f"dashboard: {web.url} (sign in as demo / {web.password}: a new password each run)",
                  file=sys.stderr)

        fleet = WatchFleet(settings, transport_factory(settings), demo_specs(settings, options.watches),
                           speed=options.speed)
        fleet.start()
        print(f"{len(fleet.watches)} watch+phone pairs replaying at {options.speed}×; Ctrl-C to stop; "
              f"drill with: cardiomesh drill run --scenario vt", file=sys.stderr)

        while not stop.wait(1.0):
            _progress(observer, started)
            if options.duration_s is not None and time.monotonic() - started >= options.duration_s:
                break
        fleet.stop()
        drain_end = time.monotonic() + DRAIN_S
        while not observer.settled() and time.monotonic() < drain_end:
            time.sleep(0.25)
        _progress(observer, started, final=True)
        summary: dict[str, Any] = dict(observer.summary())
        summary["drills"] = observer.drill_summary()
        summary["rejected"] = sum(c.total("rejected.") for c in (hub.counters, cloud.counters, phones.counters))
        summary["duration_s"] = round(time.monotonic() - started, 1)
        if web is not None:
            summary["dashboard"] = web.url
        worker.terminate()
        try:
            worker.wait(timeout=15)
        except subprocess.TimeoutExpired:
            worker.kill()
        return summary
    finally:
        for part in reversed(parts):
            try:
                part.stop()
            except Exception:
                log.warning("stop failed", exc_info=True)
        if broker is not None:
            broker.stop()


def _log_to_file(path: Path) -> None:
    """Components log to var/demo.log; the console keeps the progress line readable."""
    root = logging.getLogger()
    for handler in root.handlers:
        handler.setLevel(logging.WARNING)
    file_handler = logging.FileHandler(path)
    file_handler.setLevel(root.level)
    if root.handlers:
        file_handler.setFormatter(root.handlers[0].formatter)
    root.addHandler(file_handler)
