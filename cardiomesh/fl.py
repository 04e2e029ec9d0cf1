"""`cardiomesh fl run`: a real federation over the real broker, one watch per MIT-BIH DS1 patient.

Everything runs in this process but talks only over MQTT, each party on its own connection: the
coordinator (holds the keys), E edge hubs (sum blind), N watches (train on their own record). Per
round it records accuracy on DS2 (inter-patient), bytes, seconds and the privacy spent, and at the end
writes `runs/<run>/rounds.json`, `global.pt` and plots.
"""

from __future__ import annotations

import json
import logging
import math
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Generic, TypeVar

import numpy as np
import torch

from cardiomesh.runtime import mqtt_transport
from cloud_expert.coordinator.coordinator import Coordinator, RoundConfig, RoundRecord
from cloud_expert.coordinator.keys import CoordinatorKeys, load_or_create
from edge_hub.aggregation import EdgeAggregator
from shared.embedded_broker import ensure_broker
from shared.fl.accounting import GaussianRounds, LaplaceRounds, privacy_spent
from shared.fl.noise import gaussian_share_std, laplace_scale, quantization_bound
from shared.fl_codec import codec_for_round
from shared.messages import DpConfig, RoundPayload
from shared.model.data import DS1, BeatSet, load_records, load_split
from shared.model.net import BeatNet, NetConfig
from shared.model.serialize import load_vector, parameters_vector, save_model
from shared.model.train import evaluate
from shared.settings import Settings
from shared.transport import MqttTransport
from watch_agent.learner import BeatNetLearner
from watch_agent.trainer import FlClient, Learner

log = logging.getLogger(__name__)
T = TypeVar("T")


class FederationError(RuntimeError):
    """The federation cannot run as asked (no data, no broker...)."""


@dataclass(frozen=True)
class FlOptions:
    clients: int = len(DS1)
    rounds: int = 10
    encrypt: bool = True
    dp_epsilon: float | None = None  # total ε over all rounds; None = no DP
    dp_delta: float = 1e-5
    mechanism: str = "gaussian"  # gaussian | laplace (Laplace: ε per release = dp_epsilon / rounds)
    edges: int = 1
    epochs: int = 5
    batch_size: int = 32
    lr: float = 0.001
    algorithm: str = "fedavg"
    mu: float = 0.0
    clip_norm: float = 1.0
    max_beats: int | None = None
    min_clients: int | None = None
    round_timeout_s: float = 600.0
    evaluate_every: int = 1
    average_last: int | None = None  # ship the mean of the last m global models; None: a third of the rounds
    precompute: bool = True  # encryption randomness precomputed between rounds (BatchCrypt's offline phase)
    mode: str = "sync"  # sync rounds, or async (FedBuff): each step applies one edge buffer of `buffer_size`
    buffer_size: int = 0
    slow_clients: int = 0  # async demo of low-compute devices: this many watches take `slowdown_s` longer
    slowdown_s: float = 2.0
    seed: int = 0
    run_dir: Path | None = None
    records: tuple[str, ...] = DS1
    test_split: str = "DS2"


@dataclass
class FlResult:
    run_dir: Path
    rounds: list[dict[str, Any]]
    final_metrics: dict[str, Any] | None
    epsilon: float | None
    delta: float | None
    seconds: float
    model_path: Path
    params: int
    update_bytes: list[int] = field(default_factory=list)
    noise_multiplier: float | None = None  # σ of the aggregate's noise / clip norm (Gaussian); None without DP
    averaged_over: int = 1  # global models averaged into the shipped one
    last_iterate_metrics: dict[str, Any] | None = None  # the newest global model alone, for comparison
    #: what the watches downloaded, summed: installs from full models and from deltas, their bytes, refused deltas
    model_downloads: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["run_dir"], d["model_path"] = str(self.run_dir), str(self.model_path)
        return d


@dataclass(kw_only=True)
class ReleaseRunResult:
    """What a training by release rounds over the broker reports (`fl additive`, `fl trees`, `fl forest`)."""

    run_dir: Path
    model_path: Path
    releases: int
    epsilon: float | None
    delta: float | None
    noise_multiplier: float
    seconds: float
    bytes_per_client: int  # every release's ciphertexts (or plain floats) one watch sent, mean over watches
    final_metrics: dict[str, Any] | None
    #: the watches' offline phase before the first large release (its encryption randomness), summed over watches
    offline_precompute_s: float = 0.0
    #: releases a watch had to clip to the announced packing range, summed: 0 unless the bound is short
    release_clipped: int = 0
    records: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["run_dir"], d["model_path"] = str(self.run_dir), str(self.model_path)
        return d


