"""MongoDB adapter (pymongo): county tier and above; also runs over ``mongomock`` in tests.

Documents are stored with ``_id`` = the port's ``id`` (never returned). Collections are
``<namespace>.<name>``; beside them ``<namespace>._counters`` (``next_value``), ``._seq``
(one feed counter per collection), ``._inflight`` and ``._meta`` (the incarnation).

The feed must not skip a write that takes seq 10 but commits after seq 11, so every write
follows the in-flight marker protocol:

1. insert a marker ``{_id: uuid, coll, at: <server time>, seq: None}`` into ``_inflight``;
2. allocate ``S`` (or a block of ``n``) with ``$inc`` on the feed counter; 3. set the
marker's ``seq`` to ``S``; 4. write the document(s) with ``_seq`` from the block; 5. delete
the marker; 6. if it was already gone (a reader judged the writer dead), stamp them again.

A reader deletes the markers older than the lease, reads the counter ``C``, then the
remaining markers. Any marker without a seq might hold a number ≤ C, so nothing past what
is known to be settled is shown; otherwise the horizon is ``min(C, lowest marker seq - 1)``.
Everything at or below a horizon is final, so the highest horizon seen is remembered. A
writer that dies between 1 and 5 stalls the feed only until its marker's lease expires.
Leases are measured on the server's clock (``$currentDate``), never a client's. A writer
that stalled past its lease finds its marker gone (step 6): readers may have passed its
seq, so it stamps its documents again with fresh seqs through the same protocol.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext, suppress
from datetime import datetime, timedelta
from typing import Any, cast

from pymongo import ASCENDING, MongoClient, ReturnDocument
from pymongo.collection import Collection as MongoCollection
from pymongo.errors import BulkWriteError, ConnectionFailure, DuplicateKeyError, PyMongoError

from services.common.errors import Conflict, NotFound, StoreUnavailable
from services.common.store.mongo_query import bson_field, bson_query, from_bson
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
    owner_query,
    queryable_fields,
    split_doc,
)

DEFAULT_FEED_LEASE_S = 60.0
_DUPLICATE_KEY = 11000


class MongoStore:
    kind = "mongodb"

    def __init__(
        self,
        client: MongoClient[Doc],
        database: str,
        namespace: str,
        feed_lease_s: float = DEFAULT_FEED_LEASE_S,
        serial: AbstractContextManager[Any] | None = None,
    ) -> None:
        self.namespace = check_name(namespace, "namespace")
        self.feed_lease = timedelta(seconds=feed_lease_s)
        self._client = client
        self.db = client[database]
        self._serial: AbstractContextManager[Any] = serial or nullcontext()
        self.counters = self.db[f"{namespace}._counters"]
        self.feed_counters = self.db[f"{namespace}._seq"]
        self.inflight = self.db[f"{namespace}._inflight"]
        self.meta = self.db[f"{namespace}._meta"]
        self._collections: dict[str, MongoStoreCollection] = {}
        self._lock = threading.Lock()
        self._inflight_indexed = False

    @classmethod
    def mock(cls, server: str, database: str, namespace: str, feed_lease_s: float) -> MongoStore:
        """A store over an in-process mongomock server shared by every store naming it."""
        from services.common.store.mockserver import mock_client  # test-only dependency

        client, lock = mock_client(server)
        return cls(client, database, namespace, feed_lease_s, serial=lock)

    @contextmanager
    def op(self) -> Iterator[None]:
        """Wrap one database call: lost connections become ``StoreUnavailable``."""
        try:
            with self._serial:
                yield
        except ConnectionFailure as exc:
            raise StoreUnavailable("数据库暂时无法访问") from exc

    def increment(self, coll: MongoCollection[Doc], key: str, by: int) -> int:
        query, update = {"_id": key}, {"$inc": {"value": by}}
        after = ReturnDocument.AFTER
        with self.op():
            try:
                doc = coll.find_one_and_update(query, update, upsert=True, return_document=after)
            except DuplicateKeyError:  # a concurrent first upsert won; now the doc exists
                doc = coll.find_one_and_update(query, update, return_document=after)
        return int(doc["value"])

    def collection(self, name: str, indexes: Sequence[Index] = ()) -> MongoStoreCollection:
        with self._lock:
            coll = self._collections.get(check_name(name))
            if coll is None or not set(indexes) <= coll.indexes:
                coll = MongoStoreCollection(self, name, {*indexes, *(coll.indexes if coll else ())})
                self._collections[name] = coll
            if not self._inflight_indexed:
                with self.op():
                    self.inflight.create_index([("coll", ASCENDING), ("at", ASCENDING)])
                self._inflight_indexed = True
            return coll

    def server_now(self) -> datetime:
        """The database server's clock (naive UTC, as pymongo returns dates), read by
        stamping a probe document with ``$currentDate``."""
        with self.op():
            probe = self.inflight.find_one_and_update(
                {"_id": "_clock"},
                {"$currentDate": {"at": True}, "$set": {"coll": None}},
                upsert=True,
                return_document=ReturnDocument.AFTER,
            )
        return cast(datetime, probe["at"])

    def next_value(self, counter: str, by: int = 1) -> int:
        return self.increment(self.counters, counter, by)

    def incarnation(self) -> str:
        """Generated by the first reader (``$setOnInsert``: concurrent first readers agree)."""
        new, query = {"$setOnInsert": {"value": new_incarnation()}}, {"_id": "incarnation"}
        with self.op(), suppress(DuplicateKeyError):  # a concurrent first upsert won
            self.meta.update_one(query, new, upsert=True)
        with self.op():
            doc = self.meta.find_one(query)
        return str(doc["value"]) if doc else self.reincarnate()

    def reincarnate(self) -> str:
        value = new_incarnation()
        with self.op():
            self.meta.update_one({"_id": "incarnation"}, {"$set": {"value": value}}, upsert=True)
        return value

    def ping(self) -> None:
        try:
            with self.op():
                self._client.admin.command("ping")
        except PyMongoError as exc:
            raise StoreUnavailable("数据库暂时无法访问") from exc

    def close(self) -> None:
        self._client.close()

    def drop_counters(self, low: str, high: str) -> int:
        with self.op():
            result = self.counters.delete_many({"_id": {"$gte": low, "$lt": high}})
        return int(result.deleted_count)


class MongoStoreCollection:
    def __init__(self, store: MongoStore, name: str, indexes: set[Index]) -> None:
        self.name = name
        self.indexes = frozenset(indexes)
        self._store = store
        self._allowed = queryable_fields(tuple(indexes))
        self._coll = store.db[f"{store.namespace}.{name}"]
        self._horizon = 0  # the highest horizon seen: every seq at or below it is final
        # Tests set this to pause a writer after its seq is allocated (3), before it writes (4).
        self._before_commit: Callable[[], None] | None = None
        with store.op():
            # Not unique: a unique index must include a sharded collection's shard key.
            self._coll.create_index([("_seq", ASCENDING)])
            for index in self.indexes:
                self._coll.create_index(
                    [(bson_field(field), ASCENDING) for field in index.fields],
                    unique=index.unique,
                    sparse=index.unique,  # documents without the field do not collide
                )

    @contextmanager
    def _seqs(self, ids: Sequence[str]) -> Iterator[int]:
        """Steps 1–3, 5, 6 around a write of the documents ``ids``; yields the first seq."""
        store, marker = self._store, uuid.uuid4().hex
        with store.op():
            store.inflight.update_one(
                {"_id": marker},
                {"$currentDate": {"at": True}, "$set": {"coll": self.name, "seq": None}},
                upsert=True,
            )
        try:
            first = store.increment(store.feed_counters, self.name, len(ids)) - len(ids) + 1
            with store.op():
                store.inflight.update_one({"_id": marker}, {"$set": {"seq": first}})
            if self._before_commit is not None:
                self._before_commit()
            yield first
        except BaseException:
            # If this fails, the marker's lease expires it.
            with suppress(PyMongoError, StoreUnavailable), store.op():
                store.inflight.delete_one({"_id": marker})
            raise
        with store.op():
            expired = store.inflight.delete_one({"_id": marker}).deleted_count == 0
        if expired:  # a reader judged this writer dead and may have passed its seqs
            self._restamp(ids)

    def _restamp(self, ids: Sequence[str]) -> None:
        """Give already written documents fresh seqs, through the marker protocol."""
        with self._seqs(ids) as first, self._store.op():
            for n, doc_id in enumerate(ids):
                self._coll.update_one({"_id": doc_id}, {"$set": {"_seq": first + n}})

    def _prepare(self, docs: Iterable[Mapping[str, Any]], versioned: bool) -> list[Doc]:
        return [
            {"_id": doc_id, **fields, "version": version, "_seq": 0}
            for doc_id, version, fields in (split_doc(doc, versioned=versioned) for doc in docs)
        ]

    def _insert(self, stored: list[Doc], ordered: bool) -> list[int]:
        """Insert; return the positions refused as duplicates (raise on any other error)."""
        try:
            with self._store.op():
                self._coll.insert_many(stored, ordered=ordered)
        except BulkWriteError as exc:
            errors = exc.details.get("writeErrors", [])
            if not errors or any(error["code"] != _DUPLICATE_KEY for error in errors):
                raise
            return [error["index"] for error in errors]
        return []

    def insert(self, doc: Mapping[str, Any]) -> Doc:
        return self.insert_many([doc])[0]

    def insert_many(self, docs: Iterable[Mapping[str, Any]]) -> list[Doc]:
        stored = self._prepare(docs, versioned=False)
        if not stored:
            return []
        with self._seqs([doc["_id"] for doc in stored]) as first:
            for n, doc in enumerate(stored):
                doc["_seq"] = first + n
            if refused := self._insert(stored, ordered=True):
                raise Conflict(
                    f"{self.name}：记录 {stored[refused[0]]['_id']} 已存在或唯一字段重复"
                )
        return [from_bson(doc) for doc in stored]

    def get(self, doc_id: str) -> Doc | None:
        check_id(doc_id)
        with self._store.op():
            doc = self._coll.find_one({"_id": doc_id})
        return None if doc is None else from_bson(doc)

    def delete(self, doc_id: str, expect: Mapping[str, Any] | None = None) -> bool:
        check_id(doc_id)
        check_update({}, expect)
        with self._store.op():
            result = self._coll.delete_one({"_id": doc_id, **(expect or {})})
        return bool(result.deleted_count)

    def update(
        self, doc_id: str, changes: Mapping[str, Any], expect: Mapping[str, Any] | None = None
    ) -> Doc | None:
        check_id(doc_id)
        check_update(changes, expect)
        with self._seqs([doc_id]) as seq:
            try:
                with self._store.op():
                    doc: Doc | None = self._coll.find_one_and_update(
                        {"_id": doc_id, **(expect or {})},
                        {"$set": {**changes, "_seq": seq}, "$inc": {"version": 1}},
                        return_document=ReturnDocument.AFTER,
                    )
            except DuplicateKeyError as exc:
                raise Conflict(f"{self.name}：唯一字段重复") from exc
        if doc is not None:
            return from_bson(doc)
        if self.get(doc_id) is None:
            raise NotFound(f"{self.name}：记录 {doc_id} 不存在")
        return None

    def upsert_versioned(self, doc: Mapping[str, Any]) -> bool:
        return self.upsert_versioned_many([doc]) == 1

    def upsert_versioned_many(
        self, docs: Iterable[Mapping[str, Any]], owner: Sequence[str] = ()
    ) -> int:
        """New ids in one round trip; a stored id is replaced only by a higher version and,
        with ``owner``, of the same owner (both in the replacement's filter: atomic). On
        ``Conflict`` other documents of the batch may be applied; a resend is harmless."""
        stored = self._prepare(docs, versioned=True)
        if not stored:
            return 0
        foreign: list[tuple[str, Any, Any]] = []
        with self._seqs([doc["_id"] for doc in stored]) as first:
            for n, doc in enumerate(stored):
                doc["_seq"] = first + n
            refused = self._insert(stored, ordered=False)
            applied = len(stored) - len(refused)
            applied += sum(self._replace_older(stored[i], owner, foreign) for i in refused)
        if foreign:
            raise owner_conflict(self.name, foreign)
        return applied

    def _replace_older(self, doc: Doc, owner: Sequence[str], foreign: list[Any]) -> int:
        new_owner = owner_of(doc, owner)  # ``owner_query`` of no fields matches anything
        query = {
            "_id": doc["_id"],
            "version": {"$lt": doc["version"]},
            "$or": owner_query(owner, new_owner),
        }
        try:
            with self._store.op():
                result = self._coll.replace_one(query, doc)
        except DuplicateKeyError as exc:
            raise Conflict(f"{self.name}：记录 {doc['_id']} 的唯一字段重复") from exc
        if result.matched_count:
            return 1
        current = self.get(doc["_id"])
        if current is None:  # refused by another unique index, not by _id
            raise Conflict(f"{self.name}：记录 {doc['_id']} 的唯一字段重复")
        if owner and owner_of(current, owner) != new_owner:
            foreign.append((doc["_id"], owner_of(current, owner), new_owner))
        return 0  # the stored version is newer or equal, or another owner's

    def find(
        self, filter: Filter | None = None, sort: Sort | None = None, limit: int | None = None
    ) -> list[Doc]:
        check_query(filter, sort, self._allowed)
        if limit is not None and limit <= 0:  # Mongo reads limit 0 as "no limit"
            return []
        with self._store.op():
            cursor = self._coll.find(bson_query(filter))
            if sort:
                cursor = cursor.sort([(bson_field(field), direction) for field, direction in sort])
            if limit is not None:
                cursor = cursor.limit(limit)
            return [from_bson(doc) for doc in cursor]

    def count(self, filter: Filter | None = None) -> int:
        check_query(filter, None, self._allowed)
        with self._store.op():
            return self._coll.count_documents(bson_query(filter))

    def delete_many(self, filter: Filter) -> int:
        check_delete(filter, self._allowed)
        with self._store.op():
            return int(self._coll.delete_many(bson_query(filter)).deleted_count)

    def changes_since(self, seq: int, limit: int = 500) -> list[Doc]:
        check_position(seq, limit)
        horizon = self._horizon_now()
        if horizon <= seq or limit <= 0:
            return []
        with self._store.op():
            cursor = self._coll.find({"_seq": {"$gt": seq, "$lte": horizon}})
            return [from_bson(doc) for doc in cursor.sort("_seq", ASCENDING).limit(limit)]

    def last_seq(self) -> int:
        horizon = self._horizon_now()
        with self._store.op():
            top = self._coll.find_one({"_seq": {"$lte": horizon}}, {"_seq": 1}, sort=[("_seq", -1)])
        return int(top["_seq"]) if top else 0

    def _horizon_now(self) -> int:
        """The highest seq at or below which every write is final (the reader's protocol)."""
        store = self._store
        with store.op():
            expired = store.server_now() - store.feed_lease
            store.inflight.delete_many({"coll": self.name, "at": {"$lt": expired}})
            counter = store.feed_counters.find_one({"_id": self.name})
        top = int(counter["value"]) if counter else 0
        with store.op():
            live = store.inflight.find({"coll": self.name}, {"seq": 1})
            pending: list[int | None] = [marker.get("seq") for marker in live]
        settled = [seq for seq in pending if seq is not None]
        if len(settled) == len(pending):  # else a writer may yet take a seq at or below top
            self._horizon = max(self._horizon, min([top, *(seq - 1 for seq in settled)]))
        return self._horizon
