"""Following another service's change feed, durably, from a checkpoint in our own store.

This is how data that must not be lost moves between services (events are only wake-up
hints: docs/architecture.md, "Feeds and outboxes"). The source publishes a store
collection as a feed (``SiteService.feeds``, read with the ``<service>.feed(name, since,
limit)`` RPC); the follower applies each page with an idempotent handler and only then
advances its checkpoint, so a crash between the two replays the page, and replaying
changes nothing.

A page carries the source store's ``incarnation`` (changed by every restore,
``hallctl restore``) and its ``high_water``. A follower that sees another incarnation than
its checkpoint's, or a high-water mark below its checkpoint (the source was rolled back),
starts again from 0: the handlers are idempotent, so reading everything again is safe.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from services.common.errors import Conflict, InvalidInput, NotFound
from services.common.store import Doc, Store
from services.common.store.port import MAX_SEQ

log = logging.getLogger(__name__)

MAX_PAGE = 5000

Fetch = Callable[[int, int], dict[str, Any]]  # (since, limit) -> feed page
Apply = Callable[[list[Doc]], None]


def read_feed(
    store: Store, published: tuple[str, ...], name: str, since: int, limit: int
) -> dict[str, Any]:
    """One page of a published feed: ``{"items", "last_seq", "high_water"}``."""
    if name not in published:
        raise NotFound(f"没有名为 {name} 的数据源", {"name": [f"可用：{', '.join(published)}"]})
    if isinstance(since, bool) or not isinstance(since, int) or not 0 <= since <= MAX_SEQ:
        raise InvalidInput.field("since", "必须是 0 到 2^53 之间的整数")
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_PAGE:
        raise InvalidInput.field("limit", f"必须是 1 到 {MAX_PAGE} 之间的整数")
    collection = store.collection(name)
    items = collection.changes_since(since, limit)
    return {
        "items": items,
        "last_seq": items[-1]["_seq"] if items else since,
        "high_water": collection.last_seq(),
        "incarnation": store.incarnation(),
    }


def rolled_back(page: dict[str, Any], since: int, incarnation: str | None) -> bool:
    """Whether a page read after ``since`` shows that the source was restored since the
    checkpoint was taken (another incarnation, or a high-water mark below ``since``)."""
    found = page.get("incarnation")
    if incarnation is not None and found is not None and found != incarnation:
        return True
    high_water = page.get("high_water")
    return isinstance(high_water, int) and high_water < since


class FeedFollower:
    """Pulls one feed of one source service into this service, page by page."""

    CHECKPOINTS = "checkpoints"

    def __init__(self, store: Store, source: str, feed: str) -> None:
        self.checkpoints = store.collection(self.CHECKPOINTS)
        self.key = f"{source}.{feed}"

    def checkpoint(self) -> int:
        doc = self.checkpoints.get(self.key)
        return int(doc["seq"]) if doc else 0

    def pull(self, fetch: Fetch, apply: Apply, limit: int = 500) -> int:
        """Apply every page available now; returns how many items were applied."""
        applied = 0
        while True:
            doc = self.checkpoints.get(self.key)
            since = int(doc["seq"]) if doc else 0
            page = fetch(since, limit)
            incarnation = page.get("incarnation")
            if since and rolled_back(page, since, doc.get("incarnation") if doc else None):
                log.warning(
                    "feed %s was restored (incarnation %s, high water %s below %s): "
                    "reading it again from 0",
                    self.key,
                    incarnation,
                    page.get("high_water"),
                    since,
                )
                self._advance(since, 0, incarnation)
                continue
            items: list[Doc] = page["items"]
            if not items:
                if doc is not None and incarnation and doc.get("incarnation") != incarnation:
                    self._advance(since, since, incarnation)  # remember the incarnation
                return applied
            apply(items)
            self._advance(since, int(page["last_seq"]), incarnation)
            applied += len(items)
            if len(items) < limit:
                return applied

    def _advance(self, since: int, seq: int, incarnation: Any = None) -> None:
        # Compare-and-set: a concurrent puller that got further first is never moved back.
        changes = {"seq": seq, **({"incarnation": incarnation} if incarnation else {})}
        if self.checkpoints.get(self.key) is None:
            try:
                self.checkpoints.insert({"id": self.key, **changes})
                return
            except Conflict:  # a concurrent puller created it first: compare-and-set below
                pass
        self.checkpoints.update(self.key, changes, expect={"seq": since})