def calibrate_dp(options: FlOptions, k: int) -> tuple[DpConfig, Callable[[int], float | None], float]:
    """Noise for the aggregate so that all rounds together spend `dp_epsilon` at `dp_delta`.

    Returns the round's DP config, ε-after-n-rounds, and the packing range for the noisy values.
    Shares are sized for `min_clients` (k): if only k report, the aggregate still carries the full noise.
    """
    if options.dp_epsilon is None or math.isinf(options.dp_epsilon):
        return DpConfig(), lambda _n: None, options.clip_norm
    if options.mechanism == "laplace":
        per_round = options.dp_epsilon / options.rounds
        b = laplace_scale(options.clip_norm, per_round)
        mech: GaussianRounds | LaplaceRounds = LaplaceRounds(per_round)
        share_std = math.sqrt(2.0 / k) * b
        dp = DpConfig(mechanism="laplace", epsilon=per_round, delta=0.0, noise_scale=b, planned_clients=k)
    else:
        lo, hi = 0.05, 500.0
        for _ in range(60):  # smallest noise multiplier whose R-round RDP ε stays within budget
            mid = math.sqrt(lo * hi)
            eps, _ = privacy_spent(GaussianRounds(mid), options.rounds, target_delta=options.dp_delta)
            lo, hi = (lo, mid) if eps <= options.dp_epsilon else (mid, hi)
        sigma = hi * options.clip_norm
        mech = GaussianRounds(hi)
        share_std = gaussian_share_std(sigma, k)
        per_round_eps, _ = privacy_spent(mech, 1, target_delta=options.dp_delta)
        dp = DpConfig(mechanism="gaussian", epsilon=per_round_eps, delta=options.dp_delta, noise_scale=sigma,
                      planned_clients=k)

    def spent(n: int) -> float | None:
        return privacy_spent(mech, n, target_delta=options.dp_delta)[0] if n else 0.0

    return dp, spent, quantization_bound(options.clip_norm, share_std)


def _learners(sets: dict[str, BeatSet], options: FlOptions, config: NetConfig) -> list[tuple[str, BeatNetLearner]]:
    return [(name, BeatNetLearner(sets[name], config=config, seed=options.seed + i))
            for i, name in enumerate(sorted(sets)[: options.clients])]


def beat_sets(settings: Settings, records: Sequence[str], test_split: str, train_sets: dict[str, BeatSet] | None,
              test_sets: dict[str, BeatSet] | None) -> tuple[dict[str, BeatSet], dict[str, BeatSet] | None]:
    """The watches' records (one per watch) and the held-out split, from MIT-BIH unless given."""
    mitdb = settings.mitdb_dir
    if train_sets is None:
        if mitdb is None:
            raise FederationError("MIT-BIH not found: set CARDIOMESH_DATA_DIR to a folder holding mitdb/")
        train_sets = load_records([mitdb / r for r in records])
    if test_sets is None and mitdb is not None:
        test_sets = load_split(test_split, mitdb)
    return train_sets, test_sets


def new_run_dir(settings: Settings, run_dir: Path | None, prefix: str) -> Path:
    """`run_dir`, or var/runs/<prefix>-<timestamp>; created."""
    run_dir = run_dir or Path(settings.state_dir) / "runs" / time.strftime(f"{prefix}-%Y%m%d-%H%M%S")
    run_dir.mkdir(parents=True, exist_ok=True)
    return run_dir


