"""The storage port: a small, document-shaped interface with two real adapters.

Every service persists through this port only. It offers single-document atomicity
(like MongoDB), never multi-document transactions, so domain code is written the same
way for SQLite (embedded default) and MongoDB (county and above).

Documents are JSON-compatible dicts with a string ``id``. The port manages two fields:
``version`` (1 on insert unless given, +1 on every update) and ``_seq``, the document's
position in its collection's change feed (a new, higher value on every write).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from services.common.errors import Conflict

Doc = dict[str, Any]
Filter = Mapping[str, Any]
Sort = Sequence[tuple[str, int]]

# Operators a filter value may use: {"field": {"$in": [...]}} and ranges.
FILTER_OPERATORS = frozenset({"$in", "$gt", "$gte", "$lt", "$lte", "$ne"})
# Fields every collection can filter and sort on without declaring an index.
BUILTIN_FIELDS = frozenset({"id", "version", "_seq"})


@dataclass(frozen=True)
class Index:
    """A declared index; ``find`` may filter and sort only on indexed fields."""

    fields: tuple[str, ...]
    unique: bool = False


class Collection(Protocol):
    name: str

    def insert(self, doc: Mapping[str, Any]) -> Doc:
        """Store a new document; a duplicate ``id`` raises ``Conflict``. Returns it as stored."""

    def insert_many(self, docs: Iterable[Mapping[str, Any]]) -> list[Doc]:
        """Insert a batch, all or nothing (SQLite) / ordered, stopping at a duplicate (Mongo)."""

    def get(self, doc_id: str) -> Doc | None:
        """The document, or None."""

    def delete(self, doc_id: str, expect: Mapping[str, Any] | None = None) -> bool:
        """Remove a document if every ``expect`` field equals the stored value (retention
        of private records; never for a feed others follow: followers do not see it go).
        Returns whether it was removed."""

    def update(
        self, doc_id: str, changes: Mapping[str, Any], expect: Mapping[str, Any] | None = None
    ) -> Doc | None:
        """Compare-and-set: set top-level ``changes`` only if every ``expect`` field equals
        the stored value. Returns the new document, None when the expectation failed,
        raises ``NotFound`` when there is no such document."""

    def upsert_versioned(self, doc: Mapping[str, Any]) -> bool:
        """Replication write: store ``doc`` if absent or newer than the stored version.
        An older or equal version is a no-op. Returns whether it was applied."""

    def upsert_versioned_many(
        self, docs: Iterable[Mapping[str, Any]], owner: Sequence[str] = ()
    ) -> int:
        """The batch form of ``upsert_versioned``, durable when it returns; the count applied.
        A document refused by another unique index raises ``Conflict`` (SQLite: nothing of
        the batch is applied; Mongo: others may be). Re-applying a batch is a no-op.

        ``owner`` (replication: ``OWNER_FIELDS``) names the fields that say whose a document
        is (the first one set wins, see ``owner_of``): a stored copy is then replaced only by
        a document of the same owner, checked in the same atomic write; a document whose
        stored copy has another owner raises ``Conflict`` naming it (whatever the versions)."""

    def find(
        self, filter: Filter | None = None, sort: Sort | None = None, limit: int | None = None
    ) -> list[Doc]:
        """Equality, ``$in``, ranges and ``$ne`` over declared-index fields; sort; limit.
        Any other field or operator is a programming error: ``ValueError`` naming it."""

    def count(self, filter: Filter | None = None) -> int:
        """How many documents match ``filter`` (same subset as ``find``)."""

    def delete_many(self, filter: Filter) -> int:
        """Remove the documents matching ``filter`` (same subset as ``find``; at least one
        condition); how many. For retention of a service's own bookkeeping: a deleted
        document simply leaves the change feed, so never delete from a published feed."""

    def changes_since(self, seq: int, limit: int = 500) -> list[Doc]:
        """Documents whose ``_seq`` > ``seq``, ascending. Never skips a write that commits
        after a later-numbered one: a reader only sees a prefix of the feed with no gaps
        still being filled."""

    def last_seq(self) -> int:
        """The highest ``_seq`` a reader may see now (0 when empty)."""


class Store(Protocol):
    kind: str  # "sqlite" or "mongodb"

    def collection(self, name: str, indexes: Sequence[Index] = ()) -> Collection:
        """The named collection, created with its indexes on first use."""

    def next_value(self, counter: str, by: int = 1) -> int:
        """Atomically add ``by`` to a named counter and return the new value."""

    def incarnation(self) -> str:
        """This store's incarnation: generated when the store is created, kept in it, and
        changed by ``reincarnate`` after every restore. Feed pages carry it, so a follower
        sees that positions it remembers may have been rolled back."""

    def reincarnate(self) -> str:
        """Give the store a new incarnation (``hallctl restore``); returns it."""

    def ping(self) -> None:
        """Raise ``StoreUnavailable`` when the store cannot be used."""

    def close(self) -> None:
        """Release connections; the store must not be used afterwards."""

    def drop_counters(self, low: str, high: str) -> int:
        """Remove the named counters with ``low <= name < high`` (retention of per-day
        counters: ``("phone:", "phone:2026-11-01")`` removes every ``phone:<day>…`` before
        that day, since a name in that range must start with ``low``); returns how many."""


# --- Rules both adapters enforce, kept here once so they cannot drift apart. ---------------
# Breaking one is a programming error (``ValueError``), never a user's fault.

_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_-]{0,63}\Z")
_FIELD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*\Z")
_SCALARS = (str, int, float, bool, type(None))
# Versions and feed positions stay exact in every store and in JSON (IEEE doubles): a
# replicated record claiming more is refused (sync parks it), never stored or wrapped.
MAX_VERSION = 2**53
MAX_SEQ = 2**53
# The fields that name a replicated record's owner, in order: the site whose service
# recorded it, else its origin (docs/architecture.md, "Replication").
OWNER_FIELDS = ("recorded_at_site", "site_code")
# Fields the port manages; ``_id`` is reserved for the Mongo adapter.
_MANAGED = frozenset({"id", "_id", "version", "_seq"})


def check_name(name: str, what: str = "collection") -> str:
    """A namespace or collection name: also a file and table name, so kept plain."""
    if not isinstance(name, str) or not _NAME.match(name):
        raise ValueError(f"bad {what} name {name!r}: a letter, then letters, digits, _ or -")
    return name


def queryable_fields(indexes: Sequence[Index]) -> frozenset[str]:
    """The fields ``find``, ``count`` and sorts may use in a collection with ``indexes``."""
    declared = {field for index in indexes for field in index.fields}
    for field in declared:
        if not _FIELD.match(field):
            raise ValueError(f"bad index field {field!r}: names joined by dots")
    return BUILTIN_FIELDS | declared


def check_query(filter: Filter | None, sort: Sort | None, allowed: frozenset[str]) -> None:
    """Reject a filter or sort outside the port's subset or over an undeclared field."""
    for field, cond in (filter or {}).items():
        _check_field(field, allowed)
        if not isinstance(cond, Mapping):
            _check_scalar(field, cond)
            continue
        if not cond:
            raise ValueError(f"empty condition on {field!r}")
        for op, value in cond.items():
            if op not in FILTER_OPERATORS:
                raise ValueError(f"unsupported operator {op!r} on {field!r}")
            if op == "$in":
                if not isinstance(value, list | tuple | set | frozenset):
                    raise ValueError(f"$in on {field!r} needs a list")
                for item in value:
                    _check_scalar(field, item)
            elif op == "$ne":
                _check_scalar(field, value)
            elif value is None or not isinstance(value, _SCALARS):
                raise ValueError(f"{op} on {field!r} needs a string or a number")
    for field, direction in sort or ():
        _check_field(field, allowed)
        if direction not in (1, -1):
            raise ValueError(f"sort direction on {field!r} must be 1 or -1")


