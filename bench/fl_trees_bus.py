"""The sample-DP beat trees trained over the real broker, release by release (`cardiomesh fl trees`): the
configuration bench/fl_trees.py chose on DS1 (`cardiomesh.fl_trees.PRESETS["dp"]`, not chosen again), 22 DS1 watches
each on its own MQTT connection, the edge hubs summing packed-Paillier ciphertexts blind, the coordinator decrypting
only sums of all 22, growing the trees and publishing every split signed (lossless deltas).

What it measures: that the protocol carries the whole training (releases, seconds, bytes per watch, the privacy
bill), and the DS2 figures of the model it yields beside bench/fl_trees.py's in-process runs of the same
configuration. The noise is secret (OS entropy), so this is one more independent run, not a replay of those.

    .venv/bin/python bench/fl_trees_bus.py [--edges 2]

Writes bench/results/fl_trees_bus.json and the model at bench/results/model_trees_dp_bus.npz.
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

    from cardiomesh.fl_trees import PRESETS, TreeOptions, run_tree_federation
    from shared.logs import configure
    from shared.settings import Settings

    configure("WARNING")
    in_process_path = RESULTS / "fl_trees.json"
    dp_row = json.loads(in_process_path.read_text()).get("federated_trees_sample_dp") \
        if in_process_path.is_file() else None
    if not dp_row:
        raise SystemExit(f"{in_process_path} has no DP trees: run bench/fl_trees.py --parts dp first")
    preset = PRESETS["dp"].config
    chosen = dp_row["chosen"]
    if (chosen["rounds"], chosen["depth"], chosen["learning_rate"]) != (preset.rounds, preset.max_depth,
                                                                        preset.learning_rate):
        raise SystemExit(f"bench/fl_trees.py chose {chosen}, the dp preset is {preset}: update the preset first")
    settings = Settings()
    if settings.mitdb_dir is None:
        raise SystemExit("MIT-BIH not found: set CARDIOMESH_DATA_DIR")
    with tempfile.TemporaryDirectory() as state:
        options = TreeOptions(preset="dp", epsilon=dp_row["epsilon"], delta=dp_row["delta"], edges=args.edges,
                              run_dir=Path(state) / "run")
        started = time.perf_counter()

        def progress(record: Any, label: str) -> None:
            if label in ("class counts", "sketch") or label.endswith("class 0, 1 node(s)"):
                print(f"  {time.perf_counter() - started:6.0f} s  {label}: {record.status}, {record.clients} watches",
                      flush=True)

        result = run_tree_federation(settings.model_copy(update={"state_dir": Path(state)}), options,
                                     progress=progress)
        model_path = RESULTS / "model_trees_dp_bus.npz"
        shutil.copyfile(result.model_path, model_path)
    final = result.final_metrics or {}
    seeds = dp_row["per_seed"]
    in_process = in_process_runs(seeds, "bench/fl_trees.py --parts dp")
    out = {
        "configuration": {"preset": "dp", **chosen, "features": dp_row["features"], "bins": dp_row["bins"],
                          "chosen_by": "bench/fl_trees.py on DS1 (read from fl_trees.json)"},
        "watches": 22, "edges": args.edges, "k": 22, "over": "the machine's Mosquitto, one connection per party",
        "releases": result.releases, "rounds": result.rounds, "epsilon": result.epsilon, "delta": result.delta,
        "level": "sample", "noise_multiplier": result.noise_multiplier, "seconds": result.seconds,
        "offline_precompute_s": result.offline_precompute_s, "release_s": result.release_s,
        "bytes_per_watch": result.bytes_per_client, "release_clipped": result.release_clipped,
        "release_seconds": {r["extra"].get("release", str(r["round"])): r["seconds"] for r in result.records},
        "ds2": final, "in_process_same_configuration": in_process,
        "model": str(model_path.relative_to(RESULTS.parent.parent)),
    }

    table = [
        ("releases over the bus (rounds)", f"{result.releases} ({result.rounds})"),
        ("ε, δ (sample level, per wearer)", f"{result.epsilon:.2f}, {result.delta:g}" if result.epsilon else "none"),
        ("wall seconds", f"{result.seconds:.0f}"),
        ("one release: class counts / sketch / histogram median (max)",
         f"{result.release_s['class_counts']:.2f} / {result.release_s['sketch']:.2f} / "
         f"{result.release_s['histogram_median']:.2f} ({result.release_s['histogram_max']:.2f}) s"),
        ("offline phase before the sketch (all watches)", f"{result.offline_precompute_s:.0f} s"),
        ("bytes sent per watch", f"{result.bytes_per_client:,}"),
        ("DS2 VEB Se / +P (bus)", f"{class_pct(final, 'V', 'se')} / {class_pct(final, 'V', 'ppv')}"),
        ("DS2 VEB Se (in process, 3 noise draws)", percents(in_process["veb_se"])),
        ("DS2 VEB +P (in process, 3 noise draws)", percents(in_process["veb_ppv"])),
        ("DS2 macro-F1 bus / in process", f"{final.get('macro_f1', float('nan')):.3f} / "
                                          f"{min(in_process['macro_f1']):.3f}–{max(in_process['macro_f1']):.3f}"),
    ]
    write_result("fl_trees_bus", out, table)


if __name__ == "__main__":
    main()
