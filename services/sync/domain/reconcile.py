"""Reconciliation: counts of records per origin site per day, compared between a child and
its upstream to find what went missing silently; and the age of a stored moment."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from datetime import UTC, date, datetime, timedelta
from typing import Any

Counts = dict[str, dict[str, int]]  # origin site -> day -> number of records
Digests = dict[str, dict[str, str]]  # origin site -> day -> digest of (id, version)
_DIGEST_BYTES = 16


def day_of(doc: Mapping[str, Any]) -> str:
    """The day a record counts under: its ``date`` (daily figures) or the day it was created."""
    value = doc.get("date") or doc.get("created_at") or ""
    text = str(value)[:10]
    return text if len(text) == 10 else "unknown"


def tally(docs: Iterable[Mapping[str, Any]], first_day: str) -> Counts:
    """Records per origin site per day, from ``first_day`` on."""
    counts: Counts = {}
    for doc in docs:
        day = day_of(doc)
        if day < first_day and day != "unknown":
            continue
        per_day = counts.setdefault(str(doc.get("site_code")), {})
        per_day[day] = per_day.get(day, 0) + 1
    return counts


def digest(pairs: Iterable[tuple[str, int]]) -> str:
    """An order-free digest of ``(record id, version)`` pairs: the XOR of their SHA-256
    hashes (first 16 bytes, hex). Both ends compute it the same way, the child from its
    feed, the upstream from its ledger, so a missed update (same count, older version)
    shows."""
    value = 0
    for record_id, version in pairs:
        data = f"{record_id}\x1f{int(version)}".encode("utf-8", "backslashreplace")
        value ^= int.from_bytes(hashlib.sha256(data).digest()[:_DIGEST_BYTES], "big")
    return f"{value:0{_DIGEST_BYTES * 2}x}"


def tally_digests(docs: Iterable[Mapping[str, Any]], first_day: str) -> Digests:
    """The digest of (id, version) per origin site per day, from ``first_day`` on."""
    pairs: dict[str, dict[str, list[tuple[str, int]]]] = {}
    for doc in docs:
        day = day_of(doc)
        if day < first_day and day != "unknown":
            continue
        per_day = pairs.setdefault(str(doc.get("site_code")), {})
        per_day.setdefault(day, []).append((str(doc.get("id")), int(doc.get("version", 0))))
    return {origin: {d: digest(p) for d, p in days.items()} for origin, days in pairs.items()}


def differences(mine: Digests, theirs: Digests) -> set[tuple[str, str]]:
    """(origin, day) pairs whose digests differ (the upstream answered with digests)."""
    return {
        (origin, day)
        for origin, days in mine.items()
        for day, value in days.items()
        if theirs.get(origin, {}).get(day) != value
    }


def shortfalls(mine: Counts, theirs: Counts) -> set[tuple[str, str]]:
    """(origin, day) pairs for which the upstream holds fewer records than this site."""
    return {
        (origin, day)
        for origin, days in mine.items()
        for day, count in days.items()
        if theirs.get(origin, {}).get(day, 0) < count
    }


def first_day(today: date, days: int) -> str:
    """The first day a reconciliation looks at: ``days`` days back, inclusive of today."""
    return (today - timedelta(days=max(days, 1) - 1)).isoformat()


def age_seconds(stamp: object, now: datetime) -> float | None:
    """Seconds since an ISO-8601 timestamp (UTC when it has no zone), or None when it is
    missing or unreadable."""
    if not isinstance(stamp, str) or not stamp:
        return None
    try:
        moment = datetime.fromisoformat(stamp)
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return max((now - moment).total_seconds(), 0.0)
