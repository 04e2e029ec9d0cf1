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
"""

from __future__ import annotations

import logging
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

from shared.ecg.qrs import Beat
from shared.model.data import CLASSES
from shared.model.features import BeatFeatures, BeatFeaturizer
from shared.model.net import BeatNet
from shared.model.serialize import load_model
from watch_agent.detector import BaselineConfig, BaselineDetector, DetectorEvent, register_detector

log = logging.getLogger(__name__)

#: The centralized model trained by `python -m shared.model.experiments centralized --save …`.
DEFAULT_MODEL = Path(__file__).resolve().parent.parent / "bench" / "results" / "model.pt"
V = CLASSES.index("V")


@lru_cache(maxsize=4)
def _load_cached(path: str, mtime: float) -> BeatNet:
    """One model object per file version, shared by every watch in the process (inference only)."""
    model, meta = load_model(path)
    log.info("learned detector model %s (%s)", path, meta.get("experiment", "?"))
    return model


class LearnedDetector(BaselineDetector):
    """`Detector`: baseline rules + per-beat N/S/V/F classification with a model-based VT-run rule."""

    name = "learned-beatnet-v1"

    def __init__(self, fs: float, model_path: Path | str | None = None, config: BaselineConfig | None = None,
                 *, model: BeatNet | None = None) -> None:
        super().__init__(fs, config)
        self._featurizer = BeatFeaturizer(self.fs)
        self.model: BeatNet | None = model
        if self.model is None:
            path = Path(model_path) if model_path is not None else DEFAULT_MODEL
            if path.is_file():
                self.model = _load_cached(str(path.resolve()), path.stat().st_mtime)
            elif model_path is not None:
                raise FileNotFoundError(f"{path}: no such model file")
            else:
                log.warning("no model at %s: the learned detector runs the baseline rules only", path)
        if self.model is not None:
            self.model.eval()  # inference only: no dropout, whatever state the caller's model was in
        self._counts = dict.fromkeys(CLASSES, 0)
        self._v_run = 0
        self._v_run_start: float | None = None
        self._v_run_rr: list[float] = []

    # ---------------------------------------------------------------- Detector
    def feed(self, samples_mv: np.ndarray) -> list[DetectorEvent]:
        self._featurizer.push_samples(samples_mv)
        events = super().feed(samples_mv)
        ready = self._featurizer.pop_ready()
        if ready and self.model is not None:
            for row, cls in zip(ready, self._classify(ready), strict=True):
                self._on_classified(row, int(cls), events)
        return events

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
        assert self.model is not None
        # One or two beats at a time: intra-op threads only add wake-up latency (measured 13 ms vs 0.7 ms
        # per call with 2 threads vs 1 on a loaded 2-core machine), so classify on this thread alone.
        threads = torch.get_num_threads()
        if threads != 1:
            torch.set_num_threads(1)
        try:
            with torch.inference_mode():
                wave = torch.from_numpy(np.stack([r.wave for r in rows]))
                ctx = torch.from_numpy(np.stack([r.context for r in rows]))
                return self.model(wave, ctx).argmax(1).numpy()
        finally:
            if threads != 1:
                torch.set_num_threads(threads)

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
