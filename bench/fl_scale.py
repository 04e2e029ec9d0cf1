"""Federated learning at scale: ONE real round of 1,000 simulated watches over Mosquitto, timed against its floor.

Every party is the product's own code, and talks only over MQTT:
- the coordinator (`cloud_expert/coordinator/coordinator.py`), in this process: it alone holds the Paillier
  private key and the Ed25519 signing key; it announces the round, decrypts only a sum of >= k updates, and
  publishes the signed model v1 (full and delta, retained);
- one edge hub's blind aggregator (`edge_hub/aggregation.py` EdgeAggregator), in a process of its own: the
  public key only; it adds each watch's packed Paillier ciphertexts as the update completes and forwards the sum;
- `--processes` watch processes (default one per 50 watches) with `--watches`/P watches each, every watch its own
  MQTT connection (`watch_agent/trainer.py` FlClient + `watch_agent/learner.py` BeatNetLearner). Each watch
  holds a contiguous stretch of one MIT-BIH DS1 record's beats (the records' beats cut into N wearer-like
  slices, the watches shared among the records in proportion to their beats); it trains the BeatNet from the
  announced model, clips, adds its share of the DP noise (Gaussian, total epsilon `--dp-epsilon` over
  `--dp-rounds`), packs, encrypts and sends.

Before the round, and not in its time (reported apart): the processes start, every watch precomputes its
encryption randomness (`FlClient.prepare`: the offline phase a real watch runs in idle time) ->
`offline_precompute_s`, then connects and installs model v0; torch is warmed up once per process.

What is timed (wall clock, from the announcement):
  round_s            the round announced -> the signed v1 published by the coordinator
  round_installed_s  the round announced -> the last watch has verified and installed v1
  floor_s            sum over the watches of their own CPU seconds for training + encoding/encryption
                     (SentUpdate.train_cpu_s + encode_cpu_s, thread time: the wall seconds would count the
                     turns the watches of one process take at the training lock) / os.cpu_count(): the least
                     time the clients' own work needs on this machine.
Acceptance (issue 15): round_s <= 2 x floor_s. Everything shares this machine's cores (watches, edge, broker,
coordinator, and whatever else runs: the load average at the start is recorded).

    .venv/bin/python bench/fl_scale.py                     # 1,000 watches, 20 processes -> bench/results/fl_scale.json
    .venv/bin/python bench/fl_scale.py --watches 40 --processes 2 --json /tmp/fl_scale.json   # a quick look
    .venv/bin/python bench/fl_scale.py --private-broker    # a Mosquitto of its own, the deployment's config

At 1,000 watches most of the run is the offline precompute (about 1 s of one core per watch here); the round
itself takes tens of seconds.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import RESULTS, ROOT, print_table, project_mosquitto
from shared.transport import MqttTransport

DEFAULT_JSON = RESULTS / "fl_scale.json"
WATCHES_PER_PROCESS = 50
UPDATE_TOPIC = "/update/"


class MeteredTransport(MqttTransport):
    """The product's MQTT transport, noting when and how many bytes each publish hands to the broker, and when the
    connection was lost (the broker's keepalive, say)."""

    def __init__(self, **kwargs: Any) -> None:
        self.disconnects: list[tuple[float, str]] = []  # paho calls back the bound method set in __init__
        super().__init__(**kwargs)
        self.published: list[tuple[float, str, int]] = []

    def _on_disconnect(self, client: Any, userdata: object, flags: object, reason: object,
                       properties: object) -> None:
        self.disconnects.append((time.time(), str(reason)))
        super()._on_disconnect(client, userdata, flags, reason, properties)

    def publish(self, topic: str, payload: bytes, *, qos: int = 1, retain: bool = False) -> None:
        called = time.time()
        super().publish(topic, payload, qos=qos, retain=retain)
        self.published.append((called, topic, len(payload)))


# -- the watches' data --------------------------------------------------------------------------------------------


def wearer_slices(lengths: dict[str, int], watches: int) -> list[tuple[str, int, int]]:
    """(record, first beat, end beat) for each watch: every record's beats cut into contiguous stretches, the
    watches shared among the records in proportion to their beats (largest remainder), so each watch holds
    about the same number of beats, all from one wearer, in the order they were recorded."""
    total = sum(lengths.values())
    if watches < 1 or total < watches:
        raise SystemExit(f"cannot give {watches} watches a beat each from {total} beats")
    quotas = {r: watches * n / total for r, n in lengths.items()}
    shares = {r: int(q) for r, q in quotas.items()}
    for r in sorted(quotas, key=lambda r: (shares[r] - quotas[r], r))[: watches - sum(shares.values())]:
        shares[r] += 1
    out = []
    for record in sorted(lengths):
        bounds = np.linspace(0, lengths[record], shares[record] + 1).round().astype(int)
        out += [(record, int(a), int(b)) for a, b in itertools.pairwise(bounds)]
    return out


def load_beats(records: list[str] | None, seconds: float | None) -> dict[str, Any]:
    """DS1 (or `records`) as BeatSets: whole records from the beat cache (built under var/ on first use, a few
    minutes), or only each record's first `seconds` (no cache: quick runs and tests)."""
    from bench._common import load_mitdb_split
    from shared.model.data import record_beats
    from shared.settings import Settings

    if records is None and seconds is None:
        return load_mitdb_split("DS1")
    mitdb = Settings().mitdb_dir
    if mitdb is None:
        raise SystemExit("MIT-BIH not found: set CARDIOMESH_DATA_DIR")
    from shared.model.data import DS1, load_records

    names = records or list(DS1)
    if seconds is None:
        return load_records([mitdb / r for r in names])
    return {r: record_beats(mitdb / r, end_s=seconds) for r in names}


# -- the watch processes ------------------------------------------------------------------------------------------


class _Status:
    """A child's counts, printed as one JSON line whenever they change (the parent's progress line reads them)."""

    def __init__(self, out: IO[str]) -> None:
        self.out = out
        self.lock = threading.Lock()

    def say(self, **fields: Any) -> None:
        with self.lock:
            self.out.write(json.dumps(fields) + "\n")
            self.out.flush()


def _wait_for_stop(status: _Status, counts: Any, on_mark: Any = None) -> None:
    """Report `counts()` twice a second until the parent writes "stop" (or closes stdin); a "mark" line calls
    `on_mark` (the round is about to be announced)."""
    stop = threading.Event()

    def read() -> None:
        for line in sys.stdin:
            if line.strip() == "mark" and on_mark is not None:
                on_mark()
            elif line.strip() == "stop":
                break
        stop.set()

    threading.Thread(target=read, daemon=True).start()
    last = None
    while not stop.wait(0.5):
        now = counts()
        if now != last:
            status.say(**now)
            last = now


class CpuByThread:
    """This process's CPU seconds between `mark()` and `read()`, by kind of thread: the connections' network threads
    (paho), their dispatchers, the rest still alive, and the threads that ended in between (the watches' training
    threads: one per watch per round, from the announcement to its update sent)."""

    def __init__(self) -> None:
        self._at_mark: tuple[float, dict[int, float]] | None = None

    @staticmethod
    def _now() -> tuple[float, dict[int, float]]:
        import resource

        usage = resource.getrusage(resource.RUSAGE_SELF)
        threads = {}
        for thread in threading.enumerate():
            try:
                assert thread.ident is not None
                threads[thread.ident] = time.clock_gettime(time.pthread_getcpuclockid(thread.ident))
            except (AssertionError, OSError, ProcessLookupError):
                pass  # ended meanwhile: it counts with the ended ones
        return usage.ru_utime + usage.ru_stime, threads

    def mark(self) -> None:
        self._at_mark = self._now()

    def read(self) -> dict[str, float]:
        if self._at_mark is None:
            return {}
        (before, threads_before), (after, threads_after) = self._at_mark, self._now()
        names = {t.ident: t.name for t in threading.enumerate()}
        out = {"process": after - before, "network": 0.0, "dispatch": 0.0, "other_live": 0.0}
        for ident, cpu in threads_after.items():
            name = names.get(ident, "")
            kind = ("network" if name.startswith("paho-mqtt-client-") else "dispatch" if name.startswith("mqtt-")
                    else "other_live")
            out[kind] += cpu - threads_before.get(ident, 0.0)
        out["ended_threads"] = out["process"] - out["network"] - out["dispatch"] - out["other_live"]
        return {k: round(v, 3) for k, v in out.items()}


def watch_process(job: dict[str, Any]) -> None:
    """Host this process's watches until told to stop, then write what each did to `job['out']`."""
    import torch
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    from shared.messages import RoundPayload
    from shared.model.data import BeatSet
    from shared.model.net import BeatNet
    from shared.model.train import train_local
    from shared.settings import Settings
    from watch_agent.learner import BeatNetLearner
    from watch_agent.trainer import FlClient

    torch.set_num_threads(1)  # batches of 32 on a tiny model; several processes share the cores
    status = _Status(sys.stdout)
    settings = Settings(mqtt_url=job["mqtt_url"], site=job["site"], state_dir=Path(job["state_dir"]))
    verify_key = Ed25519PublicKey.from_public_bytes(bytes.fromhex(job["verify_key"]))
    spec = RoundPayload.model_validate_json(job["spec"])
    with np.load(job["data"]) as z:
        arrays = {k: z[k] for k in z.files}
    clients: list[FlClient] = []
    transports: list[MeteredTransport] = []
    installs: dict[str, list[tuple[int, float]]] = {}
    for k, (device, seed, record) in enumerate(job["devices"]):
        index = np.flatnonzero(arrays["owner"] == k)
        beats = BeatSet(arrays["X_wave"][index], arrays["X_rr"][index], arrays["y"][index], arrays["sample"][index],
                        record)
        transport = MeteredTransport(client_id=f"{job['federation']}-{device}", host=settings.mqtt_host,
                                     port=settings.mqtt_port, clean_session=True, keepalive_s=job["keepalive_s"])
        holder: list[FlClient] = []
        installs[device] = []

        def installed(_vector: np.ndarray, holder: list[FlClient] = holder, device: str = device) -> None:
            installs[device].append((holder[0].version or 0, time.time()))

        client = FlClient(settings, transport, device_id=device, learner=BeatNetLearner(beats, seed=seed),
                          verify_key=verify_key, seed=seed, federation=job["federation"], after_install=installed)
        holder.append(client)
        clients.append(client)
        transports.append(transport)
    # the offline phase first, before any connection: hundreds of connections' network threads, one process, one
    # interpreter lock, and a core shared four ways starved their keepalives in a first run (see --keepalive)
    prepared: list[tuple[float, float]] = []  # (wall, CPU) seconds of each watch's offline phase
    started = time.perf_counter()
    for k, client in enumerate(clients):
        cpu_started = time.thread_time()
        wall = client.prepare(spec)
        prepared.append((wall, time.thread_time() - cpu_started))
        if k % 10 == 9:
            status.say(prepared=k + 1)
    precompute_s = time.perf_counter() - started
    status.say(prepared=len(clients), precompute_s=round(precompute_s, 3))
    for k, (client, transport) in enumerate(zip(clients, transports, strict=True)):
        client.start()
        transport.start(wait_s=60)
        if k % 25 == 24:
            status.say(connected=k + 1)
    for transport in transports:
        if not transport.wait_subscribed(60):
            raise SystemExit(f"{transport.client_id}: subscriptions not acknowledged")
    status.say(connected=len(clients))
    deadline = time.monotonic() + 120
    while any(c.version != 0 for c in clients) and time.monotonic() < deadline:
        time.sleep(0.1)
    missing = sum(c.version != 0 for c in clients)
    if missing:
        raise SystemExit(f"{missing} watches never installed model v0")
    # torch's first training in a process costs about a second more than the next ones: pay it here, once
    first = clients[0].learner
    assert isinstance(first, BeatNetLearner)
    train_local(BeatNet(), first.data, epochs=1, batch_size=32, class_weighting="sqrt", augment=True)
    baseline = [dict(c.counters.snapshot()) for c in clients]
    status.say(ready=True, connected=len(clients), installed=len(clients))

    def counts() -> dict[str, int]:
        return {"sent": sum(len(c.sent) for c in clients), "updated": sum((c.version or 0) >= 1 for c in clients),
                "errors": sum(c.counters.get("fl.client_errors") for c in clients)}

    cpu = CpuByThread()
    _wait_for_stop(status, counts, cpu.mark)
    cpu_by_thread = cpu.read()
    for client in clients:
        client.stop(timeout_s=60)
    watches = []
    for client, transport, before, seconds in zip(clients, transports, baseline, prepared, strict=True):
        after = client.counters.snapshot()
        learner = client.learner
        assert isinstance(learner, BeatNetLearner)
        updates = [(t, n) for t, topic, n in transport.published if UPDATE_TOPIC in topic]
        watches.append({
            "device": client.device_id, "record": learner.data.record, "beats": len(learner.data),
            "sent": [asdict(s) for s in client.sent], "update_sent_at": updates[-1][0] if updates else None,
            "update_wire_bytes": sum(n for _, n in updates), "installs": installs[client.device_id],
            "precompute_s": seconds[0], "precompute_cpu_s": seconds[1],
            "disconnects": list(transport.disconnects),  # before the orderly stops
            "round_counters": {k: v - before.get(k, 0) for k, v in after.items() if v != before.get(k, 0)},
        })
    threads = [threading.Thread(target=t.stop) for t in transports]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    Path(job["out"]).write_text(json.dumps({"watches": watches, "precompute_s": precompute_s,
                                            "cpu_by_thread": cpu_by_thread}))
    status.say(done=True)


def edge_process(job: dict[str, Any]) -> None:
    """One edge hub's blind aggregator, its own process and connection, until told to stop."""
    from edge_hub.aggregation import EdgeAggregator
    from shared.fl_codec import codec_for_round
    from shared.settings import Settings

    status = _Status(sys.stdout)
    settings = Settings(mqtt_url=job["mqtt_url"], site=job["site"], state_dir=Path(job["state_dir"]))
    transport = MeteredTransport(client_id=f"{job['federation']}-edge", host=settings.mqtt_host,
                                 port=settings.mqtt_port, clean_session=True)
    edge = EdgeAggregator(settings, transport, edge_id="edge-1", codec_factory=codec_for_round,
                          federation=job["federation"])
    edge.start()
    transport.start(wait_s=60)
    if not transport.wait_subscribed(60):
        raise SystemExit("edge: subscriptions not acknowledged")
    status.say(ready=True)
    _wait_for_stop(status, lambda: {"accepted": edge.counters.get("fl.accepted_update")})
    edge.stop()
    transport.stop()
    sums = [(t, n) for t, topic, n in transport.published if "/aggregate/" in topic]
    Path(job["out"]).write_text(json.dumps({
        "counters": edge.counters.snapshot(), "aggregate_bytes": edge.bytes_out,
        "aggregate_wire_bytes": sum(n for _, n in sums), "aggregate_sent_at": sums[-1][0] if sums else None}))
    status.say(done=True)


def _exit_with_parent() -> None:
    """A watch or edge process ends when the bench that started it is gone (killed by a timeout, say), instead of
    precomputing and connecting for minutes with nobody to report to."""
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(3)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


# -- the parent: coordinator, processes, progress, the timed round ------------------------------------------------


class Child:
    """A watch or edge process: its JSON status lines, merged into `state`, read by a thread."""

    def __init__(self, name: str, role: str, job: dict[str, Any], job_path: Path) -> None:
        job_path.write_text(json.dumps(job))
        self.name, self.out = name, Path(job["out"])
        self.state: dict[str, Any] = {}
        self.proc = subprocess.Popen([sys.executable, __file__, "--role", role, "--job", str(job_path)],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=ROOT)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            try:
                self.state.update(json.loads(line))
            except json.JSONDecodeError:
                print(f"{self.name}: {line.rstrip()}", file=sys.stderr)

    def check(self) -> None:
        if self.proc.poll() is not None and not self.state.get("done"):
            raise SystemExit(f"{self.name} exited with {self.proc.returncode} (its stderr is above)")

    def mark(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write("mark\n")
        self.proc.stdin.flush()

    def stop(self, timeout_s: float = 300) -> dict[str, Any]:
        assert self.proc.stdin is not None
        try:
            self.proc.stdin.write("stop\n")
            self.proc.stdin.close()
        except BrokenPipeError:
            pass
        self.proc.wait(timeout=timeout_s)
        self._reader.join(timeout=5)
        self.check()
        return dict(json.loads(self.out.read_text()))

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=30)


class Progress:
    """One line on stderr, redrawn in place on a terminal, every 10 s otherwise."""

    def __init__(self, watch_children: list[Child], total: int) -> None:
        self.children, self.total = watch_children, total
        self.phase = "starting"
        self.started = time.perf_counter()
        self._stop = threading.Event()
        self._tty = sys.stderr.isatty()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def sum(self, key: str) -> int:
        return sum(int(c.state.get(key, 0)) for c in self.children)

    def line(self) -> str:
        return (f"[{time.perf_counter() - self.started:7.1f} s] {self.phase:<22} connected {self.sum('connected')}"
                f"/{self.total}  v0 installed {self.sum('installed')}  precomputed {self.sum('prepared')}  "
                f"updates sent {self.sum('sent')}  v1 installed {self.sum('updated')}")

    def _loop(self) -> None:
        every = 0.5 if self._tty else 10.0
        while not self._stop.wait(every):
            print(("\r" if self._tty else "") + self.line(), end="" if self._tty else "\n", file=sys.stderr,
                  flush=True)

    def __enter__(self) -> Progress:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        print(("\r" if self._tty else "") + self.line(), file=sys.stderr, flush=True)


def _wait(children: list[Child], done: Any, timeout_s: float, what: str, *, fatal: bool = True) -> bool:
    """Until `done()`; past the timeout, exit with the reason (or, not `fatal`, say so and return False)."""
    deadline = time.monotonic() + timeout_s
    while not done():
        for child in children:
            child.check()
        if time.monotonic() > deadline:
            if fatal:
                raise SystemExit(f"timed out after {timeout_s:.0f} s waiting for {what}")
            print(f"\ntimed out after {timeout_s:.0f} s waiting for {what}: recorded as it is", file=sys.stderr)
            return False
        time.sleep(0.1)
    return True


def _cpu_s(processes: list[Any]) -> float:
    import psutil

    total = 0.0
    for p in processes:
        try:
            times = p.cpu_times()
            total += times.user + times.system
        except psutil.Error:  # a process that is gone counts nothing more
            pass
    return total


def _machine_busy_s() -> float:
    """CPU seconds every process on the machine has used (all cores): the others' share is this minus ours."""
    import psutil

    t = psutil.cpu_times()
    return float(sum(t) - t.idle - getattr(t, "iowait", 0.0))


def _commit() -> str:
    try:
        head = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                              check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT,
                               capture_output=True, text=True, check=True).stdout.strip()
        return head + ("+dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


@contextmanager
def _broker(private: bool, url: str | None) -> Iterator[tuple[str, str]]:
    from shared.settings import Settings
    from shared.transport.mqtt import broker_answers

    if private:
        with project_mosquitto() as (port, note):
            yield f"mqtt://127.0.0.1:{port}", note
        return
    settings = Settings() if url is None else Settings(mqtt_url=url)
    if not broker_answers(settings.mqtt_host, settings.mqtt_port):
        raise SystemExit(f"no MQTT broker answers at {settings.mqtt_url} (start Mosquitto, or use --private-broker)")
    yield settings.mqtt_url, f"the machine's Mosquitto at {settings.mqtt_url}"


def run(args: argparse.Namespace) -> dict[str, Any]:
    import psutil
    import torch

    from bench.scale import _broker_process
    from cardiomesh.fl import FlOptions, calibrate_dp
    from cloud_expert.coordinator.coordinator import Coordinator, RoundConfig
    from cloud_expert.coordinator.keys import load_or_create
    from shared.fl_codec import PackedPaillierCodec, codec_for_round
    from shared.model.net import BeatNet
    from shared.model.serialize import parameters_vector
    from shared.settings import Settings

    n = args.watches
    processes = max(1, min(args.processes or max(2, round(n / WATCHES_PER_PROCESS)), n))
    load_at_start = os.getloadavg()
    sets = load_beats(args.records.split(",") if args.records else None, args.seconds_per_record)
    slices = wearer_slices({r: len(s) for r, s in sets.items()}, n)
    devices = [f"watch-{i:04d}" for i in range(n)]
    run_id = f"{os.getpid()}-{int(time.time()) % 100000}"
    site, federation = f"flscale-{run_id}", f"scale-{run_id}"
    broker = _broker(args.private_broker, args.mqtt_url)
    with broker as (mqtt_url, broker_note), tempfile.TemporaryDirectory(prefix="fl_scale_") as tmp_name:
        tmp = Path(tmp_name)
        settings = Settings(mqtt_url=mqtt_url, site=site, state_dir=tmp / "state")
        keys = load_or_create(tmp / "keys")
        torch.manual_seed(args.seed)
        initial = parameters_vector(BeatNet())
        k = args.min_clients or max(2, math.ceil(0.75 * n))
        dp, _spent, quant_range = calibrate_dp(
            FlOptions(rounds=args.dp_rounds, dp_epsilon=args.dp_epsilon, clip_norm=args.clip), k)
        config = RoundConfig(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, clip_norm=args.clip,
                             encrypt=True, max_clients=max(64, n), min_clients=k, round_timeout_s=args.timeout)
        coord_transport = MeteredTransport(client_id=f"{federation}-coordinator", host=settings.mqtt_host,
                                           port=settings.mqtt_port, clean_session=True)
        coordinator = Coordinator(settings, coord_transport, keys=keys, initial=initial, config=config,
                                  participants=[f"{site}/{d}" for d in devices], dp=dp, quant_range=quant_range,
                                  federation=federation)
        coordinator.start()
        coord_transport.start(wait_s=30)
        coord_transport.wait_subscribed(30)
        coordinator.publish_model()  # v0, retained: each watch installs it as it connects
        spec = coordinator.build_spec(0)  # what the watches precompute against (the round's key and packing)
        codec = codec_for_round(spec)
        assert isinstance(codec, PackedPaillierCodec)
        common = {"mqtt_url": mqtt_url, "site": site, "federation": federation, "state_dir": str(tmp / "state"),
                  "keepalive_s": args.keepalive,
                  "verify_key": keys.verify_key_bytes().hex(), "spec": spec.model_dump_json()}
        setup_started = time.perf_counter()
        edge = Child("edge", "edge", {**common, "out": str(tmp / "edge.json")}, tmp / "edge-job.json")
        children: list[Child] = []
        try:
            _wait([edge], lambda: edge.state.get("ready"), 120, "the edge to subscribe")
            bounds = np.linspace(0, n, processes + 1).round().astype(int)
            for p in range(processes):
                mine = list(range(bounds[p], bounds[p + 1]))
                parts = [sets[slices[i][0]].subset(np.arange(slices[i][1], slices[i][2])) for i in mine]
                np.savez(tmp / f"watches-{p}.npz", X_wave=np.concatenate([b.X_wave for b in parts]),
                         X_rr=np.concatenate([b.X_rr for b in parts]), y=np.concatenate([b.y for b in parts]),
                         sample=np.concatenate([b.sample for b in parts]),
                         owner=np.repeat(np.arange(len(parts)), [len(b) for b in parts]))
                job = {**common, "data": str(tmp / f"watches-{p}.npz"), "out": str(tmp / f"watches-{p}.json"),
                       "devices": [[devices[i], args.seed + i, slices[i][0]] for i in mine]}
                children.append(Child(f"watch process {p}", "watches", job, tmp / f"watches-{p}-job.json"))
            with Progress(children, n) as progress:
                progress.phase = "precompute, connect, v0"
                _wait([*children, edge], lambda: all(c.state.get("ready") for c in children), args.setup_timeout,
                      "the watches to precompute, connect and install v0")
                setup_s = time.perf_counter() - setup_started
                precompute_s = max(float(c.state["precompute_s"]) for c in children)

                ps_watches = [psutil.Process(c.proc.pid) for c in children]
                ps_edge, ps_self = psutil.Process(edge.proc.pid), psutil.Process()
                ps_broker = _broker_process(settings.mqtt_port)
                groups = {"watches": ps_watches, "edge": [ps_edge], "coordinator": [ps_self],
                          "broker": [ps_broker] if ps_broker is not None else []}
                for child in children:
                    child.mark()
                time.sleep(0.5)  # each watch process notes its threads' CPU times
                load_at_round = os.getloadavg()
                cpu_before = {g: _cpu_s(ps) for g, ps in groups.items()} | {"machine": _machine_busy_s()}
                progress.phase = "round"
                announced = time.time()
                record = coordinator.run_round(0)
                published = time.time()
                cpu_published = {g: _cpu_s(ps) for g, ps in groups.items()} | {"machine": _machine_busy_s()}
                progress.phase = "install v1"
                _wait([*children, edge], lambda: progress.sum("updated") >= n, args.install_timeout,
                      "every watch to install v1", fatal=False)
                installed_wait = time.time()
                cpu_installed = {g: _cpu_s(ps) for g, ps in groups.items()} | {"machine": _machine_busy_s()}
            outs = [c.stop() for c in children]
            edge_out = edge.stop()
        finally:
            for child in [*children, edge]:
                child.kill()
            coordinator.retire()  # clears the federation's retained round and models on the broker
            coord_transport.stop()

    watches = [w for out in outs for w in out["watches"]]
    sent = [w["sent"][0] for w in watches if w["sent"]]
    train_cpu, encode_cpu = sum(s["train_cpu_s"] for s in sent), sum(s["encode_cpu_s"] for s in sent)
    cores = os.cpu_count() or 1
    floor_s = (train_cpu + encode_cpu) / cores
    # the coordinator hands v1 to the broker: the full model, then its delta (what the watches read), each noted as
    # its publish is called (run_round itself returns a moment later, after its bookkeeping)
    in_round = [(t, topic, b) for t, topic, b in coord_transport.published if announced <= t <= published]
    published_at = [t for t, topic, _ in in_round if "/model" in topic]
    round_s = (max(published_at) if published_at else published) - announced
    v1_at = [t for w in watches for v, t in w["installs"] if v >= 1]
    round_installed_s = max(v1_at) - announced if len(v1_at) == n else None
    sent_at = [w["update_sent_at"] for w in watches if w["update_sent_at"] is not None]
    announcement = [b for _, topic, b in in_round if topic.endswith("/round")]
    models = [(topic, b) for _, topic, b in in_round if "/model" in topic]
    beats = [w["beats"] for w in watches]
    counters = edge_out["counters"]

    def since(t: float | None) -> float | None:
        return None if t is None else round(t - announced, 3)

    return {
        "watches": n,
        "round_s": round(round_s, 3),
        "round_installed_s": None if round_installed_s is None else round(round_installed_s, 3),
        "floor_s": round(floor_s, 3),
        "round_over_floor_x": round(round_s / floor_s, 2) if floor_s else None,
        "installed_over_floor_x": round(round_installed_s / floor_s, 2) if floor_s and round_installed_s else None,
        "acceptance_round_within_2x_floor": bool(floor_s and round_s <= 2 * floor_s),
        "bytes": {
            "updates": sum(s["bytes"] for s in sent),
            "updates_wire": sum(w["update_wire_bytes"] for w in watches),
            "update_per_watch": sent[0]["bytes"] if sent else None,
            "aggregate": record.aggregate_bytes,
            "aggregate_wire": edge_out["aggregate_wire_bytes"],
            "announcement_wire": announcement[0] if announcement else None,
            "announcement_wire_fanout": (announcement[0] * n) if announcement else None,
            "model_published_wire": {topic.rsplit("/", 1)[1]: b for topic, b in models},
            "model_down_wire": sum(v for w in watches for k_, v in w["round_counters"].items()
                                   if k_.startswith("fl.model_bytes_received.")),
        },
        "floor_on_cores_left_s": _floor_on_cores_left(train_cpu + encode_cpu, cores, round_s,
                                                      cpu_published["machine"] - cpu_before["machine"]
                                                      - sum(cpu_published[g] - cpu_before[g] for g in groups)),
        "edge_cpu_s": round(cpu_published["edge"] - cpu_before["edge"], 3),
        "cpu_s_in_round": _cpu_use(cpu_before, cpu_published, cores, round_s),
        "cpu_s_to_installed": _cpu_use(cpu_before, cpu_installed, cores, installed_wait - announced),
        "watch_processes_cpu_s": _watch_cpu(outs, train_cpu + encode_cpu),
        "broker_process_found": ps_broker is not None,
        "floor": {
            "definition": "sum over watches of SentUpdate.train_cpu_s + encode_cpu_s (thread CPU time of the "
                          "watch's training and its clip + noise + pack + Paillier encryption) / cores",
            "cpu_sum_s": round(train_cpu + encode_cpu, 3), "train_cpu_sum_s": round(train_cpu, 3),
            "encode_cpu_sum_s": round(encode_cpu, 3), "cores": cores,
            "train_wall_sum_s": round(sum(s["train_s"] for s in sent), 3),
            "encode_wall_sum_s": round(sum(s["encode_s"] for s in sent), 3),
            "wall_note": "the wall sums count each watch's wait for its process's training lock and for the cores",
            "train_cpu_per_watch_median_s": round(statistics.median(s["train_cpu_s"] for s in sent), 4) if sent
            else None,
            "encode_cpu_per_watch_median_s": round(statistics.median(s["encode_cpu_s"] for s in sent), 4) if sent
            else None,
        },
        "timeline_s": {
            "first_update_sent": since(min(sent_at, default=None)),
            "last_update_sent": since(max(sent_at, default=None)),
            "aggregate_sent": since(edge_out["aggregate_sent_at"]),
            "model_published": round(round_s, 3),
            "first_v1_installed": since(min(v1_at, default=None)),
            "last_v1_installed": since(max(v1_at, default=None)),
            "waited_for_installs_until": since(installed_wait),
        },
        "clients": {
            "selected": n, "reported": record.clients, "dropped": n - record.clients, "status": record.status,
            "k": k, "updates_sent": len(sent), "edge_accepted": counters.get("fl.accepted_update", 0),
            "edge_rejected": {k_: v for k_, v in counters.items() if k_.startswith("fl.rejected_")},
            "duplicates": counters.get("fl.duplicate_update", 0),
            "client_errors": sum(w["round_counters"].get("fl.client_errors", 0) for w in watches),
            "installed_v1": len(v1_at),
            "disconnects": sum(len(w["disconnects"]) for w in watches),
            "disconnects_in_round": sum(announced <= t <= installed_wait for w in watches for t, _ in w["disconnects"]),
            "watches_disconnected": sum(bool(w["disconnects"]) for w in watches),
            "keepalive_s": args.keepalive,
        },
        "model_published": record.status == "ok" and coordinator.version == 1,
        "offline_precompute_s": round(precompute_s, 3),
        "offline_precompute_cpu_sum_s": round(sum(w["precompute_cpu_s"] for w in watches), 3),
        "offline_precompute_wall_sum_s": round(sum(w["precompute_s"] for w in watches), 3),
        "offline_note": "before the announcement, not in round_s: every watch's FlClient.prepare (its r^n values "
                        "for this key), the processes in parallel; a real watch does it in idle time. "
                        "offline_precompute_s: wall time of the phase; *_cpu_sum_s: the watches' CPU seconds; "
                        "*_wall_sum_s: their prepare() wall seconds added up (they overlap, and wait for the cores)",
        "setup_s": round(setup_s, 1),
        "load_avg_at_start": [round(x, 2) for x in load_at_start],
        "load_avg_at_round": [round(x, 2) for x in load_at_round],
        "processes": processes,
        "connections": {"watches": n, "note": "one MQTT connection per watch, plus the edge's and the coordinator's"},
        "broker": broker_note,
        "config": {
            "epochs": args.epochs, "batch_size": args.batch_size, "lr": args.lr, "clip_norm": args.clip,
            "dp": {"mechanism": dp.mechanism, "total_epsilon": args.dp_epsilon, "over_rounds": args.dp_rounds,
                   "delta": dp.delta, "noise_multiplier": round(dp.noise_scale / args.clip, 4)},
            "params": int(initial.size), "paillier_bits": keys.paillier.public_key.bits,
            "quant_bits": config.quant_bits, "max_clients": config.max_clients,
            "ciphertexts_per_update": codec.ciphertexts_per_update, "chunk_bytes": config.chunk_bytes,
            "round_timeout_s": args.timeout,
        },
        "data": {
            "source": "MIT-BIH DS1" if not args.records else f"MIT-BIH records {args.records}",
            "seconds_per_record": args.seconds_per_record, "records": len(sets), "beats": sum(beats),
            "beats_per_watch": {"min": min(beats), "median": statistics.median(beats), "max": max(beats)},
            "slicing": "each record's beats cut into contiguous stretches, watches shared among records in "
                       "proportion to their beats",
        },
        "round_s_definition": "wall clock from just before the coordinator announces the round (run_round called) "
                              "to the signed v1 handed to the broker (publish called: the full model, then its "
                              "delta, the later); round_installed_s: to the last watch's install of v1 (signature "
                              "verified)",
        "run_round_returned_s": round(published - announced, 3),
        "commit": _commit(),
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()}, {cores} logical CPUs, Python {platform.python_version()}",
        "command": "bench/fl_scale.py " + " ".join(sys.argv[1:]),
    }