def run_federation(settings: Settings, options: FlOptions, *,
                   progress: Callable[[RoundRecord], None] | None = None,
                   test_sets: dict[str, BeatSet] | None = None,
                   train_sets: dict[str, BeatSet] | None = None) -> FlResult:
    torch.set_num_threads(1)  # batches of 32 on tiny models: thread wake-ups cost more than they give
    train_sets, test_sets = beat_sets(settings, options.records[: options.clients], options.test_split,
                                      train_sets, test_sets)
    run_dir = new_run_dir(settings, options.run_dir, "fl")
    federation = f"run-{uuid.uuid4().hex[:10]}"  # its own topics: no retained round of another run leaks in

    torch.manual_seed(options.seed)
    config = NetConfig()
    initial_model = BeatNet(config)
    initial = parameters_vector(initial_model)
    learners = _learners(train_sets, options, config)
    n = len(learners)
    min_clients = options.min_clients or max(2, math.ceil(0.75 * n))
    dp, spent, quant_range = calibrate_dp(options, min_clients)
    average_last = options.average_last if options.average_last is not None else max(1, options.rounds // 3)

    keys = load_or_create(Path(settings.state_dir) / "keys" / "coordinator")
    buffer_size = options.buffer_size or max(2, n // 4)
    round_config = RoundConfig(
        epochs=options.epochs, batch_size=options.batch_size, lr=options.lr,
        algorithm="fedprox" if options.algorithm == "fedprox" else "fedavg", mu=options.mu,
        clip_norm=options.clip_norm, max_beats=options.max_beats, encrypt=options.encrypt,
        max_clients=max(64, n), min_clients=min(min_clients, options.buffer_size or min_clients),
        round_timeout_s=options.round_timeout_s, mode="async" if options.mode == "async" else "sync",
        buffer_size=buffer_size, average_last=average_last,
        # FedBuff applies a buffer of M of the n watches' updates at a time, n/M steps per pass over the
        # fleet: a server step of M/n keeps one pass about one FedAvg round (a full step per buffer
        # diverged here: AUROC 0.92 at the 26th buffer, 0.50 by the 30th; docs/fl.md)
        server_lr=buffer_size / n if options.mode == "async" else 1.0,
    )

    def coordinator_on(transport: MqttTransport, participants: list[str]) -> Coordinator:
        return Coordinator(settings, transport, keys=keys, initial=initial, config=round_config,
                           participants=participants, dp=dp, epsilon_after=spent, evaluate=None,
                           quant_range=quant_range, federation=federation)

    def client_options(i: int) -> dict[str, Any]:
        slow = options.mode == "async" and i < options.slow_clients
        return {"seed": options.seed + i, "slowdown_s": options.slowdown_s if slow else 0.0}

    started = time.perf_counter()
    fleet = start_fleet(settings, federation, learners, edges=options.edges, keys=keys,
                        coordinator=coordinator_on, client_options=client_options)
    coordinator, clients = fleet.coordinator, fleet.clients
    try:
        eval_model = BeatNet(config)

        def _evaluate(vector: np.ndarray) -> dict[str, Any]:
            if not test_sets:
                return {}
            load_vector(eval_model, vector)
            return evaluate(eval_model, list(test_sets.values()))

        records: list[dict[str, Any]] = []
        for r in range(options.rounds):
            offline = 0.0
            if options.encrypt and options.precompute:  # the watches' idle-time offline phase, timed apart
                spec = coordinator.build_spec(r)
                offline = sum(c.prepare(spec) for c in clients)
            bytes_before = sum(s.bytes for c in clients for s in c.sent)
            record = coordinator.run_async_step(r) if options.mode == "async" else coordinator.run_round(r)
            record.extra["offline_precompute_s"] = round(offline, 3)
            last = r == options.rounds - 1
            if record.status == "ok" and (last or (r + 1) % options.evaluate_every == 0):
                record.metrics = _evaluate(coordinator.vector)
            record.extra["update_bytes"] = sum(s.bytes for c in clients for s in c.sent) - bytes_before
            record.extra["mean_train_s"] = float(np.mean([c.sent[-1].train_s for c in clients if c.sent] or [0]))
            records.append(record.as_dict())
            if progress is not None:
                progress(record)
        fleet.wait_installed(coordinator.version, timeout_s=10)  # the last delta may still be on its way
        downloads = model_downloads(clients)
        coordinator.retire()
        final_model = BeatNet(config)
        released = coordinator.release_vector()
        load_vector(final_model, released)
        ok_rounds = len([x for x in records if x["status"] == "ok"])
        averaged_over = coordinator.averaged_over
        last_iterate = next((x["metrics"] for x in reversed(records) if x.get("metrics")), None)
        final_metrics = _evaluate(released) if averaged_over > 1 and test_sets else last_iterate
        epsilon = spent(ok_rounds)
        model_path = save_model(run_dir / "global.pt", final_model, {
            "rounds": ok_rounds, "encrypt": options.encrypt, "epsilon": epsilon, "delta": dp.delta,
            "clients": n, "algorithm": options.algorithm, "averaged_over": averaged_over,
        })
        result = FlResult(run_dir=run_dir, rounds=records, final_metrics=final_metrics, epsilon=epsilon,
            delta=dp.delta if dp.mechanism != "none" else None, seconds=round(time.perf_counter() - started, 2),
            model_path=model_path, params=int(initial.size),
            update_bytes=[x["extra"]["update_bytes"] for x in records],
            noise_multiplier=round(dp.noise_scale / options.clip_norm, 4) if dp.mechanism == "gaussian" else None,
            averaged_over=averaged_over, last_iterate_metrics=last_iterate, model_downloads=downloads)
        (run_dir / "rounds.json").write_text(json.dumps(result.as_dict(), indent=2, default=str) + "\n")
        plot_rounds(result, run_dir / "rounds.png")
        return result
    finally:
        fleet.stop()


@dataclass
class Fleet:
    """One federation's parties over the broker, each on its own connection: edge hubs (one per site), the
    watches spread over them, and the coordinator."""

    broker: Any  # the embedded broker this fleet started, if none answered
    clients: list[FlClient] = field(default_factory=list)
    edges: list[EdgeAggregator] = field(default_factory=list)
    transports: list[MqttTransport] = field(default_factory=list)
    coordinator: Coordinator = field(init=False)  # set once the watches and edges are up

    def wait_installed(self, version: int, timeout_s: float) -> dict[str, int | None]:
        """Wait until every watch holds `version`; the watches still behind (logged), if any."""
        deadline = time.monotonic() + timeout_s
        while any(c.version != version for c in self.clients) and time.monotonic() < deadline:
            time.sleep(0.05)
        lagging = {c.device_id: c.version for c in self.clients if c.version != version}
        if lagging:
            log.warning("watches still behind the global model", extra={"version": version, "held": lagging})
        return lagging

    def stop(self) -> None:
        if hasattr(self, "coordinator"):  # set once the fleet was up
            self.coordinator.stop()
        for client in self.clients:  # no torch op may still run in a watch thread when the process exits
            if not client.stop(timeout_s=120):
                log.warning("a watch was still training at shutdown", extra={"device": client.device_id})
        for edge in self.edges:
            edge.stop()
        for transport in reversed(self.transports):
            transport.stop()
        if self.broker is not None:
            self.broker.stop()


def start_fleet(settings: Settings, federation: str, learners: Sequence[tuple[str, Learner]], *, edges: int,
                keys: CoordinatorKeys, coordinator: Callable[[MqttTransport, list[str]], Coordinator],
                client_options: Callable[[int], dict[str, Any]] | None = None) -> Fleet:
    """Start `edges` edge hubs, one watch per learner (`client_options(i)`: extra `FlClient` arguments; by default
    none but noise from OS entropy, `seed=None`) and the
    coordinator `coordinator(transport, participants)` makes; publish its model and wait (up to 30 s) until every
    watch holds it. Everything started is stopped again if a step fails."""
    fleet = Fleet(broker=ensure_broker(settings.mqtt_host, settings.mqtt_port))

    def connect(site_settings: Settings, name: str) -> MqttTransport:
        transport = mqtt_transport(site_settings, f"{federation}-{name}", clean_session=True)
        fleet.transports.append(transport)
        return transport

    def up(transport: MqttTransport) -> None:
        transport.start(wait_s=10)
        transport.wait_subscribed(10)

    try:
        sites = [f"{settings.site}-{e}" for e in range(edges)]
        site_of = {name: sites[i % len(sites)] for i, (name, _) in enumerate(learners)}
        for site in sites:
            site_settings = settings.model_copy(update={"site": site})
            transport = connect(site_settings, f"{site}-edge")
            edge = EdgeAggregator(site_settings, transport, edge_id="edge-1", codec_factory=codec_for_round,
                                  federation=federation)
            edge.start()
            fleet.edges.append(edge)
            up(transport)
        for i, (name, learner) in enumerate(learners):
            site_settings = settings.model_copy(update={"site": site_of[name]})
            transport = connect(site_settings, f"watch-{name}")
            client = FlClient(site_settings, transport, device_id=f"watch-{name}", learner=learner,
                              verify_key=keys.verify_key, federation=federation,
                              **(client_options(i) if client_options else {"seed": None}))
            client.start()
            fleet.clients.append(client)
            up(transport)
        transport = connect(settings, "coordinator")
        fleet.coordinator = coordinator(transport, [f"{site_of[name]}/watch-{name}" for name, _ in learners])
        fleet.coordinator.start()
        up(transport)
        fleet.coordinator.publish_model()
        fleet.wait_installed(fleet.coordinator.version, timeout_s=30)
        return fleet
    except BaseException:
        fleet.stop()
        raise


@dataclass
class ReleaseFleetRun(Generic[T]):
    """What `run_release_fleet` returns: the training's own result and what the fleet measured."""

    result: T
    seconds: float  # from starting the fleet until everything stopped again
    bytes_per_client: int  # every release's ciphertexts (or plain floats) one watch sent, mean over watches
    release_clipped: int  # releases the watches had to clip to the announced packing range, summed


def run_release_fleet(settings: Settings, prefix: str, learners: Sequence[tuple[str, Learner]], *,
                      initial: np.ndarray, round_config: RoundConfig, edges: int,
                      train: Callable[[Coordinator, Callable[[RoundPayload], float]], T],
                      run_errors: tuple[type[Exception], ...]) -> ReleaseFleetRun[T]:
    """A training by release rounds over the broker (`fl additive`, `fl trees`, `fl forest`): one watch per learner
    spread over `edges` edge hubs, a coordinator starting from `initial`, then `train(coordinator, prepare)` —
    `prepare(spec)` runs every watch's offline phase for a release and returns the seconds it took. A `run_errors`
    error becomes a `FederationError`; whatever happens, the federation's retained messages are cleared and
    everything stops."""
    if len(learners) < 2:
        raise FederationError(f"a federation needs at least 2 watches, got {len(learners)}")
    federation = f"{prefix}-{uuid.uuid4().hex[:10]}"
    keys = load_or_create(Path(settings.state_dir) / "keys" / "coordinator")

    def coordinator_on(transport: MqttTransport, participants: list[str]) -> Coordinator:
        return Coordinator(settings, transport, keys=keys, initial=initial, config=round_config,
                           participants=participants, federation=federation)

    started = time.perf_counter()
    fleet = start_fleet(settings, federation, learners, edges=edges, keys=keys, coordinator=coordinator_on,
                        client_options=lambda _i: {"seed": None})  # noise shares from OS entropy
    try:
        try:
            result = train(fleet.coordinator, lambda spec: sum(c.prepare(spec) for c in fleet.clients))
        except run_errors as exc:
            raise FederationError(str(exc)) from None
        fleet.wait_installed(fleet.coordinator.version, timeout_s=10)
        sent = [sum(s.bytes for s in c.sent) for c in fleet.clients]
        clipped = sum(c.counters.get("fl.release_clipped") for c in fleet.clients)
    finally:
        if hasattr(fleet, "coordinator"):
            fleet.coordinator.retire()  # a failed run leaves no retained round or model behind either
        fleet.stop()
    return ReleaseFleetRun(result, time.perf_counter() - started, int(np.mean(sent)), int(clipped))


def model_downloads(clients: list[FlClient]) -> dict[str, int]:
    """The watches' model downloads, summed (delta sync, ADR 0015): how many versions each way, and the bytes."""
    def total(name: str) -> int:
        return sum(c.counters.get(name) for c in clients)

    return {"installed_full": total("fl.model_installed_full"), "installed_delta": total("fl.model_installed_delta"),
            "bytes_full": total("fl.model_bytes_received.full"), "bytes_delta": total("fl.model_bytes_received.delta"),
            "delta_refused": sum(c.counters.total("fl.model_delta_refused.") for c in clients)}


def plot_rounds(result: FlResult, path: Path) -> Path:
    """Macro-F1 / VEB / SVEB sensitivity, privacy spent and bytes per round: where people would rather look."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rounds = [r["round"] + 1 for r in result.rounds]
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    m = [(r["round"] + 1, r["metrics"]) for r in result.rounds if r.get("metrics")]
    if m:
        xs = [x for x, _ in m]
        axes[0].plot(xs, [v["macro_f1"] for _, v in m], "o-", label="macro-F1")
        axes[0].plot(xs, [v["per_class"]["V"]["se"] or 0 for _, v in m], "s--", label="VEB Se")
        axes[0].plot(xs, [v["per_class"]["S"]["se"] or 0 for _, v in m], "^--", label="SVEB Se")
        axes[0].set_ylim(0, 1)
        axes[0].legend(loc="lower right")
    axes[0].set_title("DS2 (inter-patient)")
    eps = [r["epsilon"] if r["epsilon"] is not None else float("nan") for r in result.rounds]
    axes[1].plot(rounds, eps, "o-")
    axes[1].set_title("ε spent (cumulative)")
    axes[2].bar(rounds, [b / 1e6 for b in result.update_bytes])
    axes[2].set_title("client → edge MB per round")
    for ax in axes:
        ax.set_xlabel("round")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
