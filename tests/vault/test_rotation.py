import pytest

from vault import Vault
from vault import keys, rotation


def stored_rows(vault):
    return vault.connection().execute(
        "SELECT namespace, entity_type, serial, key_version, nonce FROM tokens "
        "ORDER BY namespace, entity_type, serial"
    ).fetchall()


def fill(vault, count):
    items = [(f"person {number}", "PERSON") for number in range(count)]
    return dict(zip(vault.tokenize_many(items, "ns"), (value for value, _ in items)))


def test_data_key_rotation_reencrypts_and_keeps_ids(vault):
    tokens = fill(vault, 50)
    before = stored_rows(vault)
    result = rotation.rotate_data_key(vault, "admin", batch_size=7)
    after = stored_rows(vault)
    assert result.complete
    assert result.active_version == 2
    assert result.reencrypted == 50
    assert result.retired_versions == [1]
    assert [row[:3] for row in after] == [row[:3] for row in before]
    assert {row[3] for row in after} == {2}
    assert all(old[4] != new[4] for old, new in zip(before, after))
    assert vault.reveal_many(list(tokens), "ns", "gw", "check") == tokens
    versions = vault.connection().execute("SELECT version FROM data_keys").fetchall()
    assert versions == [(2,)]


def test_interrupted_rotation_resumes(vault, vault_paths):
    tokens = fill(vault, 30)
    partial = rotation.rotate_data_key(vault, "admin", batch_size=10, max_batches=1)
    assert not partial.complete
    assert partial.reencrypted == 10
    vault.tokenize("written during rotation", "PERSON", "ns")
    vault.close()

    with Vault.open(*vault_paths) as reopened:
        versions = sorted(row[3] for row in stored_rows(reopened))
        assert versions.count(1) == 20
        resumed = rotation.rotate_data_key(reopened, "admin", batch_size=10)
        assert resumed.resumed
        assert resumed.active_version == 2
        assert resumed.reencrypted == 20
        assert {row[3] for row in stored_rows(reopened)} == {2}
        assert reopened.reveal_many(list(tokens), "ns", "gw", "check") == tokens


def test_rotation_after_complete_makes_new_key(vault):
    fill(vault, 3)
    rotation.rotate_data_key(vault, "admin")
    second = rotation.rotate_data_key(vault, "admin")
    assert not second.resumed
    assert second.active_version == 3


def test_master_rotation_rewraps_and_keeps_backup(vault, vault_paths):
    path, key_file = vault_paths
    tokens = fill(vault, 5)
    old_key = key_file.read_bytes()
    nonces = [row[4] for row in stored_rows(vault)]
    backup = rotation.rotate_master_key(vault, "admin")
    assert backup.read_bytes() == old_key
    assert backup.stat().st_mode & 0o777 == 0o600
    assert key_file.read_bytes() != old_key
    assert key_file.stat().st_mode & 0o777 == 0o600
    assert not keys.pending_key_file(key_file).exists()
    assert [row[4] for row in stored_rows(vault)] == nonces
    assert vault.reveal_many(list(tokens), "ns", "gw", "check") == tokens
    assert vault.verify_audit().ok
    with pytest.raises(Exception, match="does not match this vault"):
        Vault.open(path, backup)
    with Vault.open(path, key_file) as reopened:
        assert reopened.reveal_many(list(tokens), "ns", "gw", "check") == tokens
        assert reopened.verify_audit().ok


def test_other_vault_object_follows_master_rotation(vault, vault_paths):
    token = vault.tokenize("Alice", "PERSON", "ns")
    with Vault.open(*vault_paths) as other:
        rotation.rotate_master_key(vault, "admin")
        assert other.tokenize("Bob", "PERSON", "ns") == "[PERSON_21]"
        assert other.reveal(token, "ns", "ann", "check") == "Alice"
    assert vault.verify_audit().ok


def test_master_rotation_refused_on_broken_audit(vault, vault_paths):
    _, key_file = vault_paths
    vault.audit("decision", "gateway", number=1)
    vault.connection().execute("UPDATE audit_log SET actor = 'x' WHERE seq = 1")
    old_key = key_file.read_bytes()
    with pytest.raises(Exception, match="audit log is broken at entry 1"):
        rotation.rotate_master_key(vault, "admin")
    assert key_file.read_bytes() == old_key
    assert not keys.pending_key_file(key_file).exists()


def test_interrupted_master_rotation_names_pending_key(vault, vault_paths, monkeypatch):
    path, key_file = vault_paths
    token = vault.tokenize("Alice", "PERSON", "ns")

    def crash(*args):
        raise KeyboardInterrupt

    monkeypatch.setattr(keys, "replace_key_file", crash)
    with pytest.raises(KeyboardInterrupt):
        rotation.rotate_master_key(vault, "admin")
    monkeypatch.undo()
    vault.close()
    pending = keys.pending_key_file(key_file)
    assert pending.exists()
    with pytest.raises(Exception, match=f"mv {pending} {key_file}"):
        Vault.open(path, key_file)
    pending.replace(key_file)
    with Vault.open(path, key_file) as reopened:
        assert reopened.reveal(token, "ns", "ann", "check") == "Alice"


def test_interrupted_master_rotation_keeps_old_key(vault, vault_paths, monkeypatch):
    path, key_file = vault_paths

    def crash(*args):
        raise KeyboardInterrupt

    monkeypatch.setattr(keys, "replace_key_file", crash)
    with pytest.raises(KeyboardInterrupt):
        rotation.rotate_master_key(vault, "admin")
    monkeypatch.undo()
    vault.close()
    with pytest.raises(Exception, match=f"mv {key_file} {key_file}.old-interrupted && mv"):
        Vault.open(path, key_file)


def test_stale_pending_key_not_suggested(vault, vault_paths):
    # A pending key that the vault never switched to must not be offered as the fix,
    # because moving it into place would replace the key file.
    path, key_file = vault_paths
    vault.close()
    keys.write_key_file(keys.pending_key_file(key_file), keys.generate_key())
    key_file.unlink()
    keys.write_key_file(key_file, keys.generate_key())
    with pytest.raises(Exception, match="does not match this vault") as raised:
        Vault.open(path, key_file)
    assert "rotation was interrupted" not in str(raised.value)
