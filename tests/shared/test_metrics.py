"""Counts, latency histograms and gauges in the Prometheus text format, served on GET /metrics."""

from __future__ import annotations

import re
import urllib.error
import urllib.request

import pytest

from shared.metrics import LATENCY_BUCKETS_MS, Counters, Histogram, MetricsServer, render


def _samples(text: str) -> dict[str, float]:
    """`name{labels}` → value, for every sample line (the HELP/TYPE lines skipped)."""
    found = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            key, _, value = line.rpartition(" ")
            found[key] = float(value)
    return found


def test_histograms_are_cumulative_with_sum_count_and_inf() -> None:
    counters = Counters()
    for ms in (0.3, 4.0, 4.0, 250.0, 999_999.0):
        counters.observe("alert_to_response_ms", ms)
    counters.inc("accepted.alert", 5)
    counters.inc("rejected.not_json")
    counters.gauge("open_episodes", lambda: 3)
    counters.gauge("broken", lambda: 1 / 0)  # an unreadable gauge is left out, the scrape still answers
    samples = _samples(render("edge-1", counters))
    labels = 'component="edge-1",name="alert_to_response_ms"'
    assert samples[f'cardiomesh_latency_ms_bucket{{{labels},le="0.5"}}'] == 1
    assert samples[f'cardiomesh_latency_ms_bucket{{{labels},le="5"}}'] == 3
    assert samples[f'cardiomesh_latency_ms_bucket{{{labels},le="500"}}'] == 4
    assert samples[f'cardiomesh_latency_ms_bucket{{{labels},le="+Inf"}}'] == 5
    assert samples[f"cardiomesh_latency_ms_count{{{labels}}}"] == 5
    assert samples[f"cardiomesh_latency_ms_sum{{{labels}}}"] == pytest.approx(1_000_257.3)
    assert samples['cardiomesh_gauge{component="edge-1",name="open_episodes"}'] == 3
    assert not any("broken" in key for key in samples)
    assert samples['cardiomesh_events_total{component="edge-1",name="accepted.alert"}'] == 5
    assert samples['cardiomesh_rejected_total{component="edge-1",reason="not_json"}'] == 1
    buckets = [k for k in samples if k.startswith("cardiomesh_latency_ms_bucket")]
    assert len(buckets) == len(LATENCY_BUCKETS_MS) + 1


def test_quantiles_read_from_the_buckets() -> None:
    h = Histogram()
    assert h.quantile(0.99) is None
    for ms in [1.0] * 98 + [40.0, 900.0]:
        h.observe(ms)
    assert (h.quantile(0.5), h.quantile(0.99), h.quantile(1.0)) == (1, 50, 1000)


def test_the_endpoint_serves_metrics_and_nothing_else() -> None:
    counters = Counters()
    counters.observe("ingest_ms", 12.0)
    server = MetricsServer(counters, "cloud-ingest", port=0).start()
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{server.port}/metrics", timeout=5) as answer:
            body = answer.read().decode()
            assert answer.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        assert re.search(r'cardiomesh_latency_ms_count\{component="cloud-ingest",name="ingest_ms"\} 1', body)
        with pytest.raises(urllib.error.HTTPError) as error:
            urllib.request.urlopen(f"http://127.0.0.1:{server.port}/", timeout=5)
        assert error.value.code == 404
    finally:
        server.stop()
