"""Grafana provisioning: the Prometheus data source and the dashboards folder."""

from __future__ import annotations

from tools.deploy_render.common import HEADER, to_yaml


def grafana_datasource() -> str:
    doc = {
        "apiVersion": 1,
        "datasources": [
            {
                "name": "Prometheus",
                "uid": "hall-prometheus",
                "type": "prometheus",
                "access": "proxy",
                "url": "http://prometheus:9090",
                "isDefault": True,
                "editable": False,
            }
        ],
    }
    return f"# {HEADER}\n" + to_yaml(doc)


def grafana_dashboards_provider() -> str:
    doc = {
        "apiVersion": 1,
        "providers": [
            {
                "name": "hall",
                "folder": "政务服务大厅",
                "type": "file",
                "disableDeletion": True,
                "allowUiUpdates": False,
                "options": {"path": "/var/lib/grafana/dashboards"},
            }
        ],
    }
    return f"# {HEADER}\n" + to_yaml(doc)
