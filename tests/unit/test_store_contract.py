"""One contract for every storage adapter: SQLite, mongomock, and MongoDB when MONGO_URI is set.

Each test takes ``backend`` and opens as many independent ``Store`` objects on the same
backing store as it needs (separate connections / clients), as separate processes would.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import closing
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from services.common.errors import Conflict, InvalidInput, NotFound, StoreUnavailable
from services.common.store import Index, Store, open_store, validate_store_uri
from services.common.store.mongo import MongoStore
from services.common.store.sqlite import SqliteStore

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
INDEXES = (
    Index(("state",)),
    Index(("n",)),
    Index(("site_code", "created_at")),
    Index(("owner.name",)),
    Index(("ticket",), unique=True),
)


class Backend:
    def __init__(self, kind: str, uri: str, namespace: str) -> None:
        self.kind, self.uri, self.namespace = kind, uri, namespace
        self.stores: list[Store] = []

    def open(self) -> Store:
        store = open_store(self.uri, self.namespace)
        self.stores.append(store)
        return store

    def items(self) -> Any:
        """The "items" collection through a new, independent Store object."""
        return self.open().collection("items", INDEXES)


@pytest.fixture(params=["sqlite", "mongomock", "mongodb"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    namespace = "t" + uuid.uuid4().hex[:12]
    if request.param == "sqlite":
        uri = f"sqlite:///{tmp_path}/contract.db"
    elif request.param == "mongomock":
        uri = f"mongomock://{namespace}/hall"
    else:
        uri = os.environ.get("MONGO_URI", "")
        if not uri:
            pytest.skip("MONGO_URI is not set")
    b = Backend(request.param, uri, namespace)
    yield b
    for store in b.stores:
        store.close()
    if request.param == "mongodb":
        from pymongo import MongoClient

        client: MongoClient[dict[str, Any]] = MongoClient(uri)
        with client:
            db = client.get_default_database("hall")
            for name in db.list_collection_names():
                if name.startswith(namespace + "."):
                    db.drop_collection(name)


def run_threads(targets: list[Callable[[], None]], timeout: float = 60) -> None:
    """Run callables in threads; re-raise the first exception any of them raised."""
    errors: list[BaseException] = []

    def wrap(target: Callable[[], None]) -> Callable[[], None]:
        def run() -> None:
            try:
                target()
            except BaseException as exc:  # noqa: BLE001  the first is re-raised below, in the test
                errors.append(exc)

        return run

    threads = [threading.Thread(target=wrap(t)) for t in targets]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout)
        assert not t.is_alive(), "thread did not finish"
    if errors:
        raise errors[0]


# --- documents ---------------------------------------------------------------------------


def test_insert_get_round_trip_with_chinese_text(backend: Backend) -> None:
    items = backend.items()
    doc = {
        "id": "办件-001",
        "matter": "城乡居民基本养老保险参保登记",
        "owner": {"name": "张三", "phone": "138****0000"},
        "tags": ["一次办好", "就近办"],
        "real_name": True,
        "fee": 0.5,
        "note": None,
    }
    stored = items.insert(doc)
    assert stored == {**doc, "version": 1, "_seq": stored["_seq"]}
    assert stored["_seq"] >= 1
    assert items.get("办件-001") == stored
    assert backend.items().get("办件-001") == stored  # visible through another store object
    assert items.get("missing") is None
    assert "_id" not in stored


def test_insert_duplicate_id_conflicts_and_keeps_original(backend: Backend) -> None:
    items = backend.items()
    original = items.insert({"id": "a", "state": "waiting", "ticket": "A001"})
    with pytest.raises(Conflict):
        items.insert({"id": "a", "state": "done"})
    assert items.get("a") == original
    with pytest.raises(Conflict):  # a declared unique index
        items.insert({"id": "b", "ticket": "A001"})
    assert items.get("b") is None
    with pytest.raises(Conflict):
        items.insert_many([{"id": "c1"}, {"id": "a", "state": "x"}, {"id": "c3"}])
    assert items.get("a") == original
    assert items.get("c3") is None  # stops at the duplicate
    if backend.kind == "sqlite":
        assert items.get("c1") is None  # all or nothing
    with pytest.raises(ValueError, match="id"):
        items.insert({"state": "no id"})


def test_insert_many_returns_docs_in_feed_order(backend: Backend) -> None:
    items = backend.items()
    docs = items.insert_many([{"id": f"m{i}", "n": i} for i in range(5)])
    assert [d["id"] for d in docs] == [f"m{i}" for i in range(5)]
    assert [d["_seq"] for d in docs] == sorted({d["_seq"] for d in docs})
    assert all(d["version"] == 1 for d in docs)
    assert [items.get(d["id"]) for d in docs] == docs
    assert items.insert_many([]) == []


def test_compare_and_set_update(backend: Backend) -> None:
    items = backend.items()
    first = items.insert({"id": "t1", "state": "waiting", "window": 3})
    claimed = items.update("t1", {"state": "called"}, expect={"state": "waiting"})
    assert claimed is not None
    assert claimed == {**first, "state": "called", "version": 2, "_seq": claimed["_seq"]}
    assert claimed["_seq"] > first["_seq"]
    assert items.get("t1") == claimed

    assert items.update("t1", {"state": "done"}, expect={"state": "waiting"}) is None
    assert items.get("t1") == claimed  # a failed expectation changes nothing
    assert items.update("t1", {"state": "done"}, expect={"version": 1}) is None

    with pytest.raises(NotFound):
        items.update("nope", {"state": "called"}, expect={"state": "waiting"})
    with pytest.raises(NotFound):
        items.update("nope", {"state": "called"})

    done = items.update("t1", {"state": "done", "rating": "好评"}, expect={"version": 2})
    assert done is not None
    assert [done[k] for k in ("version", "state", "rating", "window")] == [3, "done", "好评", 3]
    plain = items.update("t1", {"note": "无条件"})
    assert plain is not None
    assert plain["version"] == 4
    assert items.update("t1", {"x": 1}, expect={"missing_field": None}) is not None
    for bad in ({"version": 9}, {"id": "x"}, {"_seq": 1}, {"a.b": 1}):
        with pytest.raises(ValueError, match="cannot set"):
            items.update("t1", bad)


def test_update_into_unique_conflict(backend: Backend) -> None:
    items = backend.items()
    items.insert_many([{"id": "u1", "ticket": "A1"}, {"id": "u2", "ticket": "A2"}])
    with pytest.raises(Conflict):
        items.update("u2", {"ticket": "A1"})
    assert items.get("u2")["ticket"] == "A2"


def test_versioned_upsert(backend: Backend) -> None:
    items = backend.items()
    assert items.upsert_versioned({"id": "r1", "version": 2, "level": "好评", "old": 1})
    assert not items.upsert_versioned({"id": "r1", "version": 2, "level": "差评"})  # equal
    assert not items.upsert_versioned({"id": "r1", "version": 1, "level": "差评"})  # older
    assert items.get("r1")["level"] == "好评"
    assert items.upsert_versioned({"id": "r1", "version": 5, "level": "差评"})  # newer
    stored = items.get("r1")
    assert (stored["version"], stored["level"]) == (5, "差评")
    assert "old" not in stored  # replaced, not merged

    batch = [
        {"id": "r2", "version": 1, "level": "好评"},
        {"id": "r1", "version": 4, "level": "older"},
        {"id": "r3", "version": 7, "level": "一般"},
        {"id": "r2", "version": 3, "level": "非常好"},
        {"id": "r1", "version": 6, "level": "newest"},
    ]
    assert items.upsert_versioned_many(batch) == 4
    assert items.get("r1")["level"] == "newest"
    assert (items.get("r2")["version"], items.get("r2")["level"]) == (3, "非常好")
    checkpoint = items.last_seq()
    before = {d["id"]: d for d in items.find()}
    assert items.upsert_versioned_many(batch) == 0  # a resend changes nothing
    assert {d["id"]: d for d in items.find()} == before
    assert items.changes_since(checkpoint) == []
    assert items.last_seq() == checkpoint
    assert items.upsert_versioned_many([]) == 0
    with pytest.raises(ValueError, match="version"):
        items.upsert_versioned({"id": "r9", "level": "x"})


def test_counters_are_atomic(backend: Backend) -> None:
    stores = [backend.open(), backend.open()]
    seen: list[int] = []
    lock = threading.Lock()

    def take(store: Store) -> None:
        for _ in range(50):
            value = store.next_value("ticket:421302:A")
            with lock:
                seen.append(value)

    run_threads([partial(take, s) for s in stores for _ in range(2)])
    assert sorted(seen) == list(range(1, 201))
    assert stores[0].next_value("ticket:421302:A", by=5) == 205
    assert stores[1].next_value("other") == 1


# --- queries -----------------------------------------------------------------------------


@pytest.fixture
def people(backend: Backend) -> Any:
    items = backend.items()
    items.insert_many(
        {
            "id": f"p{i}",
            "n": i,
            "state": ["waiting", "called", "done"][i % 3],
            "site_code": "421302101" if i < 5 else "421302102",
            "created_at": f"2024-03-{10 + i:02d}T08:00:00Z",
            "owner": {"name": f"市民{i % 4}"},
        }
        for i in range(10)
    )
    return items


def ids(docs: list[dict[str, Any]]) -> list[str]:
    return [d["id"] for d in docs]


def test_find_operators(people: Any) -> None:
    def found(f: dict[str, Any]) -> set[int]:
        return {d["n"] for d in people.find(f)}

    assert found({"state": "waiting"}) == {0, 3, 6, 9}
    assert found({"state": {"$in": ["called", "done"]}, "n": {"$lt": 5}}) == {1, 2, 4}
    assert found({"n": {"$gt": 7}}) == {8, 9}
    assert found({"n": {"$gte": 7}}) == {7, 8, 9}
    assert found({"n": {"$lte": 1}}) == {0, 1}
    assert found({"n": {"$gt": 2, "$lt": 5}}) == {3, 4}
    assert found({"state": {"$ne": "waiting"}}) == {1, 2, 4, 5, 7, 8}
    assert found({"owner.name": "市民1"}) == {1, 5, 9}
    assert found({"site_code": "421302102", "created_at": {"$gte": "2024-03-18"}}) == {8, 9}
    assert found({"id": {"$in": ["p1", "p2", "zz"]}}) == {1, 2}
    assert found({"version": 1}) == set(range(10))
    assert found({"state": {"$in": []}}) == set()
    assert found({"n": {"$gt": "a"}}) == set()  # ranges do not cross types
    assert found({}) == set(range(10))


def test_find_sort_and_limit(people: Any) -> None:
    assert ids(people.find(sort=[("n", 1)])) == [f"p{i}" for i in range(10)]
    assert ids(people.find(sort=[("n", -1)], limit=3)) == ["p9", "p8", "p7"]
    assert ids(people.find({"state": "waiting"}, sort=[("created_at", -1)])) == [
        "p9",
        "p6",
        "p3",
        "p0",
    ]
    assert ids(people.find(sort=[("_seq", -1)], limit=1)) == ["p9"]
    assert ids(people.find(sort=[("id", 1)], limit=2)) == ["p0", "p1"]
    assert ids(people.find(sort=[("owner.name", 1), ("n", -1)], limit=3)) == ["p8", "p4", "p0"]
    assert people.find(limit=0) == []
    assert len(people.find(limit=4)) == 4


def test_undeclared_fields_are_refused(people: Any) -> None:
    with pytest.raises(ValueError, match="phone"):
        people.find({"phone": "1"})
    with pytest.raises(ValueError, match=r"owner\.phone"):
        people.find(sort=[("owner.phone", 1)])
    with pytest.raises(ValueError, match="phone"):
        people.count({"phone": "1"})
    with pytest.raises(ValueError, match="regex"):
        people.find({"state": {"$regex": "wa"}})
    with pytest.raises(ValueError, match="operator"):
        people.find({"state": {"a": 1}})
    with pytest.raises(ValueError, match="direction"):
        people.find(sort=[("n", 0)])


def test_names_that_reach_sql_or_files_are_checked(backend: Backend) -> None:
    store = backend.open()
    with pytest.raises(ValueError, match="index field"):
        store.collection("bad", [Index(("a') OR 1=1 --",))])
    with pytest.raises(ValueError, match="collection name"):
        store.collection('x"; DROP TABLE y; --')
    with pytest.raises(ValueError, match="namespace"):
        open_store(backend.uri, "../etc")


def test_count(people: Any) -> None:
    assert people.count() == 10
    assert people.count({"state": "done"}) == 3
    assert people.count({"n": {"$gte": 5}, "site_code": "421302102"}) == 5
    assert people.count({"state": "nobody"}) == 0


# --- change feed -------------------------------------------------------------------------


def test_changes_since_orders_pages_and_moves_updates_to_the_end(backend: Backend) -> None:
    items = backend.items()
    assert items.last_seq() == 0
    assert items.changes_since(0) == []
    for i in range(7):
        items.insert({"id": f"f{i:02d}", "n": i})
    items.insert_many([{"id": f"f{i:02d}", "n": i} for i in range(7, 23)])
    assert items.upsert_versioned_many([{"id": f"f{i:02d}", "version": 1} for i in range(23, 25)])

    seen: list[str] = []
    checkpoint = 0
    while page := items.changes_since(checkpoint, limit=7):
        assert len(page) <= 7
        seqs = [d["_seq"] for d in page]
        assert seqs == sorted(seqs)
        assert len(set(seqs)) == len(seqs)
        assert seqs[0] > checkpoint
        seen += ids(page)
        checkpoint = seqs[-1]
    assert seen == [f"f{i:02d}" for i in range(25)]  # every doc once, in write order
    assert items.last_seq() == checkpoint

    items.update("f03", {"n": 33})
    moved = items.changes_since(checkpoint)
    assert ids(moved) == ["f03"]
    assert moved[0]["n"] == 33
    everything = items.changes_since(0, limit=1000)
    assert ids(everything)[-1] == "f03"
    assert ids(everything).count("f03") == 1
    assert len(everything) == 25
    assert items.changes_since(0, limit=0) == []


def test_two_concurrent_claimers_never_win_the_same_document(backend: Backend) -> None:
    backend.items().insert_many({"id": f"d{i:03d}", "state": "waiting"} for i in range(200))
    claimers = [backend.items(), backend.items()]  # two independent store objects
    per_store = 3
    wins: list[tuple[str, str]] = []
    lock = threading.Lock()
    start = threading.Barrier(per_store * len(claimers))

    def claim(worker: str, items: Any) -> None:
        start.wait()
        for i in range(200):
            doc = items.update(
                f"d{i:03d}", {"state": "claimed", "by": worker}, expect={"state": "waiting"}
            )
            if doc is not None:
                with lock:
                    wins.append((doc["id"], worker))

    run_threads(
        [
            partial(claim, f"s{s}w{t}", claimers[s])
            for s in range(len(claimers))
            for t in range(per_store)
        ]
    )
    claimed = Counter(doc_id for doc_id, _ in wins)
    assert sorted(claimed) == [f"d{i:03d}" for i in range(200)]
    assert set(claimed.values()) == {1}
    reader = backend.items()
    for doc_id, worker in wins:
        stored = reader.get(doc_id)
        assert (stored["state"], stored["by"], stored["version"]) == ("claimed", worker, 2)


def test_feed_never_skips_a_late_commit(backend: Backend) -> None:
    """Writer A takes its seq, then stalls before committing; writer B writes meanwhile; a
    reader takes the feed and a checkpoint. After A commits, reading from that checkpoint
    must return A's document (a naive "max seq" feed would have moved past it)."""
    writer_a, writer_b, reader = backend.items(), backend.items(), backend.items()
    writer_b.insert({"id": "before", "n": 0})
    paused, resume = threading.Event(), threading.Event()

    def hold() -> None:
        paused.set()
        assert resume.wait(20)

    writer_a._before_commit = hold
    late = threading.Thread(target=lambda: writer_a.insert({"id": "late", "n": 1}))
    early = threading.Thread(target=lambda: writer_b.insert({"id": "early", "n": 2}))
    late.start()
    try:
        assert paused.wait(20)
        early.start()
        if backend.kind == "sqlite":
            early.join(0.5)
            assert early.is_alive()  # B waits for A's write transaction: commit order = seq
        else:
            early.join(20)
            assert not early.is_alive()  # B committed with a higher seq than A's
        feed = reader.changes_since(0)
        checkpoints = {feed[-1]["_seq"], reader.last_seq()}
        assert ids(feed) == ["before"]  # neither A nor (on Mongo) B beyond A's gap
    finally:
        resume.set()
        late.join(20)
        early.join(20)
    assert not late.is_alive()
    assert not early.is_alive()
    for checkpoint in checkpoints:
        assert sorted(ids(reader.changes_since(checkpoint))) == ["early", "late"]
    assert ids(reader.changes_since(0)) == ["before", "late", "early"]  # seq order = A first


