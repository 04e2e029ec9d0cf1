"""`cardiomesh evaluate` on two short WFDB records (one resampled to 500 Hz) with a tiny model."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from cardiomesh.cli import app
from shared.model.net import BeatNet
from shared.model.serialize import save_model
from tests.shared.model.conftest import TINY


def _write_slice(mitdb: Path, record: str, out: Path, seconds: float, fs_out: int) -> None:
    import wfdb

    rec = wfdb.rdrecord(str(mitdb / record), sampto=int(360 * seconds))
    ann = wfdb.rdann(str(mitdb / record), "atr", sampto=int(360 * seconds))
    signal = rec.p_signal
    samples = np.asarray(ann.sample)
    if fs_out != 360:
        from scipy.signal import resample_poly

        signal = resample_poly(signal, fs_out, 360, axis=0)
        samples = np.round(samples * fs_out / 360).astype(int)
    wfdb.wrsamp(record, fs=fs_out, units=rec.units, sig_name=rec.sig_name, p_signal=signal, fmt=["16", "16"],
                write_dir=str(out))
    wfdb.wrann(record, "atr", samples, ann.symbol, write_dir=str(out))


@pytest.fixture(scope="module")
def records(mitdb: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("records")
    _write_slice(mitdb, "100", out, 30, 360)
    _write_slice(mitdb, "119", out, 30, 500)
    return out


def test_evaluate_json(records: Path, tmp_path: Path) -> None:
    model = save_model(tmp_path / "tiny.pt", BeatNet(TINY))
    result = CliRunner().invoke(app, ["evaluate", "--model", str(model), "--records", str(records), "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout.strip().splitlines()[-1])
    assert set(data) == {"per_class", "macro_f1", "auroc", "beats", "ec57", "confusion"}
    assert list(data["per_class"]) == ["N", "S", "V", "F"]
    assert all(set(v) == {"se", "ppv"} for v in data["per_class"].values())
    assert set(data["ec57"]) == {"veb", "sveb"} and set(data["ec57"]["veb"]) == {"se", "ppv", "fpr"}
    assert sum(map(sum, data["confusion"])) == data["beats"]
    veb, v = data["ec57"]["veb"], data["per_class"]["V"]
    assert veb["se"] is None or veb["se"] <= v["se"]  # EC57 also charges the V beats the detector missed
    assert 60 <= data["beats"] <= 120  # ~30 s of 100 (≈37 beats) + 30 s of 119 (≈ 33 beats)

    only = CliRunner().invoke(app, ["evaluate", "--model", str(model), "--records", str(records), "--only", "119"])
    assert only.exit_code == 0, only.output
    assert "macro-F1" in only.stdout and "V" in only.stdout and "EC57" in only.stdout


def test_evaluate_errors(records: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    missing = runner.invoke(app, ["evaluate", "--model", str(tmp_path / "nope.pt"), "--records", str(records)])
    assert missing.exit_code == 1 and "no such model file" in missing.output
    bad = tmp_path / "bad.pt"
    bad.write_text("junk")
    invalid = runner.invoke(app, ["evaluate", "--model", str(bad), "--records", str(records)])
    assert invalid.exit_code == 1 and "not a readable model file" in invalid.output
    model = save_model(tmp_path / "tiny.pt", BeatNet(TINY))
    empty = tmp_path / "empty"
    empty.mkdir()
    nothing = runner.invoke(app, ["evaluate", "--model", str(model), "--records", str(empty)])
    assert nothing.exit_code == 1 and "no WFDB records" in nothing.output
    unknown = runner.invoke(app, ["evaluate", "--model", str(model), "--records", str(records), "--only", "999"])
    assert unknown.exit_code == 1 and "999" in unknown.output


def test_evaluate_reads_the_federated_additive_model(records: Path, tmp_path: Path) -> None:
    """The `.npz` additive model (issue 15's sample-DP model) is scored the same way, its features computed
    record by record; a V-only shape calls every beat V, which the confusion shows."""
    from shared.fl import gam
    from shared.model.tree_features import n_features

    columns = n_features()
    shapes = np.zeros((columns, 4, 4))
    shapes[0, :, 2] = 10.0  # feature 0, every bin: strongly V
    path = tmp_path / "additive.npz"
    gam.save(path, gam.GamModel(np.zeros((columns, gam.FINE_BINS), dtype=np.int64), shapes, np.ones(4)), columns)
    result = CliRunner().invoke(app, ["evaluate", "--model", str(path), "--records", str(records), "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout.strip().splitlines()[-1])
    confusion = np.asarray(data["confusion"])
    assert confusion.sum() == data["beats"] > 0 and confusion[:, 2].sum() == confusion.sum()
    (tmp_path / "bad.npz").write_text("junk")
    bad = CliRunner().invoke(app, ["evaluate", "--model", str(tmp_path / "bad.npz"), "--records", str(records)])
    assert bad.exit_code == 1 and "not a readable additive beat model" in bad.output


def test_evaluate_reads_the_federated_trees_model(records: Path, tmp_path: Path) -> None:
    """The federated trees' `.npz` is told from the additive one by its kind and scored record by record; a
    forest that answers V everywhere calls every beat V."""
    from shared.fl import trees
    from shared.model.tree_features import n_features

    edges = np.zeros((n_features(), 2))
    stump = [trees.Tree([-1], [0], [-1], [-1], [10.0 if k == 2 else 0.0]) for k in range(4)]
    path = tmp_path / "trees.npz"
    trees.save_model(path, trees.BoostedModel(edges, [stump], 1.0, 4), {"privacy": "none"})
    result = CliRunner().invoke(app, ["evaluate", "--model", str(path), "--records", str(records), "--json"])
    assert result.exit_code == 0, result.output
    confusion = np.asarray(json.loads(result.stdout.strip().splitlines()[-1])["confusion"])
    assert confusion.sum() > 0 and confusion[:, 2].sum() == confusion.sum()
