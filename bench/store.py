"""The storage port on SQLite against raw ``sqlite3`` doing the same work, in the same run.

    python -m bench.store [--n 20000] [--batch 500]

Both sides use the same file layout (table ``id, seq, version, doc`` + one JSON expression
index), the same pragmas (WAL, ``synchronous=FULL``, busy timeout), ``BEGIN IMMEDIATE`` per
commit, seq = MAX(seq) + 1, and JSON encode/decode; the raw side is hand-written SQL with no
validation and no result documents. Writes that commit one at a time use ``n / 10``
operations (each commit is an fsync); batched work and feed reads use ``n``.
Target: the port within 2x of raw sqlite3 for batched writes.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, TypeVar

from services.common.store import Collection, Index, open_store

T = TypeVar("T")

TARGET = 2.0
INDEXES = (Index(("state",)),)
STATE = "json_extract(doc, '$.state')"


def dump(doc: dict[str, Any]) -> str:
    return json.dumps(doc, ensure_ascii=False, separators=(",", ":"))


def make_doc(i: int) -> dict[str, Any]:
    return {
        "id": f"e{i:08d}",
        "state": "waiting",
        "site_code": "421302101201",
        "matter": "城乡居民基本养老保险参保登记",
        "level": "好评",
        "created_at": "2024-03-18T08:00:00Z",
    }


def chunks(items: list[Any], size: int) -> list[list[Any]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


class Raw:
    """Plain sqlite3 with the adapter's schema and pragmas."""

    def __init__(self, path: Path) -> None:
        self.conn = sqlite3.connect(path, isolation_level=None)
        self.conn.execute("PRAGMA busy_timeout = 30000")
        self.conn.execute("PRAGMA journal_mode = WAL")
        self.conn.execute("PRAGMA synchronous = FULL")
        self.conn.execute(
            "CREATE TABLE t (id TEXT PRIMARY KEY, seq INTEGER NOT NULL UNIQUE, "
            "version INTEGER NOT NULL, doc TEXT NOT NULL)"
        )
        self.conn.execute(f"CREATE INDEX t_state ON t ({STATE})")

    def tx(self, work: Callable[[sqlite3.Connection], object]) -> None:
        self.conn.execute("BEGIN IMMEDIATE")
        work(self.conn)
        self.conn.execute("COMMIT")

    def top(self) -> int:
        return int(self.conn.execute("SELECT COALESCE(MAX(seq), 0) FROM t").fetchone()[0])

    def insert_one(self, doc: dict[str, Any]) -> None:
        fields = {k: v for k, v in doc.items() if k != "id"}
        self.tx(
            lambda c: c.execute(
                "INSERT INTO t VALUES (?, (SELECT COALESCE(MAX(seq), 0) + 1 FROM t), 1, ?)",
                (doc["id"], dump(fields)),
            )
        )

    def insert_many(self, docs: list[dict[str, Any]]) -> None:
        rows = [(d["id"], dump({k: v for k, v in d.items() if k != "id"})) for d in docs]

        def work(c: sqlite3.Connection) -> None:
            top = self.top()
            c.executemany(
                "INSERT INTO t VALUES (?, ?, 1, ?)",
                [(i, top + n, text) for n, (i, text) in enumerate(rows, 1)],
            )

        self.tx(work)

    def claim(self, doc_id: str) -> None:
        self.tx(
            lambda c: c.execute(
                "UPDATE t SET seq = (SELECT MAX(seq) + 1 FROM t), version = version + 1, "
                "doc = json_set(doc, '$.state', 'claimed') "
                "WHERE id = ? AND json_extract(doc, '$.state') = 'waiting'",
                (doc_id,),
            )
        )

    def upsert_many(self, docs: list[dict[str, Any]]) -> None:
        rows = [
            (
                d["id"],
                d["version"],
                dump({k: v for k, v in d.items() if k not in ("id", "version")}),
            )
            for d in docs
        ]

        def work(c: sqlite3.Connection) -> None:
            top = self.top()
            c.executemany(
                "INSERT INTO t VALUES (?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET "
                "seq = excluded.seq, version = excluded.version, doc = excluded.doc "
                "WHERE excluded.version > version",
                [(i, top + n, v, text) for n, (i, v, text) in enumerate(rows, 1)],
            )

        self.tx(work)

    def read_feed(self, batch: int) -> int:
        seq, seen = 0, 0
        while True:
            rows = self.conn.execute(
                "SELECT id, seq, version, doc FROM t WHERE seq > ? ORDER BY seq LIMIT ?",
                (seq, batch),
            ).fetchall()
            if not rows:
                return seen
            docs = [{"id": r[0], **json.loads(r[3]), "version": r[2], "_seq": r[1]} for r in rows]
            seen, seq = seen + len(docs), docs[-1]["_seq"]