def test_mongo_feed_waits_for_a_dead_writer_only_until_its_lease(tmp_path: Path) -> None:
    uri = f"mongomock://{uuid.uuid4().hex}/hall?feed_lease=0.3"
    writer: Any = open_store(uri, "lease")
    reader: Any = open_store(uri, "lease")
    try:
        items, feed = writer.collection("items"), reader.collection("items")
        items.insert({"id": "a"})
        assert ids(feed.changes_since(0)) == ["a"]
        # A writer that died after step 1 (its marker has no seq yet) ...
        writer.inflight.insert_one({"_id": "dead", "coll": "items", "at": _utcnow(), "seq": None})
        items.insert({"id": "b"})
        assert ids(feed.changes_since(0)) == ["a"]  # ... holds the feed at what was settled
        assert feed.last_seq() == 1
        time.sleep(0.4)
        assert ids(feed.changes_since(0)) == ["a", "b"]  # ... until its lease has passed
    finally:
        writer.close()
        reader.close()


def test_mongo_feed_never_skips_a_writer_that_stalled_past_its_lease() -> None:
    uri = f"mongomock://{uuid.uuid4().hex}/hall?feed_lease=0.2"
    writer: Any = open_store(uri, "stall")
    reader: Any = open_store(uri, "stall")
    try:
        items, feed = writer.collection("items"), reader.collection("items")
        resume = threading.Event()
        items._before_commit = resume.wait  # the writer stalls after taking its seq
        stalled = threading.Thread(target=items.insert, args=({"id": "slow"},))
        stalled.start()
        time.sleep(0.3)  # past the lease: readers judge the writer dead
        items._before_commit = None
        items.insert({"id": "quick"})
        seen = ids(feed.changes_since(0))
        assert seen == ["quick"]  # the stalled write's seq is passed
        checkpoint = feed.last_seq()
        resume.set()
        stalled.join(10)
        assert ids(feed.changes_since(checkpoint)) == ["slow"]  # stamped again, not lost
    finally:
        writer.close()
        reader.close()


