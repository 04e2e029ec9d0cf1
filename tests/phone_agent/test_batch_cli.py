"""`cardiomesh analyze`: WFDB, CSV, EDF, directories and bad files, end to end through the CLI."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import neurokit2 as nk
import numpy as np
import pytest
from typer.testing import CliRunner

from cardiomesh.cli import app

runner = CliRunner()
FS = 250


def _ecg(seconds: int = 15, hr: int = 70) -> np.ndarray:
    return np.asarray(nk.ecg_simulate(duration=seconds, sampling_rate=FS, heart_rate=hr, random_state=3))


def _csv(path: Path, ecg: np.ndarray) -> Path:
    lines = ["time_s,mv"] + [f"{i / FS:.4f},{v:.5f}" for i, v in enumerate(ecg)]
    path.write_text("\n".join(lines) + "\n")
    return path


def _edf(path: Path, ecg: np.ndarray, unit: str = "mV") -> Path:
    import pyedflib

    scale = 1000.0 if unit == "uV" else 1.0
    header = {"label": "ECG", "dimension": unit, "sample_frequency": FS, "physical_max": 5.0 * scale,
              "physical_min": -5.0 * scale, "digital_max": 32767, "digital_min": -32768, "transducer": "",
              "prefilter": ""}
    writer = pyedflib.EdfWriter(str(path), 1, file_type=pyedflib.FILETYPE_EDFPLUS)
    try:
        writer.setSignalHeaders([header])  # type: ignore[list-item]
        writer.writeSamples([ecg * scale])
    finally:
        writer.close()
    return path


def _rows(output: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in output.splitlines() if line.startswith("{")]


def test_csv_json(tmp_path: Path) -> None:
    result = runner.invoke(app, ["analyze", "--json", str(_csv(tmp_path / "s1.csv", _ecg()))])
    assert result.exit_code == 0, result.output
    (row,) = _rows(result.stdout)
    assert row["record"] == "s1" and row["rhythm"] == "sinus" and row["quality"] != "unusable"
    assert abs(float(row["hr_bpm"]) - 70) < 4  # type: ignore[arg-type]
    for key in ("confidence", "pr_ms", "qrs_ms", "qt_ms", "qtc_bazett_ms", "qtc_fridericia_ms", "rules_rhythm",
                "rhythm_probabilities", "reader", "candidates"):
        assert key in row
    assert row["events"] == []  # a regular 70 bpm strip: nothing a monitor would alarm on


def test_single_column_csv_needs_fs(tmp_path: Path) -> None:
    path = tmp_path / "one.csv"
    path.write_text("\n".join(f"{v:.5f}" for v in _ecg()) + "\n")
    bad = runner.invoke(app, ["analyze", str(path)])
    assert bad.exit_code == 1 and "pass --fs" in bad.output
    good = runner.invoke(app, ["analyze", "--fs", str(FS), str(path)])
    assert good.exit_code == 0 and "one: sinus" in good.stdout


@pytest.mark.parametrize("unit", ["mV", "uV"])
def test_edf(tmp_path: Path, unit: str) -> None:
    result = runner.invoke(app, ["analyze", "--json", str(_edf(tmp_path / "e.edf", _ecg(), unit))])
    assert result.exit_code == 0, result.output
    (row,) = _rows(result.stdout)
    assert row["record"] == "e" and row["rhythm"] == "sinus" and row["lead"] == "ECG"


@pytest.mark.data
def test_wfdb_record_by_header_or_bare_path_with_window(mitdb: Path) -> None:
    for arg in (str(mitdb / "201.hea"), str(mitdb / "201")):
        result = runner.invoke(app, ["analyze", "--json", "--start", "0", "--seconds", "20", arg])
        assert result.exit_code == 0, result.output
        (row,) = _rows(result.stdout)
        assert row["record"] == "201" and row["rhythm"] == "af" and row["fs"] == 360.0
        assert row["duration_s"] == 20.0


@pytest.mark.data
def test_directory_with_bad_file_keeps_going(tmp_path: Path, mitdb: Path) -> None:
    for suffix in (".hea", ".dat", ".atr"):
        shutil.copy(mitdb / f"100{suffix}", tmp_path / f"100{suffix}")
    _csv(tmp_path / "s2.csv", _ecg())
    _edf(tmp_path / "e2.edf", _ecg())
    (tmp_path / "broken.edf").write_bytes(b"not an edf file at all")
    (tmp_path / "README.txt").write_text("skipped")
    result = runner.invoke(app, ["analyze", "--json", "--seconds", "15", str(tmp_path)])
    assert result.exit_code == 0, result.output
    rows = _rows(result.stdout)
    assert {r["record"] for r in rows if "rhythm" in r} == {"100", "s2", "e2"}
    assert [r["record"] for r in rows if "error" in r] == ["broken"]
    assert "error: " in result.stderr and "[1]" in result.stderr  # one-line error, progress on stderr


def test_only_bad_files_exit_1(tmp_path: Path) -> None:
    (tmp_path / "x.csv").write_text("a,b,c\n1,2,3\n")
    result = runner.invoke(app, ["analyze", str(tmp_path / "x.csv"), str(tmp_path / "missing.hea")])
    assert result.exit_code == 1
    assert "expected columns" in result.stderr and "no such file" in result.stderr
    assert "Traceback" not in result.output


def test_readable_summary(tmp_path: Path) -> None:
    result = runner.invoke(app, ["analyze", str(_csv(tmp_path / "s3.csv", _ecg(20, 120)))])
    assert result.exit_code == 0
    assert "s3: " in result.stdout and "QTc Bazett" in result.stdout
    # the rules' reading is always shown; with the reader installed, its probabilities beside it (synthetic
    # ECG is no test of the reader's accuracy: only of what the summary shows)
    assert "sinus_tachycardia" in result.stdout
    if "reader " in result.stdout:
        assert "rules: sinus_tachycardia" in result.stdout


def test_help() -> None:
    result = runner.invoke(app, ["analyze", "--help"])
    assert result.exit_code == 0 and "--seconds" in result.output