def each(work: Callable[[T], object], items: Iterable[T]) -> Callable[[], None]:
    """A timed case: ``work`` on every item in turn."""

    def run() -> None:
        for item in items:
            work(item)

    return run


def timed(work: Callable[[], object]) -> float:
    start = time.perf_counter()
    work()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=20000, help="documents (default 20000)")
    parser.add_argument("--batch", type=int, default=500, help="batch size (default 500)")
    args = parser.parse_args()
    n, batch, single = args.n, args.batch, max(args.n // 10, 100)
    docs = [make_doc(i) for i in range(n)]
    upserts = [{**d, "version": 2, "level": "差评"} for d in docs[: n // 2]] + [
        {**make_doc(i), "version": 1} for i in range(n, n + n - n // 2)
    ]
    results: list[tuple[str, int, float, float, bool]] = []

    with tempfile.TemporaryDirectory(prefix="bench-store-") as tmp:
        store = open_store(f"sqlite:///{tmp}/port.db", "bench")
        try:
            raw = Raw(Path(tmp) / "raw.db")
            port = store.collection("events", INDEXES)
            port_single = store.collection("singles", INDEXES)
            raw_single = Raw(Path(tmp) / "raw-single.db")
            try:
                cases: list[tuple[str, int, Callable[[], object], Callable[[], object], bool]] = [
                    (
                        "insert, one per commit",
                        single,
                        each(raw_single.insert_one, docs[:single]),
                        each(port_single.insert, docs[:single]),
                        False,
                    ),
                    (
                        f"insert_many, batches of {batch}",
                        n,
                        each(raw.insert_many, chunks(docs, batch)),
                        each(port.insert_many, chunks(docs, batch)),
                        True,
                    ),
                    (
                        "CAS claim waiting→claimed",
                        single,
                        each(raw.claim, [d["id"] for d in docs[:single]]),
                        each(
                            lambda d: port.update(
                                d["id"], {"state": "claimed"}, expect={"state": "waiting"}
                            ),
                            docs[:single],
                        ),
                        False,
                    ),
                    (
                        f"upsert_versioned_many, {batch}",
                        n,
                        each(raw.upsert_many, chunks(upserts, batch)),
                        each(port.upsert_versioned_many, chunks(upserts, batch)),
                        True,
                    ),
                    (
                        f"changes_since, pages of {batch}",
                        n + n - n // 2,
                        lambda: raw.read_feed(batch),
                        lambda: _read_feed(port, batch),
                        False,
                    ),
                ]
                for name, ops, raw_work, port_work, batched in cases:
                    raw_s = timed(raw_work)
                    port_s = timed(port_work)
                    results.append((name, ops, ops / port_s, ops / raw_s, batched))
                raw_count = raw.conn.execute("SELECT COUNT(*) FROM t").fetchone()[0]
                if port.count() != raw_count:
                    raise SystemExit(f"the port holds {port.count()} documents, raw {raw_count}")
            finally:
                raw.conn.close()
                raw_single.conn.close()
        finally:
            store.close()

    print(f"storage port on SQLite vs raw sqlite3 (WAL, synchronous=FULL), n={n}, batch={batch}")
    print(f"sqlite {sqlite3.sqlite_version}, Python {sys.version.split()[0]}")
    print(f"{'operation':34} {'ops':>7} {'port ops/s':>12} {'raw ops/s':>12} {'raw/port':>9}")
    met = True
    for name, ops, port_rate, raw_rate, batched in results:
        ratio = raw_rate / port_rate
        met = met and (ratio <= TARGET or not batched)
        mark = "  (target ≤ 2x)" if batched else ""
        print(f"{name:34} {ops:7d} {port_rate:12,.0f} {raw_rate:12,.0f} {ratio:8.2f}x{mark}")
    verdict = "met" if met else "NOT met"
    print(f"target: port within {TARGET:g}x of raw sqlite3 for batched writes — {verdict}")


def _read_feed(coll: Collection, batch: int) -> int:
    seq, seen = 0, 0
    while page := coll.changes_since(seq, batch):
        seen, seq = seen + len(page), page[-1]["_seq"]
    return seen


if __name__ == "__main__":
    main()