def check_delete(filter: Filter, allowed: frozenset[str]) -> None:
    """A ``delete_many`` filter: the ``find`` subset, with at least one condition."""
    check_query(filter, None, allowed)
    if not filter:
        raise ValueError("delete_many needs a condition")


def split_doc(doc: Mapping[str, Any], *, versioned: bool = False) -> tuple[str, int, Doc]:
    """``(id, version, other fields)`` of a document to write; ``_seq`` given is ignored.
    ``versioned`` (replication) requires the version; otherwise it defaults to 1."""
    fields = dict(doc)
    doc_id = fields.pop("id", None)
    version = fields.pop("version", None if versioned else 1)
    fields.pop("_seq", None)
    if not isinstance(doc_id, str) or not doc_id:
        raise ValueError("a document needs a non-empty string 'id'")
    if "_id" in fields:
        raise ValueError("'_id' is reserved; use 'id'")
    if isinstance(version, bool) or not isinstance(version, int) or not 1 <= version <= MAX_VERSION:
        raise ValueError(
            f"document {doc_id!r} needs an integer version from 1 to 2^53, not {version!r}"
        )
    return doc_id, version, fields


def owner_of(doc: Mapping[str, Any], fields: Sequence[str]) -> Any:
    """The first of ``fields`` set (not None) in ``doc``, or None."""
    for field in fields:
        value = doc.get(field)
        if value is not None:
            return value
    return None


