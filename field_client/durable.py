"""SQLite files that survive being killed at any instant: the tablet's store and the dock's state."""
from __future__ import annotations

import contextlib
import os
import sqlite3
from collections.abc import Iterator


def connect(path: str | os.PathLike[str]) -> sqlite3.Connection:
    """Open ``path`` with transactions under our control (isolation_level=None: a "transaction" here is
    exactly what reaches the disk together), rows by name, WAL and FULL sync."""
    connection = sqlite3.connect(path, isolation_level=None, timeout=10.0)
    connection.row_factory = sqlite3.Row
    return connection


def set_durable_pragmas(connection: sqlite3.Connection) -> None:
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA synchronous=FULL")
    connection.execute("PRAGMA busy_timeout=10000")


class DurableTransactions:
    """``with self.transaction():`` is one atomic, durable change; nested calls join the outer one.

    ``BEGIN IMMEDIATE`` takes the write lock up front, so a second process on
    the same file waits instead of failing half-way.
    """

    _conn: sqlite3.Connection
    _depth: int = 0

    @contextlib.contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        if self._depth:
            self._depth += 1
            try:
                yield self._conn
            finally:
                self._depth -= 1
            return
        self._conn.execute("BEGIN IMMEDIATE")
        self._depth = 1
        try:
            yield self._conn
        except BaseException:
            self._depth = 0
            self._conn.execute("ROLLBACK")
            raise
        self._depth = 0
        self._conn.execute("COMMIT")
