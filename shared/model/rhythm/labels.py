"""The rhythm reader's classes and how each database's annotations map onto them.

Six classes, chosen so that every database here (and the ones the product will meet) can label them:

* ``sinus`` — sinus rhythm at any rate (rate is a measurement, not a rhythm class);
* ``af`` — atrial fibrillation or flutter (CinC 2017 labels both "A");
* ``other`` — any other rhythm: ectopy-rich, bigeminy, SVT, nodal, blocks, paced, idioventricular;
* ``vt`` — ventricular tachycardia;
* ``vf`` — ventricular flutter or fibrillation;
* ``noise`` — too noisy to read (CinC "~", VFDB "(NOISE").

Asystole has no class: a strip with no QRS is judged by the beat detector (no QRS ≥ 4 s on a
connected lead), which needs no training and cannot be fooled by amplitude normalisation.
"""

from __future__ import annotations

from typing import Final

CLASSES: Final[tuple[str, ...]] = ("sinus", "af", "other", "vt", "vf", "noise")
SINUS, AF, OTHER, VT, VF, NOISE = range(6)
IGNORE: Final[int] = -1  # unlabelled samples (before the first rhythm mark, asystole) take no part in the loss

#: CinC 2017 REFERENCE.csv labels (one per recording).
CINC: Final[dict[str, int]] = {"N": SINUS, "A": AF, "O": OTHER, "~": NOISE}

#: MIT-BIH Arrhythmia rhythm notes (`+` annotations' aux_note without the parenthesis).
MITDB: Final[dict[str, int]] = {
    "N": SINUS, "SBR": SINUS,
    "AFIB": AF, "AFL": AF,
    "VT": VT, "VFL": VF,
    "B": OTHER, "T": OTHER, "SVTA": OTHER, "NOD": OTHER, "IVR": OTHER, "P": OTHER, "AB": OTHER,
    "BII": OTHER, "PREX": OTHER,
}

#: MIT-BIH Malignant Ventricular Ectopy Database rhythm notes.
VFDB: Final[dict[str, int]] = {
    "N": SINUS, "NSR": SINUS, "SBR": SINUS,
    "AFIB": AF,
    "VT": VT, "VFL": VF, "VF": VF, "VFIB": VF,
    "NOISE": NOISE,
    "BI": OTHER, "B": OTHER, "HGEA": OTHER, "NOD": OTHER, "SVTA": OTHER, "PM": OTHER, "VER": OTHER,
    "ASYS": IGNORE,
}

#: The product's rhythm vocabulary (`shared.messages.Rhythm`) seen as CinC 2017 classes, for scoring.
RHYTHM_TO_CINC: Final[dict[str, str]] = {
    "sinus": "N", "sinus_tachycardia": "N", "sinus_bradycardia": "N",
    "af": "A", "afl": "A",
    "svt": "O", "vt": "O", "vf": "O", "asystole": "O", "other": "O",
    "inconclusive": "~",
}


def rhythm_label(database: str, note: str) -> int:
    """Class index of a rhythm note of `database` ("mitdb" or "vfdb"); unknown notes are ignored."""
    table = MITDB if database == "mitdb" else VFDB
    return table.get(note, IGNORE)
