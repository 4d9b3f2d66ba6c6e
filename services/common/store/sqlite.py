"""SQLite adapter: the embedded default, one durable WAL file per service per site.

One connection per ``SqliteStore``, shared by its threads (or eventlet greenthreads) under
an ``RLock``. Every write is ``BEGIN IMMEDIATE … COMMIT`` and takes ``seq = MAX(seq) + 1``
inside that transaction: writers are serialised by SQLite's write lock, so the feed's order
is the commit order and a reader can never see seq 11 while seq 10 is still uncommitted.
Two processes on one file wait for each other (``busy_timeout``) instead of failing.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from services.common.errors import Conflict, NotFound, StoreUnavailable
from services.common.store.port import (
    Doc,
    Filter,
    Index,
    Sort,
    check_delete,
    check_id,
    check_name,
    check_position,
    check_query,
    check_update,
    new_incarnation,
    owner_conflict,
    owner_of,
    queryable_fields,
    split_doc,
)
from services.common.store.sqlite_query import expr, where

BUSY_TIMEOUT_S = 30.0
SYNCHRONOUS = ("OFF", "NORMAL", "FULL", "EXTRA")
# OperationalError texts that mean "the store is not usable now", not "the SQL is wrong".
_UNAVAILABLE = ("locked", "busy", "disk", "unable to open", "readonly", "full", "malformed")


def _dump(fields: Doc) -> str:
    return json.dumps(fields, ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def _quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


def _doc(doc_id: str, seq: int, version: int, fields: Doc) -> Doc:
    return {"id": doc_id, **fields, "version": version, "_seq": seq}


def _row(row: tuple[str, int, int, str]) -> Doc:
    return _doc(row[0], row[1], row[2], json.loads(row[3]))


@contextmanager
def _guard() -> Iterator[None]:
    try:
        yield
    except sqlite3.OperationalError as exc:
        if any(text in str(exc).lower() for text in _UNAVAILABLE):
            raise StoreUnavailable(f"本地数据库暂时不可用：{exc}") from exc
        raise


def _until_unlocked(step: Callable[[], object]) -> None:
    """Run ``step``, retrying while another process holds the file's lock.

    Switching to WAL and the first schema write need the file briefly to themselves, and
    SQLite answers "database is locked" there without calling the busy handler when a second
    process opens the same file at the same instant (two replicas starting together); so the
    wait ``busy_timeout`` gives every other statement is given here by hand.
    """
    deadline = time.monotonic() + BUSY_TIMEOUT_S
    delay = 0.005
    while True:
        try:
            with _guard():
                step()
            return
        except StoreUnavailable as exc:
            locked = isinstance(exc.__cause__, sqlite3.OperationalError) and any(
                text in str(exc.__cause__).lower() for text in ("locked", "busy")
            )
            if not locked or time.monotonic() + delay > deadline:
                raise
        time.sleep(delay)
        delay = min(delay * 2, 0.25)


class SqliteStore:
    kind = "sqlite"

    def __init__(self, path: str | Path, namespace: str, synchronous: str = "FULL") -> None:
        if synchronous.upper() not in SYNCHRONOUS:
            raise ValueError(f"synchronous must be one of {SYNCHRONOUS}")
        self.namespace = check_name(namespace, "namespace")
        self.path = Path(path)
        self._lock = threading.RLock()
        self._collections: dict[str, SqliteCollection] = {}
        self._counters = _quote(f"{namespace}._counters")
        self._meta = _quote(f"{namespace}._meta")
        try:
            _create_private(self.path)
            conn = sqlite3.connect(
                self.path, timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False
            )
        except (OSError, sqlite3.Error) as exc:
            raise StoreUnavailable(f"无法打开本地数据库 {self.path}：{exc}") from exc
        self._conn = conn
        try:
            with _guard():
                conn.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
                conn.execute(f"PRAGMA synchronous = {synchronous.upper()}")
            _until_unlocked(lambda: conn.execute("PRAGMA journal_mode = WAL"))
            _until_unlocked(self._create_meta)
        except BaseException:
            conn.close()
            raise

    def _create_meta(self) -> None:
        with self.transaction() as tx:
            tx.execute(
                f"CREATE TABLE IF NOT EXISTS {self._counters} "
                "(name TEXT PRIMARY KEY, value INTEGER NOT NULL)"
            )
            tx.execute(
                f"CREATE TABLE IF NOT EXISTS {self._meta} "
                "(name TEXT PRIMARY KEY, value TEXT NOT NULL)"
            )
            tx.execute(
                f"INSERT OR IGNORE INTO {self._meta} (name, value) VALUES ('incarnation', ?)",
                (new_incarnation(),),
            )

    @contextmanager
    def transaction(
        self, before_commit: Callable[[], None] | None = None
    ) -> Iterator[sqlite3.Connection]:
        """``BEGIN IMMEDIATE`` … ``COMMIT`` (rolled back on any exception)."""
        with self._lock, _guard():
            conn = self._conn
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
                if before_commit is not None:
                    before_commit()
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise

    def read(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        with self._lock, _guard():
            return self._conn.execute(sql, params).fetchall()

    def collection(self, name: str, indexes: Sequence[Index] = ()) -> SqliteCollection:
        with self._lock:
            coll = self._collections.get(check_name(name))
            if coll is None or not set(indexes) <= coll.indexes:
                coll = SqliteCollection(self, name, {*indexes, *(coll.indexes if coll else ())})
                self._collections[name] = coll
            return coll

    def next_value(self, counter: str, by: int = 1) -> int:
        with self.transaction() as tx:
            (value,) = tx.execute(
                f"INSERT INTO {self._counters} (name, value) VALUES (?, ?) "
                "ON CONFLICT (name) DO UPDATE SET value = value + excluded.value RETURNING value",
                (counter, by),
            ).fetchone()
        return int(value)

    def incarnation(self) -> str:
        rows = self.read(f"SELECT value FROM {self._meta} WHERE name = 'incarnation'")
        return str(rows[0][0])

    def reincarnate(self) -> str:
        value = new_incarnation()
        with self.transaction() as tx:
            tx.execute(
                f"INSERT INTO {self._meta} (name, value) VALUES ('incarnation', ?) "
                "ON CONFLICT (name) DO UPDATE SET value = excluded.value",
                (value,),
            )
        return value

    def ping(self) -> None:
        try:
            self.read("SELECT 1")
        except sqlite3.Error as exc:
            raise StoreUnavailable(f"本地数据库不可用：{exc}") from exc

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def drop_counters(self, low: str, high: str) -> int:
        with self.transaction() as tx:
            cursor = tx.execute(
                f"DELETE FROM {self._counters} WHERE name >= ? AND name < ?", (low, high)
            )
        return int(cursor.rowcount)


class SqliteCollection:
    """A table ``"<namespace>.<name>"``: id, seq (the feed), version, and the JSON doc."""

    def __init__(self, store: SqliteStore, name: str, indexes: set[Index]) -> None:
        self.name = name
        self.indexes = frozenset(indexes)
        self._store = store
        self._allowed = queryable_fields(tuple(indexes))
        self._table = _quote(f"{store.namespace}.{name}")
        # Tests set this to pause a writer inside its open transaction, after its seq is taken.
        self._before_commit: Callable[[], None] | None = None
        with store.transaction() as tx:
            tx.execute(
                f"CREATE TABLE IF NOT EXISTS {self._table} (id TEXT PRIMARY KEY, "
                "seq INTEGER NOT NULL UNIQUE, version INTEGER NOT NULL, doc TEXT NOT NULL)"
            )
            for index in self.indexes:
                label = ".".join(("u" if index.unique else "i", *index.fields))
                tx.execute(
                    f"CREATE {'UNIQUE ' if index.unique else ''}INDEX IF NOT EXISTS "
                    f"{_quote(f'{store.namespace}.{name}:{label}')} ON {self._table} "
                    f"({', '.join(expr(field) for field in index.fields)})"
                )

    @contextmanager
    def _write(self) -> Iterator[tuple[sqlite3.Connection, int]]:
        """A write transaction and the feed's current top; the writer numbers from top + 1."""
        with self._store.transaction(self._before_commit) as tx:
            (top,) = tx.execute(f"SELECT COALESCE(MAX(seq), 0) FROM {self._table}").fetchone()
            try:
                yield tx, top
            except sqlite3.IntegrityError as exc:
                raise Conflict(f"{self.name}：记录已存在或唯一字段重复") from exc

    def insert(self, doc: Mapping[str, Any]) -> Doc:
        return self.insert_many([doc])[0]

    def insert_many(self, docs: Iterable[Mapping[str, Any]]) -> list[Doc]:
        rows = [(*row, _dump(row[2])) for row in map(split_doc, docs)]
        if not rows:
            return []
        with self._write() as (tx, top):
            tx.executemany(
                f"INSERT INTO {self._table} (id, seq, version, doc) VALUES (?, ?, ?, ?)",
                [(row[0], top + n, row[1], row[3]) for n, row in enumerate(rows, 1)],
            )
        return [_doc(row[0], top + n, row[1], row[2]) for n, row in enumerate(rows, 1)]

    def get(self, doc_id: str) -> Doc | None:
        check_id(doc_id)
        rows = self._store.read(
            f"SELECT id, seq, version, doc FROM {self._table} WHERE id = ?", (doc_id,)
        )
        return _row(rows[0]) if rows else None

    def delete(self, doc_id: str, expect: Mapping[str, Any] | None = None) -> bool:
        check_id(doc_id)
        check_update({}, expect)
        with self._store.transaction() as tx:
            row = tx.execute(
                f"SELECT id, seq, version, doc FROM {self._table} WHERE id = ?", (doc_id,)
            ).fetchone()
            if row is None:
                return False
            current = _row(row)
            if any(current.get(key) != value for key, value in (expect or {}).items()):
                return False
            tx.execute(f"DELETE FROM {self._table} WHERE id = ?", (doc_id,))
        return True

    def update(
        self, doc_id: str, changes: Mapping[str, Any], expect: Mapping[str, Any] | None = None
    ) -> Doc | None:
        check_id(doc_id)
        check_update(changes, expect)
        with self._write() as (tx, top):
            row = tx.execute(
                f"SELECT id, seq, version, doc FROM {self._table} WHERE id = ?", (doc_id,)
            ).fetchone()
            if row is None:
                raise NotFound(f"{self.name}：记录 {doc_id} 不存在")
            current = _row(row)
            if any(current.get(key) != value for key, value in (expect or {}).items()):
                return None
            fields = json.loads(row[3])
            fields.update(changes)
            tx.execute(
                f"UPDATE {self._table} SET seq = ?, version = ?, doc = ? WHERE id = ?",
                (top + 1, row[2] + 1, _dump(fields), doc_id),
            )
        return _doc(doc_id, top + 1, row[2] + 1, fields)

    def upsert_versioned(self, doc: Mapping[str, Any]) -> bool:
        return self.upsert_versioned_many([doc]) == 1

    def upsert_versioned_many(
        self, docs: Iterable[Mapping[str, Any]], owner: Sequence[str] = ()
    ) -> int:
        rows = [split_doc(doc, versioned=True) for doc in docs]
        params = [(doc_id, version, _dump(fields)) for doc_id, version, fields in rows]
        if not params:
            return 0
        with self._write() as (tx, top):
            if owner:
                self._check_owners(tx, rows, owner)
            cursor = tx.executemany(
                f"INSERT INTO {self._table} (id, seq, version, doc) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (id) DO UPDATE SET seq = excluded.seq, version = excluded.version, "
                "doc = excluded.doc WHERE excluded.version > version",
                [(row[0], top + n, row[1], row[2]) for n, row in enumerate(params, 1)],
            )
            return cursor.rowcount

    def _check_owners(
        self, tx: sqlite3.Connection, rows: Sequence[tuple[str, int, Doc]], owner: Sequence[str]
    ) -> None:
        """Inside the write's transaction: refuse documents whose stored copy has another
        owner (the batch is rolled back whole)."""
        new = {doc_id: owner_of(fields, owner) for doc_id, _, fields in rows}
        ids = list(new)
        refused = []
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            found = tx.execute(
                f"SELECT id, doc FROM {self._table} WHERE id IN ({', '.join('?' * len(chunk))})",
                chunk,
            ).fetchall()
            for doc_id, doc in found:
                stored = owner_of(json.loads(doc), owner)
                if stored != new[doc_id]:
                    refused.append((doc_id, stored, new[doc_id]))
        if refused:
            raise owner_conflict(self.name, refused)

    def find(
        self, filter: Filter | None = None, sort: Sort | None = None, limit: int | None = None
    ) -> list[Doc]:
        sql, params = self._find_sql(filter, sort, limit)
        return [_row(row) for row in self._store.read(sql, params)]

    def count(self, filter: Filter | None = None) -> int:
        check_query(filter, None, self._allowed)
        clause, params = where(filter)
        return int(self._store.read(f"SELECT COUNT(*) FROM {self._table}{clause}", params)[0][0])

    def delete_many(self, filter: Filter) -> int:
        check_delete(filter, self._allowed)
        clause, params = where(filter)
        with self._store.transaction() as tx:
            return int(tx.execute(f"DELETE FROM {self._table}{clause}", params).rowcount)

    def changes_since(self, seq: int, limit: int = 500) -> list[Doc]:
        check_position(seq, limit)
        rows = self._store.read(
            f"SELECT id, seq, version, doc FROM {self._table} WHERE seq > ? ORDER BY seq LIMIT ?",
            (seq, max(limit, 0)),
        )
        return [_row(row) for row in rows]

    def last_seq(self) -> int:
        return int(self._store.read(f"SELECT COALESCE(MAX(seq), 0) FROM {self._table}")[0][0])

    def _find_sql(
        self, filter: Filter | None, sort: Sort | None, limit: int | None
    ) -> tuple[str, list[Any]]:
        check_query(filter, sort, self._allowed)
        clause, params = where(filter)
        sql = f"SELECT id, seq, version, doc FROM {self._table}{clause}"
        if sort:
            sql += " ORDER BY " + ", ".join(
                f"{expr(field)} {'ASC' if direction == 1 else 'DESC'}" for field, direction in sort
            )
        if limit is not None:
            sql += " LIMIT ?"
            params.append(max(limit, 0))
        return sql, params


def _create_private(path: Path) -> None:
    """The store's directory 0700 and its file 0600 when this creates them: the file holds
    personal data, and SQLite gives its -wal and -shm files the database file's mode."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    if not path.exists():
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))
