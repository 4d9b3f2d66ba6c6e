"""Docker Compose: one site, its county and village variants, the three-tier demo; the
site's environment file and its broker's configuration and definitions."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from services.hallctl.broker import SiteBroker, render, site_definitions
from services.hallctl.topology import DEMO_SITES, SERVICES, DemoSite, Layout
from tools.deploy_render.common import (
    BROKER_NAMES,
    CONTAINER_PORT,
    DATA_DIR,
    GRACE_S,
    HEADER,
    PASSWORD,
    VERSION,
    to_yaml,
)


def _compose_service(
    service: str, site_env: str, broker: str, suffix: str = "", key: str = "hall_access_key"
) -> dict[str, Any]:
    return {
        "image": f"${{HALL_REGISTRY:-hall}}/hall-{service}:${{HALL_VERSION:-{VERSION}}}",
        "build": {"context": "../..", "dockerfile": f"deploy/docker/{service}.Dockerfile"},
        "restart": "unless-stopped",
        "env_file": [site_env],
        "environment": {
            "WEB_SERVER_ADDRESS": f"0.0.0.0:{CONTAINER_PORT}",
        },
        "depends_on": {broker: {"condition": "service_healthy"}},
        "stop_grace_period": f"{GRACE_S}s",
        "volumes": [f"{service}{suffix}-data:{DATA_DIR}"],
        # the site's access key (<data>/secrets/<code>.access-key), at ACCESS_KEY_FILE
        "secrets": [{"source": key, "target": "hall-access-key", "mode": 0o400}],
        "read_only": True,
        "tmpfs": ["/tmp"],  # noqa: S108  (the container's own private tmpfs)
        "security_opt": ["no-new-privileges:true"],
    }


def _rabbitmq(definitions: str, volume: str = "rabbitmq-data") -> dict[str, Any]:
    return {
        "image": "rabbitmq:3.13-alpine",
        "restart": "unless-stopped",
        "hostname": "rabbitmq",
        "volumes": [
            "./rabbitmq/rabbitmq.conf:/etc/rabbitmq/conf.d/20-hall.conf:ro",
            f"{definitions}:/etc/rabbitmq/definitions.json:ro",
            # Durable queues and persistent messages outlive the container.
            f"{volume}:/var/lib/rabbitmq",
        ],
        "healthcheck": {
            "test": ["CMD", "rabbitmq-diagnostics", "-q", "check_port_connectivity"],
            "interval": "10s",
            "timeout": "10s",
            "retries": 12,
        },
    }


def _monitoring(prometheus_config: str) -> dict[str, Any]:
    return {
        "prometheus": {
            "image": "prom/prometheus:v2.53.0",
            "restart": "unless-stopped",
            "command": [
                "--config.file=/etc/prometheus/prometheus.yml",
                "--storage.tsdb.retention.time=30d",
            ],
            "volumes": [
                f"../prometheus/{prometheus_config}:/etc/prometheus/prometheus.yml:ro",
                "../prometheus/rules:/etc/prometheus/rules:ro",
                "prometheus-data:/prometheus",
            ],
            "ports": ["127.0.0.1:9090:9090"],
        },
        "grafana": {
            "image": "grafana/grafana:10.4.5",
            "restart": "unless-stopped",
            "environment": {
                "GF_SECURITY_ADMIN_PASSWORD__FILE": "/run/secrets/grafana_admin_password",
                "GF_USERS_ALLOW_SIGN_UP": "false",
            },
            "secrets": ["grafana_admin_password"],
            "volumes": [
                "../grafana/provisioning:/etc/grafana/provisioning:ro",
                "../grafana/dashboards:/var/lib/grafana/dashboards:ro",
                "grafana-data:/var/lib/grafana",
            ],
            "ports": ["127.0.0.1:3000:3000"],
            "depends_on": ["prometheus"],
        },
    }


def compose_site() -> str:
    services: dict[str, Any] = {"rabbitmq": _rabbitmq("./secrets/definitions.json")}
    for service in SERVICES:
        services[service] = _compose_service(service, "./secrets/site.env", "rabbitmq")
        services[service]["ports"] = [f"127.0.0.1:{8100 + SERVICES.index(service)}:8000"]
    services.update(_monitoring("compose-site.yml"))
    doc = {
        "name": "hall-site",
        "services": services,
        "volumes": {
            **{f"{s}-data": {} for s in SERVICES},
            "rabbitmq-data": {},
            "prometheus-data": {},
            "grafana-data": {},
        },
        "secrets": {
            "grafana_admin_password": {"file": "./secrets/grafana-admin-password"},
            "hall_access_key": {"file": "./secrets/access-key"},
        },
    }
    return (
        f"# {HEADER}\n# One site: RabbitMQ, the four services, Prometheus, Grafana.\n{to_yaml(doc)}"
    )


def compose_county() -> str:
    doc = {
        "services": {
            "mongodb": {
                "image": "mongo:7.0",
                "restart": "unless-stopped",
                "volumes": ["mongodb-data:/data/db"],
                "healthcheck": {
                    "test": ["CMD", "mongosh", "--quiet", "--eval", "db.runCommand('ping').ok"],
                    "interval": "10s",
                    "timeout": "10s",
                    "retries": 12,
                },
            },
            **{
                s: {
                    "environment": {"STORE_URI": "mongodb://mongodb:27017/hall"},
                    "depends_on": {
                        "rabbitmq": {"condition": "service_healthy"},
                        "mongodb": {"condition": "service_healthy"},
                    },
                }
                for s in SERVICES
            },
        },
        "volumes": {"mongodb-data": {}},
    }
    return (
        f"# {HEADER}\n# County variant: the services store in MongoDB (database `hall` of\n"
        f"# this site's own mongod; one collection namespace per service).\n"
        f"# docker compose -f site.yml -f county.yml up -d\n{to_yaml(doc)}"
    )


def compose_village() -> str:
    doc = {
        "services": {
            s: {
                "environment": {"STORE_URI": f"sqlite:///{DATA_DIR}"},
                "volumes": [f"{s}-data:{DATA_DIR}"],
            }
            for s in SERVICES
        },
    }
    return (
        f"# {HEADER}\n# Village variant: each service keeps its SQLite file (WAL) in its own\n"
        f"# volume. docker compose -f site.yml -f village.yml up -d\n{to_yaml(doc)}"
    )


def compose_three_tier() -> str:
    services: dict[str, Any] = {}
    volumes: dict[str, Any] = {}
    for site in DEMO_SITES:
        broker = f"rabbitmq-{site.tier}"
        rabbit = _rabbitmq(f"./secrets/{site.code}/definitions.json", f"{broker}-data")
        rabbit["hostname"] = broker
        services[broker] = rabbit
        volumes[f"{broker}-data"] = {}
        for service in SERVICES:
            name = f"{service}-{site.tier}"
            entry = _compose_service(
                service,
                f"./secrets/{site.code}/site.env",
                broker,
                f"-{site.tier}",
                f"hall_access_key_{site.tier}",
            )
            if site.upstream and service == "sync":
                up = next(s for s in DEMO_SITES if s.code == site.upstream)
                entry["depends_on"][f"rabbitmq-{up.tier}"] = {"condition": "service_healthy"}
            port = Layout(Path("/")).port(site, service)
            entry["ports"] = [f"127.0.0.1:{port}:8000"]
            services[name] = entry
            volumes[f"{service}-{site.tier}-data"] = {}
    services.update(_monitoring("compose-three-tier.yml"))
    volumes.update({"prometheus-data": {}, "grafana-data": {}})
    doc = {
        "name": "hall-three-tier",
        "services": services,
        "volumes": volumes,
        "secrets": {
            "grafana_admin_password": {"file": "./secrets/grafana-admin-password"},
            **{
                f"hall_access_key_{site.tier}": {"file": f"./secrets/{site.code}/access-key"}
                for site in DEMO_SITES
            },
        },
    }
    return (
        f"# {HEADER}\n# County {DEMO_SITES[0].code}, town {DEMO_SITES[1].code} and village "
        f"{DEMO_SITES[2].code}, each with its own broker.\n{to_yaml(doc)}"
    )


def site_env_example(site: DemoSite | None = None) -> str:
    code = site.code if site else "421302101201"
    tier = site.tier if site else "village"
    name = site.name if site else "第一街道示范社区便民服务站"
    upstream = (site.upstream or "") if site else "421302101"
    broker = f"rabbitmq-{site.tier}" if site else "rabbitmq"
    lines = [
        f"# {HEADER}",
        "# Copy to secrets/…/site.env (mode 600). Passwords come from `hallctl site-init`",
        "# (<data>/secrets/<code>.broker-password, .sync-key, .privacy-salt).",
        f"SITE_CODE={code}",
        f"SITE_TIER={tier}",
        f"SITE_NAME={name}",
        f"SITE_UPSTREAM={upstream}",
        f"AMQP_URI={BROKER_NAMES.amqp_uri(code, PASSWORD, f'{broker}:5672', code)}",
    ]
    if upstream:
        up_tier = next((s.tier for s in DEMO_SITES if s.code == upstream), "town")
        host = f"rabbitmq-{up_tier}" if site else "town-broker.example"
        lines += [
            f"UPSTREAM_AMQP_URI={BROKER_NAMES.amqp_uri(code, PASSWORD, f'{host}:5672', upstream)}",
            "SYNC_KEY=CHANGE-ME-at-least-16-characters",
        ]
    else:
        lines += ["UPSTREAM_AMQP_URI=", "SYNC_KEY="]
    lines += [
        "# On a parent: its children's keys, YAML/JSON flow mapping code → [key] ([old, new]",
        '# while rotating), e.g. SYNC_CHILDREN={"421302101201": ["…"]}',
        "SYNC_CHILDREN={}",
        "MATTERS_PRIVACY_SALT=",
        "QUEUE_PRIVACY_SALT=",
        "RATING_PRIVACY_SALT=",
        "",
    ]
    return "\n".join(lines)


def rabbitmq_conf() -> str:
    return "\n".join(
        [
            f"# {HEADER}",
            "# The guest account may log in from localhost only (and definitions create none).",
            "loopback_users.guest = true",
            "load_definitions = /etc/rabbitmq/definitions.json",
            "# Persistent messages and durable queues survive a broker restart.",
            "disk_free_limit.absolute = 1GB",
            "",
        ]
    )


def demo_definitions(site: DemoSite) -> str:
    children = {s.code: None for s in DEMO_SITES if s.upstream == site.code}
    return render(site_definitions(SiteBroker(site.code, None, children), BROKER_NAMES))
