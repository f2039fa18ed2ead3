"""Per-thread SQLite connections and write transactions that wait instead of failing.

Every connection runs in WAL mode with synchronous=NORMAL: a committed transaction
survives a crash of the process, while a power loss or OS crash may lose the last
transactions before the next checkpoint, never the database's consistency.
Write transactions start with BEGIN IMMEDIATE, so the write lock is taken before any
read and two writers never deadlock on a lock upgrade.
"""

import contextlib
import logging
import os
import random
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from vault.errors import SchemaError, VaultBusyError

logger = logging.getLogger(__name__)

# SQLite's own busy handler waits up to this long for a lock on every statement.
BUSY_TIMEOUT_MS = 5000
# BEGIN IMMEDIATE is retried on SQLITE_BUSY until this much time has passed in total.
WRITE_RETRY_SECONDS = 30.0


class ConnectionPool:
    """One sqlite3 connection per thread (and per process, after a fork)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._local = threading.local()
        self._lock = threading.Lock()
        self._connections: list[sqlite3.Connection] = []
        self._write_lock = threading.Lock()
        self._closed = False

    def get(self) -> sqlite3.Connection:
        """Return this thread's connection, opening it on first use."""
        connection = getattr(self._local, "connection", None)
        if connection is not None and self._local.pid == os.getpid():
            return connection
        if self._closed:
            raise RuntimeError("the vault is closed")
        connection = open_connection(self.path)
        self._local.connection = connection
        self._local.pid = os.getpid()
        with self._lock:
            self._connections.append(connection)
        return connection

    @contextlib.contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        """Run the block in a BEGIN IMMEDIATE transaction; commit, or roll back on error.

        Threads of this process wait on a Python lock first instead of polling SQLite's
        lock. Writers in other processes are handled by the busy retry.
        """
        connection = self.get()
        if getattr(self._local, "writing", False):
            raise RuntimeError(
                "nested vault write transaction: call vault methods after the "
                "write_transaction() block, or use the connection it yields"
            )
        with self._write_lock:
            self._local.writing = True
            try:
                begin_immediate(connection, self.path)
                try:
                    yield connection
                except BaseException:
                    connection.execute("ROLLBACK")
                    raise
                connection.execute("COMMIT")
            finally:
                self._local.writing = False

    def close(self) -> None:
        """Close every connection this pool opened."""
        with self._lock:
            self._closed = True
            connections, self._connections = self._connections, []
        for connection in connections:
            connection.close()


def open_connection(path: Path) -> sqlite3.Connection:
    """Open `path` read-write (it must exist) with the vault's pragmas."""
    try:
        connection = sqlite3.connect(
            f"file:{path}?mode=rw",
            uri=True,
            isolation_level=None,
            check_same_thread=False,
            timeout=BUSY_TIMEOUT_MS / 1000,
        )
        connection.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        mode = connection.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        connection.execute("PRAGMA synchronous = NORMAL")
        connection.execute("PRAGMA foreign_keys = ON")
    except sqlite3.DatabaseError as error:
        raise SchemaError(damaged_message(path, error)) from None
    if mode.lower() != "wal":
        raise SchemaError(f"cannot switch the vault {path} to WAL mode (got {mode!r})")
    return connection


def open_read_only(path: Path) -> sqlite3.Connection:
    """Open `path` read-only, for checks that must not change the file."""
    return sqlite3.connect(
        f"file:{path}?mode=ro", uri=True, isolation_level=None, timeout=BUSY_TIMEOUT_MS / 1000
    )


def damaged_message(path: Path, error: sqlite3.DatabaseError) -> str:
    """Return the operator message for a database SQLite cannot read."""
    return (
        f"the vault {path} cannot be read: {error} (SQLite); the file is damaged or "
        "not a vault. Nothing was changed. Restore it from a backup"
    )


def is_damage(error: sqlite3.DatabaseError) -> bool:
    """Return True when SQLite reports a damaged file or one that is not a database."""
    code = getattr(error, "sqlite_errorcode", None)
    if code is not None:
        return code & 0xFF in (sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB)
    return not isinstance(error, sqlite3.OperationalError)


def failed_message(path: Path, error: sqlite3.DatabaseError) -> str:
    """Return the operator message for a SQLite error raised after the vault was opened.

    The transaction that raised it was rolled back, but transactions committed before
    it stay, so the message does not claim that nothing changed.
    """
    if is_damage(error):
        return (
            f"the vault {path} is damaged: {error} (SQLite). The failed transaction was "
            "rolled back. Run `tokengate verify` to see the damage and restore the vault "
            "from a backup"
        )
    return (
        f"the vault {path} failed: {error} (SQLite). The failed transaction was rolled "
        "back. Check the file's permissions, the free disk space and the directory"
    )


def begin_immediate(connection: sqlite3.Connection, path: Path) -> None:
    """Start a write transaction, retrying SQLITE_BUSY with backoff up to a bound."""
    deadline = time.monotonic() + WRITE_RETRY_SECONDS
    delay = 0.005
    attempts = 0
    while True:
        try:
            connection.execute("BEGIN IMMEDIATE")
            if attempts:
                logger.info("vault write lock acquired after %d retries", attempts)
            return
        except sqlite3.OperationalError as error:
            if not _is_busy(error):
                raise
            attempts += 1
            if time.monotonic() >= deadline:
                raise VaultBusyError(
                    f"the vault {path} stayed locked by another writer for "
                    f"{WRITE_RETRY_SECONDS:.0f} s; check for a stuck tokengate process"
                ) from None
            time.sleep(delay * (1 + random.random()))
            delay = min(delay * 2, 0.2)


def _is_busy(error: sqlite3.OperationalError) -> bool:
    code = getattr(error, "sqlite_errorcode", None)
    if code is not None:
        return code & 0xFF in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)
    return "locked" in str(error) or "busy" in str(error)
