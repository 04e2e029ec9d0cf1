"""bench/fl_scale.py at a tiny size over the real Mosquitto: 6 watches in 2 processes, an edge process, the
coordinator; one round completes, the signed model reaches every watch, and the JSON says what the bench promises."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.data]

ROOT = Path(__file__).resolve().parents[2]


def test_one_round_of_six_watches_in_two_processes(mosquitto: tuple[str, int], mitdb: Path, tmp_path: Path) -> None:
    host, port = mosquitto
    out = tmp_path / "fl_scale.json"
    run = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "fl_scale.py"), "--watches", "6", "--processes", "2",
         "--records", "101,106", "--seconds-per-record", "90", "--mqtt-url", f"mqtt://{host}:{port}",
         "--json", str(out), "--timeout", "60"],
        cwd=ROOT, capture_output=True, text=True, timeout=150)
    assert run.returncode == 0, run.stderr[-3000:]
    result = json.loads(out.read_text())
    assert result["watches"] == 6 and result["processes"] == 2
    assert result["model_published"] is True
    clients = result["clients"]
    assert (clients["status"], clients["reported"], clients["dropped"], clients["installed_v1"]) == ("ok", 6, 0, 6)
    assert clients["edge_accepted"] == 6 and not clients["edge_rejected"] and clients["client_errors"] == 0
    assert clients["disconnects"] == 0 and clients["keepalive_s"] > 0
    timeline = result["timeline_s"]
    assert 0 < timeline["last_update_sent"] <= timeline["aggregate_sent"] <= result["round_s"]
    assert result["round_s"] <= result["round_installed_s"]  # stamped as the publish is called: no install before
    floor = result["floor"]
    assert floor["cores"] >= 1 and floor["train_cpu_sum_s"] > 0 and floor["encode_cpu_sum_s"] > 0
    assert result["floor_s"] == pytest.approx(floor["cpu_sum_s"] / floor["cores"], abs=0.002)
    assert result["round_over_floor_x"] == pytest.approx(result["round_s"] / result["floor_s"], rel=0.01, abs=0.01)
    sizes = result["bytes"]
    assert sizes["updates"] == 6 * sizes["update_per_watch"] and sizes["updates_wire"] > sizes["updates"]
    assert 0 < sizes["aggregate"] <= sizes["update_per_watch"] and sizes["model_down_wire"] > 0
    assert sizes["announcement_wire"] > 0 and set(sizes["model_published_wire"]) == {"model", "model_delta"}
    assert result["edge_cpu_s"] > 0 and result["offline_precompute_s"] > 0
    assert 0 < result["offline_precompute_cpu_sum_s"] <= result["offline_precompute_wall_sum_s"] + 0.1
    assert len(result["load_avg_at_start"]) == 3 and result["commit"] and result["date"]
    assert "fl_scale" in run.stdout and "round (announce" in run.stdout  # the readable table
