"""A population federates the rhythm reader: CinC 2017, one client per person, user-level DP-FedAvg.

    .venv/bin/python bench/fl_population.py            # ≈ 10 min here → bench/results/fl_population.json + .png

Who holds what: 4,027 people, one single-lead strip each (CinC 2017 development set). Fold 0 of the
rhythm bench's person-wise 5-fold split is held out (never trained on, never used to choose anything);
the other four folds are the population. Each person's device runs the reader's frozen body on its
own strip (the body is trained on the public annotated databases only — MIT-BIH and VFDB, never on
CinC; `shared.model.rhythm.head` says why only the head federates) and trains the strip head on it.

Each round (DP-FedAvg, McMahan et al. 2018): the coordinator Poisson-samples every client with
probability q (cohort ≈ `--cohort`); a sampled client may drop out (`--dropout`); a reporter takes
`--local-steps` SGD steps from the global head on its strip, clips its update to L2 `--clip`, adds its
share of the round's Gaussian noise (sized for the k reporters a round needs at least, so fewer
reporters cannot mean less noise), quantizes it with the packed-Paillier code's fixed point
(`shared.crypto.packing`), and only the sum of ≥ k is decoded. The server takes a FedAdam step on the
sum over the expected cohort (fixed denominator). Privacy: user-level (ε, δ) from the RDP accountant
over T Poisson-sampled Gaussian rounds (`shared.fl.accounting`); the noise multiplier is solved for
each ε of the curve at the same T.

Which sums were encrypted: round 0 of the ε = 8 run goes through the real codec (every reporter's
update Paillier-encrypted with the coordinator's 2048-bit key, summed blind as the edge does,
decrypted once); the bench asserts the decrypted sum equals the fixed-point sum the other rounds use
(Paillier addition is exact on the integers), and times and sizes that round. Every other round
computes the same integer sum in the clear: the arithmetic is identical, the cost is not.

Central reference: the same head, same frozen body, same split, trained with Adam on pooled data.
Hyperparameters (epochs; rounds, learning rates, clip) were fixed on the training side's validation
persons (`validation_split`), never on the held-out fold.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import math
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np
import torch
import torch.nn.functional as F
from torch.func import functional_call, grad, vmap

from bench._common import RESULTS, ROOT
from shared.crypto.packing import PackingSpec, dequantize_sum, packing_spec, quantize
from shared.fl.accounting import GaussianRounds, gaussian_noise_multiplier, privacy_spent
from shared.fl.noise import gaussian_share_std, quantization_bound
from shared.fl.updates import clip_by_l2
from shared.model.rhythm.corpus import Recording, load_database
from shared.model.rhythm.head import StripHead, embed_all, head_vector
from shared.model.rhythm.labels import AF, NOISE, OTHER, SINUS
from shared.model.rhythm.protocol import cinc_scores
from shared.model.rhythm.reader import RhythmReader
from shared.model.rhythm.splits import assign_folds, validation_split

log = logging.getLogger("fl_population")

BODY = ROOT / "var" / "rhythm" / "models" / "no-cinc2017.pt"
WORK = ROOT / "var" / "fl_population"
KEEP = (SINUS, AF, OTHER, NOISE)  # the head's outputs CinC labels (VT/VF logits are left out of the loss)
LETTERS = ("N", "A", "O", "~")
TEST_FOLD = 0  # the rhythm bench's fold 0: same persons held out
EPSILONS = (1.0, 2.0, 4.0, 8.0, math.inf)


@dataclass(frozen=True)
class FedConfig:
    rounds: int = 300
    cohort: int = 300  # expected clients per round (Poisson sampling, q = cohort / population)
    #: k: fewer reporters and the round's sum is not decoded. Each reporter's noise share is sized for k, so a
    #: round of m ≥ k reporters carries σ·√(m/k): k = 100 meant 1.64 σ for the ≈ 270 who report; k = 200 (over
    #: 3 sd below 270: no round skipped) means 1.16 σ. The price: the noise holds while at least k reporters'
    #: shares stay secret (≈ 70 may collude or drop, not 170). Chosen on the validation persons (docs/fl.md).
    min_clients: int = 200
    dropout: float = 0.1
    local_steps: int = 3
    local_lr: float = 0.3
    clip: float = 1.0
    server_lr: float = 0.03
    quant_bits: int = 16
    max_clients: int = 400
    #: Release the mean of the last m global heads (the coordinator's `average_last`): post-processing,
    #: free in privacy, damps each round's independent noise.
    average_last: int = 50


@dataclass(frozen=True)
class CentralConfig:
    epochs: int = 30
    lr: float = 1e-3
    batch_size: int = 64


# --- data ------------------------------------------------------------------------------------------
def embeddings(recordings: list[Recording]) -> np.ndarray:
    """(n, d) head inputs from the frozen body (cached per body file)."""
    digest = hashlib.sha256(BODY.read_bytes()).hexdigest()[:12]
    path = WORK / f"embeddings-{digest}-{len(recordings)}.npy"
    if path.exists():
        return np.load(path)
    body = RhythmReader.load(BODY).model
    torch.set_num_threads(2)
    started = time.perf_counter()
    out = embed_all(body, [r.x for r in recordings], [r.beats for r in recordings])
    log.info("embedded %d strips in %.1f s", len(recordings), time.perf_counter() - started)
    WORK.mkdir(parents=True, exist_ok=True)
    np.save(path, out)
    return out


def targets(recordings: list[Recording]) -> np.ndarray:
    return np.array([KEEP.index(int(r.label)) for r in recordings if r.label is not None], dtype=np.int64)


# --- the head, functional ---------------------------------------------------------------------------
class Head:
    """The strip head as a flat vector: logits over `KEEP`, per-client local updates in one vmap."""

    def __init__(self, body_path: Path) -> None:
        self.model = RhythmReader.load(body_path).model
        self.module = StripHead(self.model).eval()  # no dropout: a client's step is deterministic
        self.names = [n for n, _ in self.module.named_parameters()]
        self.shapes = [p.shape for _, p in self.module.named_parameters()]
        self.sizes = [p.numel() for _, p in self.module.named_parameters()]
        self.initial = head_vector(self.model)

    def _params(self, flat: torch.Tensor) -> dict[str, torch.Tensor]:
        chunks = torch.split(flat, self.sizes)
        return {n: c.reshape(s) for n, c, s in zip(self.names, chunks, self.shapes, strict=True)}

    def logits(self, flat: torch.Tensor, e: torch.Tensor) -> torch.Tensor:
        return functional_call(self.module, self._params(flat), (e,))[:, list(KEEP)]

    def loss(self, flat: torch.Tensor, e: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(self.logits(flat, e), y)

    def local_updates(self, flat: np.ndarray, e: np.ndarray, y: np.ndarray, steps: int, lr: float) -> np.ndarray:
        """(m, P): each client's `steps` SGD steps on its own strip, as an update from `flat`."""
        g = grad(lambda w, ei, yi: self.loss(w, ei[None], yi[None]))

        def local(w0: torch.Tensor, ei: torch.Tensor, yi: torch.Tensor) -> torch.Tensor:
            w = w0
            for _ in range(steps):
                w = w - lr * g(w, ei, yi)
            return w - w0

        w0 = torch.from_numpy(flat)
        return vmap(local, in_dims=(None, 0, 0))(w0, torch.from_numpy(e), torch.from_numpy(y)).numpy()

    def predict(self, flat: np.ndarray, e: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return self.logits(torch.from_numpy(flat), torch.from_numpy(e)).argmax(dim=1).numpy()


def scores(head: Head, flat: np.ndarray, e: np.ndarray, y: np.ndarray) -> dict[str, Any]:
    predicted = head.predict(flat, e)
    return cinc_scores([LETTERS[i] for i in y], [LETTERS[i] for i in predicted])


class Adam:
    """The server's optimizer on the pseudo-gradient −mean update (FedAdam, Reddi et al. 2021)."""

    def __init__(self, n: int, lr: float, b1: float = 0.9, b2: float = 0.99, eps: float = 1e-3) -> None:
        self.m = np.zeros(n)
        self.v = np.zeros(n)
        self.lr, self.b1, self.b2, self.eps = lr, b1, b2, eps

    def step(self, w: np.ndarray, update: np.ndarray) -> np.ndarray:
        self.m = self.b1 * self.m + (1 - self.b1) * update
        self.v = self.b2 * self.v + (1 - self.b2) * update**2
        return (w + self.lr * self.m / (np.sqrt(self.v) + self.eps)).astype(np.float32)


# --- training -----------------------------------------------------------------------------------------
def train_central(head: Head, e: np.ndarray, y: np.ndarray, config: CentralConfig, seed: int) -> np.ndarray:
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    w = torch.from_numpy(head.initial.copy()).requires_grad_(True)
    opt = torch.optim.Adam([w], lr=config.lr)
    et, yt = torch.from_numpy(e), torch.from_numpy(y)
    for _ in range(config.epochs):
        order = rng.permutation(len(y))
        for i in range(0, len(order), config.batch_size):
            idx = torch.from_numpy(order[i:i + config.batch_size])
            opt.zero_grad()
            head.loss(w, et[idx], yt[idx]).backward()
            opt.step()
    return w.detach().numpy().copy()


def clip_rows(u: np.ndarray, clip: float) -> np.ndarray:
    """Each client's update to L2 ≤ clip: the product's own `clip_by_l2`, one row per client."""
    return np.stack([clip_by_l2(row, clip)[0] for row in u])


@dataclass
class FedRun:
    vector: np.ndarray
    noise_multiplier: float
    epsilon: float
    reporters: list[int]
    skipped: int


def packing_for(config: FedConfig, share_std: float, bits: int = 2048) -> PackingSpec:
    return PackingSpec(clip=quantization_bound(config.clip, share_std), value_bits=config.quant_bits,
                       max_clients=config.max_clients, plaintext_bits=bits - 1)


def train_federated(head: Head, e: np.ndarray, y: np.ndarray, config: FedConfig, epsilon: float, seed: int,
                    *, delta: float = 1e-5, on_round: Any = None) -> FedRun:
    n = len(y)
    q = config.cohort / n
    z = 0.0 if math.isinf(epsilon) else gaussian_noise_multiplier(
        epsilon, config.rounds, sampling_probability=q, target_delta=delta)
    sigma = z * config.clip
    share_std = gaussian_share_std(sigma, config.min_clients)
    spec = packing_for(config, share_std)
    rng = np.random.default_rng(seed)
    w = head.initial.copy()
    server = Adam(len(w), config.server_lr)
    reporters: list[int] = []
    skipped = 0
    tail: list[np.ndarray] = []
    for t in range(config.rounds):
        sampled = np.flatnonzero(rng.random(n) < q)
        kept = sampled[rng.random(len(sampled)) >= config.dropout]
        if len(kept) < config.min_clients or len(kept) > config.max_clients:
            skipped += 1  # nothing decoded, nothing released
            continue
        u = clip_rows(head.local_updates(w, e[kept], y[kept], config.local_steps, config.local_lr), config.clip)
        noised = u + rng.normal(0.0, share_std, size=u.shape)
        levels = quantize(noised, spec, rng=rng).reshape(noised.shape)
        total = dequantize_sum(levels.sum(axis=0), len(kept), spec)
        if on_round is not None:
            on_round(t, noised, levels, total, spec)
        w = server.step(w, total / config.cohort)
        reporters.append(len(kept))
        tail = [*tail, w][-max(config.average_last, 1):]
    spent = 0.0 if z == 0 else privacy_spent(GaussianRounds(z, q), config.rounds, target_delta=delta)[0]
    released = np.mean(tail, axis=0).astype(np.float32) if tail else w
    return FedRun(released, z, spent, reporters, skipped)


# --- the encrypted round --------------------------------------------------------------------------------
def encrypted_round(noised: np.ndarray, total: np.ndarray, spec: PackingSpec,
                    min_clients: int) -> dict[str, Any]:
    """Every reporter's update through the real codec; the blind sum decrypted once; equal to `total`."""
    from cloud_expert.coordinator.keys import load_or_create
    from shared.fl_codec import PackedPaillierCodec

    keys = load_or_create(WORK / "keys")
    public, private = keys.paillier.public_key, keys.paillier.private_key
    real = packing_spec(public, clip=spec.clip, max_clients=spec.max_clients, value_bits=spec.value_bits)
    assert real == spec, "the simulated fixed point must be the real key's"
    client = PackedPaillierCodec(public, real, params=noised.shape[1], rng=np.random.default_rng(7))
    edge = PackedPaillierCodec(public, real, params=noised.shape[1])
    cloud = PackedPaillierCodec(public, real, params=noised.shape[1], private_key=private, min_clients=min_clients)
    encode_s: list[float] = []
    sizes: list[int] = []
    aggregate: bytes | None = None
    add_s = 0.0
    for row in noised:
        t0 = time.perf_counter()
        body = client.encode(row)
        encode_s.append(time.perf_counter() - t0)
        sizes.append(len(body))
        t0 = time.perf_counter()
        aggregate = edge.add(aggregate, body)
        add_s += time.perf_counter() - t0
    assert aggregate is not None
    t0 = time.perf_counter()
    decrypted = cloud.decode_sum(aggregate, len(noised))
    decrypt_s = time.perf_counter() - t0
    # Stochastic rounding draws differ between the two encodings, so compare the decrypted sum with the
    # sum of the levels each encoding rounds to: both are within K·step of the float sum.
    float_sum = noised.sum(axis=0)
    bound = len(noised) * spec.step
    return {"reporters": len(noised), "params": int(noised.shape[1]),
            "max_abs_error_encrypted": float(np.abs(decrypted - float_sum).max()),
            "max_abs_error_plain": float(np.abs(total - float_sum).max()), "error_bound": bound,
            "encrypted_matches_plain_within_bound": bool(np.abs(decrypted - total).max() <= 2 * bound),
            "client_encrypt_s_mean": round(float(np.mean(encode_s)), 4),
            "client_encrypt_s_total": round(float(np.sum(encode_s)), 2), "edge_add_s": round(add_s, 2),
            "decrypt_s": round(decrypt_s, 3), "update_bytes": int(np.sum(sizes)),
            "update_bytes_per_client": int(np.mean(sizes)), "aggregate_bytes": len(aggregate),
            "round_s": round(float(np.sum(encode_s)) + add_s + decrypt_s, 2)}


def round_costs(encrypted: dict[str, Any], head_params: int, cohort: int) -> dict[str, Any]:
    """Per-round seconds and bytes from the encrypted round's measurements.

    `seconds_per_round` is that round's wall time on this one machine, every reporter encrypting in turn;
    on devices that encrypt in parallel the round's critical path is one client's encryption (the mean
    here) plus the edge's blind sum and the cloud's decryption."""
    down = 4 * head_params * cohort  # the signed head, float32, to each expected cohort member
    return {
        "seconds_per_round": encrypted["round_s"],
        "seconds_per_round_devices_in_parallel": round(
            encrypted["client_encrypt_s_mean"] + encrypted["edge_add_s"] + encrypted["decrypt_s"], 2),
        "bytes_per_round": encrypted["update_bytes"] + encrypted["aggregate_bytes"] + down,
        "bytes_per_round_detail": {"updates_up": encrypted["update_bytes"],
                                   "aggregate_edge_to_cloud": encrypted["aggregate_bytes"],
                                   "model_down_to_cohort": down},
    }


# --- the curve ---------------------------------------------------------------------------------------------
def plot(curve: list[dict[str, Any]], central: float, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.6), dpi=120)
    finite = [c for c in curve if c["epsilon_target"] is not None]
    xs = [c["epsilon_target"] for c in finite]
    ax.errorbar(xs, [c["af_f1_mean"] for c in finite],
                yerr=[[c["af_f1_mean"] - c["af_f1_min"] for c in finite],
                      [c["af_f1_max"] - c["af_f1_mean"] for c in finite]],
                marker="o", capsize=3, label="federated, user-level DP")
    inf = [c for c in curve if c["epsilon_target"] is None]
    if inf:
        ax.axhline(inf[0]["af_f1_mean"], color="tab:orange", ls=":", label="federated, no noise (ε = ∞)")
    ax.axhline(central, color="tab:green", ls="--", label="central, same head")
    ax.axhline(central - 0.05, color="tab:gray", ls="-.", lw=0.8, label="central − 5 points")
    ax.set_xscale("log", base=2)
    ax.set_xticks(xs, [f"{x:g}" for x in xs])
    ax.set_xlabel("total ε per person (δ = 1e-5)")
    ax.set_ylabel("AF F1, held-out persons")
    ax.set_title("CinC 2017: privacy vs utility of the federated rhythm head")
    ax.legend(fontsize=7, loc="lower right")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def summarize(runs: list[dict[str, Any]], key: str) -> dict[str, float]:
    values = [r[key] for r in runs]
    return {f"{key}_mean": round(float(np.mean(values)), 4), f"{key}_min": round(float(np.min(values)), 4),
            f"{key}_max": round(float(np.max(values)), 4)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0], epilog=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=FedConfig.rounds)
    parser.add_argument("--cohort", type=int, default=FedConfig.cohort)
    parser.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                        help="override a FedConfig field, e.g. --set server_lr=0.02 (repeatable)")
    parser.add_argument("--epsilons", default="1,2,4,8,inf", help="the privacy–utility curve's points")
    parser.add_argument("--validate", action="store_true",
                        help="score on the training side's validation persons instead (for choosing settings)")
    parser.add_argument("--no-encrypt", action="store_true", help="skip the encrypted round (≈ 3 min)")
    parser.add_argument("--out", type=Path, default=RESULTS / "fl_population.json")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    logging.getLogger("absl").setLevel(logging.ERROR)  # dp-accounting's per-order convergence chatter
    torch.set_num_threads(2)
    if not BODY.exists():  # the rhythm bench's cross-database model without CinC (≈ 2 min here)
        from bench.rhythm import train_model
        from shared.model.rhythm.corpus import load_corpus
        from shared.model.rhythm.train import TrainConfig

        log.info("training the body on the public databases (no CinC 2017) → %s", BODY)
        train_model(BODY.stem, [r for r in load_corpus() if r.database != "cinc2017"], TrainConfig(epochs=16),
                    retrain=False)
    started = time.perf_counter()
    cinc = [r for r in load_database("cinc2017") if r.label is not None]
    e_all = embeddings(cinc)
    y_all = targets(cinc)
    folds = assign_folds(cinc, 5, seed=0)
    is_test = np.array([folds[r.group] == TEST_FOLD for r in cinc])
    train_idx, test_idx = np.flatnonzero(~is_test), np.flatnonzero(is_test)
    if args.validate:  # the held-out fold is not touched: split the training side instead
        train_side = [cinc[i] for i in train_idx]
        _fit_side, valid = validation_split(train_side)
        valid_ids = {id(r) for r in valid}
        test_idx = np.array([i for i in train_idx if id(cinc[i]) in valid_ids])
        train_idx = np.array([i for i in train_idx if id(cinc[i]) not in valid_ids])
        args.no_encrypt = True
    e_train, y_train, e_test, y_test = e_all[train_idx], y_all[train_idx], e_all[test_idx], y_all[test_idx]
    head = Head(BODY)
    overrides = dict(item.split("=", 1) for item in args.set)
    fields = FedConfig.__dataclass_fields__
    unknown = set(overrides) - set(fields)
    if unknown:
        parser.error(f"unknown FedConfig fields {sorted(unknown)}; choose from {sorted(fields)}")
    fed = FedConfig(rounds=args.rounds, cohort=args.cohort,
                    **{k: type(getattr(FedConfig(), k))(v) for k, v in overrides.items()})
    central_cfg = CentralConfig()
    log.info("population %d persons, held out %d, head %d parameters", len(train_idx), len(test_idx), len(head.initial))

    central_runs = []
    for seed in range(args.seeds):
        s = scores(head, train_central(head, e_train, y_train, central_cfg, seed), e_test, y_test)
        central_runs.append({"seed": seed, "af_f1": s["af_f1"], "macro_f1_nao": s["macro_f1_nao"]})
        log.info("central seed %d: %s", seed, central_runs[-1])
    body_only = scores(head, head.initial, e_test, y_test)

    encrypted: dict[str, Any] = {}

    def check_round(t: int, noised: np.ndarray, levels: np.ndarray, total: np.ndarray, spec: PackingSpec) -> None:
        if t == 0 and not args.no_encrypt and not encrypted:
            log.info("round 0 through the real codec: %d reporters × %d parameters", *noised.shape)
            encrypted.update(encrypted_round(noised, total, spec, fed.min_clients))

    curve = []
    eps_list = [math.inf if p == "inf" else float(p) for p in args.epsilons.split(",")]
    runs_at_8: list[dict[str, Any]] = []
    for eps in eps_list:
        runs = []
        for seed in range(args.seeds):
            t0 = time.perf_counter()
            run = train_federated(head, e_train, y_train, fed, eps, seed,
                                  on_round=check_round if eps == 8.0 and seed == 0 else None)
            s = scores(head, run.vector, e_test, y_test)
            runs.append({"seed": seed, "af_f1": s["af_f1"], "macro_f1_nao": s["macro_f1_nao"],
                         "f1": s["f1"], "noise_multiplier": round(run.noise_multiplier, 4),
                         "epsilon": round(run.epsilon, 3), "mean_reporters": round(float(np.mean(run.reporters)), 1),
                         "skipped_rounds": run.skipped, "seconds": round(time.perf_counter() - t0, 1)})
            log.info("ε %s seed %d: %s", eps, seed, runs[-1])
        point = {"epsilon_target": None if math.isinf(eps) else eps, **summarize(runs, "af_f1"),
                 **summarize(runs, "macro_f1_nao"), "runs": runs}
        curve.append(point)
        if eps == 8.0:
            runs_at_8 = runs

    af_central = float(np.mean([r["af_f1"] for r in central_runs]))
    result: dict[str, Any] = {
        "clients": len(train_idx), "held_out": len(test_idx), "split": "validation persons of the training side"
        if args.validate else f"CinC 2017 fold {TEST_FOLD} of the rhythm bench's person-wise 5-fold split",
        "cohort": fed.cohort, "rounds": fed.rounds, "epsilon": 8.0, "delta": 1e-5,
        "level": "user (one person's whole contribution)", "seeds": args.seeds,
        "af_f1_central": round(af_central, 4),
        "macro_f1_nao_central": round(float(np.mean([r["macro_f1_nao"] for r in central_runs])), 4),
        "af_f1_federated_dp": round(float(np.mean([r["af_f1"] for r in runs_at_8])), 4) if runs_at_8 else None,
        "macro_f1_nao_federated_dp": round(float(np.mean([r["macro_f1_nao"] for r in runs_at_8])), 4)
        if runs_at_8 else None,
        "af_f1_body_only": body_only["af_f1"], "central_runs": central_runs, "curve": curve,
        "seconds_per_round": encrypted.get("round_s"), "bytes_per_round": None,
        "encrypted_round": encrypted, "config": asdict(fed), "central_config": asdict(central_cfg),
        "head_parameters": len(head.initial), "body": str(BODY.relative_to(ROOT)),
        "body_trained_on": "MIT-BIH Arrhythmia + VFDB (public annotated databases; no CinC 2017)",
        "wall_s": round(time.perf_counter() - started, 1),
    }
    if encrypted:
        result.update(round_costs(encrypted, len(head.initial), fed.cohort))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    png = args.out.with_suffix(".png")
    plot(curve, af_central, png)
    print(f"{'ε':>6} {'AF F1 (mean, min–max)':>24} {'mean F1 N/A/O':>14}")
    for c in curve:
        eps_label = "∞" if c["epsilon_target"] is None else f"{c['epsilon_target']:g}"
        print(f"{eps_label:>6} {c['af_f1_mean']:>8.3f} ({c['af_f1_min']:.3f}–{c['af_f1_max']:.3f}) "
              f"{c['macro_f1_nao_mean']:>14.3f}")
    print(f"central (same head): AF F1 {af_central:.3f}; body alone (no CinC training): {body_only['af_f1']}")
    print(f"wrote {args.out} and {png}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
