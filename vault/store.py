"""The vault: deterministic tokens for sensitive values, stored encrypted in SQLite."""

import contextlib
import json
import logging
import os
import sqlite3
import time
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from vault import audit as audit_log
from vault import envelope, keys, schema
from vault.connections import ConnectionPool, damaged_message, open_read_only
from vault.errors import (
    KeyFileError,
    KeyMismatchError,
    RevealDenied,
    SchemaError,
    VaultBusyError,
    VaultError,
)
from vault.keyring import Keyring, insert_data_key, wrap_new_lookup_key
from vault.normalize import normalize_value
from vault.settings import DEFAULT_TOKEN_TTL_SECONDS, TTL_DEFAULT_KEY
from vault.tokens import DEFAULT_FORMAT, TokenFormat, validate_entity_type

__all__ = [
    "KeyFileError",
    "KeyMismatchError",
    "RevealDenied",
    "SchemaError",
    "TokenInfo",
    "Vault",
    "VaultBusyError",
    "VaultError",
]

logger = logging.getLogger(__name__)

ORIGINS = ("client", "model")
MAX_NAMESPACE_LENGTH = 256
# Rows per `IN (...)` query; stays below SQLite's default limit of bound parameters.
QUERY_CHUNK = 500
# An existing token's expiry is pushed forward only when this much time was gained,
# so that a busy value does not rewrite its row on every request.
EXPIRY_REFRESH_SECONDS = 3600.0
TTL_SETTING = "token_ttl"


@dataclass(frozen=True)
class TokenInfo:
    """Stored facts about one token: its namespace, type, origin and lifetime."""

    token: str
    namespace: str
    entity_type: str
    origin: str
    created_at: float
    expires_at: float | None


