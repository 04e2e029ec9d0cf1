"""The learned detector under CPU load: to the small model variant when inference runs over budget, back after.

Load is real CPU: `inference_slowdown_ms` burns it in a busy loop on every beat classified (the small
variant burns its relative cost's share, as a slower CPU slows both), and the detector times inference
with the wall clock, as it does in service.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
import torch

from shared.ecg.signal import MODEL_FS, resample
from shared.ecg.sources import SyntheticEpisode, load_wfdb, synthetic
from shared.model.net import BeatNet, NetConfig
from shared.model.serialize import load_model
from watch_agent.detector import DetectorEvent
from watch_agent.learned import DEFAULT_MODEL, DEFAULT_SMALL_MODEL, LearnedDetector
from watch_agent.variants import VariantPolicy, VariantSwitch

TINY = NetConfig(channels=(4, 4), kernel=5, groups=2, pooled=2, context_hidden=8, hidden=8)
TINIER = NetConfig(channels=(4,), kernel=5, groups=2, pooled=2, context_hidden=8, hidden=8)
needs_variants = pytest.mark.skipif(not (DEFAULT_MODEL.is_file() and DEFAULT_SMALL_MODEL.is_file()),
                                    reason="no shipped model and small variant in bench/results")


@dataclass
class Second:
    """What one second of signal (one window, fed as one chunk) did."""

    t_s: int
    variant: str | None
    events: list[DetectorEvent] = field(default_factory=list)
    switches: list[VariantSwitch] = field(default_factory=list)


def _drive(det: LearnedDetector, x: np.ndarray, load_until_s: int, slowdown_ms: float) -> list[Second]:
    """Feed `x` in 1 s chunks with the injected load on until `load_until_s`, then off."""
    step = round(det.fs)
    out = []
    for i in range(0, len(x) // step):
        det.inference_slowdown_ms = slowdown_ms if i < load_until_s else 0.0
        events = det.feed(x[i * step:(i + 1) * step])
        out.append(Second(i + 1, det.variant, events, det.pop_switches()))
    return out


def _switches(seconds: list[Second]) -> list[tuple[int, VariantSwitch]]:
    return [(s.t_s, sw) for s in seconds for sw in s.switches]


def _counting(model: BeatNet) -> list[int]:
    """Beats each call of `model` classified (a forward hook: which variant really ran)."""
    calls: list[int] = []
    model.register_forward_hook(lambda _m, args, _out: calls.append(int(args[0].shape[0])))
    return calls


def test_switches_under_injected_load_and_back_on_synthetic_ecg(caplog: pytest.LogCaptureFixture) -> None:
    """Tachycardia from 20 s to 40 s, load until 45 s: small from the first seconds, the alert still raised on
    the small variant, the full model back within 10 timed windows of the load going (plus slack)."""
    torch.manual_seed(0)
    full, small = BeatNet(TINY), BeatNet(TINIER)
    full_calls, small_calls = _counting(full), _counting(small)
    det = LearnedDetector(MODEL_FS, model=full, small_model=small,
                          policy=VariantPolicy(budget_ms=20, over_windows=3, recover_windows=10, relative_cost=0.5))
    x = synthetic(80, MODEL_FS, episodes=[SyntheticEpisode("tachycardia", 20, 20)], seed=7).samples_mv
    with caplog.at_level(logging.WARNING, logger="watch_agent.learned"):
        seconds = _drive(det, x, load_until_s=45, slowdown_ms=30)  # full 30 ms a beat, small 15: over a 20 ms budget

    switches = _switches(seconds)
    assert [sw.to for _, sw in switches] == ["small", "full"], switches
    (t_small, to_small), (t_full, to_full) = switches
    assert t_small <= 8 and "over the 20 ms budget for 3 windows in a row" in to_small.reason
    assert to_small.latency_ms > 20
    assert 45 + 10 <= t_full <= 45 + 25 and "predicts the full model" in to_full.reason
    assert det.switches == 2 and det.variant == "full"
    # the variant reported is the one that ran: small between the switches, full before and after
    ran_small_between = sum(small_calls) and all(s.variant == "small" for s in seconds[t_small:t_full - 1])
    assert ran_small_between and sum(full_calls) > 0
    alerts = [(s.t_s, s.variant, e.kind) for s in seconds for e in s.events]
    assert [(v, k) for _, v, k in alerts] == [("small", "tachycardia")], alerts
    assert sum("full → small" in r.getMessage() for r in caplog.records) == 1
    assert sum("small → full" in r.getMessage() and "predicts" in r.getMessage() for r in caplog.records) == 1


def test_windows_are_seconds_of_signal_whatever_the_chunking() -> None:
    torch.manual_seed(0)
    x = synthetic(30, MODEL_FS, seed=3).samples_mv
    windows = []
    for chunk_s in (0.04, 0.25, 2.0):
        policy = VariantPolicy(budget_ms=1e6)
        det = LearnedDetector(MODEL_FS, model=BeatNet(TINY), small_model=BeatNet(TINIER), policy=policy)
        step = max(1, round(chunk_s * MODEL_FS))
        for i in range(0, len(x), step):
            det.feed(x[i:i + step])
        windows.append(policy.windows)
    # one timed window per second with a beat classified (2 s chunks: one per chunk, i.e. every other second)
    assert 25 <= windows[0] <= 30 and windows[0] == windows[1] and 12 <= windows[2] <= 15


def test_without_a_small_variant_nothing_switches() -> None:
    det = LearnedDetector(MODEL_FS, model=BeatNet(TINY), policy=VariantPolicy(budget_ms=0.001, over_windows=1))
    assert det.policy is None and det.variant == "full"
    for s in _drive(det, synthetic(10, MODEL_FS, seed=3).samples_mv, load_until_s=10, slowdown_ms=1):
        assert s.variant == "full" and not s.switches


def test_a_restarted_detector_keeps_the_device_state() -> None:
    """The watch restarts its detector after a drill: the variant is the device's, not the episode's."""
    det = LearnedDetector(MODEL_FS, model=BeatNet(TINY), small_model=BeatNet(TINIER),
                          policy=VariantPolicy(budget_ms=5, over_windows=1))
    _drive(det, synthetic(6, MODEL_FS, seed=3).samples_mv, load_until_s=6, slowdown_ms=10)
    assert det.variant == "small" and det.switches == 1
    fresh = LearnedDetector(MODEL_FS, model=BeatNet(TINY), small_model=BeatNet(TINIER),
                            policy=VariantPolicy(budget_ms=5, over_windows=1))
    fresh.carry_over(det)
    assert fresh.variant == "small" and fresh.switches == 1 and fresh.policy is not det.policy


# ---------------------------------------------------------------- the shipped variants on real ECG
def _record(mitdb: Path, record: str, start: float, end: float) -> np.ndarray:
    return resample(load_wfdb(mitdb / record, start_s=start, end_s=end), MODEL_FS).samples_mv


@needs_variants
def test_settings_configure_the_shipped_variants(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CARDIOMESH_WATCH_INFERENCE_BUDGET_MS", "20")
    monkeypatch.setenv("CARDIOMESH_WATCH_INFERENCE_SLOWDOWN_MS", "25")
    det = LearnedDetector(MODEL_FS)
    _, meta = load_model(DEFAULT_SMALL_MODEL)
    assert det.small_model is not None and det.policy is not None and det.variant == "full"
    assert det.policy.budget_ms == 20 and det.inference_slowdown_ms == 25
    assert det.policy.relative_cost == meta["relative_cost"]
    assert LearnedDetector(MODEL_FS, model=BeatNet(TINY)).small_model is None  # a variant belongs to its teacher


@needs_variants
def test_shipped_variants_switch_under_injected_load_and_alerts_still_come(mitdb: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """Record 205 from 270 s: VT 298.8–306.3 s, i.e. 29–36 s into the slice. Load (25 ms a beat on the full
    model, a 20 ms budget) until 45 s: the VT's alerts come while the small variant classifies, the same
    kinds as unloaded, and the small one counts the V beats."""
    monkeypatch.setenv("CARDIOMESH_WATCH_INFERENCE_BUDGET_MS", "20")
    x = _record(mitdb, "205", 270.0, 345.0)
    det = LearnedDetector(MODEL_FS)
    seconds = _drive(det, x, load_until_s=45, slowdown_ms=25)
    switches = _switches(seconds)
    assert [sw.to for _, sw in switches] == ["small", "full"], switches
    assert switches[0][0] <= 8 and 55 <= switches[1][0] <= 75
    alerts = [(s.t_s, s.variant, e.kind) for s in seconds for e in s.events]
    assert {k for _, _, k in alerts} == {"wide_complex_run", "tachycardia"}, alerts
    assert all(v == "small" and 29 <= t <= 40 for t, v, _ in alerts), alerts
    assert det.ectopy["V"] >= 12
    unloaded = LearnedDetector(MODEL_FS)
    quiet = _drive(unloaded, x, load_until_s=0, slowdown_ms=0)
    assert {e.kind for s in quiet for e in s.events} == {k for _, _, k in alerts}
    assert unloaded.switches == 0 and unloaded.variant == "full"


# ---------------------------------------------------------------- real CPU contention
SPIN = "import os, sys\nos.sched_setaffinity(0, {int(sys.argv[1])})\nwhile True:\n    pass\n"


def _window_ms(det: LearnedDetector, x: np.ndarray) -> list[float]:
    step, out = round(det.fs), list[float]()
    for i in range(0, len(x) - step + 1, step):
        det.last_window_ms = None
        det.feed(x[i:i + step])
        if det.last_window_ms is not None:
            out.append(det.last_window_ms)
    return out


@pytest.mark.slow
@pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="needs Linux CPU affinity")
def test_real_cpu_contention_switches_to_small_and_back() -> None:
    """No injection: four busy processes share one CPU with the detector's thread, which then gets about a fifth
    of it. The stand-in models are heavy (≈ 5 and 15 ms a beat here) so that a window's inference spans many
    scheduler slices and its wall time tracks the CPU share; the budget is 3× the unloaded window, measured
    first, as is the small one's relative cost."""
    torch.manual_seed(0)
    full = BeatNet(NetConfig(channels=(256, 512, 512, 512), kernel=9, hidden=64, context_hidden=32))
    small = BeatNet(NetConfig(channels=(256, 512, 512), kernel=9, hidden=64, context_hidden=32))
    x = synthetic(120, MODEL_FS, seed=4).samples_mv
    step = round(MODEL_FS)
    cpu = max(os.sched_getaffinity(0))
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {cpu})  # this thread only: it and the spinners share one CPU, the rest stay free
    spinners: list[subprocess.Popen[bytes]] = []
    try:
        h0 = float(np.median(_window_ms(LearnedDetector(MODEL_FS, model=full), x[:8 * step])))
        l0 = float(np.median(_window_ms(LearnedDetector(MODEL_FS, model=small), x[:8 * step])))
        policy = VariantPolicy(budget_ms=3 * h0, over_windows=3, recover_fraction=0.8, recover_windows=5,
                               relative_cost=min(1.0, l0 / h0))
        det = LearnedDetector(MODEL_FS, model=full, small_model=small, policy=policy, inference_slowdown_ms=0.0)
        t, end = 8, len(x) // step
        spinners = [subprocess.Popen([sys.executable, "-c", SPIN, str(cpu)]) for _ in range(4)]
        time.sleep(0.5)
        while det.variant == "full" and t < 40:
            det.feed(x[t * step:(t + 1) * step])
            t += 1
        loaded = det.pop_switches()
        for _ in range(3):  # a few more loaded windows on the small variant
            det.feed(x[t * step:(t + 1) * step])
            t += 1
    finally:
        for p in spinners:
            p.kill()
            p.wait()
    try:
        while det.variant != "full" and t < end:
            det.feed(x[t * step:(t + 1) * step])
            t += 1
        recovered = det.pop_switches()
    finally:
        os.sched_setaffinity(0, before)
    assert [s.to for s in loaded] == ["small"], (h0, l0, loaded)
    assert recovered and recovered[-1].to == "full" and det.variant == "full", (h0, l0, recovered)