def _utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


# --- SQLite durability and plans ---------------------------------------------------------


CHILD = textwrap.dedent(
    """
    import sys
    from services.common.store import open_store

    items = open_store(sys.argv[1], "crash").collection("items")
    i = 0
    while True:
        if i % 3:
            items.insert({"id": f"k{i:06d}", "payload": "受理" * 64})
            print(f"k{i:06d}", flush=True)
        else:
            batch = [{"id": f"k{i:06d}-{j}", "payload": "办结" * 64} for j in range(20)]
            items.insert_many(batch)
            print("\\n".join(d["id"] for d in batch), flush=True)
        i += 1
    """
)


def test_sqlite_killed_mid_write_keeps_every_acknowledged_write(tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path}/crash.db"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    with subprocess.Popen(
        [sys.executable, "-c", CHILD, uri], stdout=subprocess.PIPE, text=True, cwd=ROOT, env=env
    ) as child:
        assert child.stdout is not None
        acked: list[str] = []
        for line in child.stdout:
            acked.append(line.strip())
            if len(acked) >= 1500:
                break
        os.kill(child.pid, signal.SIGKILL)
        acked += [line.strip() for line in child.stdout.read().splitlines(keepends=True)]
        assert child.wait() == -signal.SIGKILL
    acked = [a for a in acked if a]
    assert len(acked) >= 1500
    store = open_store(uri, "crash")
    try:
        items = store.collection("items")
        missing = [doc_id for doc_id in acked if items.get(doc_id) is None]
        assert missing == []
        assert items.count() >= len(acked)
        items.insert({"id": "after-crash"})  # still writable
    finally:
        store.close()
    with closing(sqlite3.connect(tmp_path / "crash.db")) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)