def owner_conflict(collection: str, refused: Sequence[tuple[str, Any, Any]]) -> Conflict:
    """The refusal of documents ``(id, stored owner, new owner)`` whose stored copies belong
    to another owner."""
    doc_id, stored, new = refused[0]
    more = f"（共 {len(refused)} 条）" if len(refused) > 1 else ""
    return Conflict(
        f"{collection}：记录 {doc_id} 属于站点 {stored}，不能由站点 {new} 的记录覆盖{more}",
        {"owner": [str(item[0]) for item in refused[:20]]},
    )


def owner_query(fields: Sequence[str], owner: Any) -> list[dict[str, Any]]:
    """The ``$or`` clauses (Mongo's query language) matching documents whose
    ``owner_of(doc, fields)`` is ``owner``; ``{field: None}`` also matches a missing field."""
    if owner is None:
        return [dict.fromkeys(fields)]
    return [{**dict.fromkeys(fields[:n]), field: owner} for n, field in enumerate(fields)]


def new_incarnation() -> str:
    return uuid.uuid4().hex


def check_id(doc_id: Any) -> str:
    """An id to look up: a string, never an operator object such as ``{"$ne": None}``."""
    if not isinstance(doc_id, str):
        raise ValueError(f"a document id must be a string, not {type(doc_id).__name__}")
    return doc_id


def check_position(seq: Any, limit: Any) -> tuple[int, int]:
    """A feed position and page size: integers the store can hold."""
    for name, value in (("seq", seq), ("limit", limit)):
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_SEQ:
            raise ValueError(f"{name} must be an integer from 0 to 2^53, not {value!r}")
    return seq, limit


def check_update(changes: Mapping[str, Any], expect: Mapping[str, Any] | None) -> None:
    """``changes`` are top-level fields the caller owns; ``expect`` compares scalars."""
    for key in changes:
        if key in _MANAGED or not isinstance(key, str) or "." in key or key.startswith("$"):
            raise ValueError(f"cannot set {key!r}: top-level fields other than id/version/_seq")
    for key, value in (expect or {}).items():
        if key in ("id", "_id") or "." in key or key.startswith("$"):
            raise ValueError(f"cannot expect on {key!r}")
        _check_scalar(key, value)


def _check_field(field: str, allowed: frozenset[str]) -> None:
    if field not in allowed:
        raise ValueError(
            f"field {field!r} is not indexed here; declare an Index for it "
            f"(queryable: {', '.join(sorted(allowed))})"
        )


def _check_scalar(field: str, value: Any) -> None:
    if not isinstance(value, _SCALARS):
        raise ValueError(f"value for {field!r} must be a string, number, bool or None")
