"""Which beats are ectopic: the shared learned beat model when one is present, else the wide-beat rule.

**Shared model** (`shared/model`, BeatNet N/S/V/F, the same file the watch's learned detector uses):
by default `bench/results/model.pt`, or the file named by `CARDIOMESH_PHONE_MODEL` (set it to `off`,
`none` or an empty string to disable it) — a `.npz` there is a federated model, read on the strip's own beats:
the sample-DP additive model (`bench/results/model_additive_dp.npz`) or the encrypted, no-DP boosted trees
(`bench/results/model_trees.npz`); the file says which. It is loaded once per process
and file version; a missing or unreadable file is logged once and the analysis falls back to the rule.
The model classifies the beats of the streaming detector it was trained on, featurised by the same
`BeatFeaturizer` from the strip at 250 Hz; each of the analysis's beats takes the class of the detector
beat within 100 ms (none: N).
Class V = ventricular (runs, VT, excluded from NN); S, V and F all count as ectopic (`ectopic_beats`,
`ectopic_burden`), as on the watch.

**Wide-beat rule** (no model): each beat's `lf_ratio` (QRS energy 1–7 Hz over 10–30 Hz, from
`StreamingQrsDetector`). Absolute values differ tenfold between patients (bundle-branch block, lead
placement), so a beat counts as ventricular when it is much slower than the strip's own narrow beats
(its low percentile), or slow in absolute terms. On MIT-BIH (first 15 min of each record) normal beats
sit at 0.68–1.42× their record's median (5th–95th pct) and ventricular beats at 4× (median). The rule
finds ventricular beats only, so with it ectopic = ventricular.

Hook: `set_ectopic_classifier(fn)` installs any classifier in place of both (tests, other models);
`fn(BeatFeatures)` returns a bool array (True = ventricular, counted as ectopic too) or `EctopyFlags`.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from shared.ecg.qrs import Beat

if TYPE_CHECKING:
    from shared.fl.relative_models import RelativeModel

log = logging.getLogger(__name__)

REFERENCE_PERCENTILE = 25.0  # narrow beats dominate any strip that is not all-ventricular
RELATIVE_WIDE = 2.2  # × the reference: ventricular
RELATIVE_WIDE_PREMATURE = 1.6  # × the reference, and premature: ventricular
PREMATURE = 0.85  # RR below this fraction of the median RR
ABSOLUTE_WIDE = 7.0  # wide in any patient (normal and LBBB beats stay below ≈ 5)

MODEL_ENV = "CARDIOMESH_PHONE_MODEL"
DEFAULT_MODEL = Path(__file__).resolve().parents[2] / "bench" / "results" / "model.pt"
DISABLED = frozenset({"", "off", "none", "0", "false"})
MATCH_S = 0.1  # an analysis beat takes the class of the detector beat this close to it
V_CLASS = 2  # shared.model.data.CLASSES = ("N", "S", "V", "F")


@dataclass(frozen=True, slots=True)
class BeatFeatures:
    """Per-beat inputs of an ectopy classifier (arrays of equal length, one entry per beat)."""

    samples: np.ndarray  # R-peak sample index at `fs`
    fs: float
    lf_ratio: np.ndarray  # NaN when unknown
    rr_s: np.ndarray  # interval to the previous beat, NaN for the first
    signal_mv: np.ndarray | None = None  # the strip at `fs` (not cleaned), for classifiers that read waveforms
    detector_beats: tuple[Beat, ...] = field(default=())  # StreamingQrsDetector's beats on `signal_mv`
    detector_classes: np.ndarray | None = None  # the shared model's class of each detector beat, if already known


@dataclass(frozen=True, slots=True)
class EctopyFlags:
    """Per beat: ventricular (runs, VT, NN exclusion) and ectopic (S, V or F: counts and burden)."""

    ventricular: np.ndarray
    ectopic: np.ndarray


#: A classifier returns one bool per beat (True = ventricular ectopic) or `EctopyFlags`.
EctopicClassifier = Callable[[BeatFeatures], "np.ndarray | EctopyFlags"]

LEARNED_CLASSIFIER: EctopicClassifier | None = None


def set_ectopic_classifier(classifier: EctopicClassifier | None) -> None:
    """Install a classifier in place of the shared model and the rule; None restores the default."""
    global LEARNED_CLASSIFIER
    LEARNED_CLASSIFIER = classifier
    log.info("ectopic classifier set", extra={"classifier": getattr(classifier, "__name__", repr(classifier))})


def wide_beat_rule(beats: BeatFeatures) -> np.ndarray:
    """Ventricular = much slower QRS than the strip's narrow beats (or premature and clearly slower)."""
    lf = np.asarray(beats.lf_ratio, dtype=float)
    known = np.isfinite(lf)
    if not np.any(known):
        return np.zeros(len(lf), dtype=bool)
    reference = max(float(np.percentile(lf[known], REFERENCE_PERCENTILE)), 1e-3)
    rel = np.where(known, lf / reference, 0.0)
    rr = np.asarray(beats.rr_s, dtype=float)
    median_rr = float(np.nanmedian(rr)) if np.any(np.isfinite(rr)) else np.nan
    premature = np.isfinite(rr) & (rr < PREMATURE * median_rr)
    wide = (rel >= RELATIVE_WIDE) | ((rel >= RELATIVE_WIDE_PREMATURE) & premature)
    return wide | (np.nan_to_num(lf) >= ABSOLUTE_WIDE)


