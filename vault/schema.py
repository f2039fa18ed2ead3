"""The vault's SQLite schema and its forward migrations.

`MIGRATIONS[n]` contains the statements that take a database from version n - 1 to n.
A database whose version is above SCHEMA_VERSION was written by a newer tokengate and
is rejected before anything in it changes.
"""

import sqlite3
from pathlib import Path

from vault.errors import SchemaError

SCHEMA_VERSION = 1
SQLITE_HEADER = b"SQLite format 3\x00"

MIGRATIONS: dict[int, tuple[str, ...]] = {
    1: (
        """CREATE TABLE schema_version (
            version INTEGER NOT NULL
        )""",
        # One row: the vault id (HKDF salt and AAD), the master key check value, the
        # wrapped lookup key and the data key version that new values use.
        """CREATE TABLE vault_state (
            id INTEGER PRIMARY KEY CHECK (id = 1),
            vault_id BLOB NOT NULL,
            key_check BLOB NOT NULL,
            wrapped_lookup_key BLOB NOT NULL,
            active_data_key INTEGER NOT NULL,
            audit_head_seq INTEGER NOT NULL DEFAULT 0,
            created_at REAL NOT NULL
        )""",
        """CREATE TABLE data_keys (
            version INTEGER PRIMARY KEY,
            wrapped BLOB NOT NULL,
            created_at REAL NOT NULL
        )""",
        """CREATE TABLE settings (
            name TEXT PRIMARY KEY,
            value TEXT NOT NULL
        )""",
        # The last serial handed out per (namespace, entity type). Rows are kept when
        # tokens are purged or erased so that a token id is never reused.
        """CREATE TABLE serials (
            namespace TEXT NOT NULL,
            entity_type TEXT NOT NULL,
            last_serial INTEGER NOT NULL,
            PRIMARY KEY (namespace, entity_type)
        ) WITHOUT ROWID""",
        """CREATE TABLE tokens (
            namespace TEXT NOT NULL,
            entity_type TEXT NOT NULL,
            serial INTEGER NOT NULL,
            lookup BLOB NOT NULL UNIQUE,
            key_version INTEGER NOT NULL REFERENCES data_keys (version),
            nonce BLOB NOT NULL,
            ciphertext BLOB NOT NULL,
            origin TEXT NOT NULL CHECK (origin IN ('client', 'model')),
            created_at REAL NOT NULL,
            expires_at REAL,
            PRIMARY KEY (namespace, entity_type, serial)
        ) WITHOUT ROWID""",
        "CREATE INDEX tokens_by_key_version ON tokens (key_version)",
        "CREATE INDEX tokens_by_expiry ON tokens (expires_at) WHERE expires_at IS NOT NULL",
        """CREATE TABLE audit_log (
            seq INTEGER PRIMARY KEY,
            at REAL NOT NULL,
            event TEXT NOT NULL,
            actor TEXT NOT NULL,
            fields TEXT NOT NULL,
            mac BLOB NOT NULL
        )""",
        """CREATE TABLE sessions (
            id TEXT PRIMARY KEY,
            namespace TEXT,
            principal TEXT,
            started_at REAL,
            last_at REAL,
            flow_count INTEGER,
            entity_counts TEXT,
            file TEXT
        )""",
        """CREATE TABLE flows (
            id TEXT PRIMARY KEY,
            session_id TEXT,
            seq INTEGER,
            at REAL,
            method TEXT,
            url TEXT,
            status INTEGER,
            entity_counts TEXT,
            decisions TEXT
        )""",
        "CREATE INDEX flows_by_session ON flows (session_id, seq)",
        """CREATE TABLE credentials (
            id TEXT PRIMARY KEY,
            secret_hash TEXT,
            principal TEXT,
            scopes TEXT,
            created_at REAL,
            expires_at REAL,
            revoked_at REAL
        )""",
    ),
}


def check_header(path: Path) -> None:
    """Raise SchemaError unless `path` is empty or starts with the SQLite header."""
    with open(path, "rb") as file:
        header = file.read(len(SQLITE_HEADER))
    if header and header != SQLITE_HEADER:
        raise SchemaError(
            f"the vault file {path} is not a SQLite database (damaged, or another "
            "kind of file); nothing was changed. Restore it from a backup, or move it "
            "away and run `tokengate init` to start a new vault"
        )


def read_version(connection: sqlite3.Connection, path: Path) -> int:
    """Return the schema version, 0 for an empty database; never writes."""
    tables = {
        row[0]
        for row in connection.execute("SELECT name FROM sqlite_master WHERE type='table'")
    }
    if not tables:
        return 0
    if "schema_version" not in tables:
        raise SchemaError(
            f"the database {path} is not a tokengate vault (it has no schema_version "
            "table); nothing was changed. Check --vault"
        )
    versions = [row[0] for row in connection.execute("SELECT version FROM schema_version")]
    # Migrations write exactly one positive integer in the transaction that creates the
    # tables, so anything else was edited or damaged outside tokengate.
    if not versions or not all(type(version) is int and version > 0 for version in versions):
        raise SchemaError(
            f"the vault {path} has an invalid schema_version table (versions "
            f"{versions[:5]!r}); it was edited or damaged outside tokengate. Nothing was "
            "changed. Restore it from a backup"
        )
    return max(versions)


def check_supported(version: int, path: Path) -> None:
    """Raise SchemaError if `version` is newer than this code understands."""
    if version > SCHEMA_VERSION:
        raise SchemaError(
            f"the vault {path} has schema version {version}, but this tokengate "
            f"supports versions up to {SCHEMA_VERSION}; nothing was changed. Upgrade "
            "tokengate to open it"
        )


def migrate(connection: sqlite3.Connection, from_version: int) -> int:
    """Apply the migrations above `from_version` inside the caller's transaction."""
    version = from_version
    for target in range(from_version + 1, SCHEMA_VERSION + 1):
        for statement in MIGRATIONS[target]:
            connection.execute(statement)
        version = target
    if version != from_version:
        connection.execute("DELETE FROM schema_version")
        connection.execute("INSERT INTO schema_version (version) VALUES (?)", (version,))
    return version
