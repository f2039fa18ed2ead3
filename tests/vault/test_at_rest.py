import sqlite3

from vault import Vault
from vault import maintenance, rotation

KNOWN_VALUES = [
    ("Zebulon Quixote", "PERSON"),
    ("zebulon.quixote@example.org", "EMAIL_ADDRESS"),
    ("4929 1234 5678 9012", "CREDIT_CARD"),
    ("DE89 3704 0044 0532 0130 00", "IBAN_CODE"),
    ("sk-live-SECRETKEY1234567890", "API_KEY"),
]


def forms(value):
    """Return the byte forms in which a value could leak."""
    variants = {value, value.lower(), value.replace(" ", ""), "".join(filter(str.isdigit, value))}
    encoded = set()
    for variant in variants:
        if len(variant) >= 8:
            encoded.add(variant.encode())
            encoded.add(variant.encode("utf-16-le"))
    return encoded


def stored_bytes(path):
    data = b""
    for suffix in ("", "-wal", "-shm"):
        file = path.with_name(path.name + suffix)
        if file.exists():
            data += file.read_bytes()
    return data


def test_no_plaintext_in_database_or_wal(vault_paths):
    path, key_file = vault_paths
    with Vault.open(path, key_file, create=True) as vault:
        vault.connection().execute("PRAGMA wal_autocheckpoint = 0")
        tokens = vault.tokenize_many(KNOWN_VALUES, "ns")
        for token in tokens:
            vault.reveal(token, "ns", "ann", "check")
        vault.reveal_many(tokens, "ns", "gateway", "restore")
        assert path.with_name(path.name + "-wal").stat().st_size > 0
        data = stored_bytes(path)
        for value, _ in KNOWN_VALUES:
            for form in forms(value):
                assert form not in data, value
        rotation.rotate_data_key(vault, "admin")
        maintenance.purge_expired(vault, "admin")
    data = stored_bytes(path)
    for value, _ in KNOWN_VALUES:
        for form in forms(value):
            assert form not in data, value


def test_lookup_and_audit_columns_hold_no_value(vault):
    tokens = vault.tokenize_many(KNOWN_VALUES, "ns")
    vault.reveal(tokens[0], "ns", "ann", "check")
    connection = vault.connection()
    lookups = [bytes(row[0]) for row in connection.execute("SELECT lookup FROM tokens")]
    assert all(len(lookup) == 32 for lookup in lookups)
    audit_text = " ".join(
        row[0] + row[1] for row in connection.execute("SELECT actor, fields FROM audit_log")
    )
    for value, _ in KNOWN_VALUES:
        for form in forms(value):
            assert form not in b"".join(lookups)
            assert form.decode("utf-8", "ignore") not in audit_text


def test_database_file_is_private(vault_paths):
    path, key_file = vault_paths
    Vault.open(path, key_file, create=True).close()
    assert path.stat().st_mode & 0o777 == 0o600
    assert key_file.stat().st_mode & 0o777 == 0o600
    assert sqlite3.connect(path).execute("PRAGMA journal_mode").fetchone()[0] == "wal"
