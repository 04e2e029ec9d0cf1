"""`run_federation` over the real Mosquitto: three watches on short slices of DS1 records, encrypted, DP,
two edge hubs (hierarchical), two rounds — the model moves, the shipped model is their tail average, the
privacy ledger grows, files are written."""

from __future__ import annotations

from pathlib import Path

import pytest

from cardiomesh.fl import FlOptions, run_federation
from shared.model.data import record_beats
from shared.settings import Settings

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.data]


def test_encrypted_dp_federation_over_mosquitto(mosquitto: tuple[str, int], mitdb: Path, tmp_path: Path,
                                                unique: str) -> None:
    host, port = mosquitto
    train = {r: record_beats(mitdb / r, end_s=90) for r in ("101", "106", "119")}
    test = {"100": record_beats(mitdb / "100", end_s=60)}
    settings = Settings(mqtt_url=f"mqtt://{host}:{port}", state_dir=tmp_path, site=f"fl{unique}")
    options = FlOptions(clients=3, rounds=2, encrypt=True, dp_epsilon=8.0, edges=2, epochs=1, max_beats=100,
                        min_clients=2, round_timeout_s=60, run_dir=tmp_path / "run", average_last=2)
    result = run_federation(settings, options, train_sets=train, test_sets=test)
    assert [r["status"] for r in result.rounds] == ["ok", "ok"]
    assert all(r["clients"] == 3 for r in result.rounds)
    assert 0 < result.rounds[0]["epsilon"] < result.rounds[1]["epsilon"] <= 8.0 + 1e-6
    assert result.final_metrics is not None and result.final_metrics["beats"] > 0
    assert set(result.final_metrics["per_class"]) == {"N", "S", "V", "F"}
    assert all(b > 0 for b in result.update_bytes)
    assert result.averaged_over == 2 and result.last_iterate_metrics is not None  # shipped: mean of both models
    downloads = result.model_downloads  # over Mosquitto: each watch read one full model, then only deltas
    assert (downloads["installed_full"], downloads["installed_delta"], downloads["delta_refused"]) == (3, 6, 0)
    assert 0 < downloads["bytes_delta"] / 6 < 0.4 * downloads["bytes_full"] / 3  # per download
    for name in ("global.pt", "rounds.json", "rounds.png"):
        assert (tmp_path / "run" / name).stat().st_size > 0
