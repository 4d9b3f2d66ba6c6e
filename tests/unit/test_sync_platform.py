"""The 好差评 platform connector without a framework: the coding, the signature, the ack
rules and the backoff as pure functions; then ``SyncApp``'s connector on a real store
against the fake platform (tests/platform_fake.py) over real HTTP."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from services.common.clock import ManualClock
from services.common.config import ConfigError
from services.common.evaluation_coding import GBT39046, PROVINCIAL_DEFAULT
from services.hallctl.checks import _platform_check
from services.sync.app import SyncApp
from services.sync.domain import Backoff
from services.sync.domain.platform import (
    auth_headers,
    coded,
    idempotency_key,
    read_acks,
    settled_prefix,
)
from services.sync.settings import SyncSettings
from services.sync.usecases.platform import NAME, SKIPPED
from tests.conftest import MakeContext
from tests.platform_fake import FakePlatform, ListedFeeds, coding_problem, connector_app

pytestmark = pytest.mark.unit

COUNTY, VILLAGE = "421302", "421302101201"
SECRET = "platform-secret-" + "x" * 16
SH = ZoneInfo("Asia/Shanghai")


def evaluation(seq: int, channel: str = "pad", version: int = 1) -> dict[str, Any]:
    return {
        "_seq": seq,
        "id": f"ev:ticket:{VILLAGE}-t{seq}:1",
        "version": version,
        "site_code": VILLAGE,
        "recorded_at_site": VILLAGE,
        "service_ref": {"kind": "ticket", "id": f"{VILLAGE}-t{seq}"},
        "sequence": 1,
        "channel": channel,
        "level": "dissatisfied",
        "comment": "电话 13712340987 打不通",
        "rater": {"real_name": True, "phone_masked": "137****0987", "name_masked": "欧*"},
        "submitted_at": "2026-11-23T02:00:00.000000Z",
        "excluded": None,
        "held": seq % 7 == 0,
        "updated_at": "2026-11-23T02:00:00.000000Z",
    }


# --- pure rules --------------------------------------------------------------------------


def test_a_record_is_coded_per_profile_with_one_key_per_version() -> None:
    payload, reason = coded(evaluation(7), GBT39046, SH)
    assert reason is None
    assert payload is not None
    data = payload["data"]
    assert (data["评价渠道代码"], data["满意度代码"], data["评价时间"]) == (
        "4",
        "4",
        "20261123T100000",
    )
    assert data["是否计入统计"] == "否"  # held: pushed, but not counted
    assert coding_problem(data, "gbt39046") is None
    provincial, _ = coded(evaluation(7), PROVINCIAL_DEFAULT, SH)
    assert provincial is not None
    assert provincial["data"]["满意度代码"] == "2"
    assert payload["idempotency_key"] == idempotency_key(evaluation(7))
    assert idempotency_key(evaluation(7, version=2)) != payload["idempotency_key"]


def test_what_the_coding_cannot_express_is_skipped_with_a_reason_never_guessed() -> None:
    payload, reason = coded(evaluation(1, "system_default"), GBT39046, SH)
    assert payload is None
    assert reason is not None
    assert "system_default" in reason
    assert coded(evaluation(1, "phone"), PROVINCIAL_DEFAULT, SH)[0] is None
    assert coded(evaluation(1, "no_such_channel"), GBT39046, SH)[0] is None


def test_the_signature_covers_method_path_time_and_body() -> None:
    fake = FakePlatform(SECRET, "gbt39046")
    path, body = "/api/v1/evaluations", b'{"records":[]}'
    try:
        headers = auth_headers("hmac", SECRET, "POST", path, body, int(time.time()))
        assert fake.authentic(headers, path, body)
        assert SECRET not in json.dumps(headers)  # the key signs, it is never sent
        assert not fake.authentic(headers, "/api/v1/other", body)
        assert not fake.authentic(headers, path, body + b" ")
        assert not fake.authentic({**headers, "X-Hall-Timestamp": "1"}, path, body)
        wrong = auth_headers("hmac", "another-secret-xxxxxx", "POST", path, body, 10**9)
        assert not fake.authentic(wrong, path, body)
        token = FakePlatform(SECRET, "gbt39046", auth="token")
        stamp = int(time.time())
        assert token.authentic(auth_headers("token", SECRET, "POST", path, body, stamp), path, body)
    finally:
        fake.server.server_close()
        token.server.server_close()


def test_only_what_the_reply_acknowledges_is_settled() -> None:
    keys = ["a", "b", "c", "d"]
    reply = {
        "results": [
            {"idempotency_key": "a", "status": "accepted"},
            {"idempotency_key": "b", "status": "duplicate"},
            {"idempotency_key": "c", "status": "rejected", "reason": "办件不存在"},
            {"idempotency_key": "d", "status": "maybe"},
        ]
    }
    acks = read_acks(keys, reply)
    assert acks.accepted == ["a", "b"]
    assert acks.rejected == {"c": "办件不存在"}
    assert acks.missing == ["d"]
    assert read_acks(keys, {"results": "all ok"}).missing == keys
    assert read_acks(keys, None).missing == keys
    # a skipped record (None) is settled; the checkpoint stops at the first unsettled one
    assert settled_prefix(["a", None, "x", "b"], {"a", "b"}) == 2
    assert settled_prefix([None, None], set()) == 2


def test_the_backoff_doubles_with_jitter_up_to_the_cap() -> None:
    backoff = Backoff(0.05, 0.4)
    assert backoff.delay(1, lambda: 0.0) == pytest.approx(0.025)
    assert backoff.delay(3, lambda: 1.0) == pytest.approx(0.2)
    assert backoff.delay(50, lambda: 1.0) == pytest.approx(0.4)
    assert backoff.delay(50, lambda: 0.0) == pytest.approx(0.2)


def test_the_section_is_validated_naming_the_key() -> None:
    good = {"url": "https://p.example/api", "profile": "gbt39046", "secret": SECRET}
    assert SyncSettings.from_section({"platform": good}).platform is not None
    assert SyncSettings.from_section({}).platform is None
    for change, key in (
        ({"url": "ftp://p.example"}, "SYNC.platform.url"),
        ({"profile": "national"}, "SYNC.platform.profile"),
        ({"auth": "basic"}, "SYNC.platform.auth"),
        ({"secret": "short"}, "SYNC.platform.secret"),
        ({"timezone": "Mars/Base"}, "SYNC.platform.timezone"),
        ({"backoff_base": 5.0, "backoff_cap": 1.0}, "SYNC.platform.backoff_cap"),
    ):
        with pytest.raises(ConfigError) as refused:
            SyncSettings.from_section({"platform": {**good, **change}})
        assert key in refused.value.fields
        assert SECRET not in str(refused.value)
    assert SECRET not in repr(SyncSettings.from_section({"platform": good}).platform)


# --- the connector against the fake platform ------------------------------------------


@pytest.fixture
def fake() -> Iterator[FakePlatform]:
    platform = FakePlatform(SECRET, "gbt39046", fail_rate=0.0).start()
    yield platform
    platform.stop()


def connector(
    make_context: MakeContext, clock: ManualClock, url: str, **extra: Any
) -> tuple[SyncApp, ListedFeeds]:
    feed = ListedFeeds([evaluation(n, "system_default" if n == 3 else "pad") for n in range(1, 11)])
    context = make_context("sync", code=COUNTY, tier="county")
    return connector_app(context, clock, url, SECRET, feed, batch_size=4, **extra), feed


def test_every_record_arrives_once_the_uncodable_is_skipped(
    make_context: MakeContext, clock: ManualClock, fake: FakePlatform
) -> None:
    app, feed = connector(make_context, clock, fake.url)
    result = app.push_now()["results"][NAME]
    assert result["ok"], result
    assert (result["accepted"], result["skipped"], result["checkpoint"]) == (9, 1, 10)
    assert sorted(fake.accepted_ids.values()) == [1] * 9
    assert f"ev:ticket:{VILLAGE}-t3:1" not in fake.accepted_ids
    assert all(
        "13712340987" not in json.dumps(r, ensure_ascii=False) for r in fake.accepted.values()
    )
    [skipped] = app.parked(SKIPPED)
    assert "system_default" in skipped["reason"]
    status = app.status()["platform"]
    assert (status["backlog"], status["parked"], status["skipped"]) == (0, 0, 1)
    assert SECRET not in json.dumps(status)
    # a newer version of a record is a new key; nothing else goes again
    feed.items.append({**evaluation(5, version=2), "_seq": 11})
    assert app.push_now()["results"][NAME]["accepted"] == 1
    assert fake.resent_after_ack == []
    assert len(fake.accepted) == 10


def test_a_refused_record_is_parked_with_the_reason_and_sent_again_on_request(
    make_context: MakeContext, clock: ManualClock, fake: FakePlatform
) -> None:
    app, _ = connector(make_context, clock, fake.url)
    refused = f"ev:ticket:{VILLAGE}-t6:1"
    fake.refuse.add(refused)
    result = app.push_now()["results"][NAME]
    assert (result["accepted"], result["parked"], result["checkpoint"]) == (8, 1, 10)
    [parked] = app.parked(NAME)
    assert parked["record_id"] == refused
    assert "办件不存在" in parked["reason"]
    assert app.status()["platform"]["parked"] == 1
    fake.refuse.clear()  # the platform fixed its side
    assert app.retry_parked(NAME)["results"][NAME] == {"resolved": 1, "still_parked": 0}
    assert fake.accepted_ids[refused] == 1
    assert app.parked(NAME) == []


def test_failures_retry_the_batch_with_backoff_and_move_nothing(
    make_context: MakeContext, clock: ManualClock, fake: FakePlatform, caplog: Any
) -> None:
    caplog.set_level(logging.DEBUG)
    app, _ = connector(make_context, clock, fake.url, backoff_base=0.5, backoff_cap=2.0)
    fake.fail_rate = 1.0  # every request fails: 500, timeout or a dropped connection
    reasons = set()
    for _ in range(6):
        result = app.push_now()["results"][NAME]
        assert not result["ok"]
        assert 0.25 <= result["retry_in_s"] <= 2.0
        reasons.add(result["reason"])
    assert reasons <= {"http_5xx", "timeout", "unreachable"}
    assert len(reasons) >= 2
    assert app.status()["platform"]["checkpoint"] == 0
    assert app.status()["platform"]["last_error"]
    fake.fail_rate = 0.0
    assert app.push_now()["results"][NAME]["checkpoint"] == 10
    assert sorted(fake.accepted_ids.values()) == [1] * 9
    assert SECRET not in caplog.text
    exposition = app.context.metrics.exposition().decode()
    # the uncodable record of the first page counted once, however often the page was tried
    assert 'hall_sync_platform_skipped_total{feed="rating.evaluations"' in exposition
    skipped = [
        line
        for line in exposition.splitlines()
        if line.startswith("hall_sync_platform_skipped_total{")
    ]
    assert [line.rsplit(" ", 1)[1] for line in skipped] == ["1.0"]
    errors = [
        line
        for line in exposition.splitlines()
        if line.startswith("hall_sync_errors_total{") and 'direction="platform"' in line
    ]
    assert sum(float(line.rsplit(" ", 1)[1]) for line in errors) == 6


def test_a_wrong_secret_is_an_error_and_parks_nothing(
    make_context: MakeContext, clock: ManualClock, fake: FakePlatform
) -> None:
    fake.secret = "the-platform-has-another-secret"  # noqa: S105  (a test value)
    app, _ = connector(make_context, clock, fake.url)
    result = app.push_now()["results"][NAME]
    assert (result["ok"], result["reason"]) == (False, "auth")
    assert app.parked(NAME) == []
    assert fake.accepted == {}
    assert app.status()["platform"]["checkpoint"] == 0


def test_hallctl_check_fails_while_the_platform_refuses(
    make_context: MakeContext, clock: ManualClock, fake: FakePlatform
) -> None:
    fake.secret = "the-platform-has-another-secret"  # noqa: S105  (a test value)
    app, _ = connector(make_context, clock, fake.url)
    app.push_now()

    class Cluster:  # hallctl's RPC proxy, answering with this app's status
        sync = app

    check = _platform_check(Cluster())
    assert not check.ok
    assert "auth" in check.detail
    assert SECRET not in check.detail
    fake.secret = SECRET
    app.push_now()
    assert _platform_check(Cluster()).ok


def test_a_batch_refused_whole_is_narrowed_down_to_the_bad_record(
    make_context: MakeContext, clock: ManualClock, fake: FakePlatform
) -> None:
    app, _ = connector(make_context, clock, fake.url)
    bad = f"ev:ticket:{VILLAGE}-t6:1"
    fake.refuse_batch.add(bad)
    result = app.push_now()["results"][NAME]
    assert (result["accepted"], result["parked"], result["checkpoint"]) == (8, 1, 10)
    [parked] = app.parked(NAME)
    assert parked["record_id"] == bad
    assert "422" in parked["reason"]
    assert bad not in fake.accepted_ids


def test_after_a_partial_reply_only_the_unacknowledged_records_go_again(
    make_context: MakeContext, clock: ManualClock, fake: FakePlatform
) -> None:
    app, _ = connector(make_context, clock, fake.url)
    fake.omit.add(f"ev:ticket:{VILLAGE}-t2:1")  # the reply forgets the second record
    result = app.push_now()["results"][NAME]
    assert (result["ok"], result["reason"]) == (False, "incomplete_ack")
    assert app.status()["platform"]["checkpoint"] == 1  # stops before the unacknowledged one
    fake.omit.clear()
    assert app.push_now()["results"][NAME]["checkpoint"] == 10
    assert fake.resent_after_ack == []  # 1, 4 (acknowledged in the partial reply) not again
    assert fake.arrivals[idempotency_key(evaluation(4))] == 1
    assert fake.arrivals[idempotency_key(evaluation(2))] == 2
    assert sorted(fake.accepted_ids.values()) == [1] * 9
