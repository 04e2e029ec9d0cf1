"""Splits by person only: k folds over groups, stratified so each fold holds its share of every class.

A recording's group is its person (`Recording.group`); every lead of a person lands in one fold. Groups
are stratified by their rarest clinically important content (VF > VT > AF > other > noise > sinus),
then dealt round-robin in a seeded random order, so each of the five folds gets VT and VF records of
MIT-BIH and VFDB, and CinC's AF recordings spread evenly.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

import numpy as np

from shared.model.rhythm.corpus import Recording
from shared.model.rhythm.labels import AF, CLASSES, NOISE, OTHER, SINUS, VF, VT

_PRIORITY = (VF, VT, AF, OTHER, NOISE, SINUS)
_MIN_SECONDS = 20.0  # a per-sample label counts towards a group's stratum when it covers this much


def group_stratum(recordings: Sequence[Recording]) -> tuple[str, int]:
    """(database, the most important class present) of one group's recordings."""
    present: set[int] = set()
    for r in recordings:
        if r.label is not None:
            present.add(r.label)
        if r.labels is not None:
            counts = np.bincount(r.labels[r.labels >= 0].astype(np.int64), minlength=len(CLASSES))
            present |= {c for c in range(len(CLASSES)) if counts[c] >= _MIN_SECONDS * 100}
    top = next((c for c in _PRIORITY if c in present), SINUS)
    return recordings[0].database, top


def assign_folds(recordings: Sequence[Recording], k: int = 5, seed: int = 0) -> dict[str, int]:
    """group → fold in 0..k−1."""
    by_group: dict[str, list[Recording]] = defaultdict(list)
    for r in recordings:
        by_group[r.group].append(r)
    strata: dict[tuple[str, int], list[str]] = defaultdict(list)
    for g, recs in by_group.items():
        strata[group_stratum(recs)].append(g)
    rng = np.random.default_rng(seed)
    folds: dict[str, int] = {}
    offset = 0
    for key in sorted(strata):
        groups = sorted(strata[key])
        for j, idx in enumerate(rng.permutation(len(groups))):
            folds[groups[idx]] = (offset + j) % k
        offset += len(groups)
    return folds


def split(recordings: Sequence[Recording], folds: dict[str, int], test_fold: int
          ) -> tuple[list[Recording], list[Recording]]:
    """(training side, test side) of one fold."""
    train = [r for r in recordings if folds[r.group] != test_fold]
    test = [r for r in recordings if folds[r.group] == test_fold]
    return train, test


def validation_split(recordings: Sequence[Recording], share: float = 0.1, seed: int = 1
                     ) -> tuple[list[Recording], list[Recording]]:
    """(fit, validation) inside a training side: `share` of its groups, stratified the same way."""
    k = max(2, round(1 / share))
    folds = assign_folds(recordings, k=k, seed=seed)
    fit_side = [r for r in recordings if folds[r.group] != 0]
    valid = [r for r in recordings if folds[r.group] == 0]
    return fit_side, valid
