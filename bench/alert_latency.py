"""Alert latency: watch publish → edge response command received back at the watch, 100 watches.

Runs on a real Mosquitto (a private one with the project's config), with the real edge hub in its
own process (`cardiomesh edge`), and 100 simulated watches each on its own MQTT connection. Every
watch publishes alerts carrying a 10 s strip, at random times; the clock starts just before
`publish` and stops when the edge's first response command for that alert arrives at the watch.

    .venv/bin/python bench/alert_latency.py [--watches 100] [--alerts-per-watch 5]
"""

from __future__ import annotations

import argparse
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
import uuid

sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parent.parent))

from bench._common import first_command_clock, percentile, project_mosquitto, write_result
from shared import topics
from shared.messages import encode
from shared.transport import MqttTransport
from tests.factories import alert as make_alert
from tests.factories import ecg_strip


def run(watches: int, per_watch: int, spread_s: float) -> dict[str, object]:
    with project_mosquitto() as (port, broker_note), tempfile.TemporaryDirectory() as state:
        site = f"bench{uuid.uuid4().hex[:6]}"
        env = dict(os.environ, CARDIOMESH_MQTT_URL=f"mqtt://127.0.0.1:{port}", CARDIOMESH_SITE=site,
                   CARDIOMESH_STATE_DIR=state, CARDIOMESH_LOG_LEVEL="WARNING", CARDIOMESH_ANALYSIS_TIMEOUT_S="1")
        edge = subprocess.Popen([sys.executable, "-m", "cardiomesh", "edge"], env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        sent: dict[str, float] = {}
        got: dict[str, float] = {}
        lock = threading.Lock()
        strip = ecg_strip(10.0)
        clients: list[tuple[MqttTransport, str, str]] = []
        try:
            for i in range(watches):
                device, patient = f"watch-{i}", f"pt-bench{i}"
                client = MqttTransport(client_id=f"{site}-{device}", port=port, clean_session=True)
                client.subscribe(topics.cmd(site, patient, device), first_command_clock(got, lock), qos=1)
                client.start(wait_s=10)
                clients.append((client, device, patient))
            time.sleep(2.0)  # let the edge finish subscribing
            if edge.poll() is not None:
                raise RuntimeError(f"edge hub died: {edge.stderr.read().decode()[-2000:] if edge.stderr else ''}")
            schedule = sorted((random.uniform(0, spread_s), i) for i in range(watches) for _ in range(per_watch))
            start = time.perf_counter()
            for at, i in schedule:
                client, device, patient = clients[i]
                message = make_alert(kind="wide_complex_run", device=device, patient=patient, strip=strip)
                payload = encode(message)
                delay = start + at - time.perf_counter()
                if delay > 0:
                    time.sleep(delay)
                with lock:
                    sent[message.payload.alert_id] = time.perf_counter()
                client.publish(topics.alert(site, patient, device), payload, qos=1)
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                with lock:
                    if len(got) >= len(sent):
                        break
                time.sleep(0.05)
        finally:
            for client, *_ in clients:
                client.stop()
            edge.terminate()
            edge.wait(timeout=10)
        latencies = [(got[a] - t) * 1000 for a, t in sent.items() if a in got]
        return {
            "watches": watches,
            "p50_ms": round(percentile(latencies, 50), 3),
            "p99_ms": round(percentile(latencies, 99), 3),
            "max_ms": round(max(latencies), 3) if latencies else None,
            "alerts": len(sent),
            "lost": len(sent) - len(latencies),
            "alert_bytes": len(payload),
            "spread_s": spread_s,
            "broker": broker_note,
            "machine": f"{os.cpu_count()} CPU cores, shared; one run",
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--watches", type=int, default=100)
    parser.add_argument("--alerts-per-watch", type=int, default=5)
    parser.add_argument("--spread", type=float, default=20.0, help="seconds over which alerts are spread")
    args = parser.parse_args()
    result = run(args.watches, args.alerts_per_watch, args.spread)
    write_result("alert_latency", result, [(k, str(v)) for k, v in result.items()])


if __name__ == "__main__":
    main()
