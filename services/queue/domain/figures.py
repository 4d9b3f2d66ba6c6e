"""What the queue publishes: daily figures (feed ``daily_figures``, replicated upward) kept
as private day stats, and the evaluation invitation (一次一评) of a completed ticket."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from datetime import date, datetime
from typing import Any

from services.common.clock import iso, parse_iso
from services.common.contracts import EvaluationInvitation
from services.queue.domain.records import DailyFigure, DayStats
from services.queue.domain.vocabulary import WAIT_BUCKET_S

COUNTS = ("issued", "called", "served", "no_show", "within_target")


def stats_id(site_code: str, day: date, prefix: str) -> str:
    return f"{site_code}:{day.isoformat()}:{prefix}"


def empty_stats(site_code: str, day: date, prefix: str) -> DayStats:
    return {
        "id": stats_id(site_code, day, prefix),
        "site_code": site_code,
        "date": day.isoformat(),
        "category": prefix,
        "issued": 0,
        "called": 0,
        "served": 0,
        "no_show": 0,
        "within_target": 0,
        "wait_buckets": {},
    }


def waiting_over_target(
    tickets: Iterable[Mapping[str, Any]], now: datetime, target_s: float
) -> int:
    """How many of these waiting tickets have waited longer than the target (from taking
    the ticket, the original place in time a transfer or hold keeps)."""
    return sum(
        1
        for t in tickets
        if t.get("taken_at") and (now - parse_iso(t["taken_at"])).total_seconds() > target_s
    )


def add_wait(stats: Mapping[str, Any], wait_s: float, target_s: float) -> dict[str, Any]:
    buckets = dict(stats.get("wait_buckets") or {})
    key = str(int(max(0.0, wait_s) // WAIT_BUCKET_S))
    buckets[key] = buckets.get(key, 0) + 1
    return {
        "called": stats.get("called", 0) + 1,
        "within_target": stats.get("within_target", 0) + (1 if wait_s <= target_s else 0),
        "wait_buckets": buckets,
    }


def merge_stats(stats: Mapping[str, Any], delta: Mapping[str, Any]) -> dict[str, Any]:
    """The fields of ``stats`` that ``delta`` changes: counts added, wait buckets merged."""
    merged: dict[str, Any] = {}
    for key in COUNTS:
        if delta.get(key):
            merged[key] = stats.get(key, 0) + delta[key]
    if delta.get("wait_buckets"):
        buckets = dict(stats.get("wait_buckets") or {})
        for key, count in delta["wait_buckets"].items():
            buckets[key] = buckets.get(key, 0) + count
        merged["wait_buckets"] = buckets
    return merged


def bucket_quantile(buckets: Mapping[str, int], q: float) -> int | None:
    """The q-quantile of waits kept in ``WAIT_BUCKET_S`` buckets (upper bucket edge)."""
    total = sum(buckets.values())
    if not total:
        return None
    rank = math.ceil(q * total)
    seen = 0
    for key in sorted(buckets, key=int):
        seen += buckets[key]
        if seen >= rank:
            return (int(key) + 1) * WAIT_BUCKET_S
    return None  # pragma: no cover - rank <= total


def figures(stats: Mapping[str, Any]) -> DailyFigure:
    """The published daily figure (feed ``daily_figures``) from the private day stats."""
    called = stats.get("called", 0)
    buckets = stats.get("wait_buckets") or {}
    return {
        "id": stats["id"],
        "schema": 1,
        "site_code": stats["site_code"],
        "date": stats["date"],
        "category": stats["category"],
        "issued": stats.get("issued", 0),
        "served": stats.get("served", 0),
        "no_show": stats.get("no_show", 0),
        # the counts behind the share, so a parent can add categories and days exactly
        "called": called,
        "within_target": stats.get("within_target", 0),
        "wait_p50_s": bucket_quantile(buckets, 0.5),
        "wait_p90_s": bucket_quantile(buckets, 0.9),
        "within_target_share": round(stats.get("within_target", 0) / called, 4) if called else None,
    }


def site_days(figures: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Daily figures of every category added up per site and day. The share called within
    the target is exact from the counts; a figure from an older child without them makes
    the day's share unknown (None), never a guess."""
    days: dict[tuple[str, str], dict[str, Any]] = {}
    for fig in figures:
        day = days.setdefault(
            (fig["site_code"], fig["date"]),
            {
                "site_code": fig["site_code"],
                "date": fig["date"],
                "issued": 0,
                "served": 0,
                "no_show": 0,
                "called": 0,
                "within_target": 0,
                "exact": True,
            },
        )
        for key in ("issued", "served", "no_show", "called", "within_target"):
            day[key] += int(fig.get(key) or 0)
        if "called" not in fig and fig.get("within_target_share") is not None:
            day["exact"] = False
    rows = []
    for site_day in sorted(days):
        day = days[site_day]
        exact = day.pop("exact")
        called = day["called"]
        share = round(day["within_target"] / called, 4) if called and exact else None
        rows.append({**day, "within_target_share": share})
    return rows


def stats_from_tickets(
    site_code: str, day: date, prefix: str, tickets: Iterable[Mapping[str, Any]], target_s: float
) -> DayStats:
    """Recount a day's stats from its tickets (day close repairs any drift)."""
    stats = empty_stats(site_code, day, prefix)
    for t in tickets:
        if t.get("issued_category", t.get("category")) == prefix:
            stats["issued"] += 1
        if t.get("category") != prefix:
            continue
        if t.get("first_called_at"):
            wait = (parse_iso(t["first_called_at"]) - parse_iso(t["taken_at"])).total_seconds()
            added = add_wait(stats, wait, target_s)
            stats["called"] = added["called"]
            stats["within_target"] = added["within_target"]
            stats["wait_buckets"] = added["wait_buckets"]
        if t.get("state") == "completed":
            stats["served"] += 1
        if t.get("state") == "no_show":
            stats["no_show"] += 1
    return stats


def invitation(
    ticket: Mapping[str, Any], department: str | None, now: datetime
) -> EvaluationInvitation:
    """The evaluation invitation (一次一评) one completed ticket creates, exactly once."""
    return {
        "id": f"ticket:{ticket['id']}",
        "schema": 1,
        "service_ref": {"kind": "ticket", "id": ticket["id"]},
        "site_code": ticket["site_code"],
        "window": ticket.get("window"),
        "staff_id": ticket.get("staff_id"),
        "matter_code": ticket.get("matter_code"),
        "department": department,
        "service_channel": "window",
        "service_ended_at": ticket["ended_at"],
        "created_at": iso(now),
    }
