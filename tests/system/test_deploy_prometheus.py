"""Prometheus against the real demo: promtool validates the project's scrape configuration and
alert rules and fires each alert from synthetic series; a real Prometheus (Debian package
``prometheus``, installed by ``scripts/bootstrap.sh --test``) scrapes a running
``hallctl demo`` with the project's scrape configuration and finds the ``hall_`` series of
every service of every site, evaluates the rules, and answers every dashboard query."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml

from bench.support import stop_process
from services.hallctl.topology import DEMO_SITES, SERVICES, Layout
from tests.conftest import free_block, free_port, rabbitmqctl, wait_for_line
from tools.deploy_render.prometheus import demo_targets, scrape_config

pytestmark = pytest.mark.system

ROOT = Path(__file__).resolve().parents[2]
PROMETHEUS_DIR = ROOT / "deploy" / "prometheus"
HALLCTL = str(Path(sys.executable).with_name("hallctl"))


def tool(name: str) -> str:
    path = shutil.which(name)
    assert path, f"{name} is required (apt-get install prometheus; scripts/bootstrap.sh --test)"
    return path


def promtool(*args: str, cwd: Path = PROMETHEUS_DIR) -> str:
    done = subprocess.run(
        [tool("promtool"), *args], capture_output=True, text=True, timeout=60, cwd=cwd
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout + done.stderr


# Debian's build of Prometheus leaves out Kubernetes service discovery, so kubernetes.yml
# (kubernetes_sd_configs) is only parsed by tests/unit/test_deploy_files.py.
@pytest.mark.parametrize("config", ["prometheus.yml", "compose-site.yml", "compose-three-tier.yml"])
def test_promtool_accepts_the_scrape_configurations(config: str) -> None:
    assert "SUCCESS" in promtool("check", "config", config)


def test_promtool_accepts_the_rules_and_fires_every_alert_in_the_rule_tests() -> None:
    out = promtool("check", "rules", "rules/hall.yml")
    rules = yaml.safe_load((PROMETHEUS_DIR / "rules" / "hall.yml").read_text())
    count = sum(len(g["rules"]) for g in rules["groups"])
    assert f"SUCCESS: {count} rules found" in out
    assert "SUCCESS" in promtool("test", "rules", "tests/hall.test.yml")


def test_a_rule_test_fails_when_an_alert_does_not_fire(tmp_path: Path) -> None:
    """The rule tests can fail: the same test with an impossible expectation is refused."""
    tests = yaml.safe_load((PROMETHEUS_DIR / "tests" / "hall.test.yml").read_text())
    tests["rule_files"] = [str(PROMETHEUS_DIR / "rules" / "hall.yml")]
    case = tests["tests"][0]
    case["alert_rule_test"][-1]["exp_alerts"] = []  # HallServiceDown would fire here
    tests["tests"] = [case]
    broken = tmp_path / "broken.test.yml"
    broken.write_text(yaml.safe_dump(tests, allow_unicode=True))
    done = subprocess.run(
        [tool("promtool"), "test", "rules", str(broken)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode != 0
    assert "HallServiceDown" in done.stdout + done.stderr


# --- a real Prometheus against a running demo --------------------------------------------------


@pytest.fixture(scope="module")
def demo_layout(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Layout]:
    prefix = f"test-prom-{uuid.uuid4().hex[:6]}-"
    base = free_block()
    data = tmp_path_factory.mktemp("prom") / "demo"
    args = ["--data-dir", str(data), "--base-port", str(base), "--vhost-prefix", prefix]
    demo = subprocess.Popen(
        [HALLCTL, "demo", *args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        wait_for_line(demo, "按 Ctrl-C 停止", timeout=150)
        yield Layout(data_dir=data, base_port=base, vhost_prefix=prefix)
    finally:
        if demo.poll() is None:
            demo.send_signal(signal.SIGINT)
            try:
                demo.communicate(timeout=60)
            except subprocess.TimeoutExpired:
                demo.kill()
                demo.communicate()
        for site in DEMO_SITES:
            rabbitmqctl("delete_vhost", f"{prefix}{site.code}")
            rabbitmqctl("delete_user", f"{prefix}site-{site.code}")


@pytest.fixture(scope="module")
def prometheus(demo_layout: Layout, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real Prometheus with the project's scrape configuration for this demo's ports."""
    work = tmp_path_factory.mktemp("prometheus")
    config = scrape_config(demo_targets(demo_layout), rules=str(PROMETHEUS_DIR / "rules" / "*.yml"))
    config["global"] = {"scrape_interval": "1s", "evaluation_interval": "1s"}
    path = work / "prometheus.yml"
    path.write_text(yaml.safe_dump(config, allow_unicode=True))
    promtool("check", "config", str(path))
    port = free_port()
    log = (work / "prometheus.log").open("w")
    server = subprocess.Popen(
        [
            tool("prometheus"),
            f"--config.file={path}",
            f"--storage.tsdb.path={work / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if requests.get(f"{url}/-/ready", timeout=2).status_code == 200:
                    break
            except requests.RequestException:
                pass
            assert server.poll() is None, (work / "prometheus.log").read_text()
            time.sleep(0.3)
        else:
            raise AssertionError((work / "prometheus.log").read_text())
        yield url
    finally:
        stop_process(server, timeout=30)
        log.close()


def query(url: str, promql: str) -> list[dict[str, Any]]:
    answer = requests.get(f"{url}/api/v1/query", params={"query": promql}, timeout=10).json()
    assert answer["status"] == "success", (promql, answer)
    result: list[dict[str, Any]] = answer["data"]["result"]
    return result


def wait_for(
    url: str,
    promql: str,
    expected: set[tuple[str, str]],
    key: Callable[[dict[str, str]], tuple[str, str]],
    timeout: float = 60.0,
) -> set[tuple[str, str]]:
    """Poll ``promql`` until the ``key``s of its series include ``expected``; those keys."""
    deadline = time.monotonic() + timeout
    seen: set[tuple[str, str]] = set()
    while time.monotonic() < deadline:
        seen = {key(r["metric"]) for r in query(url, promql)}
        if expected <= seen:
            return seen
        time.sleep(1.0)
    raise AssertionError(f"{promql}: missing {sorted(expected - seen)}")


def test_prometheus_scrapes_the_hall_series_of_every_service_of_every_site(
    prometheus: str,
) -> None:
    expected = {(site.code, service) for site in DEMO_SITES for service in SERVICES}
    wait_for(
        prometheus,
        'count by (site, service) ({__name__=~"hall_.+"})',
        expected,
        lambda m: (m["site"], m["service"]),
    )
    # every target is up, and the identity series says which tier and store each runs
    up = query(prometheus, 'up{job="hall"}')
    assert {(r["metric"]["site"], r["metric"]["service"]) for r in up} == expected
    assert all(r["value"][1] == "1" for r in up)
    info = query(prometheus, "hall_service_info")
    tiers = {r["metric"]["site"]: r["metric"]["tier"] for r in info}
    assert tiers == {site.code: site.tier for site in DEMO_SITES}
    assert {r["metric"]["store"] for r in info} == {"sqlite"}


def test_prometheus_loads_the_alert_rules_and_evaluates_them(prometheus: str) -> None:
    deadline = time.monotonic() + 30
    rules: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        answer = requests.get(f"{prometheus}/api/v1/rules", timeout=10).json()
        rules = [r for g in answer["data"]["groups"] for r in g["rules"]]
        if rules and all(r.get("lastEvaluation", "").startswith("20") for r in rules):
            break
        time.sleep(1.0)
    names = {r["name"] for r in rules}
    expected = {
        r["alert"]
        for g in yaml.safe_load((PROMETHEUS_DIR / "rules" / "hall.yml").read_text())["groups"]
        for r in g["rules"]
    }
    assert names == expected
    assert all(r["health"] == "ok" for r in rules), [r for r in rules if r["health"] != "ok"]
    # a healthy demo fires no service-down alert
    alerts = requests.get(f"{prometheus}/api/v1/alerts", timeout=10).json()["data"]["alerts"]
    assert not [a for a in alerts if a["labels"]["alertname"] == "HallServiceDown"]


def test_every_dashboard_query_is_valid_promql_against_the_demo(prometheus: str) -> None:
    answered = 0
    for name in ("site.json", "county.json"):
        board = json.loads((ROOT / "deploy" / "grafana" / "dashboards" / name).read_text())
        for panel in board["panels"]:
            for target in panel.get("targets", []):
                expr = target["expr"].replace("$site", "421302").replace("$county", "421302")
                query(prometheus, expr)
                answered += 1
    assert answered >= 30
    # the site selector of the dashboards lists the three demo sites
    values = requests.get(f"{prometheus}/api/v1/label/site/values", timeout=10).json()["data"]
    assert {site.code for site in DEMO_SITES} <= set(values)
