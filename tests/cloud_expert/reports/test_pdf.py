"""The PDF: it opens, says what it must (preliminary, DRILL), and its ECG paper is to scale.

Scale is checked three ways: on the geometry the renderer draws from, on the PDF's own drawing operators
(the CTM scale and the 1 mm / 5 mm line positions), and on a rasterised page (pdftoppm at 254 dpi, where
1 mm is exactly 10 px), when poppler-utils is installed.
"""

from __future__ import annotations

import base64
import re
import shutil
import subprocess
import zlib
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from cloud_expert.reports import ecg_paper
from cloud_expert.reports.pdf import render_report_pdf
from cloud_expert.reports.render import build_view
from tests.cloud_expert.factories import FS, report_input
from tests.conftest import IN_CI  # under CI a missing tool fails (the test runs) instead of skipping

MM_PT = 72.0 / 25.4


_input = report_input


@pytest.fixture(scope="module")
def pdf_30s() -> bytes:
    return render_report_pdf(build_view(_input(strip_seconds=30.0, hr_bpm=72.0)))


def _streams(pdf: bytes) -> list[str]:
    """Decoded content streams (reportlab writes ASCII85 + Flate)."""
    out = []
    for raw in re.findall(rb">>\s*stream\r?\n(.*?)endstream", pdf, re.S):
        data = raw.strip().removesuffix(b"~>")
        try:
            out.append(zlib.decompress(base64.a85decode(data)).decode("latin-1"))
        except ValueError:
            continue
    return out


# --- geometry ------------------------------------------------------------------------------------------
def test_point_per_mm_and_grid_spacing() -> None:
    assert ecg_paper.mm_to_pt(1.0) == pytest.approx(MM_PT)
    assert ecg_paper.mm_to_pt(25.4) == pytest.approx(72.0)
    lines = ecg_paper.grid_lines(255.0, 90.0)
    xs = sorted(ln.x0 for ln in lines if ln.x0 == ln.x1)
    major_xs = sorted(ln.x0 for ln in lines if ln.x0 == ln.x1 and ln.major)
    assert np.allclose(np.diff(xs), 1.0) and np.allclose(np.diff(major_xs), 5.0)
    assert len(xs) == 256 and xs[-1] == 255.0


def test_layout_is_25_mm_per_s_and_10_mm_per_mv() -> None:
    layout = ecg_paper.layout_strip(int(30 * FS), fs=FS, event_s=5.0)
    assert layout.n_rows == 3 and layout.width_mm == 255.0 and layout.height_mm == 90.0
    x, y = ecg_paper.trace_points_mm(np.array([0.0, 1.0, 10.0]), np.array([0.0, 1.0, 0.0]), baseline_mm=12.0)
    assert list(x) == [5.0, 30.0, 255.0]  # 5 mm calibration margin + 25 mm per second
    assert y[1] - y[0] == 10.0  # 10 mm per mV
    signal = np.zeros(int(2 * FS))
    signal[int(FS)] = 1.0  # a 1 mV spike at 1 s
    short = ecg_paper.layout_strip(len(signal), fs=FS, event_s=None)
    ((xs, ys),) = ecg_paper.row_traces(signal, short)
    peak = int(np.argmax(ys))
    assert xs[peak] == pytest.approx(30.0, abs=0.05)
    assert ys[peak] - ecg_paper.row_baseline_mm(short, 0) == pytest.approx(10.0)
    assert ecg_paper.place_time(12.5, layout) == (1, pytest.approx(5.0 + 2.5 * 25.0))
    assert ecg_paper.place_time(31.0, layout) is None


def test_long_strips_are_cropped_around_the_event() -> None:
    layout = ecg_paper.layout_strip(int(120 * FS), fs=FS, event_s=100.0)
    assert layout.n_rows == 3 and layout.t0_s == pytest.approx(85.0)
    with pytest.raises(ValueError):
        ecg_paper.layout_strip(100, fs=0, event_s=None)


# --- the PDF file itself -------------------------------------------------------------------------------
def test_pdf_structure(pdf_30s: bytes) -> None:
    assert pdf_30s.startswith(b"%PDF-1.") and pdf_30s.rstrip().endswith(b"%%EOF")
    assert b"/Type /Catalog" in pdf_30s and re.search(rb"/Count \d+", pdf_30s)
    assert b"/MediaBox [ 0 0 841.8898 595.2756 ]" in pdf_30s  # A4 landscape


