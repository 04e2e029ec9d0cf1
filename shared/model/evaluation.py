"""Evaluate a saved beat model on a folder of WFDB records — the logic behind `cardiomesh evaluate`.

The model is a `BeatNet` file (`.pt`), or a federated record-relative model (`.npz`): the additive one
(`shared.fl.gam`), the boosted trees (`shared.fl.trees.save_model`) or the DP forest (`shared.fl.forest`).

Records may be at any sampling rate: each is resampled to `MODEL_FS`, its beats are found by the
watch's own `StreamingQrsDetector` and matched to the reference annotations within 150 ms (see
`shared.model.data`). Every record in the folder with a `.hea` and an `.atr` is used unless `only`
names some; in an MIT-BIH folder the paced records (102 104 107 217) are left out, as the
inter-patient protocol does.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from shared.model.data import PACED, BeatSet, concat, record_beats
from shared.model.serialize import load_model
from shared.model.train import metrics, predict

if TYPE_CHECKING:
    from shared.fl.gam import GamModel

log = logging.getLogger(__name__)


class EvaluationError(ValueError):
    """Nothing to evaluate (no records, unknown names) or a bad model file; the message says which."""


def is_mitdb(directory: Path) -> bool:
    """An MIT-BIH Arrhythmia folder: has the release's RECORDS file listing 100, or 100.hea and 234.hea."""
    records = directory / "RECORDS"
    if records.is_file() and "100" in records.read_text().split():
        return (directory / "234.hea").exists() or (directory / "100.hea").exists()
    return (directory / "100.hea").exists() and (directory / "234.hea").exists()


def find_records(directory: Path | str, only: Sequence[str] | None = None) -> list[Path]:
    """Record paths (without extension) in `directory` that have both a header and `.atr` annotations."""
    directory = Path(directory)
    if not directory.is_dir():
        raise EvaluationError(f"{directory}: not a directory")
    names = sorted(p.stem for p in directory.glob("*.hea") if (directory / f"{p.stem}.atr").is_file())
    if only:
        wanted = [o.strip() for o in only if o.strip()]
        unknown = sorted(set(wanted) - set(names))
        if unknown:
            raise EvaluationError(f"{directory}: no record(s) {', '.join(unknown)} with .hea and .atr")
        names = [n for n in names if n in set(wanted)]
    elif is_mitdb(directory):
        names = [n for n in names if n not in PACED]
    if not names:
        raise EvaluationError(f"{directory}: no WFDB records with .hea and .atr annotations found")
    return [directory / n for n in names]


def evaluate_records(
    model_path: Path | str,
    records_dir: Path | str,
    *,
    only: Sequence[str] | None = None,
    progress: Callable[[str, int, int], None] | None = None,
) -> dict[str, Any]:
    """`train.metrics` of the model over every detected beat of the records (pooled): {"per_class", "macro_f1",
    "auroc", "beats", "ec57", "confusion"}."""
    federated = Path(model_path).suffix == ".npz"  # a federated record-relative model: trees, additive or forest
    if federated:
        from shared.fl.relative_models import load_relative

        relative = load_relative(model_path)
    else:
        model, _meta = load_model(model_path)
    paths = find_records(records_dir, only)
    sets: list[BeatSet] = []
    for i, path in enumerate(paths):
        if progress is not None:
            progress(path.name, i, len(paths))
        sets.append(record_beats(path))
    if progress is not None:
        progress("", len(paths), len(paths))
    if federated:
        result = per_recording_metrics(relative.predict_beats, sets)
    else:
        beats = concat(sets)
        pred, score = predict(model, beats)
        result = metrics(beats.y, pred, score, missed=beats.missed)
    if result["beats"] == 0:
        log.warning("no labelled beats in %d record(s)", len(paths))
    return result


def additive_metrics(model: GamModel, columns: int, sets: Sequence[BeatSet]) -> dict[str, Any]:
    """`evaluate_records`' figures for the federated additive model: its features are relative to each wearer, so
    they are computed recording by recording, never over a pooled set of people."""
    from shared.fl import gam

    return per_recording_metrics(lambda s: gam.predict_beats(model, columns, s), sets)


def per_recording_metrics(proba_of: Callable[[BeatSet], np.ndarray], sets: Sequence[BeatSet]) -> dict[str, Any]:
    """`evaluate_records`' figures for a record-relative model: class probabilities recording by recording, the
    metrics over all of them pooled."""
    beats = concat(list(sets))
    proba = np.concatenate([proba_of(s) for s in sets])
    return metrics(beats.y, proba.argmax(axis=1), 1.0 - proba[:, 0], missed=beats.missed)


def format_table(result: dict[str, Any]) -> str:
    """The metrics as a small plain-text table for people."""

    def pct(v: float | None) -> str:
        return "   n/a" if v is None else f"{100 * v:5.1f}%"

    lines = ["class   Se       +P", "-----  -------  -------"]
    for name, m in result["per_class"].items():
        lines.append(f"{name:<5}  {pct(m['se'])}   {pct(m['ppv'])}")
    ec57 = result.get("ec57")
    if ec57:
        veb, sveb = ec57["veb"], ec57["sveb"]
        fpr = "n/a" if veb["fpr"] is None else f"{100 * veb['fpr']:.2f}%"
        lines.append("")
        lines.append("EC57   Se       +P")
        lines.append(f"VEB    {pct(veb['se'])}   {pct(veb['ppv'])}   FPR {fpr}")
        lines.append(f"SVEB   {pct(sveb['se'])}   {pct(sveb['ppv'])}")
        lines.append("(EC57: F/Q beats called V not counted; extra detections and missed beats counted)")
    f1 = result["macro_f1"]
    auroc = result["auroc"]
    lines.append("")
    lines.append(f"macro-F1  {'n/a' if f1 is None else f'{f1:.3f}'}")
    lines.append(f"AUROC     {'n/a' if auroc is None else f'{auroc:.3f}'}  (abnormal S/V/F vs N)")
    lines.append(f"beats     {result['beats']}")
    return "\n".join(lines)
