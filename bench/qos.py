"""Quality of service: does an emergency stay fast while routine work floods the edge?

The same set-up as bench/scale.py (a `cardiomesh edge` process on a project Mosquitto, loader processes sending
1 Hz vitals, probe watches timing alert → first response command), run in alternating phases so both see the
same machine: **idle** (no routine traffic: only the probes' alerts) and **loaded** (5× a site's routine
load: `--site-watches` × 5 watches' vitals). Optionally **overload** (`--overload N` watches), past what the
edge can take, to show what is shed and that emergencies are not. Alerts are sustained wide-complex runs,
which the edge triages as emergencies. Each phase is repeated `--rounds` times and the latencies pooled, so a
moment of noise on this shared 2-core machine lands in both conditions alike.

    .venv/bin/python bench/qos.py [--site-watches 200] [--seconds 20] [--rounds 2] [--overload 5000]

Writes bench/results/qos.json: {"emergency_p99_ms_idle", "emergency_p99_ms_loaded", "routine_shed", …}.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import percentile, write_result
from bench.scale import level

LOAD_FACTOR = 5


def _phase(rows: list[dict[str, object]]) -> dict[str, object]:
    latencies = [x for r in rows for x in r["_latencies_ms"]]  # type: ignore[attr-defined]
    counters: dict[str, float] = {}
    for r in rows:
        for k, v in r["_counters"].items():  # type: ignore[attr-defined]
            counters[k] = counters.get(k, 0) + v
    return {
        "alerts": len(latencies), "p50_ms": round(percentile(latencies, 50), 2),
        "p99_ms": round(percentile(latencies, 99), 2), "max_ms": round(max(latencies, default=float("nan")), 2),
        "unanswered": sum(int(str(r["unanswered_alerts"])) for r in rows),
        "routine_per_s": round(sum(float(str(r["msgs_per_s"])) for r in rows) / len(rows), 1),
        "offered_per_s": round(sum(float(str(r["offered_per_s"])) for r in rows) / len(rows), 1),
        "edge_cpu_pct": round(sum(float(str(r["edge_cpu_pct"])) for r in rows) / len(rows), 1),
        "routine_shed": int(counters.get("shed.routine", 0)),
        "reserve_held": int(counters.get("reserve.held", 0)),
        "lost_vitals": sum(int(str(r["lost_vitals"])) for r in rows),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--site-watches", type=int, default=200, help="a site's normal routine load (watches)")
    parser.add_argument("--seconds", type=float, default=20.0, help="per phase run")
    parser.add_argument("--rounds", type=int, default=2, help="idle/loaded pairs, pooled")
    parser.add_argument("--overload", type=int, default=0, help="also run this many watches (0: skip)")
    parser.add_argument("--loaders", type=int, default=2)
    args = parser.parse_args()
    loaded_watches = LOAD_FACTOR * args.site_watches
    idle_rows, loaded_rows = [], []
    for _ in range(args.rounds):
        idle_rows.append(level(0, args.seconds, args.loaders))
        loaded_rows.append(level(loaded_watches, args.seconds, args.loaders))
        print(f"idle p99 {idle_rows[-1]['p99_ms']} ms · loaded p99 {loaded_rows[-1]['p99_ms']} ms", flush=True)
    idle, loaded = _phase(idle_rows), _phase(loaded_rows)
    result: dict[str, object] = {
        "emergency_p99_ms_idle": idle["p99_ms"], "emergency_p99_ms_loaded": loaded["p99_ms"],
        "routine_shed": loaded["routine_shed"],
        "loaded_over_idle": round(float(str(loaded["p99_ms"])) / float(str(idle["p99_ms"])), 2),
        "site_watches": args.site_watches, "load_factor": LOAD_FACTOR, "loaded_watches": loaded_watches,
        "idle": idle, "loaded": loaded,
    }
    table = [
        ("emergency p99 idle", f"{idle['p99_ms']} ms (p50 {idle['p50_ms']}, {idle['alerts']} alerts)"),
        (f"emergency p99 at {LOAD_FACTOR}× routine", f"{loaded['p99_ms']} ms (p50 {loaded['p50_ms']}, "
                                                     f"{loaded['alerts']} alerts, {loaded['routine_per_s']}/s vitals)"),
        ("loaded / idle", f"{result['loaded_over_idle']}× (goal ≤ 1.5×)"),
        ("routine shed (loaded)", str(loaded["routine_shed"])),
    ]
    if args.overload:
        over = _phase([level(args.overload, args.seconds, args.loaders)])
        result["overload_watches"], result["overload"] = args.overload, over
        table.append((f"overload ({args.overload} watches)",
                      f"emergency p99 {over['p99_ms']} ms, {over['unanswered']} unanswered, vitals "
                      f"{over['routine_per_s']}/s of {over['offered_per_s']}/s, shed {over['routine_shed']}, "
                      f"reserve held {over['reserve_held']}×"))
    write_result("qos", result, table)


if __name__ == "__main__":
    main()
