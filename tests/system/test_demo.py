"""`hallctl demo` brings up three healthy sites as real processes, answers `hallctl status`,
stops cleanly on Ctrl-C, and keeps its data across restarts."""

import json
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from amqp.exceptions import AccessRefused

from services.common.store import open_store
from services.hallctl.topology import DEMO_SITES, SERVICES
from services.sync.adapters.upstream import UplinkRpcProxy
from tests.conftest import free_block, rabbitmqctl, wait_for_line

pytestmark = pytest.mark.system

HALLCTL = str(Path(sys.executable).with_name("hallctl"))


@pytest.fixture
def demo_args(tmp_path: Path) -> Iterator[list[str]]:
    prefix = f"test-demo-{uuid.uuid4().hex[:6]}-"
    base = free_block()
    yield ["--data-dir", str(tmp_path / "demo"), "--base-port", str(base), "--vhost-prefix", prefix]
    for site in DEMO_SITES:
        rabbitmqctl("delete_vhost", f"{prefix}{site.code}")
        rabbitmqctl("delete_user", f"{prefix}site-{site.code}")


def assert_child_reaches_only_sync_upstream(demo_args: list[str]) -> None:
    """The town's broker user may call the county's sync uplink calls, and nothing else there."""
    prefix, data = demo_args[5], Path(demo_args[1])
    password = (data / "secrets" / "421302101.broker-password").read_text().strip()
    uri = f"pyamqp://{prefix}site-421302101:{password}@127.0.0.1:5672/{prefix}421302"
    # Through the town's own uplink client: its reply queue carries its code (a plain
    # ClusterRpcProxy's reply queue is refused; tests/system/test_access.py).
    with UplinkRpcProxy(uri, "421302101", timeout=10) as county:
        assert county.sync.site_info()["site_code"] == "421302"
        with pytest.raises(AccessRefused) as refused:
            county.rating.site_info()
    assert "rating.site_info" in str(refused.value)
    with (
        UplinkRpcProxy(uri, "421302101", timeout=10) as county,
        pytest.raises(AccessRefused) as refused,
    ):
        county.sync.push_now()
    assert "sync.push_now" in str(refused.value)


def test_demo_runs_until_ctrl_c_and_keeps_data(demo_args: list[str], tmp_path: Path) -> None:
    demo = subprocess.Popen(
        [HALLCTL, "demo", *demo_args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        output = wait_for_line(demo, "按 Ctrl-C 停止", timeout=150)
        assert "全部服务 /health 正常" in output
        assert "421302101201 sync.ping_upstream() → 421302101" in output
        assert "421302101 sync.ping_upstream() → 421302 " in output
        assert "✓ 事项目录已下发到村站：36 项" in output
        # 代办: forwarded to the town (the seed's first 即办件 a village proxies), handled there
        assert "已转报站点 421302101" in output
        assert "✓ 站点 421302101 已办结，结果已回传村站" in output
        assert "✓ 评价已逐级上报到县：421302101201 本月评价 1 条" in output
        assert re.search(r"sync\.status\(\) 421302101201\s+上行待传 0 条", output)
        assert_child_reaches_only_sync_upstream(demo_args)
        status = subprocess.run(
            [HALLCTL, "status", "--data-dir", demo_args[1]],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert status.returncode == 0, status.stdout
        assert status.stdout.count("✓") == len(DEMO_SITES) * len(SERVICES)
        demo.send_signal(signal.SIGINT)
        rest, _ = demo.communicate(timeout=60)
    finally:
        if demo.poll() is None:  # a failed assertion: stop the network, not only hallctl
            demo.send_signal(signal.SIGINT)
            demo.communicate(timeout=60)
    assert demo.returncode == 0, rest
    assert "已停止" in rest
    after = subprocess.run(
        [HALLCTL, "status", "--data-dir", demo_args[1]], capture_output=True, text=True, timeout=60
    )
    assert after.returncode == 1
    assert after.stdout.count("✗") == len(DEMO_SITES) * len(SERVICES)

    # Something stored at the village survives a restart of the whole demo.
    village = Path(demo_args[1]) / "421302101201" / "data"
    store = open_store(f"sqlite:///{village}", namespace="rating")
    store.collection("marks").insert({"id": "kept", "note": "重启后仍在"})
    store.close()
    again = subprocess.run(
        [HALLCTL, "demo", "--check", *demo_args], capture_output=True, text=True, timeout=240
    )
    assert again.returncode == 0, again.stdout + again.stderr
    store = open_store(f"sqlite:///{village}", namespace="rating")
    kept = store.collection("marks").get("kept")
    assert kept is not None
    assert kept["note"] == "重启后仍在"
    store.close()


def test_services_stop_when_hallctl_is_killed(demo_args: list[str]) -> None:
    """kill -9 of hallctl leaves no orphaned services holding ports and broker connections."""
    demo = subprocess.Popen(
        [HALLCTL, "demo", *demo_args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        wait_for_line(demo, "全部服务 /health 正常", timeout=150)
        state = json.loads((Path(demo_args[1]) / "demo-state.json").read_text())
        pids = [entry["pid"] for entry in state]
        assert len(pids) == len(DEMO_SITES) * len(SERVICES)
        demo.kill()
        demo.communicate(timeout=30)
        # graceful: each finishes in-flight work first (sync waits out its local RPC timeouts)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and any(running(pid) for pid in pids):
            time.sleep(0.5)
        assert not [pid for pid in pids if running(pid)]
    finally:
        if demo.poll() is None:
            demo.send_signal(signal.SIGINT)
            demo.communicate(timeout=60)


def running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie (exited, not yet reaped by init) no longer runs; nor one reaped meanwhile
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return "Z" not in stat.rsplit(")", 1)[1].split()[0]
