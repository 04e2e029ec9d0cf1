"""Inter-patient accuracy of the watch detector: centralized, federated (plain), federated encrypted + DP,
local-only, a DP curve, and what personalization adds. Train on MIT-BIH DS1, test on DS2 (paced excluded).

    .venv/bin/python bench/fl_accuracy.py [--rounds 30] [--epochs 3] [--dp 100] [--parts federated_plain,dp_curve]

Every number comes from this run on this machine. Federated runs go over the real broker (embedded when
none answers) with one watch per DS1 patient; the DP curve reuses the same federation code per budget.
Personalization: a wearer's first 5 minutes of beats (clinician-confirmed labels in production) fine-tune
the global model's head; both models are then scored on the rest of that wearer's record (DS2 patients),
for the plaintext federation's model (`personalization`) and the encrypted + DP one
(`personalization_encrypted_dp`, which runs that federation first).
Federated runs ship the tail average of the last third of their global models (`FlOptions.average_last`);
the newest global model alone is reported beside it as `last_iterate`.
Every row is one seed (0). `seed_spread` says how much of a row is the seed: centralized training over
`--central-seeds` and the encrypted + DP federation over `--federated-seeds`, with mean, min and max.
Each metric dict carries `per_class` (matched beats) and `ec57` (ANSI/AAMI EC57's VEB/SVEB counting,
docs/adr/0008-ec57-beat-statistics.md).
"""

from __future__ import annotations

import argparse
import fcntl
import json
import math
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np
import torch

from bench._common import RESULTS, print_table
from cardiomesh.fl import FlOptions, run_federation
from shared.model.data import DS1, BeatSet, load_split
from shared.model.net import BeatNet
from shared.model.serialize import load_model, save_model
from shared.model.train import evaluate, finetune_head, metrics, predict, train_local
from shared.settings import Settings

PERSONAL_S = 300.0


def _mean_metrics(items: list[dict[str, Any]]) -> dict[str, Any]:
    def avg(values: list[float | None]) -> float | None:
        kept = [v for v in values if v is not None]
        return round(statistics.fmean(kept), 4) if kept else None

    return {
        "per_class": {c: {k: avg([m["per_class"][c][k] for m in items]) for k in ("se", "ppv")}
                      for c in ("N", "S", "V", "F")},
        "ec57": {kind: {k: avg([m["ec57"][kind][k] for m in items]) for k in keys}
                 for kind, keys in (("veb", ("se", "ppv", "fpr")), ("sveb", ("se", "ppv")))},
        "macro_f1": avg([m["macro_f1"] for m in items]), "auroc": avg([m["auroc"] for m in items]),
        "beats": items[0]["beats"] if items else 0, "models": len(items),
    }


def centralized(ds1: dict[str, BeatSet], ds2: dict[str, BeatSet], epochs: int,
                seed: int = 0) -> tuple[dict[str, Any], BeatNet]:
    torch.manual_seed(seed)
    model = BeatNet()
    started = time.perf_counter()
    train_local(model, list(ds1.values()), epochs=epochs, batch_size=64, lr=0.002, class_weighting="sqrt",
                augment=True, seed=seed)
    seconds = time.perf_counter() - started
    return {**evaluate(model, list(ds2.values())), "rounds": None, "epsilon": None, "delta": None,
            "seconds": round(seconds, 1), "epochs": epochs}, model


def local_only(ds1: dict[str, BeatSet], ds2: dict[str, BeatSet], epochs: int) -> dict[str, Any]:
    started = time.perf_counter()
    results = []
    for i, name in enumerate(sorted(ds1)):
        torch.manual_seed(i)
        model = BeatNet()
        train_local(model, ds1[name], epochs=epochs, batch_size=32, lr=0.001, class_weighting="sqrt",
                    augment=True, seed=i)
        results.append(evaluate(model, list(ds2.values())))
    return {**_mean_metrics(results), "rounds": None, "epsilon": None, "delta": None, "epochs": epochs,
            "seconds": round(time.perf_counter() - started, 1), "note": "mean over the 22 per-patient models"}


