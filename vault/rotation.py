"""Key rotation: new data keys with resumable re-encryption, and master key rotation.

Rotation never changes a token id: rows keep their (namespace, entity type, serial),
and only the ciphertext, nonce and data key version change.
"""

import logging
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from vault import audit as audit_log
from vault import envelope, keys
from vault.errors import VaultError
from vault.keyring import insert_data_key

if TYPE_CHECKING:
    from vault.store import Vault

logger = logging.getLogger(__name__)

DEFAULT_BATCH_SIZE = 500


@dataclass(frozen=True)
class DataKeyRotation:
    """The outcome of one `rotate_data_key` call."""

    active_version: int
    resumed: bool
    reencrypted: int
    complete: bool
    retired_versions: list[int]


def rotate_data_key(
    vault: "Vault",
    actor: str,
    *,
    batch_size: int = DEFAULT_BATCH_SIZE,
    max_batches: int | None = None,
    progress: Callable[[int], None] | None = None,
) -> DataKeyRotation:
    """Make a new data key active and re-encrypt every row under it, batch by batch.

    Each batch commits on its own, so an interrupted rotation loses no finished batch.
    While rows under older keys remain, calling this again resumes the rotation and
    creates no other key. `max_batches` stops early, leaving the rotation incomplete.
    """
    if batch_size < 1:
        raise ValueError(f"invalid batch size {batch_size}: expected at least 1")
    with vault.write_transaction() as connection:
        active = _active_version(connection)
        pending = connection.execute(
            "SELECT count(*) FROM tokens WHERE key_version < ?", (active,)
        ).fetchone()[0]
        resumed = pending > 0
        if not resumed:
            active = connection.execute("SELECT max(version) + 1 FROM data_keys").fetchone()[0]
            insert_data_key(connection, vault.keyring.master_key, vault.keyring.vault_id, active)
            connection.execute("UPDATE vault_state SET active_data_key = ? WHERE id = 1", (active,))
        vault.append_audit(
            connection, "rotate_data_key_started", actor,
            {"active_version": active, "resumed": resumed},
        )

    reencrypted = 0
    batches = 0
    while max_batches is None or batches < max_batches:
        count = _reencrypt_batch(vault, batch_size)
        if count == 0:
            break
        reencrypted += count
        batches += 1
        if progress is not None:
            progress(reencrypted)
    else:
        if _remaining(vault) > 0:
            return DataKeyRotation(active, resumed, reencrypted, False, [])

    with vault.write_transaction() as connection:
        active = _active_version(connection)
        retired = [
            row[0]
            for row in connection.execute(
                "SELECT version FROM data_keys WHERE version < ? AND NOT EXISTS "
                "(SELECT 1 FROM tokens WHERE key_version = data_keys.version)",
                (active,),
            )
        ]
        connection.executemany(
            "DELETE FROM data_keys WHERE version = ?", [(version,) for version in retired]
        )
        vault.append_audit(
            connection, "rotate_data_key", actor,
            {"active_version": active, "reencrypted": reencrypted,
             "retired_versions": [str(version) for version in retired]},
        )
    for version in retired:
        vault.keyring.forget_data_key(version)
    logger.info("data key rotation done: version %d, %d rows", active, reencrypted)
    return DataKeyRotation(active, resumed, reencrypted, True, retired)


def _reencrypt_batch(vault: "Vault", batch_size: int) -> int:
    with vault.write_transaction() as connection:
        active = _active_version(connection)
        new_cipher = vault.keyring.data_cipher(connection, active)
        rows = connection.execute(
            "SELECT namespace, entity_type, serial, key_version, nonce, ciphertext "
            "FROM tokens WHERE key_version < ? LIMIT ?",
            (active, batch_size),
        ).fetchall()
        updates = []
        for namespace, entity_type, serial, version, nonce, ciphertext in rows:
            aad = envelope.value_aad(namespace, entity_type, serial)
            old_cipher = vault.keyring.data_cipher(connection, version)
            try:
                plaintext = envelope.decrypt(old_cipher, bytes(nonce), bytes(ciphertext), aad)
            except envelope.DecryptionError:
                token = vault.token_format.format(entity_type, serial)
                raise VaultError(
                    f"cannot re-encrypt {token} in namespace {namespace}: its stored value "
                    "failed authentication. Restore the vault from a backup, or erase the "
                    "namespace; no row of this batch was changed"
                ) from None
            new_nonce, new_ciphertext = envelope.encrypt(new_cipher, plaintext, aad)
            updates.append((active, new_nonce, new_ciphertext, namespace, entity_type, serial))
        connection.executemany(
            "UPDATE tokens SET key_version = ?, nonce = ?, ciphertext = ? "
            "WHERE namespace = ? AND entity_type = ? AND serial = ?",
            updates,
        )
    return len(rows)


