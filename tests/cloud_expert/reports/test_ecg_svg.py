"""strip_svg: paper scale, grid, polyline, downsampling that keeps peaks, event marker."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

import numpy as np
import pytest

from cloud_expert.reports.ecg_svg import MM_PER_MV, MM_PER_S, strip_svg
from tests.cloud_expert.factories import FS, synthetic_ecg

NS = "{http://www.w3.org/2000/svg}"


def _points(svg: str) -> list[np.ndarray]:
    root = ET.fromstring(svg)
    rows = []
    for line in root.iter(f"{NS}polyline"):
        pairs = [p.split(",") for p in (line.get("points") or "").split()]
        rows.append(np.array([[float(x), float(y)] for x, y in pairs]))
    return rows


def test_scale_is_25_mm_per_s_and_10_mm_per_mv() -> None:
    signal = np.zeros(int(2 * FS))
    signal[int(FS)] = 1.0  # a 1 mV spike at 1 s
    svg = strip_svg(signal, fs=FS, event_s=1.0)
    (pts,) = _points(svg)
    peak = pts[np.argmin(pts[:, 1])]
    baseline_y = np.median(pts[:, 1])
    assert peak[0] - pts[0, 0] == pytest.approx(1.0 * MM_PER_S, abs=0.2)
    assert baseline_y - peak[1] == pytest.approx(1.0 * MM_PER_MV, abs=0.01)
    event = ET.fromstring(svg).find(f".//{NS}line[@class='event']")
    assert event is not None and float(event.get("x1") or 0) == pytest.approx(peak[0], abs=0.2)


def test_grid_has_1_mm_minor_and_5_mm_major_lines() -> None:
    svg = strip_svg(synthetic_ecg(seconds=2), fs=FS)
    assert re.search(r'id="ecg-minor" width="1" height="1"', svg)
    assert re.search(r'id="ecg-major" width="5" height="5"', svg)


def test_downsampling_bounds_points_and_keeps_peaks() -> None:
    fs = 1000.0
    signal = synthetic_ecg(seconds=10, fs=fs)
    (pts,) = _points(strip_svg(signal, fs=fs))
    assert len(pts) < len(signal) / 2
    drawn_max_mv = (np.median(pts[:, 1]) - pts[:, 1].min()) / MM_PER_MV
    assert drawn_max_mv == pytest.approx(signal.max() - np.median(signal), abs=0.01)


def test_long_strips_wrap_into_rows_and_are_cropped_around_the_event() -> None:
    signal = synthetic_ecg(seconds=120)
    svg = strip_svg(signal, fs=FS, event_s=100.0)
    assert len(_points(svg)) == 3
    assert len(ET.fromstring(svg).findall(f".//{NS}line[@class='event']")) == 1


def test_label_is_escaped_and_empty_signal_is_fine() -> None:
    svg = strip_svg(np.zeros(0), fs=FS, label='<script>"x"')
    assert "<script>" not in svg
    ET.fromstring(svg)


def test_fs_must_be_positive() -> None:
    with pytest.raises(ValueError):
        strip_svg(np.zeros(10), fs=0)