class Vault:
    """Deterministic, encrypted tokens for sensitive values in one SQLite file.

    The object is thread-safe: each thread uses its own connection, and write
    transactions of one process queue on a lock before they take SQLite's.
    """

    def __init__(
        self,
        path: Path,
        key_file: Path,
        pool: ConnectionPool,
        keyring: Keyring,
        token_format: TokenFormat,
        token_ttl: Mapping[str, float | None],
    ) -> None:
        self.path = path
        self.key_file = key_file
        self.token_format = token_format
        self.keyring = keyring
        self.token_ttl = dict(token_ttl)
        self._pool = pool

    def __repr__(self) -> str:
        return f"Vault({str(self.path)!r})"

    # -- opening -----------------------------------------------------------------

    @classmethod
    def open(
        cls,
        path: Path,
        key_file: Path,
        *,
        create: bool = False,
        token_format: TokenFormat = DEFAULT_FORMAT,
        token_ttl: Mapping[str, float | None] | None = None,
    ) -> "Vault":
        """Open the vault at `path` with the master key in `key_file`.

        With `create`, a missing database and a missing key file are created, the key
        file with mode 0600. An existing vault is never given a new key. `token_ttl`
        maps entity types (and "*" for the rest) to token lifetimes in seconds, where None
        means no expiry. It overrides the lifetimes stored in the vault.
        """
        path = Path(path)
        key_file = Path(key_file)
        version = _existing_version(path)
        if version == 0 and not create:
            if key_file.exists():
                missing = f"there is no vault at {path}; create it"
            else:
                missing = f"there is no vault at {path} and no key file at {key_file}; create them"
            raise VaultError(f"{missing} with `{keys.init_command(path, key_file)}`")
        if version == 0 and not key_file.exists():
            keys.write_key_file(key_file, keys.generate_key())
            logger.info("created master key file %s", key_file)
        master_key = keys.read_key_file(key_file, path)
        if version > 0:
            _check_key_read_only(path, key_file, master_key)
        else:
            _create_database_file(path)

        pool = ConnectionPool(path)
        try:
            with pool.write() as connection:
                state = _prepare_schema(connection, path, master_key)
            vault_id, key_check, wrapped_lookup_key = state
            if key_check != keys.key_check_value(master_key, vault_id):
                raise KeyMismatchError(
                    _mismatch_message(key_file, path, vault_id, key_check)
                )
            keyring = Keyring(master_key, vault_id, wrapped_lookup_key)
            # Pages that the schema check did not touch may be damaged too.
            ttl = _resolve_ttl(pool.get(), token_ttl)
        except sqlite3.DatabaseError as error:
            pool.close()
            raise SchemaError(damaged_message(path, error)) from None
        except BaseException:
            pool.close()
            raise
        return cls(path, key_file, pool, keyring, token_format, ttl)

    def close(self) -> None:
        """Close every connection of this vault object."""
        self._pool.close()

    def __enter__(self) -> "Vault":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def connection(self) -> sqlite3.Connection:
        """Return this thread's connection, with busy handling configured.

        It is in autocommit mode; use write_transaction() for writes that must not
        fail with "database is locked".
        """
        return self._pool.get()

    @contextlib.contextmanager
    def write_transaction(self) -> Iterator[sqlite3.Connection]:
        """Run the block in one write transaction after checking the master key.

        Retries SQLITE_BUSY within a bound, commits on success and rolls back on error.
        """
        with self._pool.write() as connection:
            self._refresh_keys(connection)
            yield connection

    def append_audit(
        self, connection: sqlite3.Connection, event: str, actor: str,
        fields: Mapping[str, audit_log.FieldValue],
    ) -> int:
        """Append an audit entry inside a transaction from write_transaction()."""
        return audit_log.append(connection, self.keyring.audit_key, event, actor, fields)

    # -- tokenize ----------------------------------------------------------------

    def tokenize(
        self, value: str, entity_type: str, namespace: str, origin: str = "client"
    ) -> str:
        """Return the token for `value`, creating it on first sight."""
        return self.tokenize_many([(value, entity_type)], namespace, origin)[0]

    def tokenize_many(
        self, items: Sequence[tuple[str, str]], namespace: str, origin: str = "client"
    ) -> list[str]:
        """Return one token per (value, entity type), in order, in one transaction.

        The same (namespace, entity type, normalized value) always gives the same
        token. A token that a client submitted keeps origin "client"; a "model" token
        becomes "client" once a client submits its value. Each call appends one audit
        entry with counts.
        """
        check_namespace(namespace)
        if origin not in ORIGINS:
            raise ValueError(f"invalid origin {origin!r}: expected one of {ORIGINS}")
        if not items:
            return []
        lookups = []
        for value, entity_type in items:
            if not isinstance(value, str) or not value:
                raise ValueError("each value to tokenize must be a non-empty string")
            validate_entity_type(entity_type)
            normalized = normalize_value(value, entity_type)
            lookups.append(self.keyring.lookup_digest(namespace, entity_type, normalized))

        with self.write_transaction() as connection:
            serial_of = self._ensure_tokens(connection, items, lookups, namespace, origin)
            self.append_audit(
                connection,
                "tokenize",
                "gateway",
                {
                    "namespace": namespace,
                    "origin": origin,
                    "values": len(items),
                    "new": serial_of.new_count,
                    "entity_types": sorted({entity_type for _, entity_type in items}),
                },
            )
        return [
            self.token_format.format(entity_type, serial_of[lookup])
            for (_, entity_type), lookup in zip(items, lookups)
        ]

    def _ensure_tokens(
        self,
        connection: sqlite3.Connection,
        items: Sequence[tuple[str, str]],
        lookups: list[bytes],
        namespace: str,
        origin: str,
    ) -> "_Serials":
        now = time.time()
        serials = _Serials()
        existing = _select_existing(connection, list(dict.fromkeys(lookups)))
        updates = []
        for lookup, (serial, old_origin, expires_at, entity_type) in existing.items():
            serials[lookup] = serial
            new_origin = "client" if "client" in (old_origin, origin) else "model"
            new_expiry = self._expiry(entity_type, now)
            refresh = _needs_refresh(expires_at, new_expiry, now)
            if new_origin != old_origin or refresh:
                updates.append((new_origin, new_expiry if refresh else expires_at, lookup))
        if updates:
            connection.executemany(
                "UPDATE tokens SET origin = ?, expires_at = ? WHERE lookup = ?", updates
            )

        new_items: dict[bytes, tuple[str, str]] = {}
        for (value, entity_type), lookup in zip(items, lookups):
            if lookup not in serials and lookup not in new_items:
                new_items[lookup] = (value, entity_type)
        if new_items:
            self._insert_tokens(connection, new_items, namespace, origin, now, serials)
        return serials

    def _insert_tokens(
        self,
        connection: sqlite3.Connection,
        new_items: dict[bytes, tuple[str, str]],
        namespace: str,
        origin: str,
        now: float,
        serials: "_Serials",
    ) -> None:
        version = connection.execute(
            "SELECT active_data_key FROM vault_state WHERE id = 1"
        ).fetchone()[0]
        cipher = self.keyring.data_cipher(connection, version)
        last_serials = _load_last_serials(
            connection, namespace, {entity_type for _, entity_type in new_items.values()}
        )
        rows = []
        for lookup, (value, entity_type) in new_items.items():
            serial = last_serials.get(entity_type, 0) + 1
            last_serials[entity_type] = serial
            aad = envelope.value_aad(namespace, entity_type, serial)
            nonce, ciphertext = envelope.encrypt(cipher, _encode(value), aad)
            expires_at = self._expiry(entity_type, now)
            rows.append(
                (namespace, entity_type, serial, lookup, version, nonce, ciphertext,
                 origin, now, expires_at)
            )
            serials[lookup] = serial
        serials.new_count = len(rows)
        connection.executemany(
            "INSERT INTO tokens (namespace, entity_type, serial, lookup, key_version, "
            "nonce, ciphertext, origin, created_at, expires_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            rows,
        )
        connection.executemany(
            "INSERT INTO serials (namespace, entity_type, last_serial) VALUES (?, ?, ?) "
            "ON CONFLICT (namespace, entity_type) DO UPDATE SET last_serial = excluded.last_serial",
            [(namespace, entity_type, last) for entity_type, last in last_serials.items()],
        )

    def _expiry(self, entity_type: str, now: float) -> float | None:
        ttl = self.token_ttl.get(entity_type, self.token_ttl.get(TTL_DEFAULT_KEY))
        return None if ttl is None else now + ttl

    # -- reveal ------------------------------------------------------------------

    def reveal(self, token: str, namespace: str, actor: str, purpose: str) -> str:
        """Return the value of `token` for an investigator; audited either way.

        Raises RevealDenied when the token is unknown, belongs to another namespace or
        has expired.
        """
        check_namespace(namespace)
        _check_text("actor", actor)
        _check_text("purpose", purpose)
        match = self.token_format.parse(token)
        value: str | None = None
        reason: str | None = "unknown"
        failed = False
        with self.write_transaction() as connection:
            if match is not None and match.valid:
                row = _select_token(connection, namespace, match.entity_type, match.serial)
                if row is None:
                    elsewhere = connection.execute(
                        "SELECT 1 FROM tokens WHERE entity_type = ? AND serial = ? "
                        "AND namespace != ? LIMIT 1",
                        (match.entity_type, match.serial, namespace),
                    ).fetchone()
                    reason = "namespace" if elsewhere else "unknown"
                elif _is_expired(row[4]):
                    reason = "expired"
                else:
                    reason = None
                    try:
                        value = self._decrypt_row(connection, namespace, match, row)
                    except envelope.DecryptionError:
                        failed = True
            if failed:
                outcome = "failed"
            elif reason is not None:
                outcome = "denied"
            else:
                outcome = "granted"
            self.append_audit(
                connection,
                "reveal",
                actor,
                {
                    "token": token if match is not None else "(not a token)",
                    "namespace": namespace,
                    "purpose": purpose,
                    "outcome": outcome,
                    "reason": reason,
                },
            )
        if failed:
            raise VaultError(
                f"the stored value of {token} failed authentication: its row was altered "
                "or moved. Restore the vault from a backup"
            )
        if reason is not None:
            raise RevealDenied(token if match is not None else "(not a token)", reason)
        assert value is not None
        return value

    def reveal_many(
        self,
        tokens: Iterable[str],
        namespace: str,
        actor: str,
        purpose: str,
        origins: Collection[str] = ("client",),
    ) -> dict[str, str]:
        """Return {token: value} for the tokens that may be restored; skip the rest.

        A token is returned only when it belongs to `namespace`, has not expired and
        its origin is in `origins`. One audit entry records the counts and token ids.
        """
        check_namespace(namespace)
        unique = list(dict.fromkeys(tokens))
        if not unique:
            return {}
        values: dict[str, str] = {}
        denied: dict[str, list[str]] = {reason: [] for reason in RevealDenied.REASONS}
        failed: list[str] = []
        with self.write_transaction() as connection:
            for token in unique:
                match = self.token_format.parse(token)
                row = None
                if match is not None and match.valid:
                    row = _select_token(connection, namespace, match.entity_type, match.serial)
                if row is None:
                    denied["unknown"].append(token)
                elif _is_expired(row[4]):
                    denied["expired"].append(token)
                elif row[3] not in origins:
                    denied["origin"].append(token)
                else:
                    try:
                        values[token] = self._decrypt_row(connection, namespace, match, row)
                    except envelope.DecryptionError:
                        failed.append(token)
            fields: dict[str, audit_log.FieldValue] = {
                "namespace": namespace,
                "purpose": purpose,
                "requested": len(unique),
                "granted": len(values),
                "granted_tokens": list(values),
            }
            for reason, denied_tokens in denied.items():
                if denied_tokens:
                    fields[f"denied_{reason}"] = denied_tokens
            if failed:
                fields["failed"] = failed
            self.append_audit(connection, "reveal_many", actor, fields)
        if failed:
            logger.error(
                "%d stored values failed authentication in namespace %s: %s",
                len(failed), namespace, ", ".join(failed),
            )
        return values

    def _decrypt_row(self, connection, namespace, match, row) -> str:
        key_version, nonce, ciphertext = row[0], bytes(row[1]), bytes(row[2])
        cipher = self.keyring.data_cipher(connection, key_version)
        aad = envelope.value_aad(namespace, match.entity_type, match.serial)
        return _decode(envelope.decrypt(cipher, nonce, ciphertext, aad))

    def token_info(self, token: str, namespace: str) -> TokenInfo | None:
        """Return what is stored about `token` in `namespace`, or None."""
        match = self.token_format.parse(token)
        if match is None or not match.valid:
            return None
        row = self.connection().execute(
            "SELECT origin, created_at, expires_at FROM tokens "
            "WHERE namespace = ? AND entity_type = ? AND serial = ?",
            (namespace, match.entity_type, match.serial),
        ).fetchone()
        if row is None:
            return None
        return TokenInfo(match.token, namespace, match.entity_type, row[0], row[1], row[2])

    def known_values(
        self, namespace: str, entity_type: str, normalized_values: Iterable[str]
    ) -> set[str]:
        """Return the normalized values with a token of `entity_type` in `namespace`.

        Values must already be normalized as `vault.normalize.normalize_value` does.
        Only lookup digests are compared, so nothing is decrypted. Expired tokens that
        are not purged yet count as known, because tokenize_many reuses them. Runs one
        read per QUERY_CHUNK values and writes no audit entry.
        """
        check_namespace(namespace)
        validate_entity_type(entity_type)
        by_lookup = {
            self.keyring.lookup_digest(namespace, entity_type, value): value
            for value in dict.fromkeys(normalized_values)
        }
        lookups = list(by_lookup)
        connection = self.connection()
        known: set[str] = set()
        for start in range(0, len(lookups), QUERY_CHUNK):
            chunk = lookups[start : start + QUERY_CHUNK]
            placeholders = ",".join("?" * len(chunk))
            for (lookup,) in connection.execute(
                f"SELECT lookup FROM tokens WHERE lookup IN ({placeholders})", chunk
            ):
                known.add(by_lookup[bytes(lookup)])
        return known

    # -- audit and keys ----------------------------------------------------------

    def audit(self, event: str, actor: str, **fields: str | int | float | None) -> None:
        """Append a decision entry to the audit chain; fields must not hold raw values."""
        with self.write_transaction() as connection:
            self.append_audit(connection, event, actor, fields)

    def verify_audit(self) -> audit_log.VerifyResult:
        """Check the audit chain and report the first broken entry."""
        connection = self.connection()
        self._refresh_keys(connection)
        connection.execute("BEGIN")
        try:
            return audit_log.verify(connection, self.keyring.audit_key)
        finally:
            connection.execute("COMMIT")

    def _refresh_keys(self, connection: sqlite3.Connection) -> None:
        """Reload the master key when another process rotated it."""
        row = connection.execute(
            "SELECT key_check, wrapped_lookup_key FROM vault_state WHERE id = 1"
        ).fetchone()
        key_check = bytes(row[0])
        if key_check == self.keyring.key_check:
            return
        for candidate in (self.key_file, keys.pending_key_file(self.key_file)):
            try:
                master_key = keys.read_key_file(candidate, self.path)
            except KeyFileError:
                continue
            if keys.key_check_value(master_key, self.keyring.vault_id) == key_check:
                self.keyring.replace_master_key(master_key, bytes(row[1]))
                logger.warning("master key of %s was rotated; reloaded it", self.path)
                return
        raise KeyMismatchError(
            _mismatch_message(self.key_file, self.path, self.keyring.vault_id, key_check)
        )