# ------------------------------------------------------------------ the shared learned model

class SharedModelClassifier:
    """BeatNet over the strip's detector beats → per-beat N/S/V/F, mapped onto the analysis's beats."""

    def __init__(self, model: Any, path: str, meta: dict[str, Any]) -> None:
        self.model = model
        self.path = path
        self.meta = meta
        self.__name__ = f"shared model {Path(path).name}"

    def classes(self, signal_mv: np.ndarray, fs: float, beats: tuple[Beat, ...]) -> np.ndarray:
        """Class index (0 N, 1 S, 2 V, 3 F) of each detector beat, in order."""
        from shared.model.features import BeatFeaturizer

        if not beats:
            return np.zeros(0, dtype=np.int64)
        featurizer = BeatFeaturizer(fs, keep_s=len(signal_mv) / fs + 2.0)  # the whole strip stays in the buffer
        featurizer.push_samples(signal_mv)
        for beat in beats:
            featurizer.push_beat(beat)
        rows = featurizer.flush()
        return self._predict(np.stack([r.wave for r in rows]), np.stack([r.context for r in rows]),
                             np.array([r.beat.sample for r in rows], dtype=np.int64))

    def _predict(self, wave: np.ndarray, context: np.ndarray, samples: np.ndarray) -> np.ndarray:
        import torch

        threads = torch.get_num_threads()
        torch.set_num_threads(1)  # a few dozen beats: more threads only add contention (measured 40 vs 700 ms)
        try:
            with torch.inference_mode():
                out = self.model(torch.from_numpy(wave), torch.from_numpy(context))
                return np.asarray(out.argmax(1).numpy(), dtype=np.int64)
        finally:
            torch.set_num_threads(threads)

    def __call__(self, beats: BeatFeatures) -> np.ndarray | EctopyFlags:
        n = len(beats.samples)
        if beats.signal_mv is None:  # nothing to read a waveform from: the rule decides
            return wide_beat_rule(beats)
        classes = beats.detector_classes
        if classes is None or len(classes) != len(beats.detector_beats):
            classes = self.classes(np.asarray(beats.signal_mv, dtype=float), beats.fs, beats.detector_beats)
        per_beat = np.zeros(n, dtype=np.int64)  # N where no detector beat matches
        if len(classes) and n:
            det = np.array([b.sample for b in beats.detector_beats], dtype=float)
            pos = np.clip(np.searchsorted(det, beats.samples), 0, len(det) - 1)
            prev = np.clip(pos - 1, 0, len(det) - 1)
            best = np.where(np.abs(det[prev] - beats.samples) < np.abs(det[pos] - beats.samples), prev, pos)
            near = np.abs(det[best] - beats.samples) <= MATCH_S * beats.fs
            per_beat = np.where(near, classes[best], 0)
        return EctopyFlags(ventricular=per_beat == V_CLASS, ectopic=per_beat != 0)


