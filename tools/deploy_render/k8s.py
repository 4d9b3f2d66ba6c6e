"""Kubernetes: a kustomize base per service and an overlay per tier."""

from __future__ import annotations

from typing import Any

from services.hallctl.topology import DEMO_SITES, SERVICES
from tools.deploy_render.common import (
    BROKER_NAMES,
    CONFIG_PATH,
    CONTAINER_PORT,
    DATA_DIR,
    GRACE_S,
    HEADER,
    IMAGE,
    PASSWORD,
    REPLICA_SAFE,
    REPLICAS,
    VERSION,
    to_yaml,
    to_yaml_docs,
)

# Resources per service: (cpu request, memory request, cpu limit, memory limit).
RESOURCES = {
    "matters": ("100m", "160Mi", "1", "512Mi"),
    "queue": ("100m", "160Mi", "1", "512Mi"),
    "rating": ("100m", "160Mi", "1", "512Mi"),
    "sync": ("200m", "256Mi", "1", "768Mi"),
    "gateway": ("100m", "160Mi", "1", "512Mi"),
}


def k8s_deployment(service: str) -> dict[str, Any]:
    cpu_req, mem_req, cpu_lim, mem_lim = RESOURCES[service]
    labels = {"app.kubernetes.io/name": f"hall-{service}", "app.kubernetes.io/part-of": "hall"}
    probe = {"httpGet": {"path": "/health", "port": "http"}, "timeoutSeconds": 5}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": f"hall-{service}", "labels": labels},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app.kubernetes.io/name": f"hall-{service}"}},
            "strategy": {
                "type": "RollingUpdate",
                "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0},
            },
            "template": {
                "metadata": {
                    "labels": labels,
                    "annotations": {
                        "prometheus.io/scrape": "true",
                        "prometheus.io/port": str(CONTAINER_PORT),
                        "prometheus.io/path": "/metrics",
                    },
                },
                "spec": {
                    "terminationGracePeriodSeconds": GRACE_S,
                    "securityContext": {
                        "runAsNonRoot": True,
                        "runAsUser": 10001,
                        "runAsGroup": 10001,
                        "fsGroup": 10001,
                        "seccompProfile": {"type": "RuntimeDefault"},
                    },
                    "containers": [
                        {
                            "name": service,
                            "image": f"{IMAGE.format(service=service)}:{VERSION}",
                            "args": [
                                "nameko",
                                "run",
                                "--config",
                                CONFIG_PATH,
                                f"services.{service}.service",
                            ],
                            "ports": [{"name": "http", "containerPort": CONTAINER_PORT}],
                            "envFrom": [
                                {"configMapRef": {"name": "hall-site"}},
                                {"secretRef": {"name": "hall-site-secrets"}},
                            ],
                            "env": [
                                {
                                    "name": "WEB_SERVER_ADDRESS",
                                    "value": f"0.0.0.0:{CONTAINER_PORT}",
                                }
                            ],
                            "startupProbe": {**probe, "periodSeconds": 5, "failureThreshold": 36},
                            "readinessProbe": {
                                **probe,
                                "periodSeconds": 10,
                                "failureThreshold": 3,
                            },
                            # /health is 503 while the broker is unreachable; Nameko reconnects
                            # by itself, so restart only after a long outage of the process.
                            "livenessProbe": {**probe, "periodSeconds": 20, "failureThreshold": 9},
                            "lifecycle": {"preStop": {"exec": {"command": ["sleep", "5"]}}},
                            "resources": {
                                "requests": {"cpu": cpu_req, "memory": mem_req},
                                "limits": {"cpu": cpu_lim, "memory": mem_lim},
                            },
                            "securityContext": {
                                "allowPrivilegeEscalation": False,
                                "readOnlyRootFilesystem": True,
                                "capabilities": {"drop": ["ALL"]},
                            },
                            "volumeMounts": [
                                {"name": "config", "mountPath": "/etc/hall", "readOnly": True},
                                {"name": "data", "mountPath": DATA_DIR},
                                {"name": "tmp", "mountPath": "/tmp"},  # noqa: S108  (a private emptyDir)
                                {
                                    "name": "access-key",
                                    "mountPath": "/run/secrets",
                                    "readOnly": True,
                                },
                            ],
                        }
                    ],
                    "volumes": [
                        {"name": "config", "configMap": {"name": f"hall-{service}-config"}},
                        {"name": "data", "emptyDir": {}},
                        {"name": "tmp", "emptyDir": {}},
                        # the site's access key, group-readable by the pod's fsGroup only
                        {
                            "name": "access-key",
                            "secret": {"secretName": "hall-access-key", "defaultMode": 0o440},
                        },
                    ],
                },
            },
        },
    }