def _floor_on_cores_left(cpu_s: float, cores: int, seconds: float, others_cpu_s: float) -> dict[str, float | None]:
    """The floor again, on the cores other processes left during the round (a shared machine): the same CPU
    seconds over `cores` minus the average number of cores the others kept busy. A diagnostic beside `floor_s`,
    which divides by every core."""
    others_cores = max(0.0, others_cpu_s) / seconds if seconds > 0 else 0.0
    left = cores - others_cores
    floor = cpu_s / left if left > 0 else None
    return {"others_cores": round(others_cores, 3), "cores_left": round(left, 3),
            "floor_s": None if floor is None else round(floor, 3),
            "round_over_it_x": None if not floor else round(seconds / floor, 2)}


def _watch_cpu(outs: list[dict[str, Any]], own_work_s: float) -> dict[str, Any]:
    """The watch processes' CPU seconds from just before the announcement to the installs (summed over processes) by
    kind of thread, and what the watches' training threads spent beyond their training and encoding."""
    kinds: dict[str, float] = {}
    for out in outs:
        for kind, seconds in out.get("cpu_by_thread", {}).items():
            kinds[kind] = kinds.get(kind, 0.0) + seconds
    result: dict[str, Any] = {k: round(v, 3) for k, v in kinds.items()}
    if "ended_threads" in kinds:
        result["training_threads_beyond_train_and_encode"] = round(kinds["ended_threads"] - own_work_s, 3)
    result["note"] = ("per process, from the mark just before the announcement to the stop after the installs: "
                      "network = the connections' paho threads, dispatch = their message handlers (round, model), "
                      "ended_threads = threads that ended in between, i.e. the watches' training threads")
    return result


