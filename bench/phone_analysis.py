"""How long the phone's full strip analysis takes on a 30 s strip (target: p50 ≤ 150 ms on this machine).

Timed as the phone runs it (with the shared beat model when `bench/results/model.pt` or
`CARDIOMESH_PHONE_MODEL` gives one) and, interleaved strip by strip so both see the same load, with the
wide-beat rule alone.

Real MIT-BIH 30 s strips (360 Hz, and the same strips resampled to 250 and 500 Hz) when the data is
present, synthetic strips otherwise. One warm-up run first (imports, filter design caches).

    .venv/bin/python bench/phone_analysis.py
"""

from __future__ import annotations

import os
import platform
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a script from anywhere

from bench._common import percentile, write_result
from shared.analysis.ectopy import MODEL_ENV
from shared.analysis.strip import analyze_strip
from shared.ecg.signal import Signal, resample
from shared.ecg.sources import load_wfdb, synthetic
from shared.settings import Settings

STRIP_S = 30.0
RECORDS = ("100", "105", "119", "201", "203", "208", "210", "221", "232", "233")
STARTS = (60.0, 600.0, 1200.0)
RATES = (250.0, 360.0, 500.0)


@contextmanager
def _model_off() -> Iterator[None]:
    """The wide-beat rule alone (no shared model), for comparison."""
    before = os.environ.get(MODEL_ENV)
    os.environ[MODEL_ENV] = "off"
    try:
        yield
    finally:
        if before is None:
            del os.environ[MODEL_ENV]
        else:
            os.environ[MODEL_ENV] = before


def strips() -> tuple[list[Signal], str]:
    directory = Settings().mitdb_dir
    if directory is not None and (directory / "100.hea").exists():
        base = [load_wfdb(directory / r, start_s=t, end_s=t + STRIP_S) for r in RECORDS for t in STARTS]
        source = f"MIT-BIH: {len(RECORDS)} records × {len(STARTS)} windows"
    else:
        base = [synthetic(STRIP_S, 360.0, heart_rate=hr, seed=seed) for hr in (60, 80, 110) for seed in range(4)]
        source = "synthetic (MIT-BIH not found)"
    return [resample(s, fs) for s in base for fs in RATES], source


def _timed(s: Signal) -> tuple[float, str]:
    started = time.perf_counter()
    result = analyze_strip(s.samples_mv, s.fs)
    return (time.perf_counter() - started) * 1000, result.ectopy_method


def main() -> None:
    signals, source = strips()
    method = _timed(signals[0])[1]  # warm-up (loads the shared beat model when present)
    with _model_off():
        _timed(signals[0])
    times: dict[float, list[float]] = {fs: [] for fs in RATES}
    rule_times: list[float] = []
    for s in signals:  # the default (shared model when present) and the rule alone, interleaved: same load
        ms, method = _timed(s)
        times[s.fs].append(ms)
        with _model_off():
            rule_times.append(_timed(s)[0])
    every = [t for ts in times.values() for t in ts]
    by_rate = {f"{fs:g}": {"p50_ms": round(percentile(ts, 50), 1), "p95_ms": round(percentile(ts, 95), 1)}
               for fs, ts in times.items()}
    result: dict[str, object] = {
        "strip_s": STRIP_S, "n": len(every), "p50_ms": round(percentile(every, 50), 1),
        "p95_ms": round(percentile(every, 95), 1), "max_ms": round(max(every), 1),
        "by_rate": by_rate,
        "source": source, "cpus": os.cpu_count(), "python": platform.python_version(),
        "target_p50_ms": 150, "mean_ms": round(float(np.mean(every)), 1),
        "ectopy_method": method,
        "wide_beat_rule_only": {"p50_ms": round(percentile(rule_times, 50), 1),
                                "p95_ms": round(percentile(rule_times, 95), 1)},
        "load_average_1min": round(os.getloadavg()[0], 2),
    }
    write_result("phone_analysis", result, [
        ("strips", f"{len(every)} × {STRIP_S:g} s ({source})"),
        ("ectopy", method),
        ("p50 / p95", f"{result['p50_ms']} / {result['p95_ms']} ms (target p50 ≤ 150 ms)"),
        ("rule only p50 / p95", f"{percentile(rule_times, 50):.1f} / {percentile(rule_times, 95):.1f} ms"),
        *[(f"{k} Hz p50/p95", f"{v['p50_ms']} / {v['p95_ms']} ms") for k, v in by_rate.items()],
    ])


if __name__ == "__main__":
    main()
