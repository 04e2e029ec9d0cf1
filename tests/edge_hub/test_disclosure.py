"""Joining a watch's streamed chunks into the episode's full disclosure (pure logic)."""

from __future__ import annotations

import numpy as np
import pytest

from edge_hub.disclosure import GRACE_S, DisclosureCollector, join
from shared.messages import EcgStrip

FS = 250.0


def _chunk(t0: float, seconds: float, *, fs: float = FS, value: float = 0.0) -> EcgStrip:
    n = round(seconds * fs)
    return EcgStrip.from_mv(value + np.sin(np.arange(n) / fs * 7.0 + t0), fs=fs, t0_s=t0)


def test_contiguous_chunks_become_one_segment_in_stream_order() -> None:
    chunks = [_chunk(102.0, 2.0), _chunk(100.0, 2.0), _chunk(104.0, 2.0)]
    segments, contiguous = join(chunks)
    assert contiguous and len(segments) == 1
    assert segments[0].t0_s == 100.0 and segments[0].n_samples == round(6.0 * FS)
    expected = np.concatenate([c.to_mv() for c in sorted(chunks, key=lambda c: c.t0_s)])
    assert np.array_equal(segments[0].to_mv(), expected)


def test_a_lost_chunk_leaves_a_gap_and_overlaps_are_trimmed() -> None:
    segments, contiguous = join([_chunk(100.0, 2.0), _chunk(101.0, 2.0), _chunk(106.0, 2.0)])
    assert not contiguous
    assert [(s.t0_s, s.n_samples) for s in segments] == [(100.0, round(3.0 * FS)), (106.0, round(2.0 * FS))]


def test_a_change_of_rate_starts_a_new_segment() -> None:
    segments, contiguous = join([_chunk(100.0, 2.0), _chunk(102.0, 2.0, fs=500.0)])
    assert [s.fs for s in segments] == [FS, 500.0] and not contiguous


def _collector() -> DisclosureCollector:
    collector = DisclosureCollector()
    collector.open(alert_id="a1", device_id="w1", patient_id="p1", trace_id="t1", drill=False, expected_s=10.0,
                   now_mono=0.0)
    return collector


def test_a_stream_is_due_once_it_covers_what_was_asked() -> None:
    collector = _collector()
    for t0 in (100.0, 102.0, 104.0):
        assert collector.add("a1", "w1", _chunk(t0, 2.0))
    assert collector.due(1.0) == []  # 6 s of 10: more to come
    assert collector.add("a1", "w1", _chunk(106.0, 2.0))  # 8 s: within one chunk of the end the watch stops
    [(collection, segments, complete)] = collector.due(1.0)
    assert complete and collection.alert_id == "a1" and segments[0].duration_s == pytest.approx(8.0)
    assert len(collector) == 0 and not collector.add("a1", "w1", _chunk(110.0, 2.0))  # closed: not kept


def test_a_stream_that_stops_early_is_sent_incomplete_after_the_grace() -> None:
    collector = _collector()
    collector.add("a1", "w1", _chunk(100.0, 2.0))
    assert collector.due(10.0 + GRACE_S - 0.1) == []
    [(_, segments, complete)] = collector.due(10.0 + GRACE_S)
    assert not complete and len(segments) == 1


def test_chunks_nobody_asked_for_are_refused() -> None:
    collector = _collector()
    assert not collector.add("other-alert", "w1", _chunk(100.0, 2.0))
    assert not collector.add("a1", "another-watch", _chunk(100.0, 2.0))
    assert not collector.add(None, "w1", _chunk(100.0, 2.0))
