"""The 好差评 platform connector in the real sync service, reading a real rating service's
feed over RabbitMQ, against the fake platform (tests/platform_fake.py) that fails 20 % of
requests with timeouts, 500s and dropped connections: 10,000 evaluations and the
rectification cases of the bad ones arrive exactly once, across a restart of sync halfway,
and nothing acknowledged is ever sent again."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from nameko.containers import ServiceContainer

from services.common.store import open_store
from services.hallctl.checks import _platform_check
from services.rating.service import RatingService
from services.sync.service import SyncService
from tests.conftest import VhostFactory, free_port, operator_rpc, site_config
from tests.platform_fake import FakePlatform, seed_cases, seed_rating_store
from tests.service.helpers import Start, wait_for

pytestmark = pytest.mark.service

COUNTY = "421302"
SECRET = "platform-hmac-secret-0123456789"  # noqa: S105  (a test value)
CODED, UNCODABLE = 10_000, 40
SKIPPED = "platform-skipped:rating.evaluations"


@pytest.fixture
def fake() -> Iterator[FakePlatform]:
    platform = FakePlatform(SECRET, "gbt39046", fail_rate=0.2, seed=11, stall_s=0.6).start()
    yield platform
    platform.stop()


def sync_config(vhost: str, data: Path, url: str) -> dict[str, Any]:
    platform = {
        "url": url,
        "profile": "gbt39046",
        "auth": "hmac",
        "secret": SECRET,
        "batch_size": 250,
        "connect_timeout": 0.3,
        "read_timeout": 0.3,
        "interval": 0.1,
        "backoff_base": 0.05,
        "backoff_cap": 0.4,
    }
    section = {
        "upward": [],
        "pull_catalog": False,
        "pull_outcomes": False,
        "cycle_seconds": 2.0,
        "platform": platform,
    }
    return site_config(vhost, data, COUNTY, "county", port=free_port(), SYNC=section)


def test_ten_thousand_evaluations_arrive_once_through_failures_and_a_restart(
    start: Start, vhost_factory: VhostFactory, tmp_path: Path, fake: FakePlatform
) -> None:
    ids = seed_rating_store(tmp_path, COUNTY, CODED, UNCODABLE)
    case_ids = seed_cases(tmp_path, COUNTY)
    vhost = vhost_factory("platform")
    salt = {"privacy_salt": "platform-test-salt-0123"}
    start(
        RatingService, site_config(vhost, tmp_path, COUNTY, "county", port=free_port(), RATING=salt)
    )

    first = ServiceContainer(SyncService, sync_config(vhost, tmp_path, fake.url))
    first.start()
    try:
        wait_for(lambda: len(fake.accepted) >= 3000, timeout=30)
    finally:
        first.stop()  # graceful: the push ends at its next batch
    halfway = len(fake.accepted)
    assert halfway < CODED

    second = ServiceContainer(SyncService, sync_config(vhost, tmp_path, fake.url))
    second.start()
    try:
        wait_for(lambda: len(fake.accepted_ids) >= len(ids | case_ids), timeout=45)
        with operator_rpc(vhost) as site:
            status = wait_for(lambda: _drained(site.sync.status()["platform"]), timeout=10)
            skipped = site.sync.parked(SKIPPED, 100)
            check = _platform_check(site)  # what hallctl check shows
    finally:
        second.stop()

    arrived = sum(fake.arrivals.values())
    print(f"{len(fake.accepted)} accepted, {arrived} raw arrivals, {halfway} before the restart")
    print(f"requests: {dict(fake.outcomes)}")
    # exactly once, by idempotency key and, for evaluations, by record id; a case rating
    # changed meanwhile (its overdue call-back escalated: a new version) arrives once per
    # version, its newest among them
    assert 100 < len(case_ids) < CODED // 10  # the bad share of the seeded ratings
    assert set(fake.accepted_ids) == ids | case_ids
    assert {fake.accepted_ids[i] for i in ids} == {1}
    assert set(fake.accepted) >= {f"{c['id']}@v{c['version']}" for c in case_versions(tmp_path)}
    assert fake.rejected == {}  # every record passed the platform's checks of the coding
    # the failures happened, and the connector resent only what was not acknowledged
    assert min(fake.outcomes[mode] for mode in ("timeout", "error500", "drop")) > 0
    assert arrived > len(fake.accepted)
    assert fake.resent_after_ack == []
    # what the coding cannot express is skipped with the reason, never guessed
    assert len(skipped) == UNCODABLE
    assert all("system_default" in s["reason"] for s in skipped)
    assert (status["parked"], status["skipped"], status["backlog"]) == (0, UNCODABLE, 0)
    cases = status["cases"]
    assert (cases["parked"], cases["skipped"], cases["backlog"]) == (0, 0, 0)
    assert SECRET not in str(status)
    assert check.ok, check.detail
    assert f"无法编码 {UNCODABLE} 条" in check.detail
    assert SECRET not in check.detail


def case_versions(data: Path) -> list[dict[str, Any]]:
    """The cases as rating holds them now."""
    store = open_store(f"sqlite:///{data / COUNTY}", "rating")
    try:
        return store.collection("cases").changes_since(0, 100_000)
    finally:
        store.close()


def _drained(status: dict[str, Any]) -> dict[str, Any] | None:
    both = (status.get("backlog"), (status.get("cases") or {}).get("backlog"))
    return status if both == (0, 0) else None