def federated(settings: Settings, ds1: dict[str, BeatSet], ds2: dict[str, BeatSet], args: argparse.Namespace, *,
              encrypt: bool, epsilon: float | None, seed: int = 0) -> tuple[dict[str, Any], Path]:
    with tempfile.TemporaryDirectory() as state:
        options = FlOptions(rounds=args.rounds, epochs=args.epochs, max_beats=args.max_beats or None,
                            encrypt=encrypt, dp_epsilon=epsilon, dp_delta=1e-5, batch_size=args.batch_size, lr=args.lr,
                            clip_norm=args.clip, evaluate_every=10_000, run_dir=Path(state) / "run", seed=seed)
        result = run_federation(settings.model_copy(update={"state_dir": Path(state)}), options,
                                train_sets=ds1, test_sets=ds2)
        suffix = f"_seed{seed}" if seed else ""
        keep = Path(settings.state_dir) / "bench" / f"fl_{'enc' if encrypt else 'plain'}_{epsilon or 'inf'}{suffix}.pt"
        model, meta = load_model(result.model_path)
        save_model(keep, model, meta)
    metrics = result.final_metrics or {}
    return {**metrics, "rounds": len(result.rounds), "epsilon": result.epsilon, "delta": result.delta,
            "seconds": result.seconds, "bytes_per_round": result.update_bytes[-1] if result.update_bytes else 0,
            "epochs": args.epochs, "max_beats": args.max_beats or None, "clip": args.clip,
            "noise_multiplier": result.noise_multiplier, "lr": args.lr, "batch_size": args.batch_size,
            "averaged_over": result.averaged_over, "last_iterate": _brief(result.last_iterate_metrics)}, keep


def personalization(model_path: Path, ds2: dict[str, BeatSet]) -> dict[str, Any]:
    """Each DS2 wearer's head fine-tuned on their first `PERSONAL_S` of confirmed beats, scored on the rest.

    Two views: the mean of per-wearer metrics (how a typical wearer fares), and all wearers' remaining
    beats pooled (comparable in kind with the DS2 table, though on fewer beats: the first minutes are out).
    """
    stages = ("global", "personalized")
    per_wearer: dict[str, list[dict[str, Any]]] = {k: [] for k in stages}
    pooled: dict[str, list[tuple[np.ndarray, np.ndarray]]] = {k: [] for k in stages}
    ys = []
    for _name, beats in sorted(ds2.items()):
        first = beats.sample < PERSONAL_S * 250
        rest = beats.subset(np.flatnonzero(~first)).labelled()
        own = beats.subset(np.flatnonzero(first))
        model, _ = load_model(model_path)
        ys.append(rest.y)
        for stage in stages:
            if stage == "personalized" and len(own.labelled()) >= 50:
                finetune_head(model, own, epochs=3, class_weighting="sqrt", seed=0)
            pred, score = predict(model, rest)  # one inference serves the wearer's metrics and the pool
            per_wearer[stage].append(metrics(rest.y, pred, score))
            pooled[stage].append((pred, score))
    y = np.concatenate(ys)
    return {**{k: _mean_metrics(per_wearer[k]) for k in stages},
            "pooled": {k: metrics(y, np.concatenate([p for p, _ in pooled[k]]),
                                  np.concatenate([sc for _, sc in pooled[k]])) for k in stages},
            "note": f"head fine-tuned on each DS2 wearer's first {PERSONAL_S:.0f} s, scored on the rest of the "
                    "same record; global/personalized: mean over wearers, pooled: all remaining beats together"}


PARTS = ("centralized", "local_only", "federated_plain", "federated_encrypted_dp", "personalization",
         "personalization_encrypted_dp", "dp_curve", "seed_spread")


