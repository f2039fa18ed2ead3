"""The keys a running vault holds in memory, unwrapped from the database on demand.

Contains the master key, the audit MAC key derived from it, the lookup key for
deterministic tokens and the data keys by version. None of these is ever logged;
the repr shows the vault id only.
"""

import hashlib
import hmac
import json
import sqlite3
import threading
import time

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from vault import envelope, keys
from vault.errors import SchemaError


class Keyring:
    """Unwrapped keys of one vault, safe to share between threads."""

    def __init__(self, master_key: bytes, vault_id: bytes, wrapped_lookup_key: bytes) -> None:
        self.vault_id = vault_id
        self._lock = threading.Lock()
        self._data_ciphers: dict[int, AESGCM] = {}
        self._set_master_key(master_key, wrapped_lookup_key)

    def __repr__(self) -> str:
        return f"Keyring(vault_id={self.vault_id.hex()})"

    def _set_master_key(self, master_key: bytes, wrapped_lookup_key: bytes) -> None:
        aad = envelope.wrap_aad(envelope.LOOKUP_KEY_AAD_LABEL, self.vault_id, 1)
        self._lookup_key = envelope.unwrap_key(master_key, wrapped_lookup_key, aad)
        self.master_key = master_key
        self.audit_key = keys.derive_key(master_key, self.vault_id, keys.AUDIT_KEY_INFO)
        self.key_check = keys.key_check_value(master_key, self.vault_id)

    def replace_master_key(self, master_key: bytes, wrapped_lookup_key: bytes) -> None:
        """Switch to a rotated master key; data keys stay cached because they did not change."""
        with self._lock:
            self._set_master_key(master_key, wrapped_lookup_key)

    def lookup_digest(self, namespace: str, entity_type: str, normalized: str) -> bytes:
        """Return the keyed HMAC that identifies a normalized value in a namespace."""
        message = json.dumps([namespace, entity_type, normalized]).encode()
        return hmac.new(self._lookup_key, message, hashlib.sha256).digest()

    def data_cipher(self, connection: sqlite3.Connection, version: int) -> AESGCM:
        """Return the AES-GCM cipher of data key `version`, unwrapping it once."""
        cipher = self._data_ciphers.get(version)
        if cipher is not None:
            return cipher
        row = connection.execute(
            "SELECT wrapped FROM data_keys WHERE version = ?", (version,)
        ).fetchone()
        if row is None:
            raise SchemaError(
                f"data key version {version} is missing from the vault; restore the "
                "vault from a backup"
            )
        aad = envelope.wrap_aad(envelope.DATA_KEY_AAD_LABEL, self.vault_id, version)
        with self._lock:
            key = envelope.unwrap_key(self.master_key, bytes(row[0]), aad)
            cipher = AESGCM(key)
            self._data_ciphers[version] = cipher
        return cipher

    def forget_data_key(self, version: int) -> None:
        """Drop a retired data key from memory."""
        self._data_ciphers.pop(version, None)


def wrap_new_lookup_key(master_key: bytes, vault_id: bytes) -> bytes:
    """Return a new random lookup key wrapped under the master key."""
    aad = envelope.wrap_aad(envelope.LOOKUP_KEY_AAD_LABEL, vault_id, 1)
    return envelope.wrap_key(master_key, keys.generate_key(), aad)


def insert_data_key(
    connection: sqlite3.Connection, master_key: bytes, vault_id: bytes, version: int
) -> None:
    """Create data key `version`, store it wrapped, inside the caller's transaction."""
    aad = envelope.wrap_aad(envelope.DATA_KEY_AAD_LABEL, vault_id, version)
    wrapped = envelope.wrap_key(master_key, keys.generate_key(), aad)
    connection.execute(
        "INSERT INTO data_keys (version, wrapped, created_at) VALUES (?, ?, ?)",
        (version, wrapped, time.time()),
    )
