"""The queue's repository over the storage port: collections, indexes and the few
multi-step writes (compare-and-set loops) the service needs. The stored documents are
typed in domain/records.py."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping
from typing import Any

from services.common.contracts import EvaluationInvitation
from services.common.errors import Conflict
from services.common.store import Collection, Doc, Index, Store
from services.queue.domain.records import Booking, ConfigRecord, Ticket

TICKETS = "tickets"
WINDOWS = "windows"
CONFIG = "config"
BOOKINGS = "bookings"
DAY_STATS = "day_stats"
DAILY_FIGURES = "daily_figures"
INVITATIONS = "evaluation_invitations"
CURRENT_CONFIG = "current"

_TICKET_INDEXES = (
    # the calling rule: heads of one category's queue, and tickets sent to one window
    Index(("date", "state", "category", "target_window", "lane", "order_key")),
    Index(("date", "state", "target_window", "lane", "order_key")),
    Index(("window", "state")),
    Index(("invited",)),
    Index(("state", "date")),
    Index(("date", "last_called_at")),
    Index(("category", "state", "ended_at")),
)
_BOOKING_INDEXES = (
    Index(("phone_hash", "state")),
    Index(("date",)),
    Index(("date", "state")),
    Index(("code",), unique=True),
    Index(("hold",), unique=True),  # one open booking per phone, category and day
)

CAS_ATTEMPTS = 50


class QueueRepository:
    """One per container; collection handles are opened once."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.tickets: Collection = store.collection(TICKETS, _TICKET_INDEXES)
        self.windows: Collection = store.collection(WINDOWS, (Index(("staff_id",)),))
        self.config: Collection = store.collection(CONFIG)
        self.bookings: Collection = store.collection(BOOKINGS, _BOOKING_INDEXES)
        self.day_stats: Collection = store.collection(
            DAY_STATS, (Index(("dirty",)), Index(("date",)))
        )
        self.figures: Collection = store.collection(DAILY_FIGURES, (Index(("date", "site_code")),))
        self.invitations: Collection = store.collection(INVITATIONS)

    # --- generic helpers ---------------------------------------------------------------

    def modify(
        self,
        collection: Collection,
        doc_id: str,
        change: Callable[[Doc | None], Mapping[str, Any] | None],
        create: Callable[[], Doc] | None = None,
    ) -> Doc | None:
        """Read-modify-write with compare-and-set on ``version``, retried when lost.

        ``change(doc)`` returns the changes to make (or None for none); ``create`` builds
        the document when it does not exist yet."""
        for _ in range(CAS_ATTEMPTS):
            doc = collection.get(doc_id)
            if doc is None:
                if create is None:
                    return None
                with contextlib.suppress(Conflict):  # created concurrently: modify that one
                    collection.insert(create())
                continue
            changes = change(doc)
            if not changes:
                return doc
            updated = collection.update(doc_id, changes, expect={"version": doc["version"]})
            if updated is not None:
                return updated
        raise Conflict(f"{collection.name}：{doc_id} 并发修改过多，请重试")

    @staticmethod
    def insert_once(collection: Collection, doc: Mapping[str, Any]) -> bool:
        """Insert a record with a deterministic id; an existing one is success too."""
        try:
            collection.insert(doc)
        except Conflict:
            return False
        return True

    # --- tickets -------------------------------------------------------------------------

    def queue_heads(
        self, day: str, category: str, limit: int, target_window: str | None = None
    ) -> list[Doc]:
        """The first waiting tickets of one category (not sent to a particular window)."""
        return self.tickets.find(
            {"date": day, "state": "waiting", "category": category, "target_window": target_window},
            sort=[("lane", 1), ("order_key", 1)],
            limit=limit,
        )

    def sent_to_window(self, day: str, window: str, limit: int) -> list[Doc]:
        return self.tickets.find(
            {"date": day, "state": "waiting", "target_window": window},
            sort=[("lane", 1), ("order_key", 1)],
            limit=limit,
        )

    def at_window(self, window: str) -> list[Doc]:
        return self.tickets.find({"window": window, "state": {"$in": ["called", "serving"]}})

    def waiting_keys(self, day: str, category: str) -> list[float]:
        docs = self.tickets.find(
            {"date": day, "state": "waiting", "category": category, "target_window": None},
            sort=[("order_key", 1)],
        )
        return [float(d["order_key"]) for d in docs]

    def people_ahead(self, ticket: Mapping[str, Any], newest: bool = False) -> int:
        """Counted before the ticket is stored: an equal place in time was issued earlier.
        ``newest``: a normal-lane ticket placed now, behind everyone waiting in its category
        (one index-prefix count instead of two range counts)."""
        base = {"date": ticket["date"], "state": "waiting", "category": ticket["category"]}
        if newest:
            return self.tickets.count(base)
        ahead = self.tickets.count({**base, "lane": {"$lt": ticket["lane"]}})
        return ahead + self.tickets.count(
            {**base, "lane": ticket["lane"], "order_key": {"$lte": ticket["order_key"]}}
        )

    def recent_completed(self, category: str, limit: int) -> list[Doc]:
        return self.tickets.find(
            {"category": category, "state": "completed"}, sort=[("ended_at", -1)], limit=limit
        )

    def waiting_count(self, day: str, category: str) -> int:
        return self.tickets.count({"date": day, "state": "waiting", "category": category})

    def waiting(self, day: str, category: str) -> list[Doc]:
        return self.tickets.find({"date": day, "state": "waiting", "category": category})

    def insert_ticket(self, ticket: Ticket) -> Doc:
        """Store a new ticket; a duplicate id (number) raises ``Conflict``, never hidden."""
        return self.tickets.insert(ticket)

    def insert_invitation(self, invitation: EvaluationInvitation) -> bool:
        return self.insert_once(self.invitations, invitation)

    # --- bookings ------------------------------------------------------------------------

    def insert_booking(self, booking: Booking) -> bool:
        return self.insert_once(self.bookings, booking)

    def open_bookings(self, phone_hash: str) -> list[Doc]:
        return self.bookings.find({"phone_hash": phone_hash, "state": "booked"})

    def missed_bookings(self, phone_hash: str) -> list[Doc]:
        return self.bookings.find({"phone_hash": phone_hash, "state": "no_show"})

    def booking_by_ref(self, ref: str) -> Doc | None:
        """A booking by its id or its 8-digit code."""
        doc = self.bookings.get(ref)
        if doc is None:
            found = self.bookings.find({"code": ref}, limit=1)
            doc = found[0] if found else None
        return doc

    # --- configuration -------------------------------------------------------------------

    def insert_config_version(self, record: ConfigRecord) -> bool:
        return self.insert_once(self.config, record)
