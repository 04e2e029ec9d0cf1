"""`run_additive_federation` over the real Mosquitto: three watches on short slices of DS1 records answer every
release, encrypted, with sample-level DP noise, through two edge hubs — the model file is written, read back by
`cardiomesh evaluate`'s loader, the privacy bill is the accountant's for what was decrypted, and the watches hold
the coordinator's last version."""

from __future__ import annotations

from pathlib import Path

import pytest

from cardiomesh.fl_additive import AdditiveOptions, run_additive_federation
from shared.fl import gam
from shared.model.data import record_beats
from shared.settings import Settings

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.data]


def test_encrypted_dp_additive_federation_over_mosquitto(mosquitto: tuple[str, int], mitdb: Path, tmp_path: Path,
                                                         unique: str) -> None:
    host, port = mosquitto
    train = {r: record_beats(mitdb / r, end_s=120) for r in ("106", "119", "208")}
    test = {"100": record_beats(mitdb / "100", end_s=60), "233": record_beats(mitdb / "233", end_s=60)}
    settings = Settings(mqtt_url=f"mqtt://{host}:{port}", state_dir=tmp_path, site=f"fa{unique}")
    options = AdditiveOptions(clients=3, epochs=1, epsilon=8.0, edges=2, v_offset=-0.5, round_timeout_s=60,
                              run_dir=tmp_path / "run")
    labels: list[str] = []
    result = run_additive_federation(settings, options, train_sets=train, test_sets=test,
                                     progress=lambda _record, label: labels.append(label))

    assert labels[0] == "counts" and len(labels) == 1 + 22 and result.skipped == 0 and result.releases == 23
    assert all(r["status"] == "ok" and r["clients"] == 3 for r in result.records)
    assert result.epsilon == pytest.approx(8.0, abs=0.05) and result.delta == 1e-5
    assert result.bytes_per_client > 0 and result.offline_precompute_s > 0  # the count release's randomness
    assert result.final_metrics is not None and result.final_metrics["beats"] > 0
    assert result.without_offset_metrics is not None  # the offset's effect, shown apart
    model, columns, meta = gam.load(result.model_path)
    assert columns == 22 and meta["over"] == "mqtt" and meta["level"] == "sample"
    assert model.shapes.any()  # the decrypted releases moved the shapes
    assert (tmp_path / "run" / "releases.json").stat().st_size > 0
