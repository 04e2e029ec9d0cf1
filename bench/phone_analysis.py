"""How long the phone's full strip analysis takes on a 30 s strip (target: p50 ≤ 100 ms with the learned
rhythm reader on, on this machine).

Timed as the phone runs it (the learned rhythm reader `bench/results/rhythm.pt` or `CARDIOMESH_RHYTHM_MODEL`,
and the shared beat model `bench/results/model.pt` or `CARDIOMESH_PHONE_MODEL`) and, interleaved strip by
strip so all see the same load, without the reader, and with the wide-beat rule alone.

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
from shared.model.rhythm.reader import MODEL_ENV as READER_ENV
from shared.settings import Settings

STRIP_S = 30.0
RECORDS = ("100", "105", "119", "201", "203", "208", "210", "221", "232", "233")
STARTS = (60.0, 600.0, 1200.0)
RATES = (250.0, 360.0, 500.0)


@contextmanager
def _off(env: str) -> Iterator[None]:
    """One of the models switched off, for comparison."""
    before = os.environ.get(env)
    os.environ[env] = "off"
    try:
        yield
    finally:
        if before is None:
            del os.environ[env]
        else:
            os.environ[env] = before





def strips() -> tuple[list[Signal], str]:
    directory = Settings().mitdb_dir
    if directory is not None and (directory / "100.hea").exists():
        base = [load_wfdb(directory / r, start_s=t, end_s=t + STRIP_S) for r in RECORDS for t in STARTS]
        source = f"MIT-BIH: {len(RECORDS)} records × {len(STARTS)} windows"
    else:
        base = [synthetic(STRIP_S, 360.0, heart_rate=hr, seed=seed) for hr in (60, 80, 110) for seed in range(4)]
        source = "synthetic (MIT-BIH not found)"
    return [resample(s, fs) for s in base for fs in RATES], source


def _timed(s: Signal) -> tuple[float, str, str | None]:
    started = time.perf_counter()
    result = analyze_strip(s.samples_mv, s.fs)
    return (time.perf_counter() - started) * 1000, result.ectopy_method, result.reader


def main() -> None:
    signals, source = strips()
    _, method, reader = _timed(signals[0])  # warm-up (loads the reader and the shared beat model when present)
    with _off(MODEL_ENV), _off(READER_ENV):
        _timed(signals[0])
    times: dict[float, list[float]] = {fs: [] for fs in RATES}
    rule_times: list[float] = []
    no_reader: list[float] = []
    for s in signals:  # as the phone runs it, without the reader, and the rule alone, interleaved: same load
        ms, method, reader = _timed(s)
        times[s.fs].append(ms)
        with _off(READER_ENV):
            no_reader.append(_timed(s)[0])
        with _off(MODEL_ENV), _off(READER_ENV):
            rule_times.append(_timed(s)[0])
    every = [t for ts in times.values() for t in ts]
    by_rate = {f"{fs:g}": {"p50_ms": round(percentile(ts, 50), 1), "p95_ms": round(percentile(ts, 95), 1)}
               for fs, ts in times.items()}
    result: dict[str, object] = {
        "strip_s": STRIP_S, "n": len(every), "p50_ms": round(percentile(every, 50), 1),
        "p95_ms": round(percentile(every, 95), 1), "max_ms": round(max(every), 1),
        "by_rate": by_rate,
        "source": source, "cpus": os.cpu_count(), "python": platform.python_version(),
        "target_p50_ms": 100, "mean_ms": round(float(np.mean(every)), 1),
        "ectopy_method": method, "rhythm_reader": reader,
        "without_reader": {"p50_ms": round(percentile(no_reader, 50), 1),
                           "p95_ms": round(percentile(no_reader, 95), 1)},
        "wide_beat_rule_only": {"p50_ms": round(percentile(rule_times, 50), 1),
                                "p95_ms": round(percentile(rule_times, 95), 1)},
        "load_average_1min": round(os.getloadavg()[0], 2),
    }
    write_result("phone_analysis", result, [
        ("strips", f"{len(every)} × {STRIP_S:g} s ({source})"),
        ("ectopy", method),
        ("rhythm reader", reader or "off (no rhythm.pt)"),
        ("p50 / p95", f"{result['p50_ms']} / {result['p95_ms']} ms (target p50 ≤ 100 ms)"),
        ("without reader p50 / p95", f"{percentile(no_reader, 50):.1f} / {percentile(no_reader, 95):.1f} ms"),
        ("rules, no models p50 / p95", f"{percentile(rule_times, 50):.1f} / {percentile(rule_times, 95):.1f} ms"),
        *[(f"{k} Hz p50/p95", f"{v['p50_ms']} / {v['p95_ms']} ms") for k, v in by_rate.items()],
    ])


if __name__ == "__main__":
    main()
