"""Issue 13 for the queue (tests/unit/test_queue_hall.py holds the fixtures): the walk-in
daily cap, site-owned ids, every RPC argument checked before any work (a refusal writes
nothing), and the retention of per-day counters and bookings."""

from datetime import date
from typing import Any

import pytest

from services.common.clock import ManualClock
from services.common.config import ConfigError
from services.common.errors import Conflict, InvalidInput
from services.queue import domain
from services.queue.app import QueueApp
from services.queue.settings import QueueSettings
from tests.unit.test_queue_hall import SECTION, MakeHall, book, hall, make_hall

pytestmark = pytest.mark.unit
__all__ = ["hall", "make_hall"]  # fixtures, used by name

CAPPED: dict[str, Any] = {
    **SECTION,
    "categories": [
        {**SECTION["categories"][0], "daily_cap": 2},
        *SECTION["categories"][1:],
    ],
}


def test_appointments_do_not_use_up_the_walk_in_daily_cap(
    make_hall: MakeHall, clock: ManualClock
) -> None:
    hall = make_hall(CAPPED)
    clock.advance(hours=-1)  # 09:00: the 09:30 slot may check in
    for phone in ("13900000001", "13900000002"):
        hall.check_in(book(hall, phone, slot="09:30")["code"])
    walk_ins = [hall.take_ticket("A")["number"] for _ in range(2)]
    assert walk_ins == ["A003", "A004"]  # numbers are shared, the cap is not
    with pytest.raises(Conflict, match="每日限2个"):
        hall.take_ticket("A")
    # the refusal wrote nothing: neither a number nor a walk-in count was used up
    store = hall.context.store
    day = date(2026, 11, 23)
    assert store.next_value(domain.counter_key(day, "A"), 0) == 4
    assert store.next_value(domain.walk_in_key(day, "A"), 0) == 2


def test_daily_figure_ticket_and_invitation_ids_carry_the_site(
    hall: QueueApp, clock: ManualClock
) -> None:
    hall.open_window("1", "S1")
    taken = hall.take_ticket("A")
    hall.complete(hall.call_next("1")["id"])  # type: ignore[index]
    hall.publish_figures()
    site = hall.site_code
    assert taken["id"].split(":")[0] == site
    for feed in (hall.repo.figures, hall.repo.invitations):
        docs = feed.changes_since(0)
        assert docs
        for doc in docs:
            assert doc["site_code"] == site
            assert site in doc["id"].split(":"), doc["id"]


# --- the boundary: every argument checked before any work -----------------------------------

SURROGATE = "\ud800"


def snapshot(hall: QueueApp) -> dict[str, tuple[int, int]]:
    """Every queue collection's feed position and size, and the day's counters."""
    repo = hall.repo
    collections = (repo.tickets, repo.windows, repo.config, repo.bookings, repo.day_stats)
    shot = {c.name: (c.last_seq(), c.count()) for c in (*collections, repo.figures)}
    store, day = hall.context.store, date(2026, 11, 23)
    for prefix in ("A", "B", "C"):
        shot[prefix] = (
            store.next_value(domain.counter_key(day, prefix), 0),
            store.next_value(domain.walk_in_key(day, prefix), 0),
        )
    return shot


# (method, arguments, the field the refusal names). Each was accepted, answered with
# another error, or raised a raw exception before the boundary was tightened.
REFUSED: list[tuple[str, dict[str, Any], str]] = [
    ("sign_out", {"window": SURROGATE, "staff_id": "S1"}, "window"),
    ("open_window", {"window": SURROGATE, "staff_id": "S1"}, "window"),
    ("close_window", {"window": SURROGATE}, "window"),
    ("call_next", {"window": "1\x00"}, "window"),
    ("pause_window", {"window": "1\u202e"}, "window"),
    ("sign_in", {"window": "-1", "staff_id": "S1"}, "window"),
    ("open_window", {"window": -1}, "window"),
    ("sign_in", {"window": "1", "staff_id": "S 1"}, "staff_id"),
    ("ticket", {"ticket_id": "a b"}, "ticket_id"),
    ("ticket_history", {"ticket_id": "-x"}, "ticket_id"),
    ("hold", {"ticket_id": "TICKET", "by": "值班 长"}, "by"),
    ("cancel", {"ticket_id": "TICKET", "by": "a/b"}, "by"),
    ("complete", {"ticket_id": "TICKET", "application_id": "APP 1"}, "application_id"),
    ("complete", {"ticket_id": "TICKET", "matter_code": "07 01"}, "matter_code"),
    ("take_ticket", {"category": "A", "matter_code": "07/01"}, "matter_code"),
    ("booking", {"booking": "1234 5678"}, "booking"),
    ("configure", {"config": {}, "by": "主任 甲"}, "by"),
    ("configure", {"config": {}, "by": "m", "expected_version": 10**30}, "expected_version"),
    ("configure", {"config": {"staff": [{"id": "S 9", "name": "x"}]}, "by": "m"}, "staff[0].id"),
    (
        "configure",
        {"config": {"categories": [{"prefix": "D", "name": "户籍", "matter_codes": ["a b"]}]}},
        "categories[0].matter_codes[0]",
    ),
    ("configuration", {"version": 2**60}, "version"),
]
# Refused already before (kept so they stay refused): operator objects, control characters,
# and the issue's own examples.
ALREADY: list[tuple[str, dict[str, Any], str]] = [
    ("open_window", {"window": "1", "staff_id": {"$ne": None}}, "staff_id"),
    ("take_ticket", {"category": "\x00"}, "category"),
    ("transfer", {"ticket_id": "TICKET", "category": SURROGATE}, "category"),
    ("check_in", {"booking": {"$ne": None}}, "booking"),
    ("configuration", {"version": "x"}, "version"),
    ("close_day", {"early": "false"}, "early"),
    ("close_day", {"early": 1}, "early"),
    ("slots", {"category": "A", "date": float("nan")}, "date"),
    (
        "book",
        {"category": "A", "date": "2026-11-23", "slot": "10:30", "phone": 13900000001},
        "phone",
    ),
]


