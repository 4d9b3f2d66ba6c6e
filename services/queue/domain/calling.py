"""The calling rule (叫号规则): which waiting ticket a window calls next, and the estimate
of a new ticket's wait."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from services.common.clock import parse_iso
from services.queue.domain.categories import Window
from services.queue.domain.records import Estimate
from services.queue.domain.vocabulary import LANE_APPOINTMENT, LANE_GREEN, LANE_NORMAL


def eligible(window: Window, ticket: Mapping[str, Any]) -> bool:
    if ticket.get("state") != "waiting":
        return False
    target = ticket.get("target_window")
    if target is not None:
        return str(target) == window.number
    return window.serves(ticket["category"])


def calling_order(
    window: Window, tickets: Iterable[Mapping[str, Any]], now_ts: float
) -> list[Mapping[str, Any]]:
    """The order in which ``window`` calls the given tickets (ineligible ones are dropped).

    1. Green channel (lane 0): oldest place in time first.
    2. Appointments checked in within their check-in window (lane 1): earliest first.
    3. Everyone else, by weighted longest wait: among the categories the window serves
       (plus tickets transferred to this very window, weight 1 if their category is not
       one of the window's), the category whose first ticket has the largest
       ``weight × seconds waited`` goes next; ties go to the category listed first for the
       window, then to the lower prefix. Within a category: oldest place in time, then id.
    ``now_ts`` is the current epoch time; the order is fully determined by its inputs."""
    pool = [t for t in tickets if eligible(window, t)]

    def by_time(t: Mapping[str, Any]) -> tuple[float, str]:
        return float(t["order_key"]), str(t["id"])

    green = sorted((t for t in pool if t.get("lane") == LANE_GREEN), key=by_time)
    booked = sorted((t for t in pool if t.get("lane") == LANE_APPOINTMENT), key=by_time)
    queues: dict[str, list[Mapping[str, Any]]] = {}
    for t in sorted((t for t in pool if t.get("lane", LANE_NORMAL) == LANE_NORMAL), key=by_time):
        queues.setdefault(t["category"], []).append(t)
    rank = {prefix: i for i, prefix in enumerate(window.weights)}
    heads = dict.fromkeys(queues, 0)
    rest: list[Mapping[str, Any]] = []
    while heads:

        def score(prefix: str) -> tuple[float, int, str]:
            head = queues[prefix][heads[prefix]]
            waited = max(0.0, now_ts - float(head["order_key"]))
            weight = window.weights.get(prefix, 1)
            return (-weight * waited, rank.get(prefix, len(rank)), prefix)

        best = min(heads, key=score)
        rest.append(queues[best][heads[best]])
        heads[best] += 1
        if heads[best] == len(queues[best]):
            del heads[best]
    return [*green, *booked, *rest]


# --- estimates -----------------------------------------------------------------------------


def service_seconds(ticket: Mapping[str, Any]) -> float:
    """How long a completed ticket was served (from start, or from its call)."""
    ended, started = parse_iso(ticket["ended_at"]), parse_iso(ticket["started_at"])
    return max(0.0, (ended - started).total_seconds())


def moving_average(samples: Sequence[float], fallback: float) -> float:
    return sum(samples) / len(samples) if samples else fallback


def add_sample(samples: Sequence[float], value: float, size: int) -> list[float]:
    return [*samples, round(value, 3)][-max(1, size) :]


def estimate_wait(ahead: int, mean_service_s: float, open_windows: int) -> Estimate:
    """Expected wait and a range in minutes: people ahead × mean service time / windows,
    from 0.7× to 1.3× (at least ±2 minutes), rounded outwards to whole minutes."""
    windows = max(1, open_windows)
    expected = ahead * mean_service_s / windows
    spread = max(0.3 * expected, 120.0) if ahead else 0.0
    low = max(0.0, expected - spread)
    high = expected + spread
    return {
        "expected_seconds": round(expected),
        "low_minutes": math.floor(low / 60),
        "high_minutes": math.ceil(high / 60),
    }
