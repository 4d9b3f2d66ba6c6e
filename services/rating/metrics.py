"""The rating service's own Prometheus series (docs/architecture.md, "Observability"),
built on ``services.common.metrics``; labels never name a person, phone or record."""

from __future__ import annotations

from services.common.metrics import ServiceMetrics


class RatingMetrics:
    """Evaluations, refusals, invitations, fold errors, open and overdue cases, reveals."""

    def __init__(self, metrics: ServiceMetrics) -> None:
        self.m = metrics
        self.evaluations = metrics.counter(
            "hall_evaluations_total",
            "Evaluations recorded, by level, channel and outcome",
            ["level", "channel", "outcome"],
        )
        self.refusals = metrics.counter(
            "hall_evaluation_refusals_total",
            "Evaluation submissions refused, by error type",
            ["error"],
        )
        self.invitations = metrics.counter(
            "hall_evaluation_invitations_total",
            "Evaluation invitations received, by source",
            ["source"],
        )
        self.pull_errors = metrics.counter(
            "hall_evaluation_invitation_pull_errors_total",
            "Failed pulls of an invitation feed (retried next tick), by source and reason",
            ["source", "reason"],
        )
        self.fold_errors = metrics.counter(
            "hall_rating_fold_errors_total",
            "Failed folds of new records into the statistics rollups (retried; stats lag)",
        )
        self.cases_open = metrics.gauge(
            "hall_rating_cases_open", "Open bad-rating cases, by state", ["state"]
        )
        self.cases_overdue = metrics.gauge(
            "hall_rating_cases_overdue", "Open bad-rating cases past a deadline, by step", ["step"]
        )
        self.contacts_purged = metrics.counter(
            "hall_rating_contacts_purged_total",
            "Clear rater contacts purged after RATING.contact_retention_days",
        )
        self.counters_pruned = metrics.counter(
            "hall_rating_counters_pruned_total",
            "Per-phone and per-device daily rating counters deleted after "
            "RATING.counter_retention_days",
        )
        self.reveals = metrics.counter(
            "hall_rating_phone_reveals_total",
            "Audited reveals of a rater's phone to a case handler",
        )

    def labels(self, **labels: str) -> dict[str, str]:
        return {**self.m.site_labels(), **labels}
