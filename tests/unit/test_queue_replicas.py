"""Two queue processes on one store (docs/architecture.md, "Service template"; issue 13,
item 3): two ``QueueApp`` objects on one SQLite file, or one MongoDB (mongomock), with
threads taking, calling and completing at once. Only compare-and-set and atomic counters
keep them apart, so the results must be exact: no number twice, no ticket called twice,
one invitation per completed ticket, daily figures that add up."""

import threading
import time
from collections import Counter
from typing import Any

import pytest

from services.common.errors import Conflict
from services.queue.app import QueueApp
from tests.unit.test_queue_hall import SECTION, MakeHall, make_hall

pytestmark = pytest.mark.unit
__all__ = ["make_hall"]  # the fixture, used by name

SLOTS = [f"{h:02d}:{m:02d}" for h in (8, 9, 10, 11, 14, 15, 16) for m in (0, 30)][1:]
TICKETS_PER_KIOSK = 15
KIOSKS = 4  # two in each process


def test_two_processes_take_call_and_complete_with_exact_results(make_hall: MakeHall) -> None:
    halls = [make_hall(), make_hall()]
    halls[0].open_window("1", "S1")
    halls[1].open_window("3", "S3")
    total = TICKETS_PER_KIOSK * KIOSKS
    taken: list[str] = []
    called: list[str] = []
    errors: list[BaseException] = []
    done = threading.Event()

    def kiosk(hall: QueueApp, category: str) -> None:
        try:
            taken.extend(hall.take_ticket(category)["id"] for _ in range(TICKETS_PER_KIOSK))
        except BaseException as exc:  # noqa: BLE001  (asserted on below)
            errors.append(exc)

    def window(hall: QueueApp, number: str) -> None:
        deadline = time.monotonic() + 60
        try:
            while not done.is_set() and time.monotonic() < deadline:
                try:
                    ticket = hall.call_next(number)
                except Conflict:  # the other process holds a ticket at this window
                    time.sleep(0.001)
                    continue
                if ticket is None:
                    time.sleep(0.002)
                    continue
                called.append(ticket["id"])
                hall.start_service(ticket["id"], number)
                hall.complete(ticket["id"], window=number)
                if len(called) == total:
                    done.set()
        except BaseException as exc:  # noqa: BLE001  (asserted on below)
            errors.append(exc)

    threads = [
        threading.Thread(target=kiosk, args=(halls[n % 2], "AC"[n // 2])) for n in range(KIOSKS)
    ] + [
        threading.Thread(target=window, args=(halls[n % 2], number))
        for n, number in enumerate(("1", "1", "3", "3"))
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(taken) == len(set(taken)) == total
    assert sorted(called) == sorted(taken)  # every ticket called once, none twice
    repo = halls[0].repo
    for ticket_id in taken:
        ticket = repo.tickets.get(ticket_id)
        assert ticket is not None
        assert ticket["state"] == "completed"
        actions = Counter(entry["action"] for entry in ticket["history"])
        # a call that lost its window to the same window's other process is undone (Conflict)
        assert actions["call"] - actions["revert_call"] == 1, ticket["history"]
    invitations = repo.invitations.changes_since(0, 1000)
    assert sorted(i["id"] for i in invitations) == sorted(f"ticket:{t}" for t in taken)
    # the figures each process counted in memory, flushed by both, add up exactly
    for hall in halls:
        hall.publish_figures()
    figures = {f["category"]: f for f in repo.figures.changes_since(0, 1000)}
    for prefix in ("A", "C"):
        expected = TICKETS_PER_KIOSK * 2
        assert figures[prefix]["issued"] == expected
        assert figures[prefix]["served"] == expected
        assert figures[prefix]["no_show"] == 0
        stats = repo.day_stats.get(figures[prefix]["id"])
        assert stats is not None
        assert stats["called"] == expected


def test_two_processes_configure_with_expected_versions_one_wins(make_hall: MakeHall) -> None:
    halls = [make_hall(), make_hall()]
    results: list[Any] = []
    barrier = threading.Barrier(2)
    config = {k: v for k, v in SECTION.items() if k != "privacy_salt"}

    def manager(hall: QueueApp, by: str) -> None:
        barrier.wait()
        try:
            results.append(hall.configure({**config, "requeue_behind": 5}, by, 1)["changed_by"])
        except Conflict as exc:
            results.append(exc)

    threads = [threading.Thread(target=manager, args=(h, f"m{n}")) for n, h in enumerate(halls)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(isinstance(r, Conflict) for r in results) == 1
    assert halls[1].configuration()["config_version"] == 2
    assert halls[0].configuration(2)["changed_by"] in ("m0", "m1")


def test_two_processes_booking_and_checking_in_one_phone_at_once(make_hall: MakeHall) -> None:
    """The same phone booking the same category and day in both processes at once gets one
    booking; a booking checked in at both at once gets one ticket; slot seats stay exact."""
    halls = [make_hall(), make_hall()]
    outcomes: list[Any] = []
    for round_ in range(6):
        phone = f"1390000{round_:04d}"
        barrier = threading.Barrier(2)

        def book(
            hall: QueueApp, slot: str, phone: str = phone, barrier: threading.Barrier = barrier
        ) -> None:
            barrier.wait()
            try:
                outcomes.append(hall.book("A", "2026-11-24", slot, phone, "web"))
            except Conflict as exc:
                outcomes.append(exc)

        slots = SLOTS[2 * round_ : 2 * round_ + 2]  # seats are not what is tested here
        pairs = zip(halls, slots, strict=True)
        threads = [threading.Thread(target=book, args=pair) for pair in pairs]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    booked = [o for o in outcomes if isinstance(o, dict)]
    assert len(booked) == 6, outcomes
    seats = sum(s["booked"] for s in halls[0].slots("A", "2026-11-24"))
    assert seats == 6