class RelativeModelClassifier(SharedModelClassifier):
    """A federated record-relative beat model (`shared.fl.relative_models`: the trees, the additive model or the
    DP forest, a `.npz`) in BeatNet's place. Its features are relative to the wearer's own beats (median beat,
    median RR), so on the phone they are relative to the strip's: a strip of a few dozen beats gives a rougher
    reference than the recordings it was trained on (docs/fl.md)."""

    def __init__(self, model: RelativeModel) -> None:
        super().__init__(model, str(model.path), model.meta)
        self.kind = model.kind
        self.__name__ = f"{model.kind} model {model.path.name}"

    def _predict(self, wave: np.ndarray, context: np.ndarray, samples: np.ndarray) -> np.ndarray:
        return np.asarray(self.model.predict_rows(wave, context, samples).argmax(axis=1), dtype=np.int64)


_WARNED: set[str] = set()


@lru_cache(maxsize=4)
def _load(path: str, mtime: float) -> SharedModelClassifier | None:
    """One classifier per file version per process; None (logged once) when the file is unreadable."""
    try:
        from shared.model.serialize import ModelFileError, load_model
    except ImportError as exc:  # torch missing: no learned model on this install
        log.warning("phone ectopy: cannot load the shared model (%s); using the wide-beat rule", exc)
        return None
    try:
        if path.endswith(".npz"):  # a federated record-relative model: the trees, the additive model or the forest
            from shared.fl.relative_models import load_relative

            relative = load_relative(path)
            privacy = relative.meta.get("privacy", f"ε {relative.meta.get('epsilon')}")
            log.info("phone ectopy: %s beat model %s (%s)", relative.noun, path, privacy)
            return RelativeModelClassifier(relative)
        model, meta = load_model(path)
    except ModelFileError as exc:
        log.warning("phone ectopy: %s; using the wide-beat rule", exc)
        return None
    log.info("phone ectopy: shared beat model %s (%s)", path, meta.get("experiment", "?"))
    return SharedModelClassifier(model, path, meta)


def model_path() -> Path | None:
    """The model file the phone should use: `CARDIOMESH_PHONE_MODEL`, else the default; None when disabled."""
    value = os.environ.get(MODEL_ENV)
    if value is None:
        return DEFAULT_MODEL
    return None if value.strip().lower() in DISABLED else Path(value).expanduser()


def shared_model_classifier() -> SharedModelClassifier | None:
    """The shared model's classifier, or None (no file, unreadable file, disabled): the rule applies."""
    path = model_path()
    if path is None:
        return None
    try:
        mtime = path.stat().st_mtime
    except OSError:
        if str(path) not in _WARNED:
            _WARNED.add(str(path))
            log.warning("phone ectopy: no model at %s; using the wide-beat rule", path)
        return None
    return _load(str(path.resolve()), mtime)


def active_shared_model() -> SharedModelClassifier | None:
    """The shared model when it is what `classify_beats` will use (no other classifier installed)."""
    return shared_model_classifier() if LEARNED_CLASSIFIER is None else None


def classify_beats(beats: BeatFeatures) -> tuple[EctopyFlags, str]:
    """Ventricular and ectopic flags per beat, and the name of the method that gave them."""
    classifier: EctopicClassifier | None = LEARNED_CLASSIFIER
    method = "learned"
    if classifier is None:
        shared = shared_model_classifier()
        classifier, method = shared, "" if shared is None else shared.__name__
    if classifier is not None:
        out = classifier(beats)
        flags = out if isinstance(out, EctopyFlags) else EctopyFlags(np.asarray(out, dtype=bool),
                                                                       np.asarray(out, dtype=bool))
        ventricular = np.asarray(flags.ventricular, dtype=bool)
        ectopic = np.asarray(flags.ectopic, dtype=bool) | ventricular
        if ventricular.shape == ectopic.shape == beats.samples.shape:
            return EctopyFlags(ventricular, ectopic), method
        log.warning("ectopic classifier returned the wrong shape; using the wide-beat rule")
    rule = wide_beat_rule(beats)
    return EctopyFlags(rule, rule.copy()), "wide-beat rule"


def classify_ectopic(beats: BeatFeatures) -> tuple[np.ndarray, str]:
    """Ventricular flags per beat and the method's name (`classify_beats` also gives the ectopic flags)."""
    flags, method = classify_beats(beats)
    return flags.ventricular, method
