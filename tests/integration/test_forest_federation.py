"""`run_forest_federation` over the real Mosquitto: three watches on short slices of DS1 records answer both
releases of the DP forest, encrypted, with sample-level DP noise, through two edge hubs — the model file is written
and read back by `cardiomesh evaluate`'s loader, the privacy bill is the accountant's for the two releases, and
both were decrypted from all three."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from cardiomesh.fl_forest import ForestOptions, run_forest_federation
from shared.fl import forest
from shared.fl.relative_models import load_relative
from shared.model.data import record_beats
from shared.model.tree_features import DP_FEATURES, FEATURE_NAMES
from shared.settings import Settings

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.data]


def test_encrypted_dp_forest_over_mosquitto(mosquitto: tuple[str, int], mitdb: Path, tmp_path: Path,
                                            unique: str) -> None:
    host, port = mosquitto
    train = {r: record_beats(mitdb / r, end_s=120) for r in ("106", "119", "208")}
    test = {"100": record_beats(mitdb / "100", end_s=60), "233": record_beats(mitdb / "233", end_s=60)}
    settings = Settings(mqtt_url=f"mqtt://{host}:{port}", state_dir=tmp_path, site=f"ff{unique}")
    options = ForestOptions(clients=3, trees=20, depth=6, epsilon=8.0, edges=2, timeout_s=120,
                            run_dir=tmp_path / "run")
    labels: list[str] = []
    result = run_forest_federation(settings, options, train_sets=train, test_sets=test,
                                   progress=lambda _record, label: labels.append(label))

    assert labels == ["counts", "leaves"] and result.releases == 2
    assert all(r["status"] == "ok" and r["clients"] == 3 for r in result.records)
    assert result.epsilon is not None and result.epsilon == pytest.approx(8.0, abs=0.05) and result.delta == 1e-5
    assert result.bytes_per_client > 0 and result.offline_precompute_s > 0 and result.release_clipped == 0
    assert result.final_metrics is not None and result.final_metrics["beats"] > 0
    model, columns, meta = forest.load(result.model_path)
    assert list(columns) == [FEATURE_NAMES.index(n) for n in DP_FEATURES]
    assert meta["over"] == "mqtt" and meta["level"] == "sample" and model.leaf_proba.shape == (20, 64, 4)
    assert np.ptp(model.leaf_proba[:, :, 0]) > 0.1  # the decrypted counts made leaves that disagree
    assert load_relative(result.model_path).kind == "forest"  # what evaluate, the phone and the watch read
    assert (tmp_path / "run" / "releases.json").stat().st_size > 0