def test_pdf_draws_the_grid_in_millimetres(pdf_30s: bytes) -> None:
    """The ECG block scales user space to millimetres, then strokes 1 mm and 5 mm lines at those positions."""
    (ecg,) = [s for s in _streams(pdf_30s) if "2.834646 0 0 2.834646 0 0 cm" in s]
    scale = float(re.search(r"(\d*\.\d+) 0 0 \1 0 0 cm", ecg).group(1))  # type: ignore[union-attr]
    assert scale == pytest.approx(MM_PT, abs=1e-6)

    def vertical_xs(color: str) -> np.ndarray:
        block = re.split(r"\sS\s", ecg.split(f"{color} RG", 1)[1], maxsplit=1)[0]
        pairs = re.findall(r"([\d.]+) ([\d.]+) m ([\d.]+) ([\d.]+) l", block)
        return np.array(sorted(float(x0) for x0, _y0, x1, _y1 in pairs if x0 == x1))

    minor, major = vertical_xs(".96 .72 .72"), vertical_xs(".88 .44 .44")
    assert set(np.diff(minor).round(6)) == {1.0, 2.0}  # 1 mm apart, with a gap where a major line is
    assert np.allclose(np.diff(major) * scale, 5 * MM_PT)
    assert major[-1] - major[0] == 255.0  # 10 s × 25 mm/s + 5 mm calibration margin


@pytest.mark.skipif(shutil.which("pdftotext") is None and not IN_CI, reason="poppler-utils (pdftotext) not installed")
def test_pdf_text_says_preliminary_and_drill(tmp_path: Path) -> None:
    def text(pdf: bytes) -> str:
        path = tmp_path / "r.pdf"
        path.write_bytes(pdf)
        return subprocess.run(["pdftotext", "-layout", str(path), "-"], check=True, capture_output=True,
                              text=True).stdout

    clinical = text(render_report_pdf(build_view(_input())))
    assert "Preliminary — requires clinician review" in clinical and "DRILL" not in clinical
    for heading in ("Findings", "Recommendations", "Personal care plan", "Measurements", "Tachycardia >= 150 bpm",
                    "Panchal AR"):
        assert heading in clinical, heading
    drill = text(render_report_pdf(build_view(_input(drill=True))))
    assert "DRILL — NOT A REAL PATIENT EVENT" in drill and "[DRILL]" in drill
    signed = replace(_input(), signed_at=_input().created_at, signed_by="dr-x")
    assert "Preliminary" not in text(render_report_pdf(build_view(signed)))


@pytest.mark.skipif(shutil.which("pdftoppm") is None and not IN_CI, reason="poppler-utils (pdftoppm) not installed")
def test_rasterised_grid_is_10_px_per_mm_at_254_dpi(pdf_30s: bytes, tmp_path: Path) -> None:
    from PIL import Image

    (tmp_path / "r.pdf").write_bytes(pdf_30s)
    subprocess.run(["pdftoppm", "-r", "254", "-f", "1", "-l", "1", "-png", str(tmp_path / "r.pdf"),
                    str(tmp_path / "page")], check=True)
    img = np.asarray(Image.open(next(tmp_path.glob("page*.png"))).convert("RGB")).astype(int)
    r, g, b = img[..., 0], img[..., 1], img[..., 2]
    major = (abs(r - 224) < 20) & (abs(g - 112) < 25) & (abs(b - 112) < 25)  # the 5 mm lines' colour
    rows = np.where(major.sum(axis=1) > 1000)[0]  # horizontal major lines span the whole strip
    columns = np.where(major.sum(axis=0) > 300)[0]  # vertical major lines span its height
    centres = [float(np.mean(g)) for g in np.split(columns, np.where(np.diff(columns) > 1)[0] + 1)]
    spacing = np.diff(centres)
    assert len(centres) == 52  # 255 mm / 5 mm + 1
    assert np.allclose(spacing, 50.0, atol=1.0), spacing  # 5 mm = 50 px at 254 dpi
    assert centres[-1] - centres[0] == pytest.approx(2550.0, abs=2.0)  # 255 mm
    row_centres = [float(np.mean(g)) for g in np.split(rows, np.where(np.diff(rows) > 1)[0] + 1)]
    assert np.allclose(np.diff(row_centres), 50.0, atol=1.0)
