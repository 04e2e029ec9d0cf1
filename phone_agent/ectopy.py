"""Which beats are ventricular (wide, slow complexes): the wide-beat rule, and the hook for a learned model.

The rule reads each beat's `lf_ratio` (QRS energy 1–7 Hz over 10–30 Hz, from `StreamingQrsDetector`).
Absolute values differ tenfold between patients (bundle-branch block, lead placement), so a beat counts
as ventricular when it is much slower than the strip's own narrow beats (its low percentile), or slow
in absolute terms. On MIT-BIH (first 15 min of each record) normal beats sit at 0.68–1.42× their
record's median (5th–95th pct) and ventricular beats at 4× (median).

`LEARNED_CLASSIFIER` is the hook for the shared learned beat model (shared/model, to come): set it
with `set_ectopic_classifier` and every analysis uses it instead of the rule.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

log = logging.getLogger(__name__)

REFERENCE_PERCENTILE = 25.0  # narrow beats dominate any strip that is not all-ventricular
RELATIVE_WIDE = 2.2  # × the reference: ventricular
RELATIVE_WIDE_PREMATURE = 1.6  # × the reference, and premature: ventricular
PREMATURE = 0.85  # RR below this fraction of the median RR
ABSOLUTE_WIDE = 7.0  # wide in any patient (normal and LBBB beats stay below ≈ 5)


@dataclass(frozen=True, slots=True)
class BeatFeatures:
    """Per-beat inputs of an ectopy classifier (arrays of equal length, one entry per beat)."""

    samples: np.ndarray  # R-peak sample index at `fs`
    fs: float
    lf_ratio: np.ndarray  # NaN when unknown
    rr_s: np.ndarray  # interval to the previous beat, NaN for the first


#: A classifier returns one bool per beat: True = ventricular ectopic.
EctopicClassifier = Callable[[BeatFeatures], np.ndarray]

LEARNED_CLASSIFIER: EctopicClassifier | None = None


def set_ectopic_classifier(classifier: EctopicClassifier | None) -> None:
    """Install (or with None, remove) a learned beat classifier, e.g. the shared model once it exists."""
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


def classify_ectopic(beats: BeatFeatures) -> tuple[np.ndarray, str]:
    """Ventricular flags per beat and the name of the method that gave them."""
    if LEARNED_CLASSIFIER is not None:
        flags = np.asarray(LEARNED_CLASSIFIER(beats), dtype=bool)
        if flags.shape == beats.samples.shape:
            return flags, "learned"
        log.warning("learned ectopic classifier returned the wrong shape; using the wide-beat rule")
    return wide_beat_rule(beats), "wide-beat rule"
