"""Administration of a vault: purge, erase, statistics and database checks."""

import json
import os
import sqlite3
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from vault.schema import SCHEMA_VERSION
from vault.store import TTL_SETTING, check_namespace

if TYPE_CHECKING:
    from vault.store import Vault


@dataclass(frozen=True)
class VaultStats:
    """Counts that describe a vault, without any value or key."""

    path: str
    size_bytes: int
    schema_version: int
    tokens: int
    expired: int
    tokens_by_namespace: dict[str, dict[str, int]]
    active_data_key: int
    rows_by_data_key: dict[int, int]
    audit_entries: int
    sessions: int
    flows: int
    credentials: int
    token_ttl: dict[str, float | None] = field(default_factory=dict)


def purge_expired(vault: "Vault", actor: str, now: float | None = None) -> int:
    """Delete tokens whose expiry has passed; return how many were deleted."""
    cutoff = time.time() if now is None else now
    with vault.write_transaction() as connection:
        deleted = connection.execute(
            "DELETE FROM tokens WHERE expires_at IS NOT NULL AND expires_at <= ?",
            (cutoff,),
        ).rowcount
        vault.append_audit(connection, "purge", actor, {"deleted": deleted})
    return deleted


def erase_namespace(vault: "Vault", namespace: str, actor: str) -> int:
    """Delete every token of `namespace`; return how many were deleted.

    Serial counters are kept, so the namespace never hands out an erased token id
    again and old recordings cannot resolve to new values.
    """
    check_namespace(namespace)
    with vault.write_transaction() as connection:
        deleted = connection.execute(
            "DELETE FROM tokens WHERE namespace = ?", (namespace,)
        ).rowcount
        vault.append_audit(
            connection, "erase", actor, {"namespace": namespace, "deleted": deleted}
        )
    return deleted


def collect_stats(vault: "Vault") -> VaultStats:
    """Count tokens, keys, audit entries and index rows in one read snapshot."""
    connection = vault.connection()
    connection.execute("BEGIN")
    try:
        by_namespace: dict[str, dict[str, int]] = {}
        total = 0
        for namespace, entity_type, count in connection.execute(
            "SELECT namespace, entity_type, count(*) FROM tokens "
            "GROUP BY namespace, entity_type ORDER BY namespace, entity_type"
        ):
            by_namespace.setdefault(namespace, {})[entity_type] = count
            total += count
        expired = _count(
            connection,
            "SELECT count(*) FROM tokens WHERE expires_at IS NOT NULL AND expires_at <= ?",
            (time.time(),),
        )
        rows_by_key = dict(
            connection.execute(
                "SELECT key_version, count(*) FROM tokens GROUP BY key_version"
            ).fetchall()
        )
        active = _count(connection, "SELECT active_data_key FROM vault_state")
        return VaultStats(
            path=str(vault.path),
            size_bytes=os.path.getsize(vault.path),
            schema_version=SCHEMA_VERSION,
            tokens=total,
            expired=expired,
            tokens_by_namespace=by_namespace,
            active_data_key=active,
            rows_by_data_key=rows_by_key,
            audit_entries=_count(connection, "SELECT count(*) FROM audit_log"),
            sessions=_count(connection, "SELECT count(*) FROM sessions"),
            flows=_count(connection, "SELECT count(*) FROM flows"),
            credentials=_count(connection, "SELECT count(*) FROM credentials"),
            token_ttl=dict(vault.token_ttl),
        )
    finally:
        connection.execute("COMMIT")


def integrity_problems(vault: "Vault") -> list[str]:
    """Run SQLite's integrity check; return its findings, empty when the file is sound."""
    try:
        rows = vault.connection().execute("PRAGMA integrity_check").fetchall()
    except sqlite3.DatabaseError as error:
        # SQLite raises instead of listing findings when it cannot walk a damaged page.
        return [f"{error} (SQLite)"]
    findings = [row[0] for row in rows]
    return [] if findings == ["ok"] else findings


def _count(connection: sqlite3.Connection, query: str, parameters: tuple = ()) -> int:
    return connection.execute(query, parameters).fetchone()[0]


def store_token_ttl(
    vault: "Vault", token_ttl: dict[str, float | None], actor: str
) -> dict[str, float | None]:
    """Save token lifetimes (seconds, None for no expiry) as the vault's defaults.

    The lifetimes apply to tokens created or refreshed from then on, in every process
    that opens the vault afterwards without its own `token_ttl`.
    """
    with vault.write_transaction() as connection:
        row = connection.execute(
            "SELECT value FROM settings WHERE name = ?", (TTL_SETTING,)
        ).fetchone()
        stored = json.loads(row[0]) if row else {}
        stored.update(token_ttl)
        connection.execute(
            "INSERT INTO settings (name, value) VALUES (?, ?) "
            "ON CONFLICT (name) DO UPDATE SET value = excluded.value",
            (TTL_SETTING, json.dumps(stored, sort_keys=True)),
        )
        vault.append_audit(
            connection, "set_token_ttl", actor,
            {name: seconds for name, seconds in sorted(token_ttl.items())},
        )
    vault.token_ttl.update(token_ttl)
    return stored