@pytest.mark.parametrize(("method", "arguments", "field"), REFUSED + ALREADY)
def test_every_argument_is_checked_before_any_work_and_a_refusal_writes_nothing(
    hall: QueueApp, method: str, arguments: dict[str, Any], field: str
) -> None:
    hall.open_window("1", "S1")
    ticket = hall.take_ticket("A")
    arguments = {k: ticket["id"] if v == "TICKET" else v for k, v in arguments.items()}
    if method == "configure":
        arguments.setdefault("by", "m")
    before = snapshot(hall)
    with pytest.raises(InvalidInput) as refused:
        getattr(hall, method)(**arguments)
    assert field in refused.value.fields, refused.value.fields
    assert all(rule for rules in refused.value.fields.values() for rule in rules)
    assert snapshot(hall) == before


# --- retention of per-day counters and per-phone records -------------------------------------


def test_old_counters_bookings_and_day_stats_are_pruned_with_a_metric(
    make_hall: MakeHall, clock: ManualClock
) -> None:
    hall = make_hall({**CAPPED, "counter_retention_days": 30})
    today = clock.now
    clock.advance(days=-98)  # Monday 2026-08-17, 10:00
    old_day = date(2026, 8, 17)
    hall.take_ticket("A")  # a number and a walk-in count of that day
    booking = book(hall, slot="10:30", day="2026-08-18")
    hall.cancel_booking(booking["id"])
    hall.close_day(early=True)  # the day's stats, published
    clock.set(today)
    current = hall.take_ticket("B")
    kept = book(hall, "13900000009", slot="10:30")
    hall.publish_figures()
    store = hall.context.store
    assert store.next_value(domain.counter_key(old_day, "A"), 0) == 1
    pruned = hall.prune()
    assert pruned == {"counters": 3, "bookings": 1, "day_stats": 1}
    assert hall.prune() == {"counters": 0, "bookings": 0, "day_stats": 0}
    assert store.next_value(domain.counter_key(old_day, "A"), 0) == 0
    assert store.next_value(domain.walk_in_key(old_day, "A"), 0) == 0
    assert store.next_value(domain.slot_key(date(2026, 8, 18), "A", "10:30"), 0) == 0
    assert hall.repo.bookings.get(booking["id"]) is None
    assert hall.repo.day_stats.count() == 1  # today's
    # today's counters, bookings, the tickets and the published figures stay
    assert hall.take_ticket("B")["number"] == "B002"
    assert hall.booking(kept["id"])["state"] == "booked"
    assert hall.repo.tickets.get(current["id"]) is not None
    assert any(f["date"] == "2026-08-17" for f in hall.repo.figures.changes_since(0))
    value = hall.context.metrics.registry.get_sample_value(
        "hall_queue_pruned_total", {"service": "queue", "site": "421302", "kind": "counters"}
    )
    assert value == 3


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("max_streams", 0),
        ("max_streams", 2.5),
        ("counter_retention_days", True),
        ("prune_seconds", 0),
    ],
)
def test_bound_settings_are_checked_at_start(key: str, value: Any) -> None:
    with pytest.raises(ConfigError) as refused:
        QueueSettings.from_section({key: value})
    assert f"QUEUE.{key}" in refused.value.fields


def test_bound_settings_defaults() -> None:
    settings = QueueSettings.from_section({"max_streams": 5})
    assert (settings.max_streams, settings.counter_retention_days) == (5, 90)
    assert settings.board_idle_seconds == 60
