"""Model ↔ flat float32 vector (what federated learning averages and encrypts) and ↔ a small file.

Why a flat vector: FL aggregation, secure aggregation and differential-privacy noise all operate on
one array of numbers; the order is `model.parameters()` order, fixed by the architecture. The model
has no buffers (GroupNorm, no BatchNorm), so the vector is the whole model.

The file is a `torch.save` of {"format", "config", "state_dict", "meta"}: the architecture travels
with the weights, and `meta` holds JSON-serialisable provenance (data, metrics, features version).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from shared.model.features import FEATURES_VERSION
from shared.model.net import BeatNet, NetConfig

FORMAT = "cardiomesh-beatnet/1"


class ModelFileError(ValueError):
    """The model file is missing, unreadable or not a CardioMesh beat model."""


def parameters_vector(model: nn.Module) -> np.ndarray:
    """All parameters, flattened in `model.parameters()` order, as float32."""
    with torch.no_grad():
        return torch.cat([p.detach().reshape(-1).float() for p in model.parameters()]).cpu().numpy().astype(
            np.float32)


def load_vector(model: nn.Module, vector: np.ndarray) -> None:
    """Write a flat vector (from `parameters_vector`) back into the model's parameters, in place."""
    vec = np.asarray(vector, dtype=np.float32).ravel()
    total = sum(p.numel() for p in model.parameters())
    if vec.size != total:
        raise ValueError(f"vector has {vec.size} values, the model has {total} parameters")
    offset = 0
    with torch.no_grad():
        for p in model.parameters():
            n = p.numel()
            p.copy_(torch.from_numpy(vec[offset:offset + n].copy()).reshape(p.shape).to(p.dtype))
            offset += n


def save_model(path: Path | str, model: BeatNet, meta: dict[str, Any] | None = None) -> Path:
    """Save weights, architecture and JSON metadata (float32; ≈ 4 bytes per parameter plus overhead)."""
    meta = dict(meta or {})
    meta.setdefault("features_version", FEATURES_VERSION)
    json.dumps(meta)  # fail early on metadata that cannot travel as JSON
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().float() for k, v in model.state_dict().items()}
    torch.save({"format": FORMAT, "config": model.config.to_dict(), "state_dict": state, "meta": meta}, path)
    return path


def load_model(path: Path | str) -> tuple[BeatNet, dict[str, Any]]:
    """Rebuild the model from a file written by `save_model`; (model in eval mode, meta)."""
    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"{path}: no such model file")
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for a corrupt or foreign file
        raise ModelFileError(f"{path}: not a readable model file ({type(exc).__name__}: {exc})") from None
    if not isinstance(blob, dict) or blob.get("format") != FORMAT:
        raise ModelFileError(f"{path}: not a CardioMesh beat model (expected format {FORMAT!r})")
    meta = dict(blob.get("meta") or {})
    if meta.get("features_version", FEATURES_VERSION) != FEATURES_VERSION:
        raise ModelFileError(f"{path}: trained on features {meta.get('features_version')!r}, "
                             f"this code computes {FEATURES_VERSION!r}")
    try:
        model = BeatNet(NetConfig.from_dict(blob["config"]))
        model.load_state_dict(blob["state_dict"])
    except Exception as exc:
        raise ModelFileError(f"{path}: weights do not fit the saved architecture ({exc})") from None
    model.eval()
    return model, meta


def is_npz_of_kind(path: Path | str, kind: str) -> bool:
    """Whether `path` is an `.npz` whose `kind` is `kind` (which federated model file it is). Never raises: a
    file it cannot read is not that kind, and the reader that claims it says why."""
    try:
        loaded = np.load(Path(path), allow_pickle=False)
        if not isinstance(loaded, np.lib.npyio.NpzFile):
            return False
        with loaded as data:
            return "kind" in data.files and str(data["kind"]) == kind
    except Exception:  # any unreadable file (EOFError, BadZipFile, OSError, …) is simply not this kind
        return False


def read_model_npz(path: Path | str, kind: str, version: int, noun: str) -> dict[str, np.ndarray]:
    """Every array of a federated model's `.npz` (no pickle), once its `kind` and `version` are checked;
    `ModelFileError` with the reason for anything else. `noun` names the model in messages ("additive beat
    model")."""
    import zipfile

    path = Path(path)
    article = "an" if noun[:1] in "aeiou" else "a"
    try:
        loaded = np.load(path, allow_pickle=False)
        if not isinstance(loaded, np.lib.npyio.NpzFile):
            raise ModelFileError(f"{path}: not {article} {noun} (a bare array, not an .npz archive)")
        with loaded as data:
            arrays = {name: data[name] for name in data.files}
    except FileNotFoundError:
        raise ModelFileError(f"{path}: no such file") from None
    except ModelFileError:
        raise
    except (ValueError, TypeError, OSError, EOFError, zipfile.BadZipFile) as exc:
        raise ModelFileError(f"{path}: not a readable {noun} ({exc})") from None
    if "kind" not in arrays or str(arrays["kind"]) != kind:
        raise ModelFileError(f"{path}: not {article} {noun} ({arrays.get('kind', 'no kind')})")
    try:
        found = int(arrays["version"])
    except (KeyError, ValueError, TypeError):
        raise ModelFileError(f"{path}: not a readable {noun} (no version number)") from None
    if found != version:
        raise ModelFileError(f"{path}: {noun} version {found}, this build reads {version}")
    return arrays
