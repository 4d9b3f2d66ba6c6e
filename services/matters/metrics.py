"""The Prometheus series of matters (docs/architecture.md, "Observability"): deadlines,
the catalog, submissions and completions, and outbox repairs. Labels stay low-cardinality."""

from __future__ import annotations

from services.common.metrics import ServiceMetrics


class MattersMetrics:
    def __init__(self, metrics: ServiceMetrics) -> None:
        m = metrics
        self.site = m.site_labels()
        self.overdue = m.gauge("hall_applications_overdue", "Open applications past their due date")
        self.due_soon = m.gauge(
            "hall_applications_due_soon",
            "Open applications due within MATTERS.due_soon_working_days working days",
        )
        self.suspended = m.gauge(
            "hall_applications_suspended", "Applications whose time limit is suspended"
        )
        self.unpublished = m.gauge(
            "hall_matter_changes_unpublished_overdue",
            "Approved matter changes not published within MATTERS.publish_within_working_days",
        )
        self.catalog = m.gauge("hall_catalog_matters", "Matters in the catalog", ["status"])
        self.submitted = m.counter(
            "hall_applications_submitted_total",
            "Applications submitted, by channel and desk outcome",
            ["channel", "outcome"],
        )
        self.completed = m.counter(
            "hall_applications_completed_total",
            "Applications completed (办结), by channel and whether late",
            ["channel", "overdue"],
        )
        self.proxied = m.counter(
            "hall_applications_proxy_total",
            "代办 applications: forwarded here, received here to handle, outcomes applied here",
            ["step"],
        )
        self.repaired = m.counter(
            "hall_outbox_repaired_total",
            "Outbox records written by the sweep after an interrupted write",
            ["record"],
        )