def _cpu_use(before: dict[str, float], after: dict[str, float], cores: int, seconds: float) -> dict[str, float]:
    """CPU seconds each party used between two readings; `other_processes`: what the rest of the machine took of
    the `cores` x `seconds` there were (another user's training, say); `idle`: what nobody used."""
    ours = {g: after[g] - before[g] for g in before if g != "machine"}
    busy = after["machine"] - before["machine"]
    out = ours | {"other_processes": max(0.0, busy - sum(ours.values())), "idle": max(0.0, cores * seconds - busy)}
    return {g: round(v, 3) for g, v in out.items()}


def table(r: dict[str, Any]) -> list[tuple[str, str]]:
    f, t, c, b = r["floor"], r["timeline_s"], r["clients"], r["bytes"]
    ok = "met" if r["acceptance_round_within_2x_floor"] else "NOT met"
    return [
        ("watches / processes", f"{r['watches']} / {r['processes']} (one MQTT connection each), {r['broker']}"),
        ("round (announce → signed v1 published)", f"{r['round_s']} s = {r['round_over_floor_x']}× the floor "
                                                   f"(≤ 2×: {ok})"),
        ("... → last watch installed v1", f"{r['round_installed_s']} s = {r['installed_over_floor_x']}× the floor"),
        ("floor", f"{r['floor_s']} s = {f['cpu_sum_s']} CPU s (train {f['train_cpu_sum_s']} + encode "
                  f"{f['encode_cpu_sum_s']}) / {f['cores']} cores"),
        ("floor on the cores others left", f"{r['floor_on_cores_left_s']['floor_s']} s "
                                           f"({r['floor_on_cores_left_s']['cores_left']} cores left; round = "
                                           f"{r['floor_on_cores_left_s']['round_over_it_x']}× it)"),
        ("timeline (s after announce)", f"updates sent {t['first_update_sent']}–{t['last_update_sent']}, aggregate "
                                        f"{t['aggregate_sent']}, v1 published {t['model_published']}, installed "
                                        f"{t['first_v1_installed']}–{t['last_v1_installed']}"),
        ("CPU s in the round", ", ".join(f"{g} {v}" for g, v in r["cpu_s_in_round"].items())),
        ("watch processes' CPU s by thread", ", ".join(f"{g} {v}" for g, v in r["watch_processes_cpu_s"].items()
                                                        if g != "note")),
        ("clients", f"{c['reported']} reported of {c['selected']}, {c['dropped']} dropped, status {c['status']}, "
                    f"{c['installed_v1']} installed v1; connections lost {c['disconnects']} "
                    f"({c['disconnects_in_round']} in the round; keepalive {c['keepalive_s']} s)"),
        ("bytes", f"updates {b['updates']:,} ({b['updates_wire']:,} on the wire), aggregate {b['aggregate']:,}, "
                  f"models down {b['model_down_wire']:,}"),
        ("offline precompute (not in the round)", f"{r['offline_precompute_s']} s wall, "
                                                  f"{r['offline_precompute_cpu_sum_s']} CPU s summed over watches"),
        ("load average at start / at the round", f"{r['load_avg_at_start']} / {r['load_avg_at_round']}"),
        ("commit, date", f"{r['commit']}, {r['date']}"),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--watches", type=int, default=1000, help="simulated watches (default 1000)")
    parser.add_argument("--processes", type=int, default=None,
                        help=f"OS processes hosting the watches, --watches/P each (default: one per "
                             f"{WATCHES_PER_PROCESS} watches, at least 2). Each watch is three or four threads "
                             f"(its connection's network and dispatch threads, its router's retrier, its training) "
                             f"behind one interpreter lock per process: with 4 processes of 250 watches the first "
                             f"update left 6.1 s after the announcement and the installs of v1 took 2.5 s "
                             f"(bench/results/fl_scale_4_processes.json); with 20 of 50, 1.9 s and 1.5 s")
    parser.add_argument("--json", type=Path, default=DEFAULT_JSON,
                        help=f"where the result goes (default {DEFAULT_JSON.relative_to(ROOT)})")
    parser.add_argument("--mqtt-url", default=None,
                        help="broker (default CARDIOMESH_MQTT_URL, else mqtt://127.0.0.1:1883)")
    parser.add_argument("--private-broker", action="store_true",
                        help="start a Mosquitto of its own with the deployment's config (set_tcp_nodelay) instead")
    parser.add_argument("--records", default=None, help="comma-separated MIT-BIH records (default: DS1's 22)")
    parser.add_argument("--seconds-per-record", type=float, default=None,
                        help="use only each record's first S seconds, read without the beat cache (quick runs)")
    parser.add_argument("--epochs", type=int, default=5, help="local epochs (default 5, the product's RoundConfig)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=0.001)
    parser.add_argument("--clip", type=float, default=1.0, help="L2 clip of each update (default 1.0)")
    parser.add_argument("--dp-epsilon", type=float, default=100.0,
                        help="total epsilon the DP noise is calibrated for (default 100, as bench/fl_accuracy.py)")
    parser.add_argument("--dp-rounds", type=int, default=30, help="...over this many rounds (default 30)")
    parser.add_argument("--min-clients", type=int, default=None, help="k (default: 75 %% of the watches)")
    parser.add_argument("--timeout", type=float, default=600.0, help="round deadline in seconds (default 600)")
    parser.add_argument("--setup-timeout", type=float, default=3600.0,
                        help="most seconds for connecting and precomputing (default 3600)")
    parser.add_argument("--install-timeout", type=float, default=120.0)
    parser.add_argument("--keepalive", type=int, default=300,
                        help="MQTT keepalive of the simulated watches' connections, seconds (default 300; the "
                             "product's transport uses 30). With 250 watches' network threads in one Python process "
                             "behind one interpreter lock, on a core shared with the other processes, pings went "
                             "out late and the broker dropped nearly every connection at 30 s; a real watch has its "
                             "own CPU. Lost connections are counted in the result (clients.disconnects)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--role", choices=["watches", "edge"], help=argparse.SUPPRESS)
    parser.add_argument("--job", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.role is not None:
        _exit_with_parent()
        job = json.loads(args.job.read_text())
        (watch_process if args.role == "watches" else edge_process)(job)
        return
    result = run(args)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2) + "\n")
    print_table("fl_scale", table(result), path=args.json)


if __name__ == "__main__":
    main()
