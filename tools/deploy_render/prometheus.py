"""Prometheus scrape configurations: the demo, Compose, Kubernetes."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from services.hallctl.topology import DEMO_SITES, SERVICES, Layout
from tools.deploy_render.common import CONTAINER_PORT, HEADER, to_yaml


def scrape_config(
    targets: Iterable[tuple[str, str, str, str]], job: str = "hall", rules: str = "rules/*.yml"
) -> dict[str, Any]:
    """``targets``: (host:port, site code, tier, service)."""
    return {
        "global": {"scrape_interval": "15s", "evaluation_interval": "15s"},
        "rule_files": [rules],
        "scrape_configs": [
            {
                "job_name": job,
                "metrics_path": "/metrics",
                # The services label every series with their own `service` and `site`.
                "honor_labels": True,
                "static_configs": [
                    {"targets": [address], "labels": {"site": code, "tier": tier, "service": svc}}
                    for address, code, tier, svc in targets
                ],
            }
        ],
    }


def demo_targets(layout: Layout) -> list[tuple[str, str, str, str]]:
    return [
        (f"127.0.0.1:{layout.port(site, s)}", site.code, site.tier, s)
        for site in DEMO_SITES
        for s in SERVICES
    ]


def prometheus_demo(layout: Layout | None = None) -> str:
    layout = layout or Layout(Path("demo-data"))
    return (
        f"# {HEADER}\n"
        f"# `hallctl demo --base-port {layout.base_port}`: three sites × four services.\n"
        + to_yaml(scrape_config(demo_targets(layout)))
    )


def prometheus_compose_site() -> str:
    targets = [(f"{s}:{CONTAINER_PORT}", "${SITE_CODE}", "site", s) for s in SERVICES]
    doc = scrape_config(targets, rules="/etc/prometheus/rules/*.yml")
    # Compose does not expand variables inside mounted files: the site label comes from the
    # services' own `site` label (honor_labels), the target label is only a fallback.
    for group in doc["scrape_configs"][0]["static_configs"]:
        del group["labels"]["site"]
        del group["labels"]["tier"]
    return f"# {HEADER}\n# deploy/compose/site.yml: the four services of one site.\n" + to_yaml(doc)


def prometheus_compose_three_tier() -> str:
    targets = [
        (f"{s}-{site.tier}:{CONTAINER_PORT}", site.code, site.tier, s)
        for site in DEMO_SITES
        for s in SERVICES
    ]
    return f"# {HEADER}\n# deploy/compose/three-tier.yml.\n" + to_yaml(
        scrape_config(targets, rules="/etc/prometheus/rules/*.yml")
    )


def prometheus_kubernetes() -> str:
    doc = {
        "global": {"scrape_interval": "15s", "evaluation_interval": "15s"},
        "rule_files": ["/etc/prometheus/rules/*.yml"],
        "scrape_configs": [
            {
                "job_name": "hall",
                "honor_labels": True,
                "kubernetes_sd_configs": [{"role": "pod"}],
                "relabel_configs": [
                    {
                        "source_labels": ["__meta_kubernetes_pod_label_app_kubernetes_io_part_of"],
                        "regex": "hall",
                        "action": "keep",
                    },
                    {
                        "source_labels": ["__meta_kubernetes_pod_annotation_prometheus_io_scrape"],
                        "regex": "true",
                        "action": "keep",
                    },
                    {
                        "source_labels": [
                            "__meta_kubernetes_pod_label_app_kubernetes_io_component"
                        ],
                        "target_label": "service",
                    },
                    {"source_labels": ["__meta_kubernetes_namespace"], "target_label": "namespace"},
                    {"source_labels": ["__meta_kubernetes_pod_name"], "target_label": "pod"},
                ],
            }
        ],
    }
    return (
        f"# {HEADER}\n# Kubernetes: every pod of the hall Deployments, found by label.\n"
        + to_yaml(doc)
    )
