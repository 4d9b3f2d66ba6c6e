"""The sync series of one site (docs/architecture.md, "Observability"), created once per
container on the service's registry."""

from __future__ import annotations

from services.common.metrics import ServiceMetrics


class SyncMetrics:
    def __init__(self, metrics: ServiceMetrics) -> None:
        self.site = metrics.site_labels()
        flow = ["direction", "feed"]
        self.backlog = metrics.gauge(
            "hall_sync_backlog", "Records waiting to be replicated (feed positions)", flow
        )
        self.oldest = metrics.gauge(
            "hall_sync_oldest_unsent_age_seconds",
            "Age of the oldest record not yet replicated",
            flow,
        )
        self.last_success = metrics.gauge(
            "hall_sync_last_success_timestamp", "Unix time of the last successful exchange", flow
        )
        self.parked = metrics.gauge("hall_sync_parked", "Poison records parked, by feed", ["feed"])
        self.records = metrics.counter(
            "hall_sync_records_total", "Records sent up, received from children, applied down", flow
        )
        self.errors = metrics.counter(
            "hall_sync_errors_total",
            "Failed replication attempts, by reason",
            ["direction", "reason"],
        )
        self.refused = metrics.counter(
            "hall_sync_refused_total", "Batches from children refused whole, by reason", ["reason"]
        )
        self.rejected = metrics.counter(
            "hall_sync_rejected_records_total",
            "Records from children rejected as malformed",
            ["feed"],
        )
        self.resent = metrics.counter(
            "hall_sync_resent_total", "Records sent again after reconciliation found gaps", ["feed"]
        )
        self.ledger_pruned = metrics.counter(
            "hall_sync_ledger_pruned_total",
            "Ledger entries forgotten: days older than SYNC.reconcile_days",
            [],
        )
        self.platform_skipped = metrics.counter(
            "hall_sync_platform_skipped_total",
            "Records the platform's coding cannot express (SYNC.platform.profile), skipped",
            ["feed"],
        )
        self.parked_pruned = metrics.counter(
            "hall_sync_parked_pruned_total",
            "Resolved parked records forgotten after SYNC.parked_retention_days",
            [],
        )
