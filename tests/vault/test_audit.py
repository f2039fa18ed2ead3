import pytest

from vault import Vault


@pytest.fixture
def audited(vault):
    for number in range(1, 7):
        vault.audit("decision", "gateway", number=number)
    return vault


def test_verify_intact_chain(audited):
    result = audited.verify_audit()
    assert result.ok
    assert result.entries == 6
    assert result.first_bad_seq is None


def test_verify_finds_edited_entry(audited):
    audited.connection().execute(
        "UPDATE audit_log SET actor = 'someone' WHERE seq = 4"
    )
    result = audited.verify_audit()
    assert not result.ok
    assert result.first_bad_seq == 4


def test_verify_finds_edited_fields(audited):
    audited.connection().execute(
        """UPDATE audit_log SET fields = '{"number":99}' WHERE seq = 2"""
    )
    assert audited.verify_audit().first_bad_seq == 2


def test_verify_finds_removed_entry(audited):
    audited.connection().execute("DELETE FROM audit_log WHERE seq = 3")
    result = audited.verify_audit()
    assert not result.ok
    assert result.first_bad_seq == 3
    assert "missing" in result.reason


def test_verify_finds_removed_and_renumbered_entry(audited):
    connection = audited.connection()
    connection.execute("DELETE FROM audit_log WHERE seq = 3")
    connection.execute("UPDATE audit_log SET seq = seq - 1 WHERE seq > 3")
    assert audited.verify_audit().first_bad_seq == 3


def test_verify_finds_reordered_entries(audited):
    connection = audited.connection()
    connection.execute("UPDATE audit_log SET seq = 100 WHERE seq = 2")
    connection.execute("UPDATE audit_log SET seq = 2 WHERE seq = 5")
    connection.execute("UPDATE audit_log SET seq = 5 WHERE seq = 100")
    result = audited.verify_audit()
    assert not result.ok
    assert result.first_bad_seq == 2


def test_verify_finds_truncated_tail(audited):
    audited.connection().execute("DELETE FROM audit_log WHERE seq >= 5")
    result = audited.verify_audit()
    assert not result.ok
    assert result.first_bad_seq == 5


def test_verify_with_other_key_fails(audited, vault_paths, tmp_path):
    from vault import keys

    other_key = tmp_path / "other.key"
    keys.write_key_file(other_key, keys.generate_key())
    path, _ = vault_paths
    with pytest.raises(Exception, match="does not match this vault"):
        Vault.open(path, other_key)


def test_audit_rejects_unencodable_field(vault):
    with pytest.raises(TypeError):
        vault.audit("decision", "gateway", payload=object())


@pytest.mark.parametrize(
    ("column", "value"),
    [("mac", "text"), ("actor", b"A"), ("fields", b"{}"), ("at", "noon")],
)
def test_verify_finds_column_of_wrong_type(audited, column, value):
    audited.connection().execute(f"UPDATE audit_log SET {column} = ? WHERE seq = 3", (value,))
    result = audited.verify_audit()
    assert not result.ok
    assert result.first_bad_seq == 3
    assert "wrong type" in result.reason


def test_verify_finds_edited_head_counter(audited):
    audited.connection().execute("UPDATE vault_state SET audit_head_seq = 'six'")
    result = audited.verify_audit()
    assert not result.ok
    assert result.first_bad_seq == 7
    assert "'six'" in result.reason


def test_verify_names_single_missing_tail_entry(audited):
    audited.connection().execute("DELETE FROM audit_log WHERE seq = 6")
    result = audited.verify_audit()
    assert result.first_bad_seq == 6
    assert result.reason == "entry 6 is missing from the end"