def k8s_service(service: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": f"hall-{service}", "labels": {"app.kubernetes.io/part-of": "hall"}},
        "spec": {
            "selector": {"app.kubernetes.io/name": f"hall-{service}"},
            "ports": [{"name": "http", "port": CONTAINER_PORT, "targetPort": "http"}],
        },
    }


def k8s_base_kustomization(service: str) -> dict[str, Any]:
    return {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "resources": ["deployment.yaml", "service.yaml"],
        "configMapGenerator": [{"name": f"hall-{service}-config", "files": ["config.yaml"]}],
        "labels": [{"pairs": {"app.kubernetes.io/component": service}, "includeTemplates": True}],
    }


TIER_SITES = {site.tier: site for site in DEMO_SITES}


def k8s_overlay(tier: str) -> dict[str, Any]:
    site = TIER_SITES[tier]
    sqlite = tier != "county"
    doc: dict[str, Any] = {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "namespace": f"hall-{site.code}",
        "resources": ["namespace.yaml", *[f"../../base/{s}" for s in SERVICES]],
        "configMapGenerator": [
            {
                "name": "hall-site",
                "literals": [
                    f"SITE_CODE={site.code}",
                    f"SITE_TIER={site.tier}",
                    f"SITE_NAME={site.name}",
                    f"SITE_UPSTREAM={site.upstream or ''}",
                ],
            }
        ],
        # secrets.env is written by the operator from secrets.env.example (never committed).
        # access.key is the site's <data>/secrets/<code>.access-key (hallctl site-init).
        "secretGenerator": [
            {"name": "hall-site-secrets", "envs": ["secrets.env"]},
            {"name": "hall-access-key", "files": ["hall-access-key=access.key"]},
        ],
        "images": [{"name": IMAGE.format(service=s), "newTag": VERSION} for s in SERVICES],
    }
    if sqlite:
        doc["resources"].append("pvc.yaml")
        doc["patches"] = [
            {"path": f"sqlite-{s}.yaml", "target": {"kind": "Deployment", "name": f"hall-{s}"}}
            for s in SERVICES
        ]
    else:
        # More than one pod only for the services tests/system/test_replicas.py proves.
        doc["patches"] = [
            {
                "target": {"kind": "Deployment", "name": f"hall-{s}"},
                "patch": to_yaml([{"op": "replace", "path": "/spec/replicas", "value": REPLICAS}]),
            }
            for s in SERVICES
            if s in REPLICA_SAFE
        ]
    return doc


def k8s_sqlite_patch(service: str) -> list[dict[str, Any]]:
    """SQLite: one writer, so one pod, replaced (not surged), on its own volume."""
    return [
        {"op": "replace", "path": "/spec/strategy", "value": {"type": "Recreate"}},
        {
            "op": "replace",
            "path": "/spec/template/spec/volumes/1",
            "value": {
                "name": "data",
                "persistentVolumeClaim": {"claimName": f"hall-{service}-data"},
            },
        },
    ]


def k8s_pvcs(tier: str) -> str:
    size = "2Gi" if tier == "village" else "10Gi"
    return to_yaml_docs(
        {
            "apiVersion": "v1",
            "kind": "PersistentVolumeClaim",
            "metadata": {"name": f"hall-{s}-data"},
            "spec": {
                "accessModes": ["ReadWriteOnce"],
                "resources": {"requests": {"storage": size}},
            },
        }
        for s in SERVICES
    )


def k8s_namespace(tier: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": f"hall-{TIER_SITES[tier].code}"},
    }


def k8s_secrets_example(tier: str) -> str:
    site = TIER_SITES[tier]
    store = (
        "STORE_URI=mongodb://hall:CHANGE-ME@mongodb.hall-db:27017/hall_" + site.code
        if tier == "county"
        else f"STORE_URI=sqlite:///{DATA_DIR}"
    )
    lines = [
        f"# {HEADER}",
        "# Copy to secrets.env (never commit it); kustomize makes the Secret hall-site-secrets.",
        f"AMQP_URI={BROKER_NAMES.amqp_uri(site.code, PASSWORD, 'rabbitmq:5672', site.code)}",
        "UPSTREAM_AMQP_URI="
        + (
            BROKER_NAMES.amqp_uri(
                site.code, PASSWORD, "upstream-broker.example:5672", site.upstream
            )
            if site.upstream
            else ""
        ),
        store,
        "SYNC_KEY=" + ("CHANGE-ME-at-least-16-characters" if site.upstream else ""),
        "SYNC_CHILDREN={}",
        "MATTERS_PRIVACY_SALT=",
        "QUEUE_PRIVACY_SALT=",
        "RATING_PRIVACY_SALT=",
        "",
    ]
    return "\n".join(lines)
