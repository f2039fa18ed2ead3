import hashlib
import sqlite3

import pytest

from vault import SchemaError, Vault, VaultError
from vault.schema import SCHEMA_VERSION


def digest(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_new_vault_has_current_schema(vault):
    row = vault.connection().execute("SELECT version FROM schema_version").fetchall()
    assert row == [(SCHEMA_VERSION,)]
    tables = {
        name for (name,) in vault.connection().execute(
            "SELECT name FROM sqlite_master WHERE type = 'table'"
        )
    }
    for table in ("tokens", "data_keys", "audit_log", "sessions", "flows", "credentials"):
        assert table in tables


def test_newer_schema_is_rejected_unchanged(vault, vault_paths):
    path, key_file = vault_paths
    vault.tokenize("Alice", "PERSON", "ns")
    vault.connection().execute("UPDATE schema_version SET version = ?", (SCHEMA_VERSION + 1,))
    vault.close()
    connection = sqlite3.connect(path)
    connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    connection.close()
    before = digest(path)
    with pytest.raises(SchemaError, match=f"schema version {SCHEMA_VERSION + 1}"):
        Vault.open(path, key_file)
    assert digest(path) == before


def test_random_bytes_rejected_unchanged(tmp_path):
    path = tmp_path / "vault.db"
    path.write_bytes(bytes(range(256)) * 40)
    before = digest(path)
    with pytest.raises(SchemaError, match="not a SQLite database"):
        Vault.open(path, tmp_path / "master.key", create=True)
    assert digest(path) == before
    assert not (tmp_path / "master.key").exists()


def test_damaged_pages_rejected_unchanged(vault, vault_paths):
    path, key_file = vault_paths
    vault.close()
    data = bytearray(path.read_bytes())
    data[100:4096] = b"\xff" * (4096 - 100)
    path.write_bytes(bytes(data))
    before = digest(path)
    with pytest.raises(SchemaError):
        Vault.open(path, key_file)
    assert digest(path) == before


def test_foreign_sqlite_database_rejected(tmp_path):
    path = tmp_path / "other.db"
    connection = sqlite3.connect(path)
    connection.execute("CREATE TABLE notes (text TEXT)")
    connection.commit()
    connection.close()
    before = digest(path)
    with pytest.raises(SchemaError, match="not a tokengate vault"):
        Vault.open(path, tmp_path / "master.key", create=True)
    assert digest(path) == before


def test_missing_vault_without_create(tmp_path):
    with pytest.raises(VaultError, match="tokengate init --vault"):
        Vault.open(tmp_path / "none.db", tmp_path / "none.key")
    assert not (tmp_path / "none.db").exists()


def test_create_never_replaces_key_of_existing_vault(vault, vault_paths):
    path, key_file = vault_paths
    vault.close()
    key_file.unlink()
    with pytest.raises(VaultError, match="restore its key file"):
        Vault.open(path, key_file, create=True)
    assert not key_file.exists()


@pytest.mark.parametrize("stored", [[], ["one"], [0], [-1]])
def test_invalid_schema_version_rejected_unchanged(vault, vault_paths, stored):
    path, key_file = vault_paths
    vault.close()
    connection = sqlite3.connect(path)
    connection.execute("DELETE FROM schema_version")
    connection.executemany("INSERT INTO schema_version VALUES (?)", [(v,) for v in stored])
    connection.commit()
    connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    connection.close()
    before = digest(path)
    for create in (False, True):
        with pytest.raises(SchemaError, match="invalid schema_version table"):
            Vault.open(path, key_file, create=create)
    assert digest(path) == before


def page_size(path):
    connection = sqlite3.connect(path)
    try:
        return connection.execute("PRAGMA page_size").fetchone()[0]
    finally:
        connection.close()


def damage_root_page(path, table):
    """Overwrite the root page of `table` with 0xff bytes, leaving other pages intact."""
    connection = sqlite3.connect(path)
    root = connection.execute(
        "SELECT rootpage FROM sqlite_master WHERE name = ?", (table,)
    ).fetchone()[0]
    connection.close()
    size = page_size(path)
    with open(path, "r+b") as file:
        file.seek((root - 1) * size)
        file.write(b"\xff" * size)


def test_damaged_settings_page_rejected_unchanged(vault, vault_paths):
    # The schema check reads sqlite_master, schema_version and vault_state only, so
    # this damage shows up later, while the stored token lifetimes are read.
    path, key_file = vault_paths
    vault.close()
    # The lookup by name reads the primary key index, and the table only on a match.
    damage_root_page(path, "settings")
    damage_root_page(path, "sqlite_autoindex_settings_1")
    before = digest(path)
    with pytest.raises(SchemaError, match="cannot be read: .*Nothing was changed"):
        Vault.open(path, key_file)
    assert digest(path) == before
