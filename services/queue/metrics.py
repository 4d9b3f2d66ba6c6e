"""The queue's Prometheus series (names ``hall_queue_*``; labels: category, channel, state;
never a person, ticket or phone), in the container's registry (services.common.metrics)."""

from __future__ import annotations

from services.common.metrics import ServiceMetrics

WAIT_BUCKETS = (60, 300, 600, 900, 1200, 1800, 2700, 3600, 5400, 7200, 10800)
SERVICE_BUCKETS = (60, 180, 300, 600, 900, 1200, 1800, 2700, 3600, 5400)
ERROR_BUCKETS = (30, 60, 120, 300, 600, 900, 1800, 3600)


class QueueMetrics:
    def __init__(self, m: ServiceMetrics) -> None:
        self.labels = m.site_labels()
        self.waiting = m.gauge("hall_queue_waiting", "Tickets waiting now, today", ["category"])
        self.over_target = m.gauge(
            "hall_queue_wait_over_target",
            "Tickets waiting now that have waited longer than the waiting-time target",
            ["category"],
        )
        self.issued = m.counter(
            "hall_queue_tickets_issued_total", "Tickets issued", ["category", "channel"]
        )
        self.refused = m.counter(
            "hall_queue_tickets_refused_total", "Ticket requests refused", ["category"]
        )
        self.wait = m.histogram(
            "hall_queue_wait_seconds",
            "Wait from taking a ticket to its first call",
            ["category"],
            buckets=WAIT_BUCKETS,
        )
        self.service = m.histogram(
            "hall_queue_service_seconds",
            "Service time from start (or call) to completion",
            ["category"],
            buckets=SERVICE_BUCKETS,
        )
        self.within_target = m.gauge(
            "hall_queue_within_target_ratio",
            "Share of today's called tickets that waited no longer than the target",
            ["category"],
        )
        self.estimate_error = m.histogram(
            "hall_queue_estimate_error_seconds",
            "Absolute difference between the predicted and the actual wait",
            ["category"],
            buckets=ERROR_BUCKETS,
        )
        self.outcomes = m.counter(
            "hall_queue_tickets_closed_total",
            "Tickets reaching a final state",
            ["category", "state"],
        )
        self.windows = m.gauge("hall_queue_windows", "Windows by state", ["state"])
        self.call_conflicts = m.counter(
            "hall_queue_call_conflicts_total",
            "Calls that lost a compare-and-set to another window and took the next ticket",
        )
        self.invitations_pending = m.gauge(
            "hall_queue_invitations_pending",
            "Completed tickets whose evaluation invitation is not yet written",
        )
        self.bookings = m.counter(
            "hall_queue_bookings_total", "Bookings by what became of them", ["category", "state"]
        )

        self.viewers = m.gauge(
            "hall_queue_board_viewers",
            "Board streams and long-polls open now in this process (at most max_streams)",
        )
        self.pruned = m.counter(
            "hall_queue_pruned_total",
            "Per-day counters and past bookings removed after counter_retention_days",
            ["kind"],
        )

    def by_category(self, category: str) -> dict[str, str]:
        """Site labels plus ``category``: pass as ``metric.labels(**metrics.by_category(c))``."""
        return {**self.labels, "category": category}
