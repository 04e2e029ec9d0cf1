"""`cardiomesh fl trees`' presets: the columns each reads, the budget's calibration, and the refusal of DP where
it has no accounting."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from cardiomesh.fl import FederationError
from cardiomesh.fl_trees import PRESETS, TreeOptions, columns_of, tree_config
from shared.fl.trees import dp_epsilon
from shared.model.tree_features import DP_FEATURES, FEATURE_NAMES, n_features


def test_each_preset_reads_its_columns() -> None:
    assert columns_of(PRESETS["dp"]) == [FEATURE_NAMES.index(n) for n in DP_FEATURES]
    assert columns_of(PRESETS["leafwise"]) == columns_of(PRESETS["compact"]) == list(range(n_features()))
    assert PRESETS["compact"].config.rounds == 100 and PRESETS["compact"].n_bins == 64


def test_the_dp_preset_is_calibrated_to_the_budget_and_the_others_refuse_dp() -> None:
    _preset, config, class_sigma = tree_config(TreeOptions(preset="dp", epsilon=8.0))
    assert dp_epsilon(config, config.noise_multiplier) == pytest.approx(8.0, abs=0.05) and config.private_edges
    assert class_sigma == pytest.approx(config.noise_multiplier * 2.0 * math.sqrt(2 * len(DP_FEATURES)))
    _preset, plain, sigma = tree_config(TreeOptions(preset="compact", epsilon=None, rounds=3))
    assert plain.noise_multiplier == 0 and sigma == 0 and plain.rounds == 3 and not plain.private_edges
    with pytest.raises(FederationError, match="no DP accounting"):
        tree_config(TreeOptions(preset="leafwise", epsilon=8.0))
    with pytest.raises(FederationError, match="preset: one of"):
        tree_config(TreeOptions(preset="nope"))


@pytest.mark.parametrize("command", ["run", "additive", "trees", "forest"])
def test_k_below_two_is_refused_before_anything_starts(command: str) -> None:
    """k = 1 would decrypt one watch's own sum: every `fl` command refuses it at the command line."""
    from typer.testing import CliRunner

    from cardiomesh.cli import app

    result = CliRunner().invoke(app, ["fl", command, "--min-clients", "1"])
    assert result.exit_code == 2 and "--min-clients" in result.output


def test_the_forest_command_defaults_to_the_cell_chosen_on_ds1() -> None:
    """`fl forest`'s defaults are `bench/_dp_forest.py --protocol loro`'s choice, calibrated to ε = 8."""
    import json

    from cardiomesh.fl_forest import ForestOptions, forest_config
    from shared.fl.forest import accounted_epsilon

    study = Path(__file__).resolve().parents[2] / "bench" / "results" / "fl_dp_forest_loro.json"
    chosen = json.loads(study.read_text())
    options = ForestOptions()
    assert chosen["chosen"] == f"dp, {options.bins} bins, {options.trees} trees, depth {options.depth}"
    assert chosen["cells"][chosen["chosen"]]["offset"] == options.v_offset
    assert accounted_epsilon(forest_config(options)) == pytest.approx(8.0, abs=0.05)
