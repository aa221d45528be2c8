"""Row writes for the audit records, as plain SQL: insert, update, upsert by primary key.

The records (batches.py, devices.py, certificates.py, ...) write through `db._db[table]`,
which used to be sqlite-utils' Table. Its insert, update and upsert introspect the table on
every call (its columns, whether it exists, a read-back of the row), about 350 µs each against
3 µs for the statement itself, all while holding the connection every slot waits for. This
class keeps the same three calls and their meaning (update of a missing row raises
NotFoundError, values that are lists or dicts are stored as JSON text) and caches the SQL.
The schema itself is still created with sqlite-utils (schema.py).
"""
from __future__ import annotations

import sqlite3

from sqlite_utils.db import NotFoundError, jsonify_if_needed, quote_identifier

from station.audit.schema import TABLES


class RowWriter:
    """`writer[table].insert(row)`, `.update(pk, fields)`, `.upsert(row, pk=...)`."""

    def __init__(self, conn: sqlite3.Connection):
        self._conn = conn
        self._tables: dict[str, _Table] = {}

    def __getitem__(self, name: str) -> "_Table":
        table = self._tables.get(name)
        if table is None:
            table = self._tables[name] = _Table(self._conn, name, TABLES[name]["pk"])
        return table


class _Table:
    def __init__(self, conn: sqlite3.Connection, name: str, pk: str):
        self._conn, self._name, self._pk = conn, quote_identifier(name), pk
        self._sql: dict[tuple, str] = {}

    def insert(self, row: dict, *, ignore: bool = False) -> None:
        key = ("insert", ignore, *row)
        sql = self._sql.get(key)
        if sql is None:
            sql = self._sql[key] = (
                f"INSERT {'OR IGNORE ' if ignore else ''}INTO {self._name} "
                f"({', '.join(map(quote_identifier, row))}) VALUES ({', '.join('?' * len(row))})")
        self._conn.execute(sql, [jsonify_if_needed(v) for v in row.values()])

    def update(self, pk_value, updates: dict) -> None:
        """Raises: NotFoundError when no row has `pk_value`."""
        key = ("update", *updates)
        sql = self._sql.get(key)
        if sql is None:
            sets = ", ".join(f"{quote_identifier(c)} = ?" for c in updates)
            sql = self._sql[key] = (f"UPDATE {self._name} SET {sets} "
                                    f"WHERE {quote_identifier(self._pk)} = ?")
        args = [jsonify_if_needed(v) for v in updates.values()] + [pk_value]
        if not updates:  # nothing to change: only the row's existence is checked
            sql = f"SELECT 1 FROM {self._name} WHERE {quote_identifier(self._pk)} = ?"
            found = self._conn.execute(sql, args).fetchone() is not None
        else:
            found = self._conn.execute(sql, args).rowcount == 1
        if not found:
            raise NotFoundError(f"no {self._name} row with {self._pk} = {pk_value!r}")

    def upsert(self, row: dict, *, pk: str) -> None:
        """Insert `row`, or update the columns it names in the row with the same `pk`."""
        key = ("upsert", pk, *row)
        sql = self._sql.get(key)
        if sql is None:
            others = [c for c in row if c != pk]
            action = (f"DO UPDATE SET {', '.join(f'{quote_identifier(c)} = excluded.{quote_identifier(c)}' for c in others)}"
                      if others else "DO NOTHING")
            sql = self._sql[key] = (
                f"INSERT INTO {self._name} ({', '.join(map(quote_identifier, row))}) "
                f"VALUES ({', '.join('?' * len(row))}) ON CONFLICT({quote_identifier(pk)}) {action}")
        self._conn.execute(sql, [jsonify_if_needed(v) for v in row.values()])
