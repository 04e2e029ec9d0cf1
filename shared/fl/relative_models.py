"""The federated record-relative beat models behind one face: the boosted trees (`shared.fl.trees`), the additive
model (`shared.fl.gam`) and the random-structure forest (`shared.fl.forest`), each an `.npz` that says which it is.

Every reader of such a file — `cardiomesh evaluate`, the phone's ectopy reader, the watch's relative stream —
needs the same thing: class probabilities of `tree_features.record_features` rows, computed relative to one
wearer's beats. So the file kind is decided once, here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np

if TYPE_CHECKING:
    from shared.model.data import BeatSet

Kind = Literal["trees", "additive", "forest"]
NOUNS: dict[str, str] = {"trees": "federated trees", "additive": "additive", "forest": "DP forest"}


@dataclass(frozen=True, slots=True)
class RelativeModel:
    kind: Kind
    path: Path
    meta: dict[str, object]
    #: class probabilities (n, 4) of `record_features` rows (one wearer's; correlations as correlations)
    proba_of_rows: Callable[[np.ndarray], np.ndarray]

    @property
    def noun(self) -> str:
        return NOUNS[self.kind]

    def predict_beats(self, beats: BeatSet) -> np.ndarray:
        """Class probabilities of one wearer's beats (one recording at a time, never a pooled set of people)."""
        from shared.model.tree_features import record_features

        return self.proba_of_rows(record_features(beats))

    def predict_rows(self, wave: np.ndarray, context: np.ndarray, samples: np.ndarray) -> np.ndarray:
        """`predict_beats` for featurised beats that are not a recording (a phone's strip, a watch's window):
        relative to these beats."""
        from shared.model.data import BeatSet

        return self.predict_beats(BeatSet.window(wave, context, samples))


def load_relative(path: str | Path) -> RelativeModel:
    """The model in `path`, whichever kind; `ModelFileError` with the reason when it is none of them."""
    from shared.fl import forest, gam, trees
    from shared.model.tree_features import as_distances

    path = Path(path)
    if trees.is_model_file(path):
        boosted, meta = trees.load_model(path, beat_model=True)
        return RelativeModel("trees", path, dict(meta), boosted.predict_features)
    if forest.is_model_file(path):
        model, columns, meta = forest.load(path)
        return RelativeModel("forest", path, dict(meta),
                             lambda rows: forest.predict_features(model, columns, rows))
    additive, prefix, meta = gam.load(path)  # says why when the file is not an additive model either
    return RelativeModel("additive", path, dict(meta),
                         lambda rows: additive.predict_proba(as_distances(rows)[:, :prefix]))
