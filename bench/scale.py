"""Scale: N simulated watches (1 Hz vitals each, plus alerts with 10 s strips) into one edge hub over Mosquitto.

For each N the edge runs in its own process (`cardiomesh edge`, metrics on GET /metrics), the watches' vitals
come from several loader processes (each many watches over one connection: the edge's work is per message,
not per connection), and probe watches on their own connections send alerts with strips and time alert →
first response command. Recorded per N: vitals throughput the edge accepted, alert → response p50/p99, edge
CPU and RSS, broker CPU, and what was lost (vitals the edge never accepted; alerts never answered).

Everything shares this machine's 2 cores — loaders, broker, edge and probes — so the knee is where the edge
stops keeping up *here*; the ratios are the point, not the absolute rate.

    .venv/bin/python bench/scale.py [--levels 100,1000,2000,5000] [--seconds 20] [--loaders 2]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from itertools import pairwise
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import RESULTS, first_command_clock, free_port, percentile, project_mosquitto, write_result

PROBES = 20
PROBE_RATE_S = 5.0  # alerts per second across the probe watches (realistic alert rates are far lower)


def _load(port: int, site: str, first: int, last: int, seconds: float) -> None:
    """Loader process: watches first..last-1 each send 1 Hz vitals for `seconds`; prints the count sent."""
    from shared import topics
    from shared.messages import VitalsMessage, VitalsPayload, encode
    from shared.transport import MqttTransport

    client = MqttTransport(client_id=f"{site}-load-{first}", port=port, clean_session=True)
    client.start(wait_s=10)
    n = last - first
    sent, start = 0, time.perf_counter()
    seq = int(time.time() * 1_000_000)
    for tick in range(int(seconds)):
        for i in range(n):  # spread each second's messages evenly over the second
            due = start + tick + i / n
            delay = due - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            device = f"watch-{first + i}"
            seq += 1
            message = VitalsMessage(source=device, patient_id=f"pt-{first + i}", seq=seq,
                                    payload=VitalsPayload(hr_bpm=60.0 + (i % 40), n_beats=10, window_s=10.0,
                                                          stream_s=float(tick)))
            client.publish(topics.vitals(site, f"pt-{first + i}", device), encode(message), qos=0)
            sent += 1
    client.stop()
    print(json.dumps({"sent": sent, "seconds": round(time.perf_counter() - start, 2)}), flush=True)


def _scrape(port: int) -> dict[str, float]:
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    found = {}
    for line in text.splitlines():
        if line.startswith("cardiomesh_events_total"):
            name = line.split('name="')[1].split('"')[0]
            found[name] = float(line.rsplit(" ", 1)[1])
        elif line.startswith("cardiomesh_latency_ms_bucket"):  # cumulative counts: "hist:<name>:<le>"
            name, le = line.split('name="')[1].split('"')[0], line.split('le="')[1].split('"')[0]
            found[f"hist:{name}:{le}"] = float(line.rsplit(" ", 1)[1])
    return found


def _edge_quantile(counters: dict[str, float], name: str, q: float) -> float | None:
    """The bucket bound holding quantile q of what the edge timed during the run (from counter deltas)."""
    buckets = sorted(((float(k.rsplit(":", 1)[1]), v) for k, v in counters.items()
                      if k.startswith(f"hist:{name}:")), key=lambda b: b[0])
    total = buckets[-1][1] if buckets else 0
    if not total:
        return None
    return next(bound for bound, running in buckets if running >= q * total)


def _broker_process(port: int) -> Any:
    import psutil

    for conn in psutil.net_connections(kind="tcp"):
        if conn.laddr and conn.laddr.port == port and conn.status == psutil.CONN_LISTEN and conn.pid:
            return psutil.Process(conn.pid)
    return None


def level(watches: int, seconds: float, loaders: int, *, probe_rate: float = PROBE_RATE_S,
          env_extra: dict[str, str] | None = None) -> dict[str, object]:
    """One run at `watches`; the row also carries the raw latencies (`_latencies_ms`) and the edge's counter
    deltas (`_counters`) for callers that pool runs (bench/qos.py); `write_result` callers drop them."""
    import psutil

    from shared import topics
    from shared.messages import encode
    from shared.transport import MqttTransport
    from tests.factories import alert as make_alert
    from tests.factories import ecg_strip

    with project_mosquitto() as (port, _note), tempfile.TemporaryDirectory() as state:
        site = f"scale{uuid.uuid4().hex[:6]}"
        metrics_port = free_port()
        env = dict(os.environ, CARDIOMESH_MQTT_URL=f"mqtt://127.0.0.1:{port}", CARDIOMESH_SITE=site,
                   CARDIOMESH_STATE_DIR=state, CARDIOMESH_LOG_LEVEL="WARNING", CARDIOMESH_ANALYSIS_TIMEOUT_S="1",
                   CARDIOMESH_EDGE_ANALYSIS="false", CARDIOMESH_METRICS_PORT=str(metrics_port), **(env_extra or {}))
        edge = subprocess.Popen([sys.executable, "-m", "cardiomesh", "edge"], env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        got: dict[str, float] = {}
        sent: dict[str, float] = {}
        lock = threading.Lock()
        probes = []
        try:
            for i in range(PROBES):
                device, patient = f"probe-{i}", f"pt-probe{i}"
                client = MqttTransport(client_id=f"{site}-{device}", port=port, clean_session=True)
                client.subscribe(topics.cmd(site, patient, device), first_command_clock(got, lock), qos=1)
                client.start(wait_s=10)
                probes.append((client, device, patient))
            time.sleep(2.5)  # the edge subscribes and serves /metrics
            if edge.poll() is not None:
                raise RuntimeError(f"edge died: {edge.stderr.read().decode()[-2000:] if edge.stderr else ''}")
            edge_ps, broker_ps = psutil.Process(edge.pid), _broker_process(port)
            for p in (edge_ps, broker_ps):
                if p is not None:
                    p.cpu_percent(None)
            before = _scrape(metrics_port)
            bounds = [round(watches * k / loaders) for k in range(loaders + 1)]
            procs = [subprocess.Popen([sys.executable, __file__, "--load", str(port), site, str(a), str(b),
                                       str(seconds)], stdout=subprocess.PIPE, text=True)
                     for a, b in pairwise(bounds) if b > a]
            strip = ecg_strip(10.0)
            started = time.perf_counter()
            n_alerts = int(seconds * probe_rate)
            for k in range(n_alerts):
                delay = started + k / probe_rate - time.perf_counter()
                if delay > 0:
                    time.sleep(delay)
                client, device, patient = random.choice(probes)
                message = make_alert(kind="wide_complex_run", device=device, patient=patient, strip=strip)
                payload = encode(message)
                with lock:
                    sent[message.payload.alert_id] = time.perf_counter()
                client.publish(topics.alert(site, patient, device), payload, qos=1)
            loads = [json.loads(p.communicate(timeout=seconds + 60)[0].strip().splitlines()[-1]) for p in procs]
            elapsed = time.perf_counter() - started
            edge_cpu = edge_ps.cpu_percent(None)
            broker_cpu = broker_ps.cpu_percent(None) if broker_ps is not None else float("nan")
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                with lock:
                    if len(got) >= len(sent):
                        break
                time.sleep(0.1)
            time.sleep(1.0)
            after = _scrape(metrics_port)
            rss_mb = edge_ps.memory_info().rss / 2**20
        finally:
            for client, _, _ in probes:
                client.stop()
            edge.terminate()
            edge.wait(timeout=20)
    vitals_sent = sum(int(load["sent"]) for load in loads)
    deltas = {k: v - before.get(k, 0) for k, v in after.items()}
    accepted = after.get("accepted.vitals", 0) - before.get("accepted.vitals", 0)
    with lock:
        latencies = [(got[a] - t) * 1000 for a, t in sent.items() if a in got]
        unanswered = len([a for a in sent if a not in got])
    return {"watches": watches, "msgs_per_s": round(accepted / elapsed, 1),
            "offered_per_s": round(vitals_sent / elapsed, 1),
            "p50_ms": round(percentile(latencies, 50), 2), "p99_ms": round(percentile(latencies, 99), 2),
            "edge_cpu_pct": round(edge_cpu, 1), "edge_rss_mb": round(rss_mb, 1), "broker_cpu_pct": round(broker_cpu, 1),
            "lost": int(vitals_sent - accepted) + unanswered, "lost_vitals": int(vitals_sent - accepted),
            "unanswered_alerts": unanswered, "alerts": len(sent), "seconds": round(elapsed, 1),
            "edge_handling_p99_ms": _edge_quantile(deltas, "alert_to_response_ms", 0.99),
            "edge_transit_p99_ms": _edge_quantile(deltas, "alert_transit_ms", 0.99),
            "_latencies_ms": latencies, "_counters": deltas}


def plot(rows: list[dict[str, object]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = [int(str(r["watches"])) for r in rows]
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    left.plot(n, [float(str(r["p50_ms"])) for r in rows], "o-", label="p50")
    left.plot(n, [float(str(r["p99_ms"])) for r in rows], "o-", label="p99")
    left.axhline(20, color="grey", ls="--", lw=1, label="20 ms goal (1,000 watches)")
    left.set(xscale="log", yscale="log", xlabel="watches (1 Hz vitals each)", ylabel="alert → response (ms)",
             title="Alert latency under load")
    left.legend()
    right.plot(n, [float(str(r["edge_cpu_pct"])) for r in rows], "o-", label="edge CPU %")
    right.plot(n, [float(str(r["broker_cpu_pct"])) for r in rows], "o-", label="broker CPU %")
    right.plot(n, [100 * float(str(r["msgs_per_s"])) / max(float(str(r["offered_per_s"])), 1) for r in rows], "o-",
               label="vitals accepted / offered %")
    right.set(xscale="log", xlabel="watches", ylabel="%", title="Cost and throughput")
    right.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--load":
        _load(int(sys.argv[2]), sys.argv[3], int(sys.argv[4]), int(sys.argv[5]), float(sys.argv[6]))
        return
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--levels", default="100,1000,2000,5000")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--loaders", type=int, default=2)
    parser.add_argument("--edge-env", action="append", default=[], metavar="KEY=VALUE",
                        help="set for the edge process (an ablation, e.g. CARDIOMESH_EDGE_EMERGENCY_CONNECTION=false)")
    parser.add_argument("--name", default="scale", help="results name (bench/results/<name>.json and .png)")
    args = parser.parse_args()
    extra = dict(kv.split("=", 1) for kv in args.edge_env)
    rows = []
    for watches in [int(x) for x in args.levels.split(",")]:
        row = {k: v for k, v in level(watches, args.seconds, args.loaders, env_extra=extra).items()
               if not k.startswith("_")}
        rows.append(row)
        print(json.dumps(row), flush=True)
    plot(rows, RESULTS / f"{args.name}.png")
    within = [r for r in rows if float(str(r["p99_ms"])) <= 50 and r["lost"] == 0]
    write_result(args.name, rows, [  # type: ignore[arg-type]
        (f"{r['watches']} watches", f"{r['msgs_per_s']}/s of {r['offered_per_s']}/s, p50 {r['p50_ms']} ms, "
         f"p99 {r['p99_ms']} ms, edge {r['edge_cpu_pct']} % CPU {r['edge_rss_mb']} MB, broker "
         f"{r['broker_cpu_pct']} %, lost {r['lost']}") for r in rows] + [
        ("largest N within 50 ms p99, nothing lost", str(max((int(str(r["watches"])) for r in within), default=0))),
        ("plot", f"bench/results/{args.name}.png")] + ([("edge environment", str(extra))] if extra else []))


if __name__ == "__main__":
    main()
