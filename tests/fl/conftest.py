"""One real (2048-bit, CSPRNG) coordinator key set per test session: key generation is the slow part."""

from __future__ import annotations

from pathlib import Path

import pytest

from cloud_expert.coordinator.keys import CoordinatorKeys, load_or_create


@pytest.fixture(scope="session")
def coordinator_keys(tmp_path_factory: pytest.TempPathFactory) -> CoordinatorKeys:
    return load_or_create(Path(tmp_path_factory.mktemp("keys")))
