"""A site run without systemd, exactly as docs/operations.md (§2.7) says: ``hallctl
site-init`` → ``rabbitmqctl import_definitions --format json < file`` → ``hallctl start`` →
``hallctl check``; then the key check between a town and its county over the real broker:
accepted, then (the county holding another key for the town) refused on a quiet town, and
``hallctl check`` of the town failing with the site and the cause."""

from __future__ import annotations

import contextlib
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Protocol

import amqp
import kombu.pools
import pytest
import requests

import services.common.remote  # noqa: F401  (typed remote errors)
from services.hallctl import cli, configfile, lifecycle, sitedir
from services.hallctl.siteinit import set_child_keys
from services.hallctl.topology import SERVICES
from tests.conftest import free_block, operator_rpc, rabbitmqctl
from tests.system.test_deploy_definitions import import_definitions

pytestmark = pytest.mark.system

COUNTY, TOWN = "421302", "421302101"


def wait_for_login(user: str, password: str, vhost: str, timeout: float = 20) -> None:
    """``import_definitions`` finishes asynchronously: wait until the site's user logs in."""
    deadline = time.monotonic() + timeout
    while True:
        conn = amqp.Connection("127.0.0.1:5672", userid=user, password=password,
                               virtual_host=vhost, connect_timeout=5)  # fmt: skip
        try:
            conn.connect()
            return
        except Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)
        finally:
            conn.collect()


class Run(Protocol):
    """``run(command, *args)``: ``hallctl command --data-dir <data> *args``; its exit code and
    what it printed."""

    def __call__(self, *argv: str) -> tuple[int, str]: ...


# The data directory, the broker name prefix, the first port, and ``run``.
Hall = tuple[Path, str, int, Run]


@pytest.fixture
def hall(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Iterator[Hall]:
    prefix = f"test-nosd-{uuid.uuid4().hex[:6]}-"
    base = free_block()
    data = tmp_path / "hall"

    def run(*argv: str) -> tuple[int, str]:
        code = cli.main([argv[0], "--data-dir", str(data), *argv[1:]])
        return code, capsys.readouterr().out

    try:
        yield data, prefix, base, run
    finally:
        stops = [
            threading.Thread(target=lifecycle.stop, args=(site, service, 20))
            for site in (sitedir.SiteDir(data, code) for code in (TOWN, COUNTY))
            for service in SERVICES
            if site.config_path(service).exists()
        ]
        for thread in stops:
            thread.start()
        for thread in stops:
            thread.join()
        kombu.pools.reset()  # nameko's publishers keep pooled broker connections open
        for code in (COUNTY, TOWN):
            for args in (
                ("delete_vhost", f"{prefix}{code}"),
                ("delete_user", f"{prefix}site-{code}"),
            ):
                with contextlib.suppress(subprocess.CalledProcessError):
                    rabbitmqctl(*args)


def secret(data: Path, name: str) -> str:
    return (data / "secrets" / name).read_text().strip()


def test_site_without_systemd_then_a_refused_key_on_a_quiet_town(hall: Hall) -> None:
    data, prefix, base, run = hall
    # the county, as docs/operations.md §2.7 runs it
    code, out = run("site-init", "--code", COUNTY, "--name", "县中心", "--prefix", prefix,
                    "--base-port", str(base))  # fmt: skip
    assert code == 0, out
    # the town on the same machine (--local), registered at the county
    code, out = run("add-town", "--code", TOWN, "--local", "--name", "镇中心",
                    "--upstream-broker", "127.0.0.1:5672",
                    "--base-port", str(base + 10))  # fmt: skip
    assert code == 0, out
    for path in (
        data / COUNTY / "rabbitmq" / "definitions.json",
        data / COUNTY / "rabbitmq" / f"child-{TOWN}.json",
        data / TOWN / "rabbitmq" / "definitions.json",
    ):
        import_definitions(path)  # as docs/operations.md types it
    for code_ in (COUNTY, TOWN):
        password = secret(data, f"{code_}.broker-password")
        wait_for_login(f"{prefix}site-{code_}", password, f"{prefix}{code_}")

    code, out = run("start", "--site", COUNTY)
    assert code == 0, out
    # the town runs only its sync here: it has nothing to send (a quiet site)
    code, out = run("start", "--site", TOWN, "sync")
    assert code == 0, out
    code, out = run("check", "--site", COUNTY)
    assert code == 0, out
    total = 2 * len(SERVICES)  # /health and rpc site_info of each service
    assert f"{total}/{total} 项正常" in out

    town_sync = configfile.load_config(sitedir.SiteDir(data, TOWN).config_path("sync"))
    with operator_rpc(
        town_sync["AMQP_URI"], timeout=30, key=Path(town_sync["ACCESS_KEY_FILE"])
    ) as rpc:
        answer = rpc.sync.check_key()
        assert answer["ok"] is True, answer
        assert answer["key"] == "current"

        # the county now holds another key for the town (e.g. a rotation finished too early)
        county_sync = sitedir.SiteDir(data, COUNTY).config_path("sync")
        set_child_keys(county_sync, TOWN, ["z" * 32])
        code, out = run("restart", "--site", COUNTY, "sync")
        assert code == 0, out

        pushed = rpc.sync.push_now()["results"]
        assert pushed["key"]["ok"] is False
        assert pushed["key"]["reason"] == "forbidden"
        assert rpc.sync.status()["key"]["ok"] is False

    code, out = run("check", "--site", TOWN, "--timeout", "5")
    assert code == 1
    line = next(ln for ln in out.splitlines() if "check_key" in ln)
    assert line.startswith("✗ sync")
    assert f"站点 {TOWN} 的同步密钥未通过上级站点 {COUNTY} 的核验（forbidden）" in line
    assert f"SYNC.children.{TOWN}" in line
    port = town_sync["WEB_SERVER_ADDRESS"].rsplit(":", 1)[1]
    text = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    assert 'hall_sync_errors_total{direction="key",reason="forbidden"' in text


def test_status_reports_the_services_hallctl_start_started(hall: Hall) -> None:
    """``hallctl status`` finds the processes of ``hallctl start`` (its pid files), not only
    those of a running ``hallctl demo``."""
    data, prefix, base, run = hall
    code, out = run("site-init", "--code", COUNTY, "--name", "县中心", "--prefix", prefix,
                    "--base-port", str(base))  # fmt: skip
    assert code == 0, out
    import_definitions(data / COUNTY / "rabbitmq" / "definitions.json")
    wait_for_login(f"{prefix}site-{COUNTY}", secret(data, f"{COUNTY}.broker-password"),
                   f"{prefix}{COUNTY}")  # fmt: skip
    code, out = run("start", "--site", COUNTY)
    assert code == 0, out

    code, out = run("status")
    assert code == 0, out
    lines = out.splitlines()
    assert len(lines) == len(SERVICES), out
    for line, service in zip(lines, SERVICES, strict=True):
        assert line.startswith(f"✓ {COUNTY}"), line
        assert f" {service} " in line
        assert f":{base + SERVICES.index(service)}" in line

    code, out = run("stop", "--site", COUNTY, "queue")
    assert code == 0, out
    code, out = run("status")
    assert code == 1, out
    assert next(ln for ln in out.splitlines() if " queue " in ln).startswith(f"✗ {COUNTY}")
    assert out.count("✓") == len(SERVICES) - 1
