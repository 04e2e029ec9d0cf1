"""The learned detector: the baseline rules, plus a beat classifier scoring every beat the watch detects.

Why on top of the baseline rather than instead of it: the rules are measured and tested (rate,
pause, AF, wide runs); the model adds what rules cannot do well — telling a ventricular beat from a
normal one by its shape relative to this wearer's usual beat — so it can only add alerts, never lose
one the baseline raises. It raises `wide_complex_run` when ≥ `run_beats` consecutive beats are
classed V at ≥ `run_min_bpm` (sharing the baseline's episode and 30 s refractory, so one VT run
gives one alert whichever rule sees it first), and counts ectopic beats (S, V, F) for the vitals.

Beats come from the same `StreamingQrsDetector` the baseline runs; each is classified when the next
beat and 0.4 s of signal after it have arrived (the features need the next RR), i.e. ~0.5–1.5 s
after the R peak. Without a model file it behaves exactly as the baseline (and logs that once).

A smaller variant (`bench/results/model-small.pt`, distilled from the full model by
`shared.model.distill`) stands by. The model's inference time is summed over each second of signal (a
*window*: chunk-size independent, and what "keeping up with real time" means) and fed to a
`VariantPolicy`; when the device runs over budget (`CARDIOMESH_WATCH_INFERENCE_BUDGET_MS`, 100 ms per
second of signal) it switches to the small variant, and back once the full one is predicted to fit
again. Every switch is logged with its reason and kept for `pop_switches` (the watch counts it and
reports `variant` in its vitals). `inference_slowdown_ms` (`CARDIOMESH_WATCH_INFERENCE_SLOWDOWN_MS`)
is fault injection: it burns real CPU in a busy loop on every beat classified, as a slower device would.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from dataclasses import replace
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import torch

from shared.ecg.qrs import Beat
from shared.model.data import CLASSES
from shared.model.features import BeatFeatures, BeatFeaturizer
from shared.model.net import BeatNet, n_parameters
from shared.model.serialize import ModelFileError, load_model
from shared.settings import Settings
from watch_agent.detector import BaselineConfig, BaselineDetector, DetectorEvent, register_detector
from watch_agent.relative_stream import RelativeStream
from watch_agent.variants import Variant, VariantPolicy, VariantSwitch

log = logging.getLogger(__name__)

#: The centralized model trained by `python -m shared.model.experiments centralized --save …`.
DEFAULT_MODEL = Path(__file__).resolve().parent.parent / "bench" / "results" / "model.pt"
#: Its small variant, by `python -m shared.model.experiments distill --save …`.
DEFAULT_SMALL_MODEL = DEFAULT_MODEL.with_name("model-small.pt")
V = CLASSES.index("V")
WINDOW_S = 1.0


@lru_cache(maxsize=8)
def _load_cached(path: str, mtime: float) -> tuple[BeatNet, dict[str, Any]]:
    """One model object per file version, shared by every watch in the process (inference only)."""
    model, meta = load_model(path)
    log.info("learned detector model %s (%s)", path, meta.get("experiment", "?"))
    return model, meta


def _load(path: Path) -> tuple[BeatNet, dict[str, Any]]:
    return _load_cached(str(path.resolve()), path.stat().st_mtime)


def _relative_cost(small: BeatNet, meta: dict[str, Any], full: BeatNet) -> float:
    """The small variant's measured cost as a fraction of the full one's (from its file), else the ratio of
    parameter counts: smaller than any measured ratio at these sizes (dispatch, not arithmetic, dominates),
    so recovery is predicted pessimistically."""
    value = meta.get("relative_cost")
    if isinstance(value, int | float) and 0 < value <= 1:
        return float(value)
    return min(1.0, n_parameters(small) / n_parameters(full))


def busy_wait(ms: float) -> None:
    """Burn `ms` of CPU on this thread (fault injection: a busy loop is load, a sleep would not be)."""
    end = time.perf_counter() + ms / 1e3
    while time.perf_counter() < end:
        pass


class LearnedDetector(BaselineDetector):
    """`Detector`: baseline rules + per-beat N/S/V/F classification with a model-based VT-run rule."""

    name = "learned-beatnet-v1"

    def __init__(self, fs: float, model_path: Path | str | None = None, config: BaselineConfig | None = None,
                 *, model: BeatNet | None = None, small_model: BeatNet | None = None,
                 small_model_path: Path | str | None = None, policy: VariantPolicy | None = None,
                 inference_slowdown_ms: float | None = None, settings: Settings | None = None) -> None:
        """`model`/`model_path`: the full model (default `DEFAULT_MODEL`). `small_model`/`small_model_path`: its
        small variant; by default `DEFAULT_SMALL_MODEL`, but only beside the default full model (a variant is
        distilled from one teacher). `policy`: when to switch (default: the settings' budget and the small
        file's measured relative cost). `inference_slowdown_ms`: fault injection (default: the settings')."""
        super().__init__(fs, config)
        self._featurizer = BeatFeaturizer(self.fs)
        self.model: BeatNet | None = model
        #: a federated record-relative model instead of BeatNet (`model_path` ending in .npz: the additive model,
        #: the boosted trees or the DP forest); no small variant
        self.additive: RelativeStream | None = None
        if model is None and model_path is None:
            settings = settings or Settings()
            model_path = settings.watch_model  # None: the default model, with its small variant
        default_full = model is None and model_path is None
        if self.model is None:
            path = Path(model_path) if model_path is not None else DEFAULT_MODEL
            if path.suffix == ".npz":
                if not path.is_file():
                    raise FileNotFoundError(f"{path}: no such model file")
                self.additive = RelativeStream(path)
                self.name = f"learned-{self.additive.kind}-v1"  # alerts say which model raised them
                log.info("learned detector: %s beat model %s", self.additive.kind, path)
            elif path.is_file():
                self.model, _ = _load(path)
            elif model_path is not None:
                raise FileNotFoundError(f"{path}: no such model file")
            else:
                log.warning("no model at %s: the learned detector runs the baseline rules only", path)
        small_meta: dict[str, Any] = {}
        if small_model is None and self.model is not None:
            small_path = Path(small_model_path) if small_model_path is not None else DEFAULT_SMALL_MODEL
            if small_model_path is not None or (default_full and small_path.is_file()):
                if not small_path.is_file():
                    raise FileNotFoundError(f"{small_path}: no such model file")
                small_model, small_meta = _load(small_path)
                if small_meta.get("variant") != "small":
                    raise ModelFileError(f"{small_path}: not a small variant (meta variant "
                                         f"{small_meta.get('variant')!r})")
        self.small_model: BeatNet | None = small_model if self.model is not None else None
        for m in (self.model, self.small_model):
            if m is not None:
                m.eval()  # inference only: no dropout, whatever state the caller's model was in
        if policy is None or inference_slowdown_ms is None:
            settings = settings or Settings()
        if policy is None and self.model is not None and self.small_model is not None:
            assert settings is not None
            policy = VariantPolicy(budget_ms=settings.watch_inference_budget_ms,
                                   relative_cost=_relative_cost(self.small_model, small_meta, self.model))
        if policy is not None and self.small_model is None:
            log.info("no small model variant: the learned detector will not switch")
            policy = None
        self.policy = policy
        self.inference_slowdown_ms = (inference_slowdown_ms if inference_slowdown_ms is not None
                                      else settings.watch_inference_slowdown_ms if settings is not None else 0.0)
        self.switches = 0
        self._pending: deque[VariantSwitch] = deque(maxlen=64)  # until popped (`switches` counts them all)
        self._window_ms = 0.0
        self._window_samples = 0
        self._window_beats = 0
        self.last_window_ms: float | None = None
        self._counts = dict.fromkeys(CLASSES, 0)
        self._v_run = 0
        self._v_run_start: float | None = None
        self._v_run_rr: list[float] = []

    # ---------------------------------------------------------------- Detector
    def feed(self, samples_mv: np.ndarray) -> list[DetectorEvent]:
        self._featurizer.push_samples(samples_mv)
        events = super().feed(samples_mv)
        ready = self._featurizer.pop_ready()
        if ready and (self.model is not None or self.additive is not None):
            for row, cls in zip(ready, self._classify(ready), strict=True):
                self._on_classified(row, int(cls), events)
        self._end_of_chunk(len(samples_mv))
        return events

    @property
    def variant(self) -> Variant | None:
        """The model variant classifying beats now ("full" or "small"); None without a model."""
        if self.additive is not None:
            return "full"
        if self.model is None:
            return None
        return self.policy.variant if self.policy is not None else "full"

    @property
    def variants(self) -> list[str]:
        """The variants this watch holds (its capabilities tell the edge)."""
        if self.additive is not None:
            return ["full"]
        if self.model is None:
            return []
        return ["full", "small"] if self.small_model is not None else ["full"]

    @property
    def inference_ms(self) -> float | None:
        """The last window's model time (ms per second of ECG): what the training selection calls slow."""
        return None if self.last_window_ms is None else round(self.last_window_ms, 2)

    def carry_over(self, previous: object) -> None:
        """Keep the device's state from the detector this one replaces (the watch restarts its detector after a
        drill): the variant and its streaks describe the device, not the patient."""
        if isinstance(previous, LearnedDetector) and previous.policy is not None and self.policy is not None:
            self.policy = replace(previous.policy)
            self.switches = previous.switches
            self._pending.extend(previous.pop_switches())

    def pop_switches(self) -> list[VariantSwitch]:
        """The variant switches since the last call (the watch counts and reports them)."""
        out = list(self._pending)
        self._pending.clear()
        return out

    @property
    def ectopy(self) -> dict[str, float]:
        """Beats classified so far by class, and the ectopic (S+V+F) burden, for the vitals."""
        total = sum(self._counts.values())
        ectopic = total - self._counts["N"]
        return {**{k: float(v) for k, v in self._counts.items()}, "beats": float(total),
                "ectopic_beats": float(ectopic), "ectopic_burden": ectopic / total if total else 0.0}

    # ---------------------------------------------------------------- internals
    def _on_beat(self, beat: Beat, events: list[DetectorEvent]) -> None:
        self._featurizer.push_beat(beat)
        super()._on_beat(beat, events)

    def _classify(self, rows: list[BeatFeatures]) -> np.ndarray:
        if self.additive is not None:
            t0 = time.perf_counter()
            classes = self.additive.classify(rows)
            self._window_ms += 1e3 * (time.perf_counter() - t0)
            self._window_beats += len(rows)
            return classes
        assert self.model is not None
        small = self.variant == "small" and self.small_model is not None
        model = self.small_model if small else self.model
        assert model is not None
        t0 = time.perf_counter()
        # One or two beats at a time: intra-op threads only add wake-up latency (measured 13 ms vs 0.7 ms
        # per call with 2 threads vs 1 on a loaded 2-core machine), so classify on this thread alone.
        threads = torch.get_num_threads()
        if threads != 1:
            torch.set_num_threads(1)
        try:
            with torch.inference_mode():
                wave = torch.from_numpy(np.stack([r.wave for r in rows]))
                ctx = torch.from_numpy(np.stack([r.context for r in rows]))
                classes = model(wave, ctx).argmax(1).numpy()
        finally:
            if threads != 1:
                torch.set_num_threads(threads)
        if self.inference_slowdown_ms > 0:  # a slower CPU slows each variant by its own cost
            cost = self.policy.relative_cost if small and self.policy is not None else 1.0
            busy_wait(self.inference_slowdown_ms * cost * len(rows))
        self._window_ms += 1e3 * (time.perf_counter() - t0)
        self._window_beats += len(rows)
        return classes

    def _end_of_chunk(self, n_samples: int) -> None:
        """Close the window at the chunk that crosses a whole second of signal; feed its latency to the policy.

        Boundaries are on the stream's clock, so any chunking gives one window per second; a chunk longer than
        a second closes one window, its inference time scaled to a second's worth."""
        self._window_samples += n_samples
        seen, per_window = self._qrs.samples_seen, WINDOW_S * self.fs
        if seen // per_window == (seen - n_samples) // per_window:
            return
        latency = self._window_ms * per_window / max(self._window_samples, per_window)
        beats = self._window_beats
        self._window_ms, self._window_samples, self._window_beats = 0.0, 0, 0
        if beats == 0:
            return  # no beat classified: nothing learned about speed
        self.last_window_ms = latency
        if self.policy is None:
            return
        switch = self.policy.observe(latency)
        if switch is not None:
            self.switches += 1
            self._pending.append(switch)
            log.warning("model variant %s → %s at %.1f s: %s", switch.previous, switch.to, self.now_s, switch.reason)

    def _on_classified(self, row: BeatFeatures, cls: int, events: list[DetectorEvent]) -> None:
        self._counts[CLASSES[cls]] += 1
        cfg = self.config
        rr = row.beat.rr_s
        fast = rr is not None and cfg.min_rr_s <= rr <= 60.0 / cfg.run_min_bpm
        if cls == V and (fast or self._v_run == 0):
            if self._v_run == 0:
                self._v_run_start, self._v_run_rr = row.beat.t_s, []
            elif rr is not None:
                self._v_run_rr.append(rr)
            self._v_run += 1
        else:
            self._v_run, self._v_run_start, self._v_run_rr = 0, None, []
            return
        if self._v_run >= cfg.run_beats and not self._episodes["wide_complex_run"].open:
            bpm = 60.0 / float(np.mean(self._v_run_rr)) if self._v_run_rr else None
            self._fire("wide_complex_run", self._v_run_start or row.beat.t_s, events,
                       {"run_beats": float(self._v_run), "model_v_beats": float(self._v_run)}, hr_bpm=bpm)


register_detector("learned", LearnedDetector)
