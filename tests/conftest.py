"""Shared test helpers: a throw-away RabbitMQ vhost per test module, and site configs."""

from __future__ import annotations

import shutil
import subprocess
import time
import uuid
from pathlib import Path

import pytest

BROKER = "127.0.0.1:5672"


def rabbitmqctl(*args: str) -> None:
    ctl = shutil.which("rabbitmqctl")
    assert ctl, "rabbitmqctl is required for service and system tests (scripts/bootstrap.sh)"
    subprocess.run([ctl, "-q", *args], check=True, capture_output=True, timeout=60)


@pytest.fixture(scope="module")
def vhost_factory():
    """Create vhosts (guest has full rights) and delete them after the module."""
    created: list[str] = []

    def make(label: str = "t") -> str:
        name = f"test-{label}-{uuid.uuid4().hex[:8]}"
        rabbitmqctl("add_vhost", name)
        rabbitmqctl("set_permissions", "-p", name, "guest", ".*", ".*", ".*")
        created.append(name)
        return name

    yield make
    for name in created:
        rabbitmqctl("delete_vhost", name)


def amqp_uri(vhost: str) -> str:
    return f"pyamqp://guest:guest@{BROKER}/{vhost}"


def site_config(
    vhost: str,
    data: Path,
    code: str,
    tier: str,
    upstream: str | None = None,
    upstream_vhost: str | None = None,
    port: int | None = None,
    **extra: object,
) -> dict[str, object]:
    config: dict[str, object] = {
        "AMQP_URI": amqp_uri(vhost),
        "SITE": {"code": code, "tier": tier, "name": f"测试站点{code}", "upstream": upstream or ""},
        "UPSTREAM_AMQP_URI": amqp_uri(upstream_vhost) if upstream_vhost else "",
        "STORE_URI": f"sqlite:///{data / code}",
        **extra,
    }
    if port is not None:
        config["WEB_SERVER_ADDRESS"] = f"127.0.0.1:{port}"
    return config


def wait_for_line(process: subprocess.Popen[str], marker: str, timeout: float) -> str:
    """Read a child's output until a line holds ``marker``; everything read so far."""
    seen: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = process.stdout.readline() if process.stdout else ""
        if not line and process.poll() is not None:
            break
        seen.append(line)
        if marker in line:
            return "".join(seen)
    raise AssertionError(f"never saw {marker!r}; output:\n{''.join(seen)}")


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port
