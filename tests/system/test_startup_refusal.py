"""A service with a bad site config refuses to start: one line naming the key and the rule,
and nothing created on disk."""

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import access_key_file

pytestmark = pytest.mark.system

NAMEKO = str(Path(sys.executable).with_name("nameko"))


def good_config(data: Path) -> dict[str, Any]:
    return {
        "AMQP_URI": "pyamqp://guest:guest@127.0.0.1:5672/",
        "WEB_SERVER_ADDRESS": "127.0.0.1:0",
        "SITE": {"code": "421302101", "tier": "town", "name": "镇中心", "upstream": "421302"},
        "UPSTREAM_AMQP_URI": "pyamqp://guest:guest@127.0.0.1:5672/",
        "STORE_URI": f"sqlite:///{data}",
        "ACCESS_KEY_FILE": str(access_key_file()),
    }


def run_service(config: dict[str, Any], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config, allow_unicode=True))
    env = {**os.environ, "PYTHONWARNINGS": "ignore::Warning:nameko.cli.commands"}
    return subprocess.run(
        [NAMEKO, "run", "--config", str(path), "services.rating.service"],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )


@pytest.mark.parametrize(
    ("change", "key", "rule"),
    [
        ({"SITE": {"code": "42130210x", "tier": "town", "name": "n"}}, "SITE.code", "数字"),
        ({"SITE": {"code": "421302101", "tier": "village", "name": "n"}}, "SITE.code", "12 位"),
        ({"SITE": {"code": "421302", "tier": "town", "name": "n"}}, "SITE.code", "9 位"),
        (
            {"SITE": {"code": "421302101", "tier": "town", "name": "n", "upstream": "421303"}},
            "SITE.upstream",
            "不是 421302101 的上级",
        ),
        ({"STORE_URI": "postgres://localhost/hall"}, "STORE_URI", "不支持"),
        ({"AMQP_URI": "pyamqp://guest:guest@127.0.0.1:1/"}, "AMQP_URI", "无法连接消息代理"),
    ],
)
def test_refuses_with_one_line(
    change: dict[str, object], key: str, rule: str, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    done = run_service({**good_config(data), **change}, tmp_path)
    assert done.returncode != 0
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("配置错误，服务拒绝启动：")
    assert key in lines[0]
    assert rule in lines[0]
    assert not data.exists()
