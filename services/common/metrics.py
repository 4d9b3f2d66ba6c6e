"""Prometheus metrics kept in one registry per container.

A registry per container (not the process-global one) lets tests run several services,
and several sites, in one process without metric clashes. Names start with ``hall_``;
labels stay low-cardinality: never a person, ticket or phone.
"""

from __future__ import annotations

from collections.abc import Sequence

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.process_collector import ProcessCollector

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class ServiceMetrics:
    """The registry of one service at one site, with the metrics every service has."""

    def __init__(self, service: str, site_code: str, tier: str, store_kind: str) -> None:
        self.registry = CollectorRegistry()
        self.service = service
        self.site_code = site_code
        ProcessCollector(registry=self.registry)
        info = self.gauge("hall_service_info", "Service identity (always 1)", ["tier", "store"])
        info.labels(**self.site_labels(), tier=tier, store=store_kind).set(1)
        self.rpc_latency = self.histogram(
            "hall_entrypoint_duration_seconds",
            "Time spent in each RPC, HTTP or event entrypoint",
            ["kind", "method"],
            buckets=LATENCY_BUCKETS,
        )
        self.rpc_errors = self.counter(
            "hall_entrypoint_errors_total",
            "Entrypoint calls that ended in an error, by error type",
            ["kind", "method", "error"],
        )
        self.access_refused = self.counter(
            "hall_access_refused_total",
            "RPC calls refused before they ran: no or a bad identity, or not allowed",
            ["method", "reason"],
        )

    # Every metric carries `service` and `site` first, so one Prometheus sees the network.
    def _labels(self, labels: Sequence[str]) -> list[str]:
        return ["service", "site", *labels]

    def counter(self, name: str, doc: str, labels: Sequence[str] = ()) -> Counter:
        return Counter(name, doc, self._labels(labels), registry=self.registry)

    def gauge(self, name: str, doc: str, labels: Sequence[str] = ()) -> Gauge:
        return Gauge(name, doc, self._labels(labels), registry=self.registry)

    def histogram(
        self,
        name: str,
        doc: str,
        labels: Sequence[str] = (),
        buckets: Sequence[float] = LATENCY_BUCKETS,
    ) -> Histogram:
        return Histogram(name, doc, self._labels(labels), buckets=buckets, registry=self.registry)

    def site_labels(self) -> dict[str, str]:
        """Pass as ``metric.labels(**m.site_labels(), other=…)``."""
        return {"service": self.service, "site": self.site_code}

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
