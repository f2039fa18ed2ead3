"""Fixtures for vault tests: a fresh vault in a temporary directory."""

from collections.abc import Iterator
from pathlib import Path

import pytest

from vault import Vault


@pytest.fixture
def vault_paths(tmp_path: Path) -> tuple[Path, Path]:
    return tmp_path / "vault.db", tmp_path / "keys" / "master.key"


@pytest.fixture
def vault(vault_paths: tuple[Path, Path]) -> Iterator[Vault]:
    path, key_file = vault_paths
    opened = Vault.open(path, key_file, create=True)
    yield opened
    opened.close()
