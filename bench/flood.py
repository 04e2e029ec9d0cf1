"""Flood: real alerts answered while the edge is buried in malformed and oversized messages.

A private Mosquitto, the real edge hub in its own process (`cardiomesh edge`), one watch that publishes
alerts (with a 10 s strip) and times each until the edge's first response command comes back. The same
alerts are sent twice: on a quiet bus, then while a flooder publishes malformed messages (not JSON,
wrong type, invalid fields, spoofed sources, unknown topics) and oversized ones (600 KB, and one 5 MB
in each burst) on the site's alert topics at `--flood-rate` per second. The edge's own rejection counters
(its metrics file) say what it refused and why.

    .venv/bin/python bench/flood.py [--alerts 60] [--flood-rate 400]

Speed goal (issue 14): flood p99 ≤ 2 × idle p99, both measured in this one run.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import random
import re
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from multiprocessing.sharedctypes import Synchronized
from multiprocessing.synchronize import Event as EventType
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import first_command_clock, percentile, project_mosquitto, write_result
from shared import topics
from shared.messages import encode
from shared.metrics import metrics_path
from shared.transport import MqttTransport
from tests.factories import alert as make_alert
from tests.factories import ecg_strip


def _garbage(rng: random.Random, site: str, i: int) -> tuple[str, bytes]:
    """One hostile message: its topic and payload."""
    patient, device = f"pt-x{i % 50}", f"watch-x{i % 50}"
    topic = topics.alert(site, patient, device)
    kind = rng.random()
    if kind < 0.25:
        return topic, bytes(rng.getrandbits(8) for _ in range(200))
    if kind < 0.45:
        return topic, b'{"type": "vitals", "source": "' + device.encode() + b'"}'
    if kind < 0.65:
        return topic, b'{"type": "alert", "payload": {"kind": 7}}'
    if kind < 0.80:
        alert = make_alert(device="someone-else", patient=patient)
        return topic, encode(alert)  # valid, but its source is not the topic's device
    if kind < 0.90:
        return f"cm/v1/{site}/nonsense", b"{}"
    return topic, b"{" + b" " * 600_000 + b"}"


def _flood(port: int, site: str, rate: float, stop: EventType, sent: Synchronized[int],
           seconds: Synchronized[float]) -> None:
    """The attacker: its own process, as on its own host; it must not share the timing client's interpreter
    (in one process its publishing held the GIL the watch's clock needed, and it managed only ~110/s)."""
    rng = random.Random(1)
    pool = [_garbage(rng, site, i) for i in range(500)]  # made once: the flooder must not be the bottleneck
    flooder = MqttTransport(client_id=f"{site}-flooder", port=port, clean_session=True)
    flooder.start(wait_s=10)
    big = b"{" + b" " * 5_000_000 + b"}"
    i = 0
    start = time.perf_counter()
    try:
        while not stop.is_set():
            topic, payload = pool[i % len(pool)]
            if i % 500 == 499:  # one 5 MB message in each burst of 500
                payload = big
            flooder.publish(topic, payload, qos=0)
            i += 1
            sent.value = i
            seconds.value = time.perf_counter() - start
            delay = start + i / rate - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
    finally:
        flooder.stop()


def _alerts(client: MqttTransport, site: str, count: int, got: dict[str, float], lock: threading.Lock,
            every_s: float) -> list[float]:
    strip = ecg_strip(10.0)
    sent: dict[str, float] = {}
    for _ in range(count):
        message = make_alert(kind="wide_complex_run", device="watch-1", patient="pt-bench", strip=strip)
        payload = encode(message)
        with lock:
            sent[message.payload.alert_id] = time.perf_counter()
        client.publish(topics.alert(site, "pt-bench", "watch-1"), payload, qos=1)
        time.sleep(every_s)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        with lock:
            if all(a in got for a in sent):
                break
        time.sleep(0.05)
    with lock:
        return [(got[a] - t) * 1000 for a, t in sent.items() if a in got] + [float("inf")] * sum(
            a not in got for a in sent)


def run(alerts: int, flood_rate: float, every_s: float) -> dict[str, object]:
    with project_mosquitto() as (port, broker_note), tempfile.TemporaryDirectory() as state:
        site = f"flood{uuid.uuid4().hex[:6]}"
        env = dict(os.environ, CARDIOMESH_MQTT_URL=f"mqtt://127.0.0.1:{port}", CARDIOMESH_SITE=site,
                   CARDIOMESH_STATE_DIR=state, CARDIOMESH_LOG_LEVEL="ERROR", CARDIOMESH_ANALYSIS_TIMEOUT_S="1",
                   CARDIOMESH_EDGE_ANALYSIS="false", CARDIOMESH_MAX_PAYLOAD_BYTES=str(512 * 1024))
        edge = subprocess.Popen([sys.executable, "-m", "cardiomesh", "edge"], env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        got: dict[str, float] = {}
        lock = threading.Lock()

        watch = MqttTransport(client_id=f"{site}-watch-1", port=port, clean_session=True)
        watch.subscribe(topics.cmd(site, "pt-bench", "watch-1"), first_command_clock(got, lock), qos=1)
        watch.start(wait_s=10)
        try:
            time.sleep(3.0)  # the edge subscribes
            if edge.poll() is not None:
                raise RuntimeError("edge hub died at start")
            idle = _alerts(watch, site, alerts, got, lock, every_s)
            ctx = multiprocessing.get_context("spawn")
            stop, flooded, flood_s = ctx.Event(), ctx.Value("l", 0), ctx.Value("d", 0.0)
            flooder = ctx.Process(target=_flood, args=(port, site, flood_rate, stop, flooded, flood_s), daemon=True)
            flooder.start()
            while flooded.value == 0 and flooder.is_alive():  # a spawned interpreter imports before it floods
                time.sleep(0.1)
            time.sleep(1.0)  # the flood is on before the first alert
            flood = _alerts(watch, site, alerts, got, lock, every_s)
            stop.set()
            flooder.join(timeout=30)
        finally:
            watch.stop()
            edge.terminate()
            edge.wait(timeout=30)
        counts = metrics_path(state, "edge-edge-1").read_text() if metrics_path(state, "edge-edge-1").exists() else ""
        rejected = {m.group(1): int(m.group(2))
                    for m in re.finditer(r'cardiomesh_rejected_total\{component="[^"]*",reason="([^"]*)"\} (\d+)',
                                         counts)}
    p99_idle, p99_flood = percentile(idle, 99), percentile(flood, 99)
    return {
        "malformed_per_s": round(flooded.value / flood_s.value, 1) if flood_s.value else 0.0,
        "malformed_sent": flooded.value,
        "alerts_per_phase": alerts,
        "alert_p50_ms_idle": round(percentile(idle, 50), 2), "alert_p99_ms_idle": round(p99_idle, 2),
        "alert_p50_ms_flood": round(percentile(flood, 50), 2), "alert_p99_ms_flood": round(p99_flood, 2),
        "flood_over_idle_p99": round(p99_flood / p99_idle, 2) if p99_idle else None,
        "alerts_unanswered": sum(x == float("inf") for x in idle + flood),
        "rejected_by_reason": rejected,
        "broker": broker_note,
        "machine": f"{os.cpu_count()} CPUs, shared",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--alerts", type=int, default=60, help="alerts per phase (idle, then flood)")
    parser.add_argument("--flood-rate", type=float, default=400.0, help="hostile messages per second")
    parser.add_argument("--every", type=float, default=0.1, help="seconds between alerts")
    args = parser.parse_args()
    result = run(args.alerts, args.flood_rate, args.every)
    write_result("flood", result, [
        ("malformed messages / s", f"{result['malformed_per_s']} ({result['malformed_sent']} sent)"),
        ("alert p50 / p99 idle", f"{result['alert_p50_ms_idle']} / {result['alert_p99_ms_idle']} ms"),
        ("alert p50 / p99 flood", f"{result['alert_p50_ms_flood']} / {result['alert_p99_ms_flood']} ms"),
        ("flood / idle p99", f"{result['flood_over_idle_p99']} (goal ≤ 2)"),
        ("alerts unanswered", str(result["alerts_unanswered"])),
        ("rejected by the edge", ", ".join(f"{k} {v}" for k, v in sorted(result["rejected_by_reason"].items()))),  # type: ignore[attr-defined]
    ])


if __name__ == "__main__":
    main()
