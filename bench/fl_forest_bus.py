"""The DP forest trained over the real broker (`cardiomesh fl forest`): the cell bench/_dp_forest.py chose on DS1
(`cardiomesh.fl_forest.ForestOptions`' defaults, checked against bench/results/fl_forest.json, not chosen again),
22 DS1 watches each on its own MQTT connection, the edge hubs summing packed-Paillier ciphertexts blind, the
coordinator decrypting only sums of all 22 and publishing the bins, then the leaves, signed (lossless deltas).

What it measures: that the protocol carries the whole training (its two releases, seconds, bytes per watch, the
privacy bill), and the DS2 figures of the model it yields beside bench/fl_forest.py's in-process runs of the same
cell. The noise is secret (OS entropy), so this is one more independent run, not a replay of those.

    .venv/bin/python bench/fl_forest_bus.py [--edges 2]

Writes bench/results/fl_forest_bus.json and the model at bench/results/model_forest_dp_bus.npz. About 15 min here,
most of it 22 watches encrypting on 2 cores.
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

from bench._common import RESULTS, class_pct, in_process_runs, percents, write_result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--edges", type=int, default=2, help="edge hubs the 22 watches are spread over")
    args = parser.parse_args()

    from cardiomesh.fl_forest import ForestOptions, run_forest_federation
    from shared.logs import configure
    from shared.settings import Settings

    configure("WARNING")
    row = json.loads((RESULTS / "fl_forest.json").read_text())["federated_encrypted_sample_dp"]
    chosen, defaults = row["chosen"], ForestOptions()
    if ((chosen["trees"], chosen["depth"], chosen["bins"], row["v_logit_offset"]["value"])
            != (defaults.trees, defaults.depth, defaults.bins, defaults.v_offset)):
        raise SystemExit(f"bench/fl_forest.py trained {chosen}, `fl forest` defaults to {defaults}: align them first")
    settings = Settings()
    if settings.mitdb_dir is None:
        raise SystemExit("MIT-BIH not found: set CARDIOMESH_DATA_DIR")
    with tempfile.TemporaryDirectory() as state:
        options = ForestOptions(epsilon=row["epsilon"], delta=row["delta"], edges=args.edges,
                                run_dir=Path(state) / "run")
        started = time.perf_counter()

        def progress(record: Any, label: str) -> None:
            print(f"  {time.perf_counter() - started:6.0f} s  {label}: {record.status}, {record.clients} watches, "
                  f"{record.seconds:.1f} s", flush=True)

        result = run_forest_federation(settings.model_copy(update={"state_dir": Path(state)}), options,
                                       progress=progress)
        model_path = RESULTS / "model_forest_dp_bus.npz"
        shutil.copyfile(result.model_path, model_path)
    final = result.final_metrics or {}
    seeds = row["per_seed"]
    in_process = in_process_runs(seeds, "bench/fl_forest.py")
    release_s = {r["extra"].get("release", str(r["round"])): r["seconds"] for r in result.records}
    out = {
        "configuration": {**chosen, "v_logit_offset": defaults.v_offset,
                          "chosen_by": "bench/_dp_forest.py --protocol loro on DS1 (read from fl_forest.json)"},
        "watches": 22, "edges": args.edges, "k": 22, "over": "the machine's Mosquitto, one connection per party",
        "releases": result.releases, "epsilon": result.epsilon, "delta": result.delta, "level": "sample",
        "noise_multiplier": result.noise_multiplier, "seconds": result.seconds,
        "offline_precompute_s": result.offline_precompute_s, "release_seconds": release_s,
        "bytes_per_watch": result.bytes_per_client, "release_clipped": result.release_clipped,
        "ds2": final, "in_process_same_configuration": in_process,
        "model": str(model_path.relative_to(RESULTS.parent.parent)),
    }

    table = [
        ("releases over the bus", str(result.releases)),
        ("ε, δ (sample level, per wearer)", f"{result.epsilon:.2f}, {result.delta:g}" if result.epsilon else "none"),
        ("wall seconds", f"{result.seconds:.0f}"),
        ("one release: counts / leaves", " / ".join(f"{s:.1f} s" for s in release_s.values())),
        ("offline phase before each release (all watches)", f"{result.offline_precompute_s:.0f} s"),
        ("bytes sent per watch", f"{result.bytes_per_client:,}"),
        ("values clipped to the packing range", str(result.release_clipped)),
        ("DS2 VEB Se / +P (bus)", f"{class_pct(final, 'V', 'se')} / {class_pct(final, 'V', 'ppv')}"),
        ("DS2 VEB Se (in process, 3 runs)", percents(in_process["veb_se"])),
        ("DS2 VEB +P (in process, 3 runs)", percents(in_process["veb_ppv"])),
        ("DS2 macro-F1 bus / in process", f"{final.get('macro_f1', float('nan')):.3f} / "
                                          f"{min(in_process['macro_f1']):.3f}–{max(in_process['macro_f1']):.3f}"),
    ]
    write_result("fl_forest_bus", out, table)


if __name__ == "__main__":
    main()
