"""`run_tree_federation` over the real Mosquitto: three watches on short slices of DS1 records answer every
release of the DP trees, encrypted, with sample-level DP noise, through two edge hubs — the model file is written
and read back by `cardiomesh evaluate`'s loader (with the eight columns it reads), the privacy bill is the
accountant's for the whole schedule, and every release was decrypted from all three."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from cardiomesh.fl_trees import TreeOptions, run_tree_federation
from shared.fl import trees
from shared.model.data import record_beats
from shared.model.tree_features import DP_FEATURES, FEATURE_NAMES
from shared.settings import Settings

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.data]


def test_encrypted_dp_trees_over_mosquitto(mosquitto: tuple[str, int], mitdb: Path, tmp_path: Path,
                                           unique: str) -> None:
    host, port = mosquitto
    train = {r: record_beats(mitdb / r, end_s=120) for r in ("106", "119", "208")}
    test = {"100": record_beats(mitdb / "100", end_s=60), "233": record_beats(mitdb / "233", end_s=60)}
    settings = Settings(mqtt_url=f"mqtt://{host}:{port}", state_dir=tmp_path, site=f"ft{unique}")
    options = TreeOptions(clients=3, rounds=1, epsilon=8.0, edges=2, round_timeout_s=60, run_dir=tmp_path / "run")
    labels: list[str] = []
    result = run_tree_federation(settings, options, train_sets=train, test_sets=test,
                                 progress=lambda _record, label: labels.append(label))

    # class counts, the sketch, then one round of 4 classes × 3 levels
    assert labels[:2] == ["class counts", "sketch"] and len(labels) == 2 + 4 * 3 and result.releases == 14
    assert all(r["status"] == "ok" and r["clients"] == 3 for r in result.records)
    assert result.epsilon is not None and result.epsilon == pytest.approx(8.0, abs=0.05) and result.delta == 1e-5
    assert result.bytes_per_client > 0 and result.offline_precompute_s > 0  # the sketch's randomness
    assert result.final_metrics is not None and result.final_metrics["beats"] > 0
    model, meta = trees.load_model(result.model_path, beat_model=True)
    assert model.columns == tuple(FEATURE_NAMES.index(n) for n in DP_FEATURES)
    assert meta["over"] == "mqtt" and meta["level"] == "sample" and len(model.trees) == 1
    assert any(np.any(np.asarray(t.value) != 0) for t in model.trees[0])  # the decrypted sums grew real trees
    assert (tmp_path / "run" / "releases.json").stat().st_size > 0
