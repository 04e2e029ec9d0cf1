"""Small server-drawn SVG charts (no script, no library, nothing fetched): they render offline and print."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from itertools import pairwise

from cloud_expert.telemetry import TrendPoint


def hr_trend_svg(points: Sequence[TrendPoint], *, since: datetime, until: datetime, bucket: timedelta,
                 alerts: Sequence[datetime] = (),
                 label: Callable[[datetime], str] = lambda at: at.strftime("%d %H:%M"), width: int = 720,
                 height: int = 180) -> str:
    """Mean heart rate per bucket as a line over its min–max band, alerts as red ticks; '' with no points. Over
    three buckets without a reading break the line: no data is not drawn as a straight line."""
    if not points:
        return ""
    lo = min(p.hr_min for p in points) - 5
    hi = max(p.hr_max for p in points) + 5
    span_t, span_hr = max((until - since).total_seconds(), 1.0), max(hi - lo, 1.0)
    left, right, top, bottom = 44, 8, 20, 22

    def x(at: datetime) -> float:
        return left + (at - since).total_seconds() / span_t * (width - left - right)

    def y(hr: float) -> float:
        return top + (hi - hr) / span_hr * (height - top - bottom)

    runs: list[list[TrendPoint]] = [[points[0]]]
    for prev, point in pairwise(points):
        if point.start - prev.start > 3 * bucket:
            runs.append([point])
        else:
            runs[-1].append(point)
    shapes = []
    for run in runs:
        upper = " ".join(f"{x(p.start):.1f},{y(p.hr_max):.1f}" for p in run)
        lower = " ".join(f"{x(p.start):.1f},{y(p.hr_min):.1f}" for p in reversed(run))
        shapes.append(f'<polygon points="{upper} {lower}" fill="#e9b0b0" fill-opacity="0.45" stroke="none"/>')
        line = " ".join(f"{x(p.start):.1f},{y(p.hr_mean):.1f}" for p in run)
        shapes.append(f'<polyline points="{line}" fill="none" stroke="#b00" stroke-width="1.6"/>')
    ticks = "".join(f'<line x1="{x(at):.1f}" x2="{x(at):.1f}" y1="{top}" y2="{height - bottom}" stroke="#d00" '
                    f'stroke-dasharray="3 3"/>' for at in alerts if since <= at <= until)
    grid = "".join(f'<line x1="{left}" x2="{width - right}" y1="{y(v):.1f}" y2="{y(v):.1f}" stroke="#eee"/>'
                   f'<text x="{left - 4}" y="{y(v) + 4:.1f}" text-anchor="end">{v:.0f}</text>'
                   for v in _nice_ticks(lo, hi))
    return (f'<svg viewBox="0 0 {width} {height}" role="img" class="trend" aria-label="heart rate from '
            f'{label(since)} to {label(until)}: mean per interval, band from lowest to highest">{grid}'
            f'{"".join(shapes)}{ticks}'
            f'<text x="{left}" y="{height - 6}">{label(since)}</text>'
            f'<text x="{width - right}" y="{height - 6}" text-anchor="end">{label(until)}</text>'
            f'<text x="4" y="12">bpm</text></svg>')


def _nice_ticks(lo: float, hi: float) -> list[float]:
    step = 10.0 if hi - lo <= 80 else 20.0 if hi - lo <= 160 else 50.0
    first = (int(lo // step) + 1) * step
    return [first + i * step for i in range(int((hi - first) // step) + 1)]