def test_sqlite_queries_use_the_expression_indexes(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path}/plan.db", "plan")
    try:
        items: Any = store.collection("items", INDEXES)
        cases = [
            ({"state": "waiting"}, None, "state"),
            ({"owner.name": {"$in": ["a", "b"]}}, None, "owner.name"),
            ({"site_code": "421302101", "created_at": {"$gte": "2024"}}, None, "site_code"),
            (None, [("n", -1)], "n"),
        ]
        for filter, sort, field in cases:
            sql, params = items._find_sql(filter, sort, 10)
            assert isinstance(store, SqliteStore)
            rows = store._conn.execute(f"EXPLAIN QUERY PLAN {sql}", params).fetchall()
            plan = " ".join(row[3] for row in rows)
            assert f"plan.items:i.{field}" in plan, plan
            assert "SCAN" not in plan or "USING INDEX" in plan, plan
    finally:
        store.close()


def test_sqlite_synchronous_is_full_unless_configured(tmp_path: Path) -> None:
    for query, expected in (("", 2), ("?synchronous=NORMAL", 1)):
        store = open_store(f"sqlite:///{tmp_path}/s.db{query}", "sync")
        try:
            assert isinstance(store, SqliteStore)
            conn = store._conn
            assert conn.execute("PRAGMA synchronous").fetchone() == (expected,)
            assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
            assert conn.execute("PRAGMA busy_timeout").fetchone()[0] >= 10_000
        finally:
            store.close()