def _merge(name: str, part: str, value: Any, *, measured_at: str | None = None) -> dict[str, Any]:
    """Read-merge-write one part of the results file under a lock, so parts may run in parallel processes.
    A callable `value` is given the file's current content and returns the part (computed under the lock).
    `measured_at`: when the part was measured, where that is not now (a part moved from another key)."""
    path = RESULTS / f"{name}.json"
    RESULTS.mkdir(parents=True, exist_ok=True)
    with open(RESULTS / f".{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        out = json.loads(path.read_text()) if path.exists() else {}
        out[part] = value(out) if callable(value) else value
        out.setdefault("measured", {})[part] = measured_at or time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        path.write_text(json.dumps(out, indent=2) + "\n")
    return out


def _keep(candidate: Path, label: str) -> Path:
    """Keep a federated model beside the shipped one, as `model_<label>.pt`. It never replaces
    bench/results/model.pt: picking the shipped model by its DS2 score would be choosing on the test set."""
    model, meta = load_model(candidate)
    target = RESULTS / f"model_{label}.pt"
    save_model(target, model, {**meta, "experiment": label, "train": "DS1", "test": "DS2"})
    return target


def _ec57_veb(m: dict[str, Any]) -> dict[str, Any]:
    """VEB as EC57 counts it ({"se", "ppv", "fpr"}); empty for results measured before it was."""
    ec57: dict[str, Any] = m.get("ec57") or {}
    return ec57.get("veb") or {}


def _ec57_veb_ppv(m: dict[str, Any]) -> float | None:
    return _ec57_veb(m).get("ppv")


def _brief(m: dict[str, Any] | None) -> dict[str, Any] | None:
    if not m:
        return None
    return {"macro_f1": m.get("macro_f1"), "veb": [m["per_class"]["V"]["se"], m["per_class"]["V"]["ppv"]],
            "veb_ppv_ec57": _ec57_veb_ppv(m), "sveb": [m["per_class"]["S"]["se"], m["per_class"]["S"]["ppv"]]}


def _seed_row(seed: int, m: dict[str, Any], source: str) -> dict[str, Any]:
    v, veb = m["per_class"]["V"], _ec57_veb(m)
    return {"seed": seed, "source": source, "macro_f1": m.get("macro_f1"), "veb": [v["se"], v["ppv"]],
            "veb_ec57": [veb.get("se"), veb.get("ppv")],
            "sveb": [m["per_class"]["S"]["se"], m["per_class"]["S"]["ppv"]], "seconds": m.get("seconds")}


def _spread_summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Mean, min and max over seeds of macro-F1 and of both VEB conventions' Se and +P."""
    def stats(values: list[float | None]) -> dict[str, float] | None:
        kept = [x for x in values if x is not None]
        if not kept:
            return None
        return {"mean": round(statistics.fmean(kept), 4), "min": min(kept), "max": max(kept)}

    return {"seeds": [r["seed"] for r in rows], "macro_f1": stats([r["macro_f1"] for r in rows]),
            "veb_se": stats([r["veb"][0] for r in rows]), "veb_ppv": stats([r["veb"][1] for r in rows]),
            "veb_se_ec57": stats([r["veb_ec57"][0] for r in rows]),
            "veb_ppv_ec57": stats([r["veb_ec57"][1] for r in rows])}


def seed_spread(settings: Settings, ds1: dict[str, BeatSet], ds2: dict[str, BeatSet],
                args: argparse.Namespace) -> Any:
    """How much of a row is the seed: centralized training and the encrypted + DP federation over several seeds.

    The headline rows are seed 0 each. Seed 0 of the federation is taken from the `federated_encrypted_dp`
    row rather than run again; seeds measured by an earlier invocation are kept. Returns the merge callable.
    """
    central = [_seed_row(s, centralized(ds1, ds2, args.central_epochs, seed=s)[0], "centralized")
               for s in _seed_list(args.central_seeds)]
    federated_rows = [_seed_row(s, federated(settings, ds1, ds2, args, encrypt=True, epsilon=args.dp, seed=s)[0],
                                "federated_encrypted_dp")
                      for s in _seed_list(args.federated_seeds) if s != 0]

    def merge(done: dict[str, Any]) -> dict[str, Any]:
        before = done.get("seed_spread") or {}

        def combine(new: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
            rows = {r["seed"]: r for r in (before.get(kind) or {}).get("runs", [])}
            rows.update({r["seed"]: r for r in new})
            if kind == "federated_encrypted_dp" and "federated_encrypted_dp" in done:
                rows[0] = _seed_row(0, done["federated_encrypted_dp"], "federated_encrypted_dp")
            return [rows[k] for k in sorted(rows)]

        out = {}
        for kind, new in (("centralized", central), ("federated_encrypted_dp", federated_rows)):
            runs = combine(new, kind)
            out[kind] = {"runs": runs, "summary": _spread_summary(runs)}
        return out

    return merge


def _seed_list(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x.strip()]


def _curve_point(budget: float | str, m: dict[str, Any], source: str) -> dict[str, Any]:
    return {"epsilon": budget, "macro_f1": m.get("macro_f1"), "veb_se": m["per_class"]["V"]["se"],
            "veb_ppv": m["per_class"]["V"]["ppv"], "veb_ppv_ec57": _ec57_veb_ppv(m),
            "sveb_se": m["per_class"]["S"]["se"],
            "sveb_ppv": m["per_class"]["S"]["ppv"], "rounds": m.get("rounds"), "source": source}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--max-beats", type=int, default=0, help="cap on a watch's beats per round (0: all of them)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=0.002)
    parser.add_argument("--clip", type=float, default=1.5, help="L2 clip: about the median update norm measured here")
    parser.add_argument("--dp", type=float, default=100.0, help="total ε of the encrypted + DP run")
    parser.add_argument("--curve", default="0.5,2,8,30", help="further total ε budgets for the DP curve (∞ and --dp "
                                                           "come from the plain and encrypted runs; budgets "
                                                           "measured by an earlier invocation are kept)")
    parser.add_argument("--central-epochs", type=int, default=6)
    parser.add_argument("--local-epochs", type=int, default=10, help="epochs of each local-only model")
    parser.add_argument("--central-seeds", default="0,1,2,3,4", help="seed_spread: seeds of centralized training")
    parser.add_argument("--federated-seeds", default="1,2",
                        help="seed_spread: seeds of the encrypted + DP federation (seed 0 is its headline row)")
    parser.add_argument("--parts", default=",".join(PARTS),
                        help=f"comma-separated subset of {', '.join(PARTS)}; parts not run keep their earlier "
                             "results in the file (each part records when it was measured)")
    args = parser.parse_args()
    parts = [p.strip() for p in args.parts.split(",") if p.strip()]
    unknown = sorted(set(parts) - set(PARTS))
    if unknown:
        raise SystemExit(f"unknown part(s) {unknown}: choose from {', '.join(PARTS)}")
    # one thread always: a seeded run then gives the same numbers however the parts are grouped (the thread
    # count changes float reductions, and with them a whole training run: centralized seed 0 scored
    # macro-F1 0.563 on two threads, 0.618 on one), small models run best on one, and parallel parts do
    # not oversubscribe the cores
    torch.set_num_threads(1)
    settings = Settings()
    if settings.mitdb_dir is None:
        raise SystemExit("MIT-BIH not found: set CARDIOMESH_DATA_DIR to a folder holding mitdb/")
    ds1 = load_split("DS1", settings.mitdb_dir)
    ds2 = load_split("DS2", settings.mitdb_dir)
    assert sorted(ds1) == sorted(DS1)
    out: dict[str, Any] = {}
    if "centralized" in parts:
        out = _merge("fl_accuracy", "centralized", centralized(ds1, ds2, args.central_epochs)[0])
    if "local_only" in parts:
        out = _merge("fl_accuracy", "local_only", local_only(ds1, ds2, args.local_epochs))
    if "federated_plain" in parts or "personalization" in parts:
        plain, plain_model = federated(settings, ds1, ds2, args, encrypt=False, epsilon=None)
        out = _merge("fl_accuracy", "federated_plain", plain)
        _keep(plain_model, "federated_plain")
        if "personalization" in parts:
            out = _merge("fl_accuracy", "personalization", personalization(plain_model, ds2))
    if "federated_encrypted_dp" in parts or "personalization_encrypted_dp" in parts:
        enc, enc_model = federated(settings, ds1, ds2, args, encrypt=True, epsilon=args.dp)
        out = _merge("fl_accuracy", "federated_encrypted_dp", enc)
        _keep(enc_model, "federated_encrypted_dp")
        if "personalization_encrypted_dp" in parts:
            out = _merge("fl_accuracy", "personalization_encrypted_dp", personalization(enc_model, ds2))
    if "dp_curve" in parts:
        curve = []
        for budget in (float(x) for x in args.curve.split(",") if x.strip()):
            m, _ = federated(settings, ds1, ds2, args, encrypt=False, epsilon=None if math.isinf(budget) else budget)
            curve.append(_curve_point(budget if not math.isinf(budget) else "inf", m, "federated, plaintext + DP"))

        def _whole_curve(done: dict[str, Any]) -> list[dict[str, Any]]:
            measured = {c["epsilon"] for c in curve}
            whole = curve + [c for c in done.get("dp_curve", [])  # budgets measured by another invocation stay
                             if c.get("source") == "federated, plaintext + DP" and c["epsilon"] not in measured]
            if "federated_encrypted_dp" in done:
                enc = done["federated_encrypted_dp"]
                whole.append(_curve_point(enc["epsilon"], enc, "federated_encrypted_dp"))
            if "federated_plain" in done:
                whole.append(_curve_point("inf", done["federated_plain"], "federated_plain"))
            return sorted(whole, key=lambda c: math.inf if c["epsilon"] == "inf" else float(c["epsilon"]))

        out = _merge("fl_accuracy", "dp_curve", _whole_curve)
        curve = out["dp_curve"]
        _plot_curve(curve, RESULTS / "fl_dp_curve.png")
    if "seed_spread" in parts:
        out = _merge("fl_accuracy", "seed_spread", seed_spread(settings, ds1, ds2, args))
    out = _merge("fl_accuracy", "parts_run", parts)  # the file as it now stands, other invocations included
    rows = [(k, f"macro-F1 {v.get('macro_f1')}  VEB Se/+P {v['per_class']['V']['se']}/{v['per_class']['V']['ppv']}"
                f" (EC57 +P {_ec57_veb_ppv(v)})"
                f"  SVEB Se/+P {v['per_class']['S']['se']}/{v['per_class']['S']['ppv']}  ε {v.get('epsilon')}")
            for k, v in out.items() if isinstance(v, dict) and "per_class" in v]
    for kind, spread in (out.get("seed_spread") or {}).items():
        sm = spread["summary"]

        def span(key: str, sm: dict[str, Any] = sm) -> str:
            st = sm.get(key)
            return "n/a" if not st else f"{st['mean']:.4f} ({st['min']}–{st['max']})"

        rows.append((f"{kind}, seeds {sm['seeds']}",
                     f"macro-F1 {span('macro_f1')}  VEB Se {span('veb_se')} +P {span('veb_ppv')}"
                     f"  EC57 VEB Se {span('veb_se_ec57')} +P {span('veb_ppv_ec57')}"))
    print_table("fl_accuracy", rows)



def _plot_curve(curve: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = ["∞" if c["epsilon"] == "inf" else f"{float(c['epsilon']):.3g}" for c in curve]
    fig, ax = plt.subplots(figsize=(6, 3.6))
    for key, style in (("macro_f1", "o-"), ("veb_se", "s--"), ("veb_ppv", "s:"), ("sveb_se", "^--")):
        ax.plot(labels, [c[key] or 0 for c in curve], style, label=key)
    ax.set_xlabel("total ε over all rounds (δ = 1e-5)")
    ax.set_ylim(0, 1)
    ax.set_title("DS2 accuracy vs privacy budget (22 clients)")
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    main()