def _remaining(vault: "Vault") -> int:
    connection = vault.connection()
    active = _active_version(connection)
    return connection.execute(
        "SELECT count(*) FROM tokens WHERE key_version < ?", (active,)
    ).fetchone()[0]


def _active_version(connection: sqlite3.Connection) -> int:
    return connection.execute("SELECT active_data_key FROM vault_state WHERE id = 1").fetchone()[0]


def rotate_master_key(vault: "Vault", actor: str) -> Path:
    """Replace the master key: re-wrap data keys and the lookup key, re-MAC the audit log.

    The new key is first written to KEY_FILE.new (mode 0600) and flushed; the database
    switches to it in one transaction; then the old key file is kept as
    KEY_FILE.old-<UTC time> and the new one moved into place, each step atomic. A
    crash between commit and move leaves KEY_FILE.new, and the error on opening the
    vault names the `mv` command that finishes the rotation. Returns the backup path of the old key, which vault backups made before
    the rotation still need.
    """
    key_file = vault.key_file
    pending = keys.pending_key_file(key_file)
    new_master = keys.generate_key()
    # A leftover pending key does not match the vault, which opened with key_file.
    keys.write_key_file(pending, new_master, exclusive=False)
    try:
        with vault.write_transaction() as connection:
            new_wrapped_lookup = _rewrap_keys(vault, connection, new_master, actor)
    except BaseException:
        pending.unlink(missing_ok=True)
        raise
    backup = keys.replace_key_file(key_file, pending)
    vault.keyring.replace_master_key(new_master, new_wrapped_lookup)
    logger.info("master key of %s rotated; the old key is kept in %s", vault.path, backup)
    return backup


def _rewrap_keys(
    vault: "Vault", connection: sqlite3.Connection, new_master: bytes, actor: str
) -> bytes:
    keyring = vault.keyring
    vault_id = keyring.vault_id
    old_master = keyring.master_key
    for version, wrapped in connection.execute(
        "SELECT version, wrapped FROM data_keys"
    ).fetchall():
        aad = envelope.wrap_aad(envelope.DATA_KEY_AAD_LABEL, vault_id, version)
        data_key = envelope.unwrap_key(old_master, bytes(wrapped), aad)
        connection.execute(
            "UPDATE data_keys SET wrapped = ? WHERE version = ?",
            (envelope.wrap_key(new_master, data_key, aad), version),
        )
    lookup_aad = envelope.wrap_aad(envelope.LOOKUP_KEY_AAD_LABEL, vault_id, 1)
    wrapped_lookup = connection.execute(
        "SELECT wrapped_lookup_key FROM vault_state WHERE id = 1"
    ).fetchone()[0]
    lookup_key = envelope.unwrap_key(old_master, bytes(wrapped_lookup), lookup_aad)
    new_wrapped_lookup = envelope.wrap_key(new_master, lookup_key, lookup_aad)

    new_audit_key = keys.derive_key(new_master, vault_id, keys.AUDIT_KEY_INFO)
    result = audit_log.remac_all(connection, keyring.audit_key, new_audit_key)
    if not result.ok:
        raise VaultError(
            f"the audit log is broken at entry {result.first_bad_seq} ({result.reason}); "
            "the master key was not rotated, because re-signing would hide that. "
            "Investigate with `tokengate verify` first"
        )
    connection.execute(
        "UPDATE vault_state SET key_check = ?, wrapped_lookup_key = ? WHERE id = 1",
        (keys.key_check_value(new_master, vault_id), new_wrapped_lookup),
    )
    audit_log.append(
        connection, new_audit_key, "rotate_master_key", actor,
        {"data_keys": connection.execute("SELECT count(*) FROM data_keys").fetchone()[0]},
    )
    return new_wrapped_lookup
