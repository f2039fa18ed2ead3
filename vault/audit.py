"""The append-only, tamper-evident audit log.

Each entry's MAC is HMAC-SHA256, under a key derived from the master key, over the
previous entry's MAC and the entry's own sequence number, time, event, actor and
fields. Editing, removing or reordering entries breaks the chain at the first entry
affected. vault_state.audit_head_seq records the last sequence number, so dropping
the newest entries is caught too, unless the same person also rewrites that counter.
NOTE: truncation by someone who edits both is only caught against an outside record
of the head MAC, which `tokengate verify` prints.
"""

import hashlib
import hmac
import json
import sqlite3
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

GENESIS_MESSAGE = b"tokengate audit genesis"

FieldValue = str | int | float | bool | None | list[str]


@dataclass(frozen=True)
class AuditEntry:
    """One audit log row as stored."""

    seq: int
    at: float
    event: str
    actor: str
    fields: dict[str, FieldValue]
    mac: bytes


@dataclass(frozen=True)
class VerifyResult:
    """The outcome of checking the audit chain.

    `first_bad_seq` is the first sequence number whose entry was edited, removed or
    moved (None when the chain is intact), and `reason` describes what was found there.
    """

    ok: bool
    entries: int
    first_bad_seq: int | None
    reason: str
    head_mac: str


def genesis_mac(audit_key: bytes) -> bytes:
    """Return the MAC that the first entry chains to."""
    return hmac.new(audit_key, GENESIS_MESSAGE, hashlib.sha256).digest()


def entry_mac(
    audit_key: bytes, previous_mac: bytes, seq: int, at: float, event: str, actor: str,
    fields_json: str,
) -> bytes:
    """Return the MAC of one entry chained to `previous_mac`."""
    content = json.dumps([seq, repr(at), event, actor, fields_json]).encode()
    return hmac.new(audit_key, previous_mac + content, hashlib.sha256).digest()


def encode_fields(fields: Mapping[str, FieldValue]) -> str:
    """Return the canonical JSON text stored for `fields`."""
    for name, value in fields.items():
        if isinstance(value, list):
            if not all(isinstance(item, str) for item in value):
                raise TypeError(f"audit field {name!r}: lists may hold strings only")
        elif value is not None and not isinstance(value, str | int | float | bool):
            raise TypeError(
                f"audit field {name!r} has type {type(value).__name__}; expected str, "
                "int, float, bool, None or a list of str"
            )
    return json.dumps(dict(fields), sort_keys=True, separators=(",", ":"))


def append(
    connection: sqlite3.Connection, audit_key: bytes, event: str, actor: str,
    fields: Mapping[str, FieldValue],
) -> int:
    """Append one entry inside the caller's write transaction; return its seq."""
    if not event or not isinstance(event, str):
        raise ValueError("audit event must be a non-empty string")
    fields_json = encode_fields(fields)
    row = connection.execute(
        "SELECT seq, mac FROM audit_log ORDER BY seq DESC LIMIT 1"
    ).fetchone()
    if row is None:
        seq, previous_mac = 1, genesis_mac(audit_key)
    else:
        seq, previous_mac = row[0] + 1, row[1]
    at = time.time()
    mac = entry_mac(audit_key, previous_mac, seq, at, event, actor, fields_json)
    connection.execute(
        "INSERT INTO audit_log (seq, at, event, actor, fields, mac) VALUES (?,?,?,?,?,?)",
        (seq, at, event, actor, fields_json, mac),
    )
    connection.execute("UPDATE vault_state SET audit_head_seq = ? WHERE id = 1", (seq,))
    return seq


def verify(connection: sqlite3.Connection, audit_key: bytes) -> VerifyResult:
    """Check the whole chain and report the first entry that breaks it."""
    head_seq = connection.execute(
        "SELECT audit_head_seq FROM vault_state WHERE id = 1"
    ).fetchone()[0]
    previous_mac = genesis_mac(audit_key)
    expected_seq = 1
    count = 0
    for seq, at, event, actor, fields_json, mac in connection.execute(
        "SELECT seq, at, event, actor, fields, mac FROM audit_log ORDER BY seq"
    ):
        count += 1
        if seq != expected_seq:
            return _broken(count, expected_seq, f"entry {expected_seq} is missing", previous_mac)
        # append() stores these types only, so another type means an edit by hand.
        if not (
            isinstance(at, float)
            and isinstance(event, str)
            and isinstance(actor, str)
            and isinstance(fields_json, str)
            and isinstance(mac, bytes)
        ):
            return _broken(
                count, seq, f"entry {seq} was edited: a column has the wrong type",
                previous_mac,
            )
        expected = entry_mac(audit_key, previous_mac, seq, at, event, actor, fields_json)
        if not hmac.compare_digest(expected, mac):
            return _broken(
                count, seq, f"entry {seq} was edited, moved, or follows a removed entry",
                previous_mac,
            )
        previous_mac = bytes(mac)
        expected_seq += 1
    if type(head_seq) is not int:
        return _broken(
            count, expected_seq,
            f"the last sequence number in vault_state was edited to {head_seq!r}",
            previous_mac,
        )
    if expected_seq - 1 != head_seq:
        if expected_seq == head_seq:
            reason = f"entry {head_seq} is missing from the end"
        elif expected_seq - 1 < head_seq:
            reason = f"entries {expected_seq} to {head_seq} are missing from the end"
        else:
            reason = f"entry {head_seq + 1} was appended outside tokengate"
        return _broken(count, min(expected_seq, head_seq + 1), reason, previous_mac)
    return VerifyResult(True, count, None, "the audit chain is intact", previous_mac.hex())


def _broken(count: int, seq: int, reason: str, previous_mac: bytes) -> VerifyResult:
    return VerifyResult(False, count, seq, reason, previous_mac.hex())


def remac_all(
    connection: sqlite3.Connection, old_key: bytes, new_key: bytes
) -> VerifyResult:
    """Recompute every MAC under `new_key` after checking the chain under `old_key`.

    Runs inside the caller's write transaction; changes nothing and returns the
    failed result when the chain is already broken.
    """
    result = verify(connection, old_key)
    if not result.ok:
        return result
    previous_mac = genesis_mac(new_key)
    rows = connection.execute(
        "SELECT seq, at, event, actor, fields FROM audit_log ORDER BY seq"
    ).fetchall()
    for seq, at, event, actor, fields_json in rows:
        mac = entry_mac(new_key, previous_mac, seq, at, event, actor, fields_json)
        connection.execute("UPDATE audit_log SET mac = ? WHERE seq = ?", (mac, seq))
        previous_mac = mac
    return VerifyResult(True, len(rows), None, "the audit chain is intact", previous_mac.hex())


def entries(
    connection: sqlite3.Connection, after_seq: int = 0, limit: int = 1000
) -> Iterator[AuditEntry]:
    """Yield stored entries with seq above `after_seq`, oldest first."""
    for seq, at, event, actor, fields_json, mac in connection.execute(
        "SELECT seq, at, event, actor, fields, mac FROM audit_log WHERE seq > ? "
        "ORDER BY seq LIMIT ?",
        (after_seq, limit),
    ):
        yield AuditEntry(seq, at, event, actor, json.loads(fields_json), bytes(mac))