class _Serials(dict[bytes, int]):
    """Serials by lookup digest, plus how many tokens this call created."""

    new_count = 0


def _existing_version(path: Path) -> int:
    """Return the schema version of an existing vault, 0 if there is none yet."""
    if path.is_dir():
        raise VaultError(f"the vault path {path} is a directory; name a file with --vault")
    if not path.exists() or path.stat().st_size == 0:
        return 0
    schema.check_header(path)
    try:
        connection = open_read_only(path)
        try:
            version = schema.read_version(connection, path)
        finally:
            connection.close()
    except sqlite3.DatabaseError as error:
        raise SchemaError(damaged_message(path, error)) from None
    schema.check_supported(version, path)
    return version


def _create_database_file(path: Path) -> None:
    """Create an empty database file readable by its owner only (SQLite fills it)."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    os.close(descriptor)


def _check_key_read_only(path: Path, key_file: Path, master_key: bytes) -> None:
    try:
        connection = open_read_only(path)
        try:
            row = connection.execute(
                "SELECT vault_id, key_check FROM vault_state WHERE id = 1"
            ).fetchone()
        finally:
            connection.close()
    except sqlite3.DatabaseError as error:
        raise SchemaError(damaged_message(path, error)) from None
    if row is None:
        return
    vault_id, key_check = bytes(row[0]), bytes(row[1])
    if keys.key_check_value(master_key, vault_id) != key_check:
        raise KeyMismatchError(_mismatch_message(key_file, path, vault_id, key_check))


def _prepare_schema(
    connection: sqlite3.Connection, path: Path, master_key: bytes
) -> tuple[bytes, bytes, bytes]:
    """Migrate and, for a new vault, create its keys; return the vault state."""
    try:
        version = schema.read_version(connection, path)
    except sqlite3.DatabaseError as error:
        raise SchemaError(damaged_message(path, error)) from None
    schema.check_supported(version, path)
    if version < schema.SCHEMA_VERSION:
        schema.migrate(connection, version)
        if version > 0:
            logger.warning(
                "vault %s migrated from schema version %d to %d",
                path, version, schema.SCHEMA_VERSION,
            )
    row = connection.execute(
        "SELECT vault_id, key_check, wrapped_lookup_key FROM vault_state WHERE id = 1"
    ).fetchone()
    if row is not None:
        return bytes(row[0]), bytes(row[1]), bytes(row[2])
    if version > 0:
        raise SchemaError(f"the vault {path} has no key state; restore it from a backup")
    vault_id = os.urandom(16)
    key_check = keys.key_check_value(master_key, vault_id)
    wrapped_lookup_key = wrap_new_lookup_key(master_key, vault_id)
    insert_data_key(connection, master_key, vault_id, 1)
    connection.execute(
        "INSERT INTO vault_state (id, vault_id, key_check, wrapped_lookup_key, "
        "active_data_key, created_at) VALUES (1, ?, ?, ?, 1, ?)",
        (vault_id, key_check, wrapped_lookup_key, time.time()),
    )
    return vault_id, key_check, wrapped_lookup_key


def _mismatch_message(key_file: Path, path: Path, vault_id: bytes, key_check: bytes) -> str:
    message = (
        f"the key in {key_file} does not match this vault ({path}); point --key-file "
        "or $TOKENGATE_KEY_FILE at the key file this vault was created with"
    )
    pending = keys.pending_key_file(key_file)
    try:
        pending_key = keys.read_key_file(pending, path)
    except KeyFileError:
        return message
    # A pending key from a rotation that stopped before its commit does not match the
    # vault either, so moving it into place would only replace the key file.
    if keys.key_check_value(pending_key, vault_id) != key_check:
        return message
    return message + (
        f". A master key rotation was interrupted after the vault switched to the key "
        f"in {pending}. Keep the old key for backups made before the rotation and move "
        f"the new one into place with `mv {key_file} {key_file}.old-interrupted && "
        f"mv {pending} {key_file}`"
    )


def _resolve_ttl(
    connection: sqlite3.Connection, override: Mapping[str, float | None] | None
) -> dict[str, float | None]:
    ttl: dict[str, float | None] = {TTL_DEFAULT_KEY: DEFAULT_TOKEN_TTL_SECONDS}
    row = connection.execute(
        "SELECT value FROM settings WHERE name = ?", (TTL_SETTING,)
    ).fetchone()
    if row is not None:
        ttl.update(json.loads(row[0]))
    if override:
        ttl.update(override)
    for name, seconds in ttl.items():
        if seconds is not None and not seconds > 0:
            raise ValueError(f"invalid token lifetime for {name}: {seconds!r} seconds")
    return ttl


def _select_existing(
    connection: sqlite3.Connection, lookups: list[bytes]
) -> dict[bytes, tuple[int, str, float | None, str]]:
    found = {}
    for start in range(0, len(lookups), QUERY_CHUNK):
        chunk = lookups[start : start + QUERY_CHUNK]
        placeholders = ",".join("?" * len(chunk))
        for lookup, serial, origin, expires_at, entity_type in connection.execute(
            "SELECT lookup, serial, origin, expires_at, entity_type FROM tokens "
            f"WHERE lookup IN ({placeholders})",
            chunk,
        ):
            found[bytes(lookup)] = (serial, origin, expires_at, entity_type)
    return found


def _load_last_serials(
    connection: sqlite3.Connection, namespace: str, entity_types: set[str]
) -> dict[str, int]:
    last = {}
    for entity_type in entity_types:
        row = connection.execute(
            "SELECT last_serial FROM serials WHERE namespace = ? AND entity_type = ?",
            (namespace, entity_type),
        ).fetchone()
        last[entity_type] = row[0] if row else 0
    return last


def _select_token(
    connection: sqlite3.Connection, namespace: str, entity_type: str, serial: int | None
) -> tuple | None:
    return connection.execute(
        "SELECT key_version, nonce, ciphertext, origin, expires_at FROM tokens "
        "WHERE namespace = ? AND entity_type = ? AND serial = ?",
        (namespace, entity_type, serial),
    ).fetchone()


def _needs_refresh(expires_at: float | None, new_expiry: float | None, now: float) -> bool:
    if new_expiry is None:
        return expires_at is not None
    if expires_at is None:
        return False
    return new_expiry - expires_at >= EXPIRY_REFRESH_SECONDS or expires_at <= now


def _is_expired(expires_at: float | None) -> bool:
    return expires_at is not None and expires_at <= time.time()


def check_namespace(namespace: str) -> None:
    """Raise ValueError unless `namespace` is 1 to MAX_NAMESPACE_LENGTH printable characters."""
    if (
        not isinstance(namespace, str)
        or not namespace
        or len(namespace) > MAX_NAMESPACE_LENGTH
        or not namespace.isprintable()
    ):
        raise ValueError(
            "invalid namespace: expected 1 to "
            f"{MAX_NAMESPACE_LENGTH} printable characters"
        )


def _check_text(name: str, text: str) -> None:
    if not isinstance(text, str) or not text.strip():
        raise ValueError(f"{name} must be a non-empty string")


def _encode(value: str) -> bytes:
    # surrogatepass keeps lone surrogates, which JSON bodies may legally contain.
    return value.encode("utf-8", "surrogatepass")


def _decode(data: bytes) -> str:
    return data.decode("utf-8", "surrogatepass")
