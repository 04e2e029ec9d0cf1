"""Parameters ↔ flat vector ↔ file round trips, and clear errors for bad files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from shared.model.data import BeatSet
from shared.model.net import BeatNet, NetConfig, n_parameters
from shared.model.serialize import ModelFileError, load_model, load_vector, parameters_vector, save_model
from tests.shared.model.conftest import TINY


def _logits(model: BeatNet, beats: BeatSet) -> torch.Tensor:
    model.eval()
    with torch.no_grad():
        return model(torch.from_numpy(beats.X_wave), torch.from_numpy(beats.X_rr))


def test_vector_round_trip(tiny_model: BeatNet, toy: BeatSet) -> None:
    vec = parameters_vector(tiny_model)
    assert vec.dtype == np.float32 and vec.shape == (n_parameters(tiny_model),)
    other = BeatNet(TINY)
    assert not np.array_equal(parameters_vector(other), vec)
    load_vector(other, vec)
    np.testing.assert_array_equal(parameters_vector(other), vec)
    torch.testing.assert_close(_logits(other, toy), _logits(tiny_model, toy))
    with pytest.raises(ValueError, match="parameters"):
        load_vector(other, vec[:-1])


def test_file_round_trip(tiny_model: BeatNet, toy: BeatSet, tmp_path: Path) -> None:
    path = save_model(tmp_path / "m.pt", tiny_model, {"note": "tiny", "auroc": 0.5})
    model, meta = load_model(path)
    assert meta["note"] == "tiny" and "features_version" in meta
    assert model.config == TINY
    torch.testing.assert_close(_logits(model, toy), _logits(tiny_model, toy))


def test_default_model_is_small(tmp_path: Path) -> None:
    model = BeatNet(NetConfig())
    assert 5_000 <= n_parameters(model) <= 30_000
    assert save_model(tmp_path / "m.pt", model).stat().st_size < 1_000_000


def test_bad_files(tmp_path: Path) -> None:
    with pytest.raises(ModelFileError, match="no such model file"):
        load_model(tmp_path / "missing.pt")
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a model")
    with pytest.raises(ModelFileError, match="not a readable model file"):
        load_model(junk)
    other = tmp_path / "other.pt"
    torch.save({"format": "something-else"}, other)
    with pytest.raises(ModelFileError, match="not a CardioMesh beat model"):
        load_model(other)
