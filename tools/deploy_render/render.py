"""Every generated file under ``deploy/``, and which committed ones are stale."""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from pathlib import Path

from services.hallctl.topology import DEMO_SITES, SERVICES
from tools.deploy_render.common import to_yaml
from tools.deploy_render.compose import (
    compose_county,
    compose_site,
    compose_three_tier,
    compose_village,
    demo_definitions,
    rabbitmq_conf,
    site_env_example,
)
from tools.deploy_render.containers import container_config, dockerfile, dockerignore
from tools.deploy_render.dashboards import county_dashboard, render_dashboard, site_dashboard
from tools.deploy_render.grafana import grafana_dashboards_provider, grafana_datasource
from tools.deploy_render.k8s import (
    k8s_base_kustomization,
    k8s_deployment,
    k8s_namespace,
    k8s_overlay,
    k8s_pvcs,
    k8s_secrets_example,
    k8s_service,
    k8s_sqlite_patch,
)
from tools.deploy_render.prometheus import (
    prometheus_compose_site,
    prometheus_compose_three_tier,
    prometheus_demo,
    prometheus_kubernetes,
)
from tools.deploy_render.systemd import systemd_target, systemd_unit

REPO = Path(__file__).resolve().parents[2]


def render_all() -> dict[str, str]:
    files: dict[str, str] = {}
    for service in SERVICES:
        files[f"deploy/config/{service}.yaml"] = container_config(service)
        files[f"deploy/docker/{service}.Dockerfile"] = dockerfile(service)
        files[f"deploy/docker/{service}.Dockerfile.dockerignore"] = dockerignore()
        base = f"deploy/k8s/base/{service}"
        files[f"{base}/kustomization.yaml"] = to_yaml(k8s_base_kustomization(service))
        files[f"{base}/deployment.yaml"] = to_yaml(k8s_deployment(service))
        files[f"{base}/service.yaml"] = to_yaml(k8s_service(service))
        files[f"{base}/config.yaml"] = container_config(service)
        files[f"deploy/systemd/hall-{service}.service"] = systemd_unit(service)
    files["deploy/systemd/hall.target"] = systemd_target()
    files["deploy/compose/site.yml"] = compose_site()
    files["deploy/compose/county.yml"] = compose_county()
    files["deploy/compose/village.yml"] = compose_village()
    files["deploy/compose/three-tier.yml"] = compose_three_tier()
    files["deploy/compose/site.env.example"] = site_env_example()
    for site in DEMO_SITES:
        files[f"deploy/compose/three-tier/{site.code}.env.example"] = site_env_example(site)
        files[f"deploy/rabbitmq/{site.code}.json"] = demo_definitions(site)
    files["deploy/compose/rabbitmq/rabbitmq.conf"] = rabbitmq_conf()
    for tier in ("county", "town", "village"):
        overlay = f"deploy/k8s/overlays/{tier}"
        files[f"{overlay}/kustomization.yaml"] = to_yaml(k8s_overlay(tier))
        files[f"{overlay}/namespace.yaml"] = to_yaml(k8s_namespace(tier))
        files[f"{overlay}/secrets.env.example"] = k8s_secrets_example(tier)
        if tier != "county":
            files[f"{overlay}/pvc.yaml"] = k8s_pvcs(tier)
            for s in SERVICES:
                files[f"{overlay}/sqlite-{s}.yaml"] = to_yaml(k8s_sqlite_patch(s))
    files["deploy/prometheus/prometheus.yml"] = prometheus_demo()
    files["deploy/prometheus/compose-site.yml"] = prometheus_compose_site()
    files["deploy/prometheus/compose-three-tier.yml"] = prometheus_compose_three_tier()
    files["deploy/prometheus/kubernetes.yml"] = prometheus_kubernetes()
    files["deploy/grafana/provisioning/datasources/prometheus.yml"] = grafana_datasource()
    files["deploy/grafana/provisioning/dashboards/hall.yml"] = grafana_dashboards_provider()
    files["deploy/grafana/dashboards/site.json"] = render_dashboard(site_dashboard())
    files["deploy/grafana/dashboards/county.json"] = render_dashboard(county_dashboard())
    return files


def differences(root: Path, files: Mapping[str, str]) -> list[str]:
    return [
        path
        for path, text in files.items()
        if not (root / path).exists() or (root / path).read_text(encoding="utf-8") != text
    ]


def main(argv: list[str] | None = None) -> int:
    cli = argparse.ArgumentParser(description="Render the generated files under deploy/.")
    cli.add_argument("--root", type=Path, default=REPO)
    cli.add_argument("--check", action="store_true", help="only report stale files")
    args = cli.parse_args(argv)
    files = render_all()
    stale = differences(args.root, files)
    if args.check:
        for path in stale:
            print(f"stale: {path}")
        return 1 if stale else 0
    for path in stale:
        target = args.root / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(files[path], encoding="utf-8")
        print(f"wrote {path}")
    return 0
