"""The gateway's Prometheus series (``hall_gateway_*``; labels: outcome, service — never an
account, an address or a device)."""

from __future__ import annotations

from services.common.metrics import ServiceMetrics


class GatewayMetrics:
    def __init__(self, m: ServiceMetrics) -> None:
        self.labels = m.site_labels()
        self.logins = m.counter(
            "hall_gateway_logins_total",
            "Sign-in attempts by outcome (ok, wrong, locked)",
            ["outcome"],
        )
        self.bridged = m.counter(
            "hall_gateway_bridge_calls_total",
            "Calls bridged to a service, by service and outcome (ok or the error's code)",
            ["target", "outcome"],
        )
