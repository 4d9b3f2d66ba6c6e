"""The documents sync keeps in its own store (see ``services/sync/store.py``)."""

from __future__ import annotations

from typing import Any, TypedDict


class Checkpoint(TypedDict):
    """``up:<service>.<feed>`` or ``down:<service>.catalog``: a feed position."""

    id: str
    seq: int


class ReceivedMark(TypedDict):
    """``<child>:<service>.<feed>``: the high-water mark held here for a child's feed."""

    id: str
    child: str
    feed: str
    seq: int
    at: str


class LedgerEntry(TypedDict):
    """``<service>.<feed>:<record id>``: what a child delivered, counted by reconciliation."""

    id: str
    version: int
    feed: str
    site_code: str
    day: str
    child: str


class ParkedRecord(TypedDict, total=False):
    """``<feed>:<record id>:<version>``: a poison record left out of replication."""

    id: str
    feed: str
    record_id: str
    record_version: Any
    seq: int | None
    reason: str
    parked_at: str
    record: dict[str, Any]
    _seq: int  # the store's own position: the order of ``parked_records``


class Outcome(TypedDict, total=False):
    """Last success and last error of one exchange (``up:<feed>``, ``down``, ``key``…)."""

    id: str
    last_success: str
    last_error: str
    last_error_reason: str
    last_error_at: str
    unverified_at: str
    note: str
    key_in_use: str | None
    upstream_high_water: int
