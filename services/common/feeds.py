"""Following another service's change feed, durably, from a checkpoint in our own store.

This is how data that must not be lost moves between services (DESIGN §3: events are
only wake-up hints). The source publishes a store collection as a feed (``SiteService.feeds``,
read with the ``<service>.feed(name, since, limit)`` RPC); the follower applies each page
with an idempotent handler and only then advances its checkpoint, so a crash between the
two replays the page, and replaying changes nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from services.common.errors import Conflict, InvalidInput, NotFound
from services.common.store import Doc, Store

MAX_PAGE = 5000

Fetch = Callable[[int, int], dict[str, Any]]  # (since, limit) -> feed page
Apply = Callable[[list[Doc]], None]


def read_feed(
    store: Store, published: tuple[str, ...], name: str, since: int, limit: int
) -> dict[str, Any]:
    """One page of a published feed: ``{"items", "last_seq", "high_water"}``."""
    if name not in published:
        raise NotFound(f"没有名为 {name} 的数据源", {"name": [f"可用：{', '.join(published)}"]})
    if not isinstance(since, int) or since < 0:
        raise InvalidInput.field("since", "必须是非负整数")
    if not isinstance(limit, int) or not 1 <= limit <= MAX_PAGE:
        raise InvalidInput.field("limit", f"必须是 1 到 {MAX_PAGE} 之间的整数")
    collection = store.collection(name)
    items = collection.changes_since(since, limit)
    return {
        "items": items,
        "last_seq": items[-1]["_seq"] if items else since,
        "high_water": collection.last_seq(),
    }


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
            since = self.checkpoint()
            page = fetch(since, limit)
            items: list[Doc] = page["items"]
            if not items:
                return applied
            apply(items)
            self._advance(since, int(page["last_seq"]))
            applied += len(items)
            if len(items) < limit:
                return applied

    def _advance(self, since: int, seq: int) -> None:
        # Compare-and-set: a concurrent puller that got further first is never moved back.
        if self.checkpoints.get(self.key) is None:
            try:
                self.checkpoints.insert({"id": self.key, "seq": seq})
                return
            except Conflict:  # a concurrent puller created it first: compare-and-set below
                pass
        self.checkpoints.update(self.key, {"seq": seq}, expect={"seq": since})
