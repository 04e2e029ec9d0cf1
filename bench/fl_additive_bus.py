"""The sample-DP additive beat model trained over the real broker, release by release (`cardiomesh fl additive`):
the configuration and operating point `bench/fl_additive.py` chose on DS1 (read from its result, not chosen again),
22 DS1 watches each on its own MQTT connection, the edge hubs summing packed-Paillier ciphertexts blind, the
coordinator decrypting only sums of all 22 and publishing every new shape signed (lossless deltas).

What it measures: that the protocol carries the whole training (releases, seconds, bytes per watch, the privacy
bill), and the DS2 figures of the model it yields beside the in-process runs of the same configuration. The noise
is secret (OS entropy), so this is one more independent run, not a replay of those.

    .venv/bin/python bench/fl_additive_bus.py [--edges 2] [--epochs N]

Writes bench/results/fl_additive_bus.json and the model at bench/results/model_additive_dp_bus.npz.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import RESULTS, class_pct, write_result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--edges", type=int, default=2, help="edge hubs the 22 watches are spread over")
    parser.add_argument("--epochs", type=int, default=None, help="override the chosen epochs (a quicker look)")
    args = parser.parse_args()

    from cardiomesh.fl_additive import AdditiveOptions, run_additive_federation
    from shared.logs import configure
    from shared.settings import Settings

    configure("WARNING")
    chosen_path = RESULTS / "fl_additive.json"
    if not chosen_path.is_file():
        raise SystemExit(f"{chosen_path} not found: run bench/fl_additive.py first (it chooses the configuration)")
    dp_row = json.loads(chosen_path.read_text())["federated_encrypted_sample_dp"]
    chosen, offset = dp_row["chosen"], dp_row["v_logit_offset"]["value"]
    settings = Settings()
    if settings.mitdb_dir is None:
        raise SystemExit("MIT-BIH not found: set CARDIOMESH_DATA_DIR")
    epochs = args.epochs or chosen["epochs"]
    with tempfile.TemporaryDirectory() as state:
        options = AdditiveOptions(features=chosen["features"], epochs=epochs, bins=chosen["bins"],
                                  epsilon=dp_row["epsilon"], delta=dp_row["delta"], v_offset=offset,
                                  edges=args.edges, min_clients=22, run_dir=Path(state) / "run")
        started = time.perf_counter()
        last = [started]

        def progress(record: Any, label: str) -> None:
            now = time.perf_counter()
            if now - last[0] > 30 or label == "counts":
                print(f"  {now - started:6.0f} s  {label}: {record.status}, {record.clients} watches", flush=True)
                last[0] = now

        result = run_additive_federation(settings.model_copy(update={"state_dir": Path(state)}), options,
                                         progress=progress)
        model_path = RESULTS / "model_additive_dp_bus.npz"
        shutil.copyfile(result.model_path, model_path)
    release_s = [r["seconds"] for r in result.records]
    final, without = result.final_metrics or {}, result.without_offset_metrics
    in_process = {"per_class": dp_row["per_class"], "macro_f1": dp_row["macro_f1"], "seeds": dp_row["seeds"]}
    out = {
        "configuration": {**chosen, "epochs": epochs, "v_logit_offset": offset,
                          "chosen_by": "bench/fl_additive.py on DS1 (read from fl_additive.json)"},
        "watches": 22, "edges": args.edges, "k": 22, "over": "the machine's Mosquitto, one connection per party",
        "releases": result.releases, "skipped": result.skipped, "epsilon": result.epsilon, "delta": result.delta,
        "level": "sample", "noise_multiplier": result.noise_multiplier, "seconds": result.seconds,
        "offline_precompute_s": result.offline_precompute_s,
        "release_s": {"counts": release_s[0], "gradient_median": sorted(release_s[1:])[len(release_s[1:]) // 2],
                      "gradient_max": max(release_s[1:])},
        "bytes_per_watch": result.bytes_per_client,
        "ds2": final, "ds2_without_offset": without, "in_process_same_configuration": in_process,
        "model": str(model_path.relative_to(RESULTS.parent.parent)),
    }
    table = [
        ("releases over the bus (skipped)", f"{result.releases} ({result.skipped})"),
        ("ε, δ (sample level, per wearer)", f"{result.epsilon:.2f}, {result.delta:g}" if result.epsilon else "none"),
        ("wall seconds", f"{result.seconds:.0f}"),
        ("one release: counts / gradient median",
         f"{release_s[0]:.1f} s / {out['release_s']['gradient_median']:.2f} s"),
        ("offline phase before the counts (all watches)", f"{result.offline_precompute_s:.0f} s"),
        ("bytes sent per watch", f"{result.bytes_per_client:,}"),
        ("DS2 VEB Se / +P (bus)", f"{class_pct(final, 'V', 'se')} / {class_pct(final, 'V', 'ppv')}"),
        ("DS2 VEB Se / +P (in process, 3 seeds)",
         f"{class_pct(in_process, 'V', 'se')} / {class_pct(in_process, 'V', 'ppv')}"),
        ("DS2 macro-F1 bus / in process", f"{final.get('macro_f1', float('nan')):.3f} / {in_process['macro_f1']:.3f}"),
    ]
    write_result("fl_additive_bus", out, table)


if __name__ == "__main__":
    main()
