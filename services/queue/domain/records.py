"""The queue's stored documents, one ``TypedDict`` each (see store.py for the collections).

Documents read back from the store also carry the port's ``version`` (and ``_seq``);
functions that only read take ``Mapping[str, Any]`` so a stored ``Doc`` passes as is.
"""

from __future__ import annotations

from typing import Any, NotRequired, TypedDict

# An audit entry: ``from`` is a Python keyword, hence the functional form. Besides these,
# an entry may carry ``channel``, ``window``, ``outcome``, ``category`` or ``reason``.
HistoryEntry = TypedDict(
    "HistoryEntry",
    {"at": str, "by": str, "action": str, "from": str | None, "to": str},
)


class Estimate(TypedDict):
    expected_seconds: int
    low_minutes: int
    high_minutes: int


class Ticket(TypedDict):
    """Collection ``tickets``: one visit (号) in one category at one site on one day."""

    id: str
    schema: int
    site_code: str
    date: str
    number: str
    category: str
    issued_category: str
    category_name: str
    channel: str
    priority: str | None
    booking_id: str | None
    lane: int
    order_key: float
    state: str
    target_window: str | None
    window: str | None
    staff_id: str | None
    calls: int
    first_called_at: str | None
    last_called_at: str | None
    started_at: str | None
    ended_at: str | None
    outcome: str | None
    application_id: str | None
    matter_code: str | None
    phone_hash: str | None
    phone_masked: str | None
    requeued: bool
    reason: str | None
    invited: bool | None
    config_version: int
    taken_at: str
    created_at: str
    updated_at: str
    history: list[dict[str, Any]]
    people_ahead_at_issue: NotRequired[int]
    estimate: NotRequired[Estimate]
    waited_seconds: NotRequired[int]
    held_from_window: NotRequired[str | None]


class WindowRecord(TypedDict):
    """Collection ``windows``: the live state of one window (who, open or not, last call)."""

    id: str
    site_code: str
    number: str
    state: str
    staff_id: str | None
    backup: bool
    last_ticket: str | None
    last_number: str | None
    last_call_at: str | None
    announcement: str | None
    pause_reason: str | None
    history: list[dict[str, Any]]
    created_at: str
    updated_at: str


class Booking(TypedDict):
    """Collection ``bookings``: one appointment (预约); the phone only hashed and masked."""

    id: str
    schema: int
    site_code: str
    code: str
    category: str
    category_name: str
    date: str
    slot: str
    phone_hash: str
    phone_masked: str
    channel: str
    state: str
    ticket_id: str | None
    hold: str  # while booked: the phone's claim on its category and day (unique), else the id
    created_at: str
    updated_at: str
    checked_in_at: NotRequired[str | None]
    on_time: NotRequired[bool | None]


class DayStats(TypedDict):
    """Collection ``day_stats`` (private): counts and the wait distribution of one day."""

    id: str
    site_code: str
    date: str
    category: str
    issued: int
    called: int
    served: int
    no_show: int
    within_target: int
    wait_buckets: dict[str, int]
    dirty: NotRequired[bool]


class DailyFigure(TypedDict):
    """Feed ``daily_figures`` (replicated upward): the published figures of one day."""

    id: str
    schema: int
    site_code: str
    date: str
    category: str
    issued: int
    served: int
    no_show: int
    called: NotRequired[int]  # from the dashboard's version on; older children omit them
    within_target: NotRequired[int]
    wait_p50_s: int | None
    wait_p90_s: int | None
    within_target_share: float | None


class ConfigRecord(TypedDict):
    """Collection ``config``: the current configuration (id ``current``) and each version
    (id ``v<n>``)."""

    id: str
    site_code: str
    config: dict[str, Any]
    config_version: int
    created_at: str
    updated_at: str
    changed_by: NotRequired[str]
    seed_digest: NotRequired[str | None]