# --- opening stores ----------------------------------------------------------------------


def test_open_store_selects_adapter_by_scheme(tmp_path: Path) -> None:
    stores = [
        open_store(f"sqlite:///{tmp_path}/one.db", "matters"),
        open_store(f"mongomock://{uuid.uuid4().hex}/county", "matters"),
        open_store("mongodb://127.0.0.1:1/hall?serverSelectionTimeoutMS=200&feed_lease=5", "x"),
    ]
    try:
        assert [s.kind for s in stores] == ["sqlite", "mongodb", "mongodb"]
        assert (tmp_path / "one.db").is_file()
        stores[0].ping()
        stores[1].ping()
        with pytest.raises(StoreUnavailable):
            stores[2].ping()
        county, unreachable = stores[1], stores[2]
        assert isinstance(county, MongoStore)
        assert isinstance(unreachable, MongoStore)
        assert unreachable.db.name == "hall"
        assert unreachable.feed_lease.total_seconds() == 5
        assert county.db.name == "county"
        county.collection("items").insert({"id": "x"})
        assert "matters.items" in county.db.list_collection_names()
    finally:
        for store in stores:
            store.close()


def test_sqlite_directory_holds_one_file_per_namespace(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    site = tmp_path / "site"
    matters = open_store(f"sqlite:///{site}", "matters")
    rating = open_store(f"sqlite:///{site}", "rating")
    shared_a = open_store(f"sqlite:///{tmp_path}/all.db", "matters")
    shared_b = open_store(f"sqlite:///{tmp_path}/all.db", "rating")
    try:
        assert sorted(p.name for p in site.glob("*.db")) == ["matters.db", "rating.db"]
        matters.collection("items").insert({"id": "m1"})
        assert rating.collection("items").get("m1") is None
        assert rating.next_value("c") == 1
        assert matters.next_value("c") == 1
        shared_a.collection("items").insert({"id": "s1"})  # one file, separate namespaces
        assert shared_b.collection("items").get("s1") is None
        assert shared_a.next_value("c") == 1
        assert shared_b.next_value("c") == 1
    finally:
        for store in (matters, rating, shared_a, shared_b):
            store.close()
    monkeypatch.chdir(tmp_path)
    relative = open_store("sqlite:///rel/dir", "queue")
    relative.close()
    assert (tmp_path / "rel" / "dir" / "queue.db").is_file()


@pytest.mark.parametrize(
    "uri",
    [
        "redis://localhost/0",
        "postgres://user:secret@db/hall",
        "just-a-path.db",
        "",
        "sqlite://host/x.db",
        "sqlite:///",
        "sqlite:///{tmp}/x.db?synchronous=SOMETIMES",
        "sqlite:///{tmp}/x.db?journal=off",
        "mongodb:///hall",
        "mongodb://localhost/hall?feed_lease=never",
        "mongodb://localhost/ha.ll",
        "mongodb+srv://a.example.org:27017/hall",
    ],
)
def test_validate_store_uri_rejects_with_the_field_named_and_creates_nothing(
    uri: str, tmp_path: Path
) -> None:
    uri = uri.replace("{tmp}", str(tmp_path / "new"))
    with pytest.raises(InvalidInput) as caught:
        validate_store_uri(uri)
    assert list(caught.value.fields) == ["STORE_URI"]
    assert "secret" not in str(caught.value)
    with pytest.raises(InvalidInput):
        open_store(uri, "matters")
    assert list(tmp_path.iterdir()) == []


def test_validate_store_uri_accepts_without_touching_anything(tmp_path: Path) -> None:
    for uri in (
        f"sqlite:///{tmp_path}/a/b/site.db",
        f"sqlite:///{tmp_path}/a/b?synchronous=normal",
        "sqlite:///relative/dir",
        "mongodb://u:p@h1:27017,h2:27017/hall?replicaSet=rs0&feed_lease=30",
        "mongodb+srv://cluster0.example.org/county",
        "mongomock://tests",
    ):
        validate_store_uri(uri)
    assert list(tmp_path.iterdir()) == []
    assert not Path("relative").exists()
    with pytest.raises(InvalidInput, match="不支持的存储类型 redis"):
        validate_store_uri("redis://x")


# --- what the port refuses before it reaches a database ------------------------------------


def test_an_operator_object_is_never_taken_for_an_id(backend: Backend) -> None:
    items = backend.items()
    items.insert({"id": "a", "state": "open"})
    for attack in ({"$ne": None}, {"$gt": ""}, ["a"], 1):
        with pytest.raises(ValueError, match="id must be a string"):
            items.get(attack)
        with pytest.raises(ValueError, match="id must be a string"):
            items.update(attack, {"state": "retired"})
    assert items.get("a")["state"] == "open"


def test_versions_beyond_2_53_are_refused_and_nothing_is_written(backend: Backend) -> None:
    items = backend.items()
    for version in (2**53 + 1, 2**63, 10**30):
        with pytest.raises(ValueError, match="2\\^53"):
            items.upsert_versioned({"id": "big", "version": version})
    assert items.upsert_versioned({"id": "big", "version": 2**53})
    assert items.get("big")["version"] == 2**53


def test_feed_positions_beyond_what_a_store_holds_are_refused(backend: Backend) -> None:
    items = backend.items()
    for seq, limit in ((10**30, 10), (-1, 10), (0, 10**30), (True, 10)):
        with pytest.raises(ValueError, match="2\\^53"):
            items.changes_since(seq, limit)


OWNER = ("recorded_at_site", "site_code")


def test_an_owned_upsert_replaces_only_a_copy_of_the_same_owner(backend: Backend) -> None:
    items = backend.items()
    town, village, sibling = "421302101", "421302101201", "421302101202"
    assert items.upsert_versioned_many(
        [
            {"id": "a", "version": 1, "site_code": sibling, "n": 1},
            {"id": "b", "version": 1, "site_code": town, "recorded_at_site": sibling, "n": 1},
        ],
        owner=OWNER,
    )
    # Another owner's copy is never replaced, whatever the version; the refusal names it.
    forged = {"id": "a", "version": 10**9, "site_code": village, "n": 666}
    with pytest.raises(Conflict) as refused:
        items.upsert_versioned_many([forged], owner=OWNER)
    assert "a" in refused.value.fields["owner"]
    assert sibling in refused.value.message
    assert village in refused.value.message
    # recorded_at_site decides when set: site_code alone does not make the record one's own
    with pytest.raises(Conflict):
        items.upsert_versioned_many(
            [{"id": "b", "version": 7, "site_code": town, "n": 666}], owner=OWNER
        )
    assert backend.items().get("a")["n"] == 1
    assert backend.items().get("b")["n"] == 1
    # The real owner's later versions still apply; a resend is a no-op; new ids are stored.
    batch = [
        {"id": "a", "version": 2, "site_code": sibling, "n": 2},
        {"id": "b", "version": 2, "site_code": town, "recorded_at_site": sibling, "n": 2},
        {"id": "c", "version": 1, "site_code": village, "n": 1},
    ]
    assert items.upsert_versioned_many(batch, owner=OWNER) == 3
    assert items.upsert_versioned_many(batch, owner=OWNER) == 0
    assert [backend.items().get(k)["n"] for k in "abc"] == [2, 2, 1]
    # Without ``owner`` the plain versioned upsert is unchanged.
    assert items.upsert_versioned({"id": "a", "version": 3, "site_code": village, "n": 3})


def test_an_owned_upsert_refusal_leaves_sqlite_batches_whole(tmp_path: Path) -> None:
    items = SqliteStore(tmp_path / "o.db", "o").collection("items")
    items.upsert_versioned({"id": "x", "version": 1, "site_code": "421302101202"})
    batch = [
        {"id": "new", "version": 1, "site_code": "421302101201"},
        {"id": "x", "version": 5, "site_code": "421302101201"},
    ]
    with pytest.raises(Conflict):
        items.upsert_versioned_many(batch, owner=OWNER)
    assert items.get("new") is None
    stored = items.get("x")
    assert stored is not None
    assert stored["version"] == 1


def test_every_store_has_an_incarnation_that_a_restore_changes(backend: Backend) -> None:
    first = backend.open()
    incarnation = first.incarnation()
    assert isinstance(incarnation, str)
    assert len(incarnation) >= 16
    assert backend.open().incarnation() == incarnation  # kept in the store, not the process
    renewed = backend.open().reincarnate()
    assert renewed != incarnation
    assert first.incarnation() == renewed == backend.open().incarnation()


def test_two_stores_get_different_incarnations(tmp_path: Path) -> None:
    one = SqliteStore(tmp_path / "one.db", "x")
    two = SqliteStore(tmp_path / "two.db", "x")
    assert one.incarnation() != two.incarnation()


def test_delete_many_removes_what_matches_only(backend: Backend) -> None:
    items = backend.items()
    items.insert_many({"id": f"d{i}", "state": "old" if i < 3 else "new", "n": i} for i in range(5))
    assert items.delete_many({"state": "old", "n": {"$gte": 1}}) == 2
    assert sorted(d["id"] for d in backend.items().find()) == ["d0", "d3", "d4"]
    assert items.delete_many({"n": {"$lt": 0}}) == 0
    with pytest.raises(ValueError, match="condition"):
        items.delete_many({})
    # Every document (versions start at 1): how hallctl rebuild-rollups empties rating's
    # rollups, over a built-in field rather than a declared index.
    assert items.delete_many({"version": {"$gte": 1}}) == 3
    assert backend.items().count() == 0
    with pytest.raises(ValueError, match="indexed"):
        items.delete_many({"secret": 1})
