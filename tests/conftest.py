"""Shared test helpers: a throw-away RabbitMQ vhost per test module, and site configs."""

from __future__ import annotations

import os
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import pytest

# One copy for the tests and the benchmarks; re-exported for the test modules.
from bench.support import free_block as free_block
from bench.support import free_port as free_port
from bench.support import rabbitmqctl as rabbitmqctl
from bench.support import vhosts

# Imported inside the fixtures: service tests must patch with eventlet (tests/service/
# conftest.py) before nameko, kombu or pymongo are imported, and this file loads first.
if TYPE_CHECKING:
    from nameko.standalone.rpc import ClusterRpcProxy

    from services.common.calendar import WorkingCalendar
    from services.common.clock import ManualClock
    from services.common.runtime import SiteContext
    from services.common.store import Store

BROKER = "127.0.0.1:5672"

# ``vhost_factory(label)``: the name of a new vhost that guest has full rights on.
VhostFactory = Callable[[str], str]


@pytest.fixture(scope="module")
def vhost_factory() -> Iterator[VhostFactory]:
    """Create vhosts (guest has full rights) and delete them after the module."""
    with vhosts("test") as make:
        yield make


def amqp_uri(vhost: str) -> str:
    return f"pyamqp://guest:guest@{BROKER}/{vhost}"


def access_key_file() -> Path:
    """The access key of every test site (docs/security.md; in production each site has its
    own): services verify with it, ``operator_rpc`` signs with it."""
    from services.common.identity import ensure_key

    path = Path(tempfile.gettempdir()) / f"hall-tests-{os.getuid()}" / "access.key"
    ensure_key(path)
    return path


def operator_context(key: Path | None = None) -> dict[str, Any]:
    """Context data signing each call as the site's operator (``hallctl``), with ``key`` (a
    site's own key file) or the tests' key. Tests that are not about access call as the
    operator, who may call everything but ``reveal_phone``."""
    from services.common.callers import operator
    from services.common.identity import read_keys

    return operator(read_keys(key or access_key_file()))


def staff_rpc(
    uri_or_vhost: str, staff_id: str, *roles: str, window: str | None = None, site: str = "421302"
) -> ClusterRpcProxy:
    """A ``ClusterRpcProxy`` acting as a signed-in staff member (as the gateway signs)."""
    from nameko.standalone.rpc import ClusterRpcProxy

    from services.common.callers import SignedContext
    from services.common.identity import Kind, Principal, read_keys

    principal = Principal(Kind.STAFF, staff_id, site, frozenset(roles), window)
    context = SignedContext(principal, read_keys(access_key_file()))
    uri = uri_or_vhost if "://" in uri_or_vhost else amqp_uri(uri_or_vhost)
    return ClusterRpcProxy({"AMQP_URI": uri}, timeout=30, context_data=context)


def operator_rpc(
    uri_or_vhost: str, timeout: float | None = 30, key: Path | None = None
) -> ClusterRpcProxy:
    """A ``ClusterRpcProxy`` acting as the site's operator (see ``operator_context``)."""
    from nameko.standalone.rpc import ClusterRpcProxy

    uri = uri_or_vhost if "://" in uri_or_vhost else amqp_uri(uri_or_vhost)
    return ClusterRpcProxy({"AMQP_URI": uri}, timeout=timeout, context_data=operator_context(key))


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
        "ACCESS_KEY_FILE": str(access_key_file()),
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


def wait_for(
    check: Callable[[], Any], timeout: float, what: str, detail: Callable[[], str] = str
) -> Any:
    """Poll ``check`` until it returns something true; that result, or an AssertionError
    naming ``what`` with ``detail()`` (the state a reader needs to see why)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}\n{detail()}")


# --- shared fixtures of the unit suites: the clock, both store adapters, a site context ----

MONDAY_10 = "2026-11-23T02:00:00Z"  # 10:00 in Shanghai, a working day


@pytest.fixture
def clock() -> ManualClock:
    """A ``ManualClock`` at Monday 2026-11-23 10:00 Shanghai; tests move it."""
    from services.common.clock import ManualClock, parse_iso

    return ManualClock(parse_iso(MONDAY_10))


@pytest.fixture(params=["sqlite", "mongomock"])
def store_uri(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Each test using it runs on both adapters: SQLite, and MongoDB through mongomock."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}"
    return f"mongomock://{uuid.uuid4().hex}/hall"


class MakeContext(Protocol):
    def __call__(
        self,
        service: str,
        code: str = ...,
        tier: str = ...,
        section: Mapping[str, Any] | None = ...,
        store_uri: str | None = ...,
        calendar: WorkingCalendar | None = ...,
        upstream: str | None = ...,
    ) -> SiteContext: ...


def site_context(
    service: str,
    code: str,
    tier: str,
    store_uri: str,
    section: Mapping[str, Any] | None = None,
    calendar: WorkingCalendar | None = None,
    upstream: str | None = None,
) -> SiteContext:
    """The ``SiteContext`` a service's app is built from, on a real store the caller closes
    (``context.store.close()``)."""
    from services.common.calendar import WorkingCalendar
    from services.common.config import SiteConfig
    from services.common.identity import KeyFile
    from services.common.metrics import ServiceMetrics
    from services.common.runtime import SiteContext
    from services.common.site import parse_site_identity
    from services.common.store import open_store

    identity = parse_site_identity(code, tier, f"测试站点{code}", upstream)
    config = SiteConfig(
        identity=identity,
        amqp_uri="pyamqp://guest@localhost/",
        store_uri=store_uri,
        upstream_amqp_uri=None,
        calendar_override=None,
        access=KeyFile(access_key_file()),
        section=section or {},
    )
    store = open_store(store_uri, namespace=service)
    metrics = ServiceMetrics(service, code, tier, store.kind)
    return SiteContext(service, config, store, calendar or WorkingCalendar(), metrics)


@pytest.fixture
def make_context(tmp_path: Path) -> Iterator[MakeContext]:
    """``make_context(service, code=…, tier=…, section=…, store_uri=…, calendar=…)``: the
    ``SiteContext`` a service's app is built from, on a real store closed after the test."""
    opened: list[Store] = []

    def make(
        service: str,
        code: str = "421302",
        tier: str = "county",
        section: Mapping[str, Any] | None = None,
        store_uri: str | None = None,
        calendar: WorkingCalendar | None = None,
        upstream: str | None = None,
    ) -> SiteContext:
        uri = store_uri or f"sqlite:///{tmp_path / code}"
        context = site_context(service, code, tier, uri, section, calendar, upstream)
        opened.append(context.store)
        return context

    yield make
    for store in opened:
        store.close()
