"""Helpers for benchmarks: a private Mosquitto with the project's config, result files, tables."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def project_mosquitto() -> Iterator[tuple[int, str]]:
    """A private Mosquitto on a free localhost port, with the deployment's `set_tcp_nodelay true` and
    `max_packet_size` (cardiomesh provision).

    The machine's own Mosquitto runs Debian's config without TCP_NODELAY, so a benchmark against it
    would measure Nagle's algorithm, not CardioMesh. Plain TCP and anonymous on 127.0.0.1: it measures
    the bus, not TLS (a provisioned site adds a TLS handshake per connection, not per message).
    Falls back to 127.0.0.1:1883 if no binary.
    """
    binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    if not Path(binary).exists():
        yield 1883, "system Mosquitto on 127.0.0.1:1883 (no binary to start a private one)"
        return
    port = free_port()
    with tempfile.TemporaryDirectory() as tmp:
        lines = ["set_tcp_nodelay true", "max_packet_size 1048576", "allow_anonymous true",
                 f"listener {port} 127.0.0.1", "persistence false", "log_dest none"]
        conf = Path(tmp) / "mosquitto.conf"
        conf.write_text("\n".join(lines) + "\n")
        proc = subprocess.Popen([binary, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                    break
                except OSError:
                    time.sleep(0.05)
            yield port, f"private Mosquitto (set_tcp_nodelay true, plain TCP) on 127.0.0.1:{port}"
        finally:
            proc.terminate()
            proc.wait(timeout=10)


def first_command_clock(got: dict[str, float], lock: threading.Lock) -> Callable[[str, bytes], None]:
    """A command subscriber that stamps, per alert, when the edge's first response for it arrived."""
    from shared.messages import CommandMessage, decode

    def on_cmd(_topic: str, raw: bytes) -> None:
        now = time.perf_counter()
        msg = decode(raw, max_bytes=1 << 20)
        if isinstance(msg, CommandMessage) and msg.payload.alert_id:
            with lock:
                got.setdefault(msg.payload.alert_id, now)

    return on_cmd


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def write_result(name: str, result: dict[str, Any], table: list[tuple[str, str]]) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    print_table(name, table)
    return path


def print_table(name: str, table: list[tuple[str, str]], *, path: Path | None = None) -> None:
    """The readable table beside `bench/results/<name>.json` (or `path`, where the result went)."""
    width = max((len(k) for k, _ in table), default=0)
    print(f"\n{name}")
    for key, value in table:
        print(f"  {key:<{width}}  {value}")
    target = (path or RESULTS / f"{name}.json").resolve()
    print(f"  → {target.relative_to(ROOT) if target.is_relative_to(ROOT) else target}")


def load_mitdb_split(split: str) -> dict[str, Any]:
    """DS1's or DS2's beat sets (record → BeatSet) for the in-process studies; exits with the reason
    without MIT-BIH."""
    from shared.model.data import load_split
    from shared.settings import Settings

    settings = Settings()
    if settings.mitdb_dir is None:
        raise SystemExit("MIT-BIH not found: set CARDIOMESH_DATA_DIR")
    return load_split(split, settings.mitdb_dir)


def ds1_halves(records: list[str]) -> tuple[list[str], list[str]]:
    """The fixed patient-wise halves of DS1 that every cross-validation study here uses (DS2 stays untouched)."""
    import numpy as np

    perm = [str(r) for r in np.random.default_rng(0).permutation(sorted(records))]
    return perm[:11], perm[11:]


def cv_model(train: list[Any], *, seed: int, epochs: int, weighting: Any = "sqrt",
             wave_channels: int | None = None) -> Any:
    """The centralized BeatNet every DS1 cross-validation study trains on one half: Adam lr 0.002, batch 64,
    augmentation, seeded (the same seed for the weights and the batches); `wave_channels` for a study
    that adds waveform channels."""
    import torch

    from shared.model.net import BeatNet, NetConfig
    from shared.model.train import train_local

    torch.manual_seed(seed)
    model = BeatNet(None if wave_channels is None else NetConfig(wave_channels=wave_channels))
    train_local(model, train, epochs=epochs, batch_size=64, lr=0.002, class_weighting=weighting, augment=True,
                seed=seed)
    return model


def cv_arguments(doc: str | None) -> Any:
    """The command line every DS1 cross-validation study takes (`--epochs`, `--seeds`), parsed; also pins
    torch to one thread, as all of them run."""
    import argparse

    import torch

    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--seeds", default="0,1", help="comma-separated seeds; each trains both folds")
    args = parser.parse_args()
    torch.set_num_threads(1)
    return args


def veb_f1(y: Any, pred: Any) -> float:
    """F1 of the V class (label 2) from true labels and predictions: the DS1 studies' choosing score."""
    import numpy as np

    true_v, called_v = np.asarray(y) == 2, np.asarray(pred) == 2
    tp = float(np.sum(true_v & called_v))
    se, ppv = tp / max(true_v.sum(), 1), tp / max(called_v.sum(), 1)
    return 2 * se * ppv / (se + ppv) if se + ppv else 0.0


def class_pct(m: dict[str, Any] | None, cls: str, key: str) -> str:
    """One class's Se or +P of an `evaluate`-shaped result as "92.1 %" ("n/a" when absent)."""
    value = (m or {}).get("per_class", {}).get(cls, {}).get(key)
    return "n/a" if value is None else f"{100 * value:.1f} %"


def in_process_runs(per_seed: list[dict[str, Any]], measured_by: str) -> dict[str, Any]:
    """VEB Se, +P and macro-F1 of each in-process run (`evaluate --json`-shaped), for a bus run to sit beside."""
    return {"veb_se": [m["per_class"]["V"]["se"] for m in per_seed],
            "veb_ppv": [m["per_class"]["V"]["ppv"] for m in per_seed],
            "macro_f1": [m["macro_f1"] for m in per_seed], "measured_by": measured_by}


def percents(values: list[float]) -> str:
    """Fractions as "92.3 / 92.4 %"."""
    return " / ".join(f"{100 * v:.1f}" for v in values) + " %"


class PaillierChecked:
    """A federated trainer's aggregate that sends each release (the first `limit`, or all) through real packed
    Paillier — client encrypts, edge adds blind, coordinator decrypts — AND the fixed point, asserts the two sums
    are identical, and returns the decrypted one; `bound` is a client's |entry| bound."""

    def __init__(self, limit: int | None, bound: float, value_bits: int = 24) -> None:
        from cloud_expert.coordinator.keys import load_or_create
        from shared.fl.trees import FixedPointSum, PackedSum

        with tempfile.TemporaryDirectory() as folder:
            keys = load_or_create(Path(folder))
        self.packed = PackedSum(keys.paillier.public_key, keys.paillier.private_key, clip=bound,
                                value_bits=value_bits)
        self.fixed = FixedPointSum(bound, key_bits=keys.paillier.public_key.bits, value_bits=value_bits)
        self.limit, self.verified, self.seconds = limit, 0, 0.0
        self.floats = 0  # values per client in the verified releases

    def __call__(self, vectors: list[np.ndarray]) -> np.ndarray:
        import numpy as np

        fixed = self.fixed(vectors)
        if self.limit is not None and self.verified >= self.limit:
            return fixed
        started = time.perf_counter()
        decrypted = self.packed(vectors)
        self.seconds += time.perf_counter() - started
        assert np.array_equal(decrypted, fixed), "the decrypted sum must equal the fixed-point sum"
        self.verified += 1
        self.floats += len(vectors[0])
        return decrypted
