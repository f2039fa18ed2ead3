"""Fixtures: one real Detector per test session, a real vault file per test."""

from collections.abc import Iterator
from pathlib import Path

import pytest

from addons.detection import Detector
from addons.pipeline import Pipeline
from vault import Vault


@pytest.fixture(scope="session")
def detector() -> Detector:
    return Detector()


@pytest.fixture
def vault(tmp_path: Path) -> Iterator[Vault]:
    opened = Vault.open(tmp_path / "vault.db", tmp_path / "master.key", create=True)
    yield opened
    opened.close()


@pytest.fixture
def pipeline(detector: Detector, vault: Vault) -> Pipeline:
    return Pipeline(detector, vault)
