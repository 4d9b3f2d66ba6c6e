"""The deployment files cannot run here (no Docker, no cluster, no systemd), so they are
parsed and checked against the code: every service present, probes, limits and graceful
stop set, image, config and metric names consistent with what the services really use."""

from __future__ import annotations

import configparser
import json
import re
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml

from services.common.config import load_site_config
from services.common.uplink import RPC_EXCHANGE
from services.hallctl import configfile
from services.hallctl.broker import (
    SYNC_ROUTING_KEYS,
    child_permission,
    child_topic_permission,
)
from services.hallctl.topology import DEMO_SITES, SERVICES, DemoSite, Layout
from tests.conftest import access_key_file
from tools.deploy_render import common, render

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
TIERS = ("county", "town", "village")


def load(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def load_all(path: Path) -> list[Any]:
    return list(yaml.safe_load_all(path.read_text(encoding="utf-8")))


def test_generated_files_are_up_to_date_with_the_code() -> None:
    stale = render.differences(ROOT, render.render_all())
    assert stale == [], "run: python -m tools.deploy_render"


# --- images ---------------------------------------------------------------------------------


@pytest.mark.parametrize("service", SERVICES)
def test_dockerfile_is_multi_stage_non_root_with_health_check_and_no_backdoor(service: str) -> None:
    text = (DEPLOY / "docker" / f"{service}.Dockerfile").read_text()
    stages = re.findall(r"^FROM \S+ AS (\w+)", text, re.MULTILINE)
    assert stages == ["build", "runtime"]
    assert "COPY pyproject.toml" in text
    assert "pip wheel" in text
    assert re.search(r"^USER 10001", text, re.MULTILINE)
    assert "useradd" in text
    assert "backdoor" not in text.replace("No --backdoor-port", "")
    (health,) = re.findall(r"HEALTHCHECK .*\n\s*CMD (.*)", text)
    assert "/health" in health
    cmd_line = re.search(r"^CMD (\[.*\])$", text, re.MULTILINE)
    assert cmd_line is not None
    cmd = json.loads(cmd_line.group(1))
    assert cmd == [
        "nameko",
        "run",
        "--config",
        "/etc/hall/config.yaml",
        f"services.{service}.service",
    ]
    assert f"COPY deploy/config/{service}.yaml /etc/hall/config.yaml" in text
    ignore = (DEPLOY / "docker" / f"{service}.Dockerfile.dockerignore").read_text()
    assert "!services/**" in ignore


# --- the container config: environment in, a valid site config out -----------------------


SITE_ENV = {
    "SITE_CODE": "421302101201",
    "SITE_TIER": "village",
    "SITE_NAME": "第一街道示范社区便民服务站",
    "SITE_UPSTREAM": "421302101",
    "AMQP_URI": "pyamqp://hall-site-421302101201:pw@rabbitmq:5672/hall-421302101201",
    "UPSTREAM_AMQP_URI": "pyamqp://hall-site-421302101201:pw2@town:5672/hall-421302101",
    "SYNC_KEY": "k" * 32,
    "SYNC_CHILDREN": "{}",
    "MATTERS_PRIVACY_SALT": "m" * 32,
    "QUEUE_PRIVACY_SALT": "",
    "RATING_PRIVACY_SALT": "r" * 32,
}


def section_loads(service: str, config: Mapping[str, Any]) -> None:
    """The service's own loader accepts its section as the container config produces it."""
    section = config.get(service.upper()) or {}
    if service == "sync":
        from services.sync.settings import SyncSettings

        settings = SyncSettings.from_section(section)
        assert settings.key == "k" * 32
        assert settings.children == {}
    elif service == "rating":
        from services.common.site import Tier
        from services.rating.settings import RatingSettings

        assert RatingSettings.from_section(section, Tier.VILLAGE).privacy_salt == "r" * 32
    elif service == "matters":
        from services.common.site import Tier
        from services.matters.settings import MattersSettings

        assert MattersSettings.from_section(section, Tier.VILLAGE).privacy_salt == "m" * 32
    else:
        from services.queue.settings import QueueSettings

        assert QueueSettings.from_section(section).privacy_salt == ""


@pytest.mark.parametrize("service", SERVICES)
def test_container_config_reads_every_value_from_the_environment(
    service: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in SITE_ENV.items():
        monkeypatch.setenv(name, value)
    # mounted from the Secret hall-access-key in a pod; the tests' key file here
    monkeypatch.setenv("ACCESS_KEY_FILE", str(access_key_file()))
    monkeypatch.delenv("STORE_URI", raising=False)
    monkeypatch.delenv("WEB_SERVER_ADDRESS", raising=False)
    config = configfile.load_config(DEPLOY / "config" / f"{service}.yaml")
    site = load_site_config(config, service)
    assert site.identity.code == "421302101201"  # kept as text, leading digits intact
    assert site.identity.upstream == "421302101"
    assert site.store_uri == "sqlite:////var/lib/hall/data"
    assert config["WEB_SERVER_ADDRESS"] == "0.0.0.0:8000"
    section_loads(service, config)
    # every variable the config reads is provided by the k8s ConfigMap or Secret example
    names = set(re.findall(r"\$\{(\w+)", (DEPLOY / "config" / f"{service}.yaml").read_text()))
    for tier in TIERS:
        overlay = load(DEPLOY / "k8s" / "overlays" / tier / "kustomization.yaml")
        literals = {x.split("=")[0] for x in overlay["configMapGenerator"][0]["literals"]}
        example = (DEPLOY / "k8s" / "overlays" / tier / "secrets.env.example").read_text()
        secret = set(re.findall(r"^(\w+)=", example, re.MULTILINE))
        mounted = {"WEB_SERVER_ADDRESS", "CALENDAR_OVERRIDE", "ACCESS_KEY_FILE"}
        missing = names - literals - secret - mounted
        assert not missing, (tier, missing)


# --- compose ----------------------------------------------------------------------------------


def _assert_service_entry(entry: Mapping[str, Any], service: str) -> None:
    assert entry["image"].endswith(f"/hall-{service}:${{HALL_VERSION:-{common.VERSION}}}")
    assert entry["build"]["dockerfile"] == f"deploy/docker/{service}.Dockerfile"
    assert (ROOT / entry["build"]["dockerfile"]).exists()
    assert int(entry["stop_grace_period"].rstrip("s")) >= 30
    assert entry["restart"] == "unless-stopped"
    assert any(v.endswith(":/var/lib/hall/data") for v in entry["volumes"])
    assert entry["depends_on"]


def test_compose_site_has_each_service_as_its_own_compose_service() -> None:
    doc = load(DEPLOY / "compose" / "site.yml")
    assert set(doc["services"]) == {"rabbitmq", *SERVICES, "prometheus", "grafana"}
    for service in SERVICES:
        _assert_service_entry(doc["services"][service], service)
    rabbit = doc["services"]["rabbitmq"]
    assert any(v.endswith(":/etc/rabbitmq/definitions.json:ro") for v in rabbit["volumes"])
    assert any(v.endswith(":/var/lib/rabbitmq") for v in rabbit["volumes"])
    conf = (DEPLOY / "compose" / "rabbitmq" / "rabbitmq.conf").read_text()
    assert "loopback_users.guest = true" in conf
    assert "load_definitions = /etc/rabbitmq/definitions.json" in conf
    prometheus = doc["services"]["prometheus"]
    mounted = [v.split(":")[0] for v in prometheus["volumes"]]
    for source in mounted[:2]:
        assert (DEPLOY / "compose" / source).resolve().exists(), source
    grafana = [v.split(":")[0] for v in doc["services"]["grafana"]["volumes"]][:2]
    for source in grafana:
        assert (DEPLOY / "compose" / source).resolve().is_dir(), source


def test_compose_variants_county_mongodb_and_village_sqlite() -> None:
    county = load(DEPLOY / "compose" / "county.yml")["services"]
    assert "mongodb" in county
    village = load(DEPLOY / "compose" / "village.yml")["services"]
    for service in SERVICES:
        assert county[service]["environment"]["STORE_URI"].startswith("mongodb://mongodb:27017/")
        assert county[service]["depends_on"]["mongodb"]["condition"] == "service_healthy"
        assert village[service]["environment"]["STORE_URI"] == "sqlite:////var/lib/hall/data"
        assert village[service]["volumes"] == [f"{service}-data:/var/lib/hall/data"]


def test_compose_three_tier_has_a_broker_per_site_and_demo_ports() -> None:
    doc = load(DEPLOY / "compose" / "three-tier.yml")
    layout = Layout(Path("/"))
    for site in DEMO_SITES:
        assert f"rabbitmq-{site.tier}" in doc["services"]
        env = (DEPLOY / "compose" / "three-tier" / f"{site.code}.env.example").read_text()
        assert f"SITE_CODE={site.code}\n" in env
        assert f"@rabbitmq-{site.tier}:5672/hall-{site.code}" in env
        for service in SERVICES:
            entry = doc["services"][f"{service}-{site.tier}"]
            _assert_service_entry(entry, service)
            assert entry["ports"] == [f"127.0.0.1:{layout.port(site, service)}:8000"]
            assert entry["env_file"] == [f"./secrets/{site.code}/site.env"]


# --- kubernetes -------------------------------------------------------------------------------


@pytest.mark.parametrize("service", SERVICES)
def test_k8s_base_deployment_has_probes_limits_grace_config_and_secret(service: str) -> None:
    base = DEPLOY / "k8s" / "base" / service
    kustomization = load(base / "kustomization.yaml")
    assert set(kustomization["resources"]) == {"deployment.yaml", "service.yaml"}
    (generator,) = kustomization["configMapGenerator"]
    assert generator["name"] == f"hall-{service}-config"
    assert generator["files"] == ["config.yaml"]
    # the component label reaches the pods: Prometheus' Kubernetes job labels series with it
    assert kustomization["labels"] == [
        {"pairs": {"app.kubernetes.io/component": service}, "includeTemplates": True}
    ]
    k8s_job = load(DEPLOY / "prometheus" / "kubernetes.yml")["scrape_configs"][0]
    assert any(
        r.get("target_label") == "service"
        and r["source_labels"] == ["__meta_kubernetes_pod_label_app_kubernetes_io_component"]
        for r in k8s_job["relabel_configs"]
    )
    assert (base / "config.yaml").read_text() == (DEPLOY / "config" / f"{service}.yaml").read_text()
    deployment = load(base / "deployment.yaml")
    pod = deployment["spec"]["template"]["spec"]
    assert pod["terminationGracePeriodSeconds"] >= 30
    assert pod["securityContext"]["runAsNonRoot"] is True
    (container,) = pod["containers"]
    assert container["image"] == f"hall/hall-{service}:{common.VERSION}"
    assert container["args"][-1] == f"services.{service}.service"
    assert "--backdoor-port" not in container["args"]
    for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
        assert container[probe]["httpGet"] == {"path": "/health", "port": "http"}
    assert container["ports"] == [{"name": "http", "containerPort": 8000}]
    for kind in ("requests", "limits"):
        assert set(container["resources"][kind]) == {"cpu", "memory"}
    sources = {next(iter(s.values()))["name"] for s in container["envFrom"]}
    assert sources == {"hall-site", "hall-site-secrets"}
    assert container["envFrom"][1] == {"secretRef": {"name": "hall-site-secrets"}}
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["config"]["configMap"]["name"] == generator["name"]
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    assert mounts["/etc/hall"] == "config"
    assert mounts["/var/lib/hall/data"] == "data"
    svc = load(base / "service.yaml")
    assert svc["spec"]["selector"] == deployment["spec"]["selector"]["matchLabels"]


@pytest.mark.parametrize("tier", TIERS)
def test_k8s_overlay_per_tier_names_the_site_and_its_storage(tier: str) -> None:
    overlay_dir = DEPLOY / "k8s" / "overlays" / tier
    overlay = load(overlay_dir / "kustomization.yaml")
    site = next(s for s in DEMO_SITES if s.tier == tier)
    for service in SERVICES:
        assert f"../../base/{service}" in overlay["resources"]
    for resource in overlay["resources"]:
        assert (overlay_dir / resource).exists(), resource
    literals = dict(x.split("=", 1) for x in overlay["configMapGenerator"][0]["literals"])
    assert literals == {
        "SITE_CODE": site.code,
        "SITE_TIER": site.tier,
        "SITE_NAME": site.name,
        "SITE_UPSTREAM": site.upstream or "",
    }
    assert overlay["secretGenerator"] == [
        {"name": "hall-site-secrets", "envs": ["secrets.env"]},
        {"name": "hall-access-key", "files": ["hall-access-key=access.key"]},
    ]
    images = {i["name"] for i in overlay["images"]}
    assert images == {f"hall/hall-{s}" for s in SERVICES}
    if tier == "county":
        replicas = {p["target"]["name"]: yaml.safe_load(p["patch"]) for p in overlay["patches"]}
        assert set(replicas) == {f"hall-{s}" for s in common.REPLICA_SAFE}
        assert all(p[0]["value"] >= 2 for p in replicas.values())
        return
    claims = {d["metadata"]["name"] for d in load_all(overlay_dir / "pvc.yaml")}
    for patch in overlay["patches"]:
        ops = load(overlay_dir / patch["path"])
        assert {"op": "replace", "path": "/spec/strategy", "value": {"type": "Recreate"}} in ops
        (volume,) = [o["value"] for o in ops if o["path"].startswith("/spec/template")]
        assert volume["persistentVolumeClaim"]["claimName"] in claims
    assert len(overlay["patches"]) == len(SERVICES)


def scaled_in_overlay(overlay_dir: Path) -> dict[str, int]:
    """Deployment name → replicas, for every patch of the overlay that sets replicas."""
    overlay = load(overlay_dir / "kustomization.yaml")
    found: dict[str, int] = {}
    for patch in overlay.get("patches", []):
        ops = (
            yaml.safe_load(patch["patch"])
            if "patch" in patch
            else load(overlay_dir / patch["path"])
        )
        for op in ops if isinstance(ops, list) else []:
            if op.get("path") == "/spec/replicas":
                found[patch["target"]["name"]] = op["value"]
        if isinstance(ops, dict) and "replicas" in ops.get("spec", {}):  # strategic merge
            found[ops["metadata"]["name"]] = ops["spec"]["replicas"]
    return found


def test_only_services_proven_replica_safe_run_more_than_one_process() -> None:
    """tests/system/test_replicas.py proves a service exact with two processes on one store;
    no overlay or compose file scales a service that test does not prove
    (common.REPLICA_SAFE)."""
    allowed = {f"hall-{s}" for s in common.REPLICA_SAFE}
    assert set(common.REPLICA_SAFE) <= set(SERVICES)
    for service in SERVICES:
        assert load(DEPLOY / "k8s" / "base" / service / "deployment.yaml")["spec"]["replicas"] == 1
    overlays = sorted((DEPLOY / "k8s" / "overlays").iterdir())
    assert [o.name for o in overlays] == sorted(TIERS)
    for overlay_dir in overlays:
        scaled = {name for name, n in scaled_in_overlay(overlay_dir).items() if n > 1}
        assert scaled <= allowed, f"{overlay_dir.name} scales {sorted(scaled - allowed)}"
    for path in sorted((DEPLOY / "compose").rglob("*.yml")):
        for name, svc in (load(path).get("services") or {}).items():
            count = max(svc.get("scale", 1), (svc.get("deploy") or {}).get("replicas", 1))
            assert count == 1 or f"hall-{name}" in allowed, f"{path.name} scales {name}"


# --- systemd ----------------------------------------------------------------------------------


class UnitParser(configparser.ConfigParser):
    """A systemd unit's sections: keys are case-sensitive, as systemd reads them."""

    def optionxform(self, optionstr: str) -> str:
        return optionstr


def unit(path: Path) -> configparser.ConfigParser:
    parser = UnitParser(interpolation=None, strict=True)
    parser.read_string(path.read_text())
    return parser


@pytest.mark.parametrize("service", SERVICES)
def test_systemd_unit_per_service(service: str) -> None:
    u = unit(DEPLOY / "systemd" / f"hall-{service}.service")
    s = u["Service"]
    assert s["Restart"] == "on-failure"
    assert s["User"] == "hall"
    assert int(s["TimeoutStopSec"]) >= 30
    assert s["KillSignal"] == "SIGTERM"
    assert int(s["LimitNOFILE"]) >= 65536  # open board streams must not exhaust the files
    assert s["UMask"] == "0077"  # stores hold personal data
    exec_start = " ".join(s["ExecStart"].replace("\\\n", " ").split())
    assert exec_start.endswith(
        f"--config /var/lib/hall/${{HALL_SITE}}/config/{service}.yaml services.{service}.service"
    )
    assert "backdoor" not in exec_start
    assert "rabbitmq-server.service" in u["Unit"]["After"]
    assert u["Unit"]["PartOf"] == "hall.target"
    assert u["Install"]["WantedBy"] == "hall.target"


def test_systemd_target_groups_the_four_units_and_install_script_is_sound() -> None:
    target = unit(DEPLOY / "systemd" / "hall.target")
    assert set(target["Unit"]["Wants"].split()) == {f"hall-{s}.service" for s in SERVICES}
    script = DEPLOY / "systemd" / "install.sh"
    assert subprocess.run(["bash", "-n", str(script)], check=False).returncode == 0
    text = script.read_text()
    assert "apt-get install" in text
    assert "rabbitmq-server" in text
    assert "import_definitions" in text
    assert "systemctl enable hall.target" in text
    assert "args=(site-init" in text
    assert '-m services.hallctl.cli "${args[@]}"' in text


# --- RabbitMQ definitions ---------------------------------------------------------------------


@pytest.mark.parametrize("site", DEMO_SITES, ids=lambda s: s.code)
def test_rabbitmq_definitions_per_site(site: DemoSite) -> None:
    doc = json.loads((DEPLOY / "rabbitmq" / f"{site.code}.json").read_text())
    assert "guest" not in json.dumps(doc)
    assert doc["vhosts"][0]["name"] == f"hall-{site.code}"
    own = f"hall-site-{site.code}"
    perms = {p["user"]: p for p in doc["permissions"]}
    assert perms[own] == {
        "user": own,
        "vhost": f"hall-{site.code}",
        "configure": ".*",
        "write": ".*",
        "read": ".*",
    }
    children = [s for s in DEMO_SITES if s.upstream == site.code]
    assert len(doc["topic_permissions"]) == len(children)
    for child in children:
        user = f"hall-site-{child.code}"
        vhost = f"hall-{site.code}"
        assert perms[user] == child_permission(user, vhost, child.code)
        topic = next(t for t in doc["topic_permissions"] if t["user"] == user)
        assert topic == child_topic_permission(user, vhost, child.code)
        assert topic["exchange"] == RPC_EXCHANGE
        assert topic["write"] == SYNC_ROUTING_KEYS
        assert SYNC_ROUTING_KEYS == (
            r"^sync\.(ingest|verify_key|reconcile_counts|proxy_outcomes|catalog_changes|site_info)$"
        )
        assert topic["read"].startswith(f"^uplink-{child.code}-")
    quorum = doc["vhosts"][0]["metadata"].get("default_queue_type") == "quorum"
    assert quorum is (site.tier == "county")
    assert bool(doc["policies"]) is quorum


# --- Prometheus and Grafana -------------------------------------------------------------------


def service_metric_names() -> set[str]:
    names: set[str] = set()
    for path in (ROOT / "services").rglob("*.py"):
        if "hallctl" in path.relative_to(ROOT).parts:  # not the checkout's own path
            continue
        names |= set(re.findall(r"\"(hall_[a-z0-9_]+)\"", path.read_text(encoding="utf-8")))
    return names


def referenced_metrics(expr: str) -> set[str]:
    found = set(re.findall(r"\b(hall_[a-z0-9_]+)", expr))
    return {re.sub(r"_(bucket|count|sum)$", "", name) for name in found}


def runbook_anchors() -> set[str]:
    """GitHub's anchors of docs/operations.md's headings that are alert names."""
    text = (ROOT / "docs" / "operations.md").read_text(encoding="utf-8")
    return {h.lower() for h in re.findall(r"^#{2,4} (Hall\w+)\s*$", text, re.MULTILINE)}


def test_demo_scrape_config_covers_every_service_of_every_site() -> None:
    doc = load(DEPLOY / "prometheus" / "prometheus.yml")
    (job,) = doc["scrape_configs"]
    assert job["honor_labels"] is True
    layout = Layout(Path("demo-data"))
    seen = {
        (g["labels"]["site"], g["labels"]["service"]): g["targets"] for g in job["static_configs"]
    }
    assert seen == {
        (site.code, s): [f"127.0.0.1:{layout.port(site, s)}"]
        for site in DEMO_SITES
        for s in SERVICES
    }
    compose = load(DEPLOY / "prometheus" / "compose-site.yml")["scrape_configs"][0]
    assert [g["targets"] for g in compose["static_configs"]] == [[f"{s}:8000"] for s in SERVICES]


def test_alert_rules_cover_the_issue_and_use_metrics_the_services_export() -> None:
    rules = [
        r for g in load(DEPLOY / "prometheus" / "rules" / "hall.yml")["groups"] for r in g["rules"]
    ]
    alerts = {r["alert"]: r for r in rules}
    assert {
        "HallServiceDown",
        "HallSyncBacklogOld",
        "HallSyncFailing",
        "HallRatingCaseOverdue",
        "HallQueueWaitOverTarget",
        "HallApplicationOverdue",
    } <= set(alerts)
    assert "up{" in alerts["HallServiceDown"]["expr"]
    assert "> 3600" in alerts["HallSyncBacklogOld"]["expr"]
    assert "> 900" in alerts["HallSyncFailing"]["expr"]
    exported = service_metric_names()
    for rule in rules:
        missing = referenced_metrics(rule["expr"]) - exported
        assert not missing, (rule["alert"], missing)
        anchor = rule["annotations"]["runbook"].split("#")[1]
        assert anchor in runbook_anchors(), anchor
    tests = load(DEPLOY / "prometheus" / "tests" / "hall.test.yml")
    fired = {
        t["alertname"]
        for case in tests["tests"]
        for t in case["alert_rule_test"]
        if t["exp_alerts"]
    }
    assert fired == set(alerts)


def test_grafana_provisioning_and_dashboards_query_exported_metrics() -> None:
    datasource = load(DEPLOY / "grafana" / "provisioning" / "datasources" / "prometheus.yml")
    uid = datasource["datasources"][0]["uid"]
    provider = load(DEPLOY / "grafana" / "provisioning" / "dashboards" / "hall.yml")
    assert provider["providers"][0]["options"]["path"] == "/var/lib/grafana/dashboards"
    exported = service_metric_names()
    uids = set()
    for name in ("site.json", "county.json"):
        board = json.loads((DEPLOY / "grafana" / "dashboards" / name).read_text())
        uids.add(board["uid"])
        panels = [p for p in board["panels"] if p["type"] != "row"]
        assert len(panels) >= 8
        for panel in panels:
            assert panel["datasource"]["uid"] == uid
            for target in panel["targets"]:
                missing = referenced_metrics(target["expr"]) - exported
                assert not missing, (name, panel["title"], missing)
    assert uids == {"hall-site", "hall-county"}
