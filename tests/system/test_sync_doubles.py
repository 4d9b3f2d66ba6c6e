"""TEST DOUBLES of the feed contracts sync replicates, not the real ``rating``, ``matters``
and ``queue`` services (those are in services/; the system tests of sync,
tests/system/test_sync_network.py, run the real ones).

Each double is a minimal ``SiteService`` named like the real one, publishing and accepting
its feeds through the base class (``feed``, ``apply_replicated``), plus test-only RPCs
(``put``, ``seed``, ``count``, ``get``, ``versions``, ``accept_poison``) to make and inspect
records without the real services' rules. ``matters`` also has the catalog contract
(``catalog_changes``, ``apply_catalog``).

Used by the service tests of sync as in-process containers (``DOUBLES``, in
tests/service/test_sync_service.py, e.g. a poison record the upstream refuses and later
accepts, and tests/service/test_sync_key_check.py), and as a ``nameko run`` process per site
by bench/sync.py (``RatingDouble``). No tests in this module.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from nameko.rpc import rpc

from services.common import service as base
from services.common.access import BASE_ACCESS, OPERATOR, SERVICE, rule
from services.common.errors import InvalidInput
from services.common.feeds import read_feed
from services.common.store import Doc


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


# The test calls as the operator; sync calls the catalog RPCs as itself.
ACCESS = {
    **BASE_ACCESS,
    **dict.fromkeys(["accept_poison", "put", "seed", "count", "get", "versions"], rule(OPERATOR)),
    **dict.fromkeys(
        ["catalog_changes", "apply_catalog", "apply_proxy_outcomes"], rule(OPERATOR, SERVICE)
    ),
}


class FeedDouble(base.SiteService):
    name = "feed-double"
    access = ACCESS

    def store_replicated(self, name: str, docs: list[dict[str, Any]]) -> int:
        # Stands in for the real service's validation at ingest: a poison record is refused
        # (until ``accept_poison`` stands in for an upgrade that accepts it).
        if self.runtime.store.collection("double_settings").get("accept_poison") is None:
            for doc in docs:
                if doc.get("poison"):
                    raise InvalidInput.field("poison", f"记录 {doc['id']} 无法通过校验")
        return super().store_replicated(name, docs)

    @rpc
    def accept_poison(self) -> None:
        self.runtime.store.collection("double_settings").insert({"id": "accept_poison"})

    @rpc
    def put(self, feed: str, docs: list[dict[str, Any]]) -> list[int]:
        """Create or change local records (version managed by the store); their versions."""
        coll = self.runtime.store.collection(feed)
        versions = []
        for doc in docs:
            stamp = now_iso()
            existing = coll.get(doc["id"])
            stored: Doc | None
            if existing is None:
                stored = coll.insert(
                    {
                        "schema": 1,
                        "site_code": self.runtime.identity.code,
                        "created_at": stamp,
                        "updated_at": stamp,
                        **doc,
                    }
                )
            else:
                changes = {k: v for k, v in doc.items() if k not in ("id", "version")}
                updated = coll.update(doc["id"], {**changes, "updated_at": stamp})
                assert updated is not None, "the record was just read"
                stored = updated
            versions.append(stored["version"])
        return versions

    @rpc
    def seed(self, feed: str, n: int, prefix: str, chunk: int = 5000) -> int:
        """``n`` new evaluation-like records ``<prefix>-<i>`` from this site, in bulk."""
        coll = self.runtime.store.collection(feed)
        code = self.runtime.identity.code
        stamp = now_iso()
        for start in range(0, n, chunk):
            coll.insert_many(
                {
                    "id": f"{prefix}-{i}",
                    "schema": 1,
                    "site_code": code,
                    "level": "满意" if i % 7 else "不满意",
                    "real_name": bool(i % 2),
                    "phone_masked": "138****5678",
                    "window": str(i % 12 + 1),
                    "created_at": stamp,
                    "updated_at": stamp,
                }
                for i in range(start, min(start + chunk, n))
            )
        return n

    @rpc
    def count(self, feed: str) -> int:
        return self.runtime.store.collection(feed).count()

    @rpc
    def get(self, feed: str, doc_id: str) -> dict[str, Any] | None:
        return self.runtime.store.collection(feed).get(doc_id)

    @rpc
    def versions(self, feed: str) -> dict[str, int]:
        """Every record's version, by id (the whole collection, for assertions)."""
        coll = self.runtime.store.collection(feed)
        found: dict[str, int] = {}
        seq = 0
        while page := coll.changes_since(seq, 5000):
            for doc in page:
                assert doc["id"] not in found, f"{doc['id']} twice in the feed"
                found[doc["id"]] = doc["version"]
            seq = page[-1]["_seq"]
        return found


class RatingDouble(FeedDouble):
    """Test double of rating's feed contract: ``evaluations`` and ``cases``."""

    name = "rating"
    feeds = ("evaluations", "cases")
    replicated_feeds = ("evaluations", "cases")


class QueueDouble(FeedDouble):
    """Test double of queue's feed contract: ``daily_figures``."""

    name = "queue"
    feeds = ("daily_figures",)
    replicated_feeds = ("daily_figures",)


class MattersDouble(FeedDouble):
    """Test double of matters' feed, catalog and 代办 contracts (requests up, outcomes down:
    stored as they come, like a site they pass through)."""

    name = "matters"
    feeds = ("application_summaries", "catalog", "proxy_requests", "proxy_outcomes")
    replicated_feeds = ("application_summaries", "proxy_requests")

    @rpc
    def apply_proxy_outcomes(self, docs: list[dict[str, Any]]) -> dict[str, int]:
        outcomes = self.runtime.store.collection("proxy_outcomes")
        return {"applied": outcomes.upsert_versioned_many(docs)}

    @rpc
    def catalog_changes(self, since: int = 0, limit: int = 500) -> dict[str, Any]:
        return read_feed(self.runtime.store, ("catalog",), "catalog", since, limit)

    @rpc
    def apply_catalog(self, docs: list[dict[str, Any]]) -> dict[str, int]:
        # Replicated catalog versions enter this site's own catalog feed: they go further down.
        return {"applied": self.runtime.store.collection("catalog").upsert_versioned_many(docs)}


DOUBLES = (RatingDouble, MattersDouble, QueueDouble)
