"""`cardiomesh fl forest`'s own rules: a state larger than the payload limit gets a limit it fits (found when 22
watches rejected the chosen cell's 1.24 MB model message), a small one keeps the default, and a forest whose
leaves could not travel in one release is refused before any data is read."""

from __future__ import annotations

from pathlib import Path

import pytest

from cardiomesh.fl import FederationError
from cardiomesh.fl_forest import ForestOptions, fleet_settings, forest_config, run_forest_federation
from cloud_expert.coordinator.coordinator import signed_payloads
from cloud_expert.coordinator.keys import load_or_create
from shared.fl.forest import ForestState
from shared.settings import Settings


def test_the_chosen_cells_state_gets_a_payload_limit_it_fits(tmp_path: Path) -> None:
    settings = Settings()
    big = ForestState.empty(forest_config(ForestOptions(epsilon=None)), 8).vector()
    full, _ = signed_payloads(load_or_create(tmp_path).signing, big, version=3, round_id=1)
    sent = len(full.model_dump_json().encode())  # the model message's payload, as the coordinator signs it
    assert sent > settings.max_payload_bytes  # the default would reject it
    assert fleet_settings(settings, big).max_payload_bytes >= sent + 1024
    small = ForestState.empty(forest_config(ForestOptions(trees=10, depth=4, epsilon=None)), 8).vector()
    assert fleet_settings(settings, small) is settings


def test_a_forest_too_large_for_one_release_is_refused_first(tmp_path: Path) -> None:
    with pytest.raises(FederationError, match="more than a round may announce"):
        run_forest_federation(Settings(state_dir=tmp_path), ForestOptions(trees=2000, depth=12, epsilon=None))
