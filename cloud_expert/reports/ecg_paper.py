"""ECG paper geometry in millimetres, shared by the PDF renderer and its tests: 25 mm/s, 10 mm/mV,
1 mm minor and 5 mm major lines, 10 s per row, at most 3 rows (30 s) centred on the event.

Pure: the PDF draws exactly the lines and points these functions return, so the tests can check the
scale on the geometry and, independently, on the PDF's own drawing operators.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cloud_expert.reports.ecg_svg import MAX_ROWS, MM_PER_MV, MM_PER_S, ROW_SECONDS, downsample_minmax

#: PostScript/PDF points per millimetre (1 pt = 1/72 inch, 1 inch = 25.4 mm).
PT_PER_MM = 72.0 / 25.4
MINOR_MM = 1.0
MAJOR_MM = 5.0
CAL_MM = 5.0  # left margin of each row holding the 1 mV calibration pulse
ROW_HEIGHT_MM = 30.0
POINTS_PER_MM = 4


def mm_to_pt(mm: float) -> float:
    return mm * PT_PER_MM


@dataclass(frozen=True, slots=True)
class GridLine:
    """A grid line in mm from the paper's bottom-left corner (PDF coordinates grow upwards)."""

    x0: float
    y0: float
    x1: float
    y1: float
    major: bool


@dataclass(frozen=True, slots=True)
class StripLayout:
    """Which samples go on paper and how big the paper is."""

    start: int
    stop: int
    fs: float
    n_rows: int
    width_mm: float
    height_mm: float

    @property
    def t0_s(self) -> float:
        return self.start / self.fs


def layout_strip(n_samples: int, *, fs: float, event_s: float | None) -> StripLayout:
    """At most `MAX_ROWS` × 10 s of the strip, centred on the event when longer; whole 5 mm squares."""
    if not fs > 0:
        raise ValueError(f"sampling rate must be positive, got {fs!r}")
    max_n = int(ROW_SECONDS * MAX_ROWS * fs)
    start, stop = 0, n_samples
    if n_samples > max_n:
        start = int(np.clip((event_s or 0.0) * fs - max_n / 2, 0, n_samples - max_n))
        stop = start + max_n
    duration = (stop - start) / fs
    n_rows = max(1, int(np.ceil(duration / ROW_SECONDS - 1e-9)))
    width = float(np.ceil((CAL_MM + min(duration, ROW_SECONDS) * MM_PER_S) / MAJOR_MM) * MAJOR_MM)
    return StripLayout(start=start, stop=stop, fs=fs, n_rows=n_rows, width_mm=width,
                       height_mm=n_rows * ROW_HEIGHT_MM)


def grid_lines(width_mm: float, height_mm: float) -> list[GridLine]:
    """Every 1 mm line, every 5th one major, covering `width_mm` × `height_mm` (whole millimetres)."""
    lines: list[GridLine] = []
    for i in range(round(width_mm / MINOR_MM) + 1):
        x = i * MINOR_MM
        lines.append(GridLine(x, 0.0, x, height_mm, major=i % 5 == 0))
    for j in range(round(height_mm / MINOR_MM) + 1):
        y = j * MINOR_MM
        lines.append(GridLine(0.0, y, width_mm, y, major=j % 5 == 0))
    return lines


def row_baseline_mm(layout: StripLayout, row: int) -> float:
    """Height of row `row`'s 0 mV line (rows run top to bottom; the 0 mV line sits 2/5 up the row)."""
    return layout.height_mm - (row + 1) * ROW_HEIGHT_MM + 0.4 * ROW_HEIGHT_MM


def trace_points_mm(t_s: np.ndarray, y_mv: np.ndarray, *, baseline_mm: float) -> tuple[np.ndarray, np.ndarray]:
    """Paper coordinates of samples at `t_s` seconds into their row: x = 5 mm + 25 mm/s · t, y = 10 mm/mV · mV."""
    return CAL_MM + np.asarray(t_s) * MM_PER_S, baseline_mm + np.asarray(y_mv) * MM_PER_MV


def row_traces(signal_mv: np.ndarray, layout: StripLayout) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per row, the (x, y) mm points of the trace, reduced to min/max pairs per 1/4 mm, baseline-centred."""
    y = np.nan_to_num(np.asarray(signal_mv, dtype=np.float64)[layout.start:layout.stop])
    if y.size:
        y = y - float(np.median(y))
        # keep the trace inside its row, as ECG machines do: clip at its edges (1.8 mV up, 1.2 mV down)
        y = np.clip(y, -0.4 * ROW_HEIGHT_MM / MM_PER_MV + 0.05, 0.6 * ROW_HEIGHT_MM / MM_PER_MV - 0.05)
    t = np.arange(y.size) / layout.fs
    rows = []
    for row in range(layout.n_rows):
        mask = (t >= row * ROW_SECONDS) & (t < (row + 1) * ROW_SECONDS)
        tr, yr = downsample_minmax(t[mask] - row * ROW_SECONDS, y[mask], int(ROW_SECONDS * MM_PER_S * POINTS_PER_MM))
        rows.append(trace_points_mm(tr, yr, baseline_mm=row_baseline_mm(layout, row)))
    return rows


def place_time(t_s: float, layout: StripLayout) -> tuple[int, float] | None:
    """(row, x mm) of a time given in seconds from the strip's first sample; None when off the paper."""
    rel = t_s - layout.t0_s
    if rel < 0 or rel >= (layout.stop - layout.start) / layout.fs:
        return None
    row = int(rel // ROW_SECONDS)
    return row, CAL_MM + (rel - row * ROW_SECONDS) * MM_PER_S
