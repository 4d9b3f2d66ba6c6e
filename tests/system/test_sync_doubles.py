"""TEST DOUBLES of the feed contracts sync replicates (docs: /tmp/contracts.md), not the
real ``rating``, ``matters`` and ``queue`` services, which are built elsewhere.

Each double is a minimal ``SiteService`` named like the real one, publishing and accepting
its feeds through the base class (``feed``, ``apply_replicated``), plus test-only RPCs
(``put``, ``seed``, ``count``, ``get``, ``versions``) to make and inspect records.
``matters`` also has the catalog contract (``catalog_changes``, ``apply_catalog``).
``LinkProxy`` is a TCP proxy to cut and restore a site's link to its upstream broker.
Used in-process by tests/service/test_sync*.py and as ``nameko run`` processes by
tests/system/test_sync*.py and bench/sync.py. No tests in this module.
"""

from __future__ import annotations

import socket
import threading
from contextlib import suppress
from datetime import UTC, datetime
from typing import Any

from nameko.rpc import rpc

from services.common import service as base
from services.common.errors import InvalidInput
from services.common.feeds import read_feed


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class FeedDouble(base.SiteService):
    name = "feed-double"

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
                stored = coll.update(doc["id"], {**changes, "updated_at": stamp})
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
    """Test double of matters' feed and catalog contracts."""

    name = "matters"
    feeds = ("application_summaries", "catalog")
    replicated_feeds = ("application_summaries",)

    @rpc
    def catalog_changes(self, since: int = 0, limit: int = 500) -> dict[str, Any]:
        return read_feed(self.runtime.store, ("catalog",), "catalog", since, limit)

    @rpc
    def apply_catalog(self, docs: list[dict[str, Any]]) -> dict[str, int]:
        # Replicated catalog versions enter this site's own catalog feed: they go further down.
        return {"applied": self.runtime.store.collection("catalog").upsert_versioned_many(docs)}


DOUBLES = (RatingDouble, MattersDouble, QueueDouble)


class LinkProxy:
    """A TCP proxy standing in for the WAN link between a site and its upstream broker:
    ``cut()`` drops every connection and refuses new ones, ``restore()`` listens again on
    the same port. Plain threads and sockets (green ones under eventlet's monkey patch)."""

    def __init__(self, target_port: int, target_host: str = "127.0.0.1") -> None:
        self.target = (target_host, target_port)
        probe = socket.socket()
        probe.bind(("127.0.0.1", 0))
        self.port: int = probe.getsockname()[1]
        probe.close()
        self._lock = threading.Lock()
        self._sockets: set[socket.socket] = set()
        self._generation = 0
        self.connections = 0

    @property
    def is_open(self) -> bool:
        return self._generation % 2 == 1

    def restore(self) -> LinkProxy:
        with self._lock:
            if self.is_open:
                return self
            self._generation += 1
            generation = self._generation
        server = socket.socket()
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind(("127.0.0.1", self.port))
        server.listen(64)
        server.settimeout(0.1)
        threading.Thread(target=self._accept, args=(server, generation), daemon=True).start()
        return self

    def cut(self) -> None:
        with self._lock:
            if not self.is_open:
                return
            self._generation += 1
            doomed, self._sockets = self._sockets, set()
        for sock in doomed:
            with suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            with suppress(OSError):
                sock.close()

    def _accept(self, server: socket.socket, generation: int) -> None:
        try:
            while self._generation == generation:
                try:
                    client, _ = server.accept()
                except TimeoutError:
                    continue
                try:
                    upstream = socket.create_connection(self.target, timeout=5)
                except OSError:
                    client.close()
                    continue
                with self._lock:
                    if self._generation != generation:
                        client.close()
                        upstream.close()
                        return
                    self._sockets |= {client, upstream}
                    self.connections += 1
                for src, dst in ((client, upstream), (upstream, client)):
                    src.settimeout(0.2)
                    threading.Thread(
                        target=self._pipe, args=(src, dst, generation), daemon=True
                    ).start()
        finally:
            server.close()

    def _pipe(self, src: socket.socket, dst: socket.socket, generation: int) -> None:
        try:
            while self._generation == generation:
                try:
                    data = src.recv(65536)
                except TimeoutError:
                    continue
                if not data:
                    break
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (src, dst):
                with suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                with suppress(OSError):
                    sock.close()
