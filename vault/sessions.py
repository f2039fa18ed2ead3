"""The index of recorded sessions and flows kept in the vault database.

The flow files themselves are written elsewhere; this index lets investigators list
sessions and find a session's flows. Rows contain counts and decisions, never values.
"""

import json
import sqlite3
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from vault.store import Vault


@dataclass(frozen=True)
class SessionRow:
    """One recorded session: a conversation of one principal in one namespace."""

    id: str
    namespace: str
    principal: str
    started_at: float
    last_at: float
    flow_count: int
    entity_counts: dict[str, int]
    file: str


@dataclass(frozen=True)
class FlowRow:
    """One recorded request and response of a session."""

    id: str
    session_id: str
    seq: int
    at: float
    method: str
    url: str
    status: int | None
    entity_counts: dict[str, int]
    decisions: dict[str, Any]


def record_flow(
    vault: "Vault",
    *,
    session_id: str,
    namespace: str,
    principal: str,
    flow_id: str,
    at: float,
    method: str,
    url: str,
    status: int | None,
    entity_counts: dict[str, int],
    decisions: dict,
    file: str,
) -> None:
    """Add a flow to the index and update its session's totals in one transaction.

    Recording the same flow id again replaces its row without counting it twice.
    """
    with vault.write_transaction() as connection:
        session = connection.execute(
            "SELECT flow_count, entity_counts FROM sessions WHERE id = ?", (session_id,)
        ).fetchone()
        previous = connection.execute(
            "SELECT seq, entity_counts FROM flows WHERE id = ?", (flow_id,)
        ).fetchone()
        totals = _merge_counts(session[1] if session else None, entity_counts)
        if previous is not None:
            totals = _subtract_counts(totals, json.loads(previous[1]))
        if session is None:
            connection.execute(
                "INSERT INTO sessions (id, namespace, principal, started_at, last_at, "
                "flow_count, entity_counts, file) VALUES (?, ?, ?, ?, ?, 1, ?, ?)",
                (session_id, namespace, principal, at, at, _dump(totals), file),
            )
            seq = 1
        else:
            added = 0 if previous is not None else 1
            connection.execute(
                "UPDATE sessions SET last_at = max(last_at, ?), flow_count = flow_count + ?,"
                " entity_counts = ?, file = ? WHERE id = ?",
                (at, added, _dump(totals), file, session_id),
            )
            seq = previous[0] if previous is not None else _next_seq(connection, session_id)
        connection.execute(
            "INSERT OR REPLACE INTO flows (id, session_id, seq, at, method, url, status, "
            "entity_counts, decisions) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (flow_id, session_id, seq, at, method, url, status, _dump(entity_counts),
             json.dumps(decisions, sort_keys=True)),
        )


def list_sessions(vault: "Vault") -> list[SessionRow]:
    """Return all recorded sessions, newest activity first."""
    rows = vault.connection().execute(
        "SELECT id, namespace, principal, started_at, last_at, flow_count, "
        "entity_counts, file FROM sessions ORDER BY last_at DESC, id"
    )
    return [
        SessionRow(row[0], row[1], row[2], row[3], row[4], row[5], json.loads(row[6]), row[7])
        for row in rows
    ]


def session_flows(vault: "Vault", session_id: str) -> list[FlowRow]:
    """Return the flows of one session in recording order."""
    rows = vault.connection().execute(
        "SELECT id, session_id, seq, at, method, url, status, entity_counts, decisions "
        "FROM flows WHERE session_id = ? ORDER BY seq",
        (session_id,),
    )
    return [
        FlowRow(row[0], row[1], row[2], row[3], row[4], row[5], row[6],
                json.loads(row[7]), json.loads(row[8]))
        for row in rows
    ]


def _next_seq(connection: sqlite3.Connection, session_id: str) -> int:
    row = connection.execute(
        "SELECT coalesce(max(seq), 0) + 1 FROM flows WHERE session_id = ?", (session_id,)
    ).fetchone()
    return row[0]


def _merge_counts(stored: str | None, added: dict[str, int]) -> dict[str, int]:
    totals: dict[str, int] = json.loads(stored) if stored else {}
    for entity_type, count in added.items():
        totals[entity_type] = totals.get(entity_type, 0) + int(count)
    return totals


def _subtract_counts(totals: dict[str, int], removed: dict[str, int]) -> dict[str, int]:
    result = dict(totals)
    for entity_type, count in removed.items():
        remaining = result.get(entity_type, 0) - int(count)
        if remaining > 0:
            result[entity_type] = remaining
        else:
            result.pop(entity_type, None)
    return result


def _dump(counts: dict[str, int]) -> str:
    return json.dumps(counts, sort_keys=True)
