"""An ECG strip as inline SVG on standard paper: 25 mm/s, 10 mm/mV, 1 mm minor and 5 mm major lines.

The SVG works in millimetres (the viewBox), so the grid is exact at any zoom. Long signals are reduced
to a min/max pair per output column, which keeps every QRS peak a clinician must see.
"""

from __future__ import annotations

import html
import itertools
from collections.abc import Sequence

import numpy as np

MM_PER_S = 25.0
MM_PER_MV = 10.0
ROW_SECONDS = 10.0
MAX_ROWS = 3
#: Output columns per millimetre of paper; more points than this cannot be seen.
POINTS_PER_MM = 4
_CAL_MM = 5.0  # width reserved at the left of each row for the 1 mV calibration pulse


def downsample_minmax(t_s: np.ndarray, y: np.ndarray, columns: int) -> tuple[np.ndarray, np.ndarray]:
    """Min and max of each column, in time order, when there are more samples than columns."""
    if len(y) <= 2 * columns:
        return t_s, y
    edges = np.linspace(0, len(y), columns + 1).astype(int)
    out_t: list[float] = []
    out_y: list[float] = []
    for start, stop in itertools.pairwise(edges):
        if stop <= start:
            continue
        seg = y[start:stop]
        i_min, i_max = int(np.argmin(seg)), int(np.argmax(seg))
        for i in sorted({i_min, i_max}):
            out_t.append(float(t_s[start + i]))
            out_y.append(float(seg[i]))
    return np.asarray(out_t), np.asarray(out_y)


def _window(n: int, fs: float, event_s: float) -> tuple[int, int]:
    """Sample range to draw: everything, or the longest allowed span centred on the event."""
    max_n = int(ROW_SECONDS * MAX_ROWS * fs)
    if n <= max_n:
        return 0, n
    start = int(np.clip(event_s * fs - max_n / 2, 0, n - max_n))
    return start, start + max_n


def strip_svg(
    signal_mv: np.ndarray, *, fs: float, event_s: float | None = None, label: str = "",
    beats_s: Sequence[float] = (), ventricular: Sequence[bool] = (),
) -> str:
    """Render `signal_mv` (millivolts, sampled at `fs` Hz) as SVG; a red marker at `event_s` seconds and a
    blue tick above each R peak in `beats_s` (seconds from the first sample), labelled "V" (orange) where
    `ventricular` says so."""
    if fs <= 0:
        raise ValueError("fs must be positive")
    y_all = np.nan_to_num(np.asarray(signal_mv, dtype=np.float64))
    start, stop = _window(len(y_all), fs, event_s or 0.0)
    y_all = y_all[start:stop]
    t_all = (np.arange(start, stop) / fs) if len(y_all) else np.zeros(0)
    duration = len(y_all) / fs
    n_rows = max(1, int(np.ceil(duration / ROW_SECONDS - 1e-9)))
    span = float(np.ptp(y_all)) if len(y_all) else 0.0
    row_h = max(30.0, float(np.ceil((span * MM_PER_MV + 10.0) / 5.0) * 5.0))
    row_w = _CAL_MM + min(duration, ROW_SECONDS) * MM_PER_S
    width = float(np.ceil(row_w / 5.0) * 5.0)
    height = row_h * n_rows
    # Centre the signal's range in each row; the calibration pulse stands on the median (the baseline).
    centre_mv = (float(y_all.max()) + float(y_all.min())) / 2 if len(y_all) else 0.0
    baseline_mv = float(np.median(y_all)) if len(y_all) else 0.0
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="ecg" viewBox="0 0 {width:g} {height:g}" '
        f'width="{width * 4:g}" height="{height * 4:g}" role="img" '
        f'aria-label="ECG strip {html.escape(label, quote=True)}">',
        "<defs>"
        '<pattern id="ecg-minor" width="1" height="1" patternUnits="userSpaceOnUse">'
        '<path d="M 1 0 L 0 0 0 1" fill="none" stroke="#f4b8b8" stroke-width="0.05"/></pattern>'
        '<pattern id="ecg-major" width="5" height="5" patternUnits="userSpaceOnUse">'
        '<rect width="5" height="5" fill="url(#ecg-minor)"/>'
        '<path d="M 5 0 L 0 0 0 5" fill="none" stroke="#e07070" stroke-width="0.15"/></pattern>'
        "</defs>",
        f'<rect width="{width:g}" height="{height:g}" fill="#fff8f6"/>',
        f'<rect width="{width:g}" height="{height:g}" fill="url(#ecg-major)"/>',
    ]
    for row in range(n_rows):
        r0, r1 = row * ROW_SECONDS, (row + 1) * ROW_SECONDS
        mid = row * row_h + row_h / 2
        base_y = mid - (baseline_mv - centre_mv) * MM_PER_MV
        cal_top = base_y - MM_PER_MV
        parts.append(f'<path class="cal" d="M 0.5 {base_y:.2f} H 1.5 V {cal_top:.2f} H 3.5 V {base_y:.2f} H 4.5" '
                     'fill="none" stroke="#000" stroke-width="0.25"/>')
        rel = t_all - t_all[0] if len(t_all) else t_all
        mask = (rel >= r0) & (rel < r1)
        t_row, y_row = downsample_minmax(rel[mask] - r0, y_all[mask], int(ROW_SECONDS * MM_PER_S * POINTS_PER_MM))
        if len(y_row):
            xs = _CAL_MM + t_row * MM_PER_S
            ys = mid - (y_row - centre_mv) * MM_PER_MV
            points = " ".join(f"{x:.2f},{y:.2f}" for x, y in zip(xs, ys, strict=True))
            parts.append(f'<polyline class="trace" points="{points}" fill="none" stroke="#111" '
                         'stroke-width="0.3" stroke-linejoin="round"/>')
        if len(t_all):
            for i, beat in enumerate(beats_s):
                rel_b = beat - t_all[0]
                if r0 <= rel_b < r1:
                    xb = _CAL_MM + (rel_b - r0) * MM_PER_S
                    v = i < len(ventricular) and bool(ventricular[i])
                    colour = "#d9730d" if v else "#1f5fbf"
                    parts.append(f'<path class="beat{" beat-v" if v else ""}" d="M {xb:.2f} {row * row_h + 1:.2f} v 2" '
                                 f'stroke="{colour}" stroke-width="0.4"/>')
                    if v:
                        parts.append(f'<text class="beat-label" x="{xb - 0.8:.2f}" y="{row * row_h + 5.6:.2f}" '
                                     f'font-size="2.4" fill="{colour}">V</text>')
        if event_s is not None and len(t_all):
            ev = event_s - t_all[0]
            if r0 <= ev < r1:
                x = _CAL_MM + (ev - r0) * MM_PER_S
                parts.append(f'<line class="event" x1="{x:.2f}" y1="{row * row_h:.2f}" x2="{x:.2f}" '
                             f'y2="{(row + 1) * row_h:.2f}" stroke="#d00" stroke-width="0.4" '
                             'stroke-dasharray="1.5,1"/>')
                parts.append(f'<text x="{x + 0.8:.2f}" y="{row * row_h + 4:.2f}" font-size="3" '
                             'fill="#d00">event</text>')
    parts.append("</svg>")
    return "".join(parts)
