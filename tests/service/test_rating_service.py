"""The rating container against the real RabbitMQ: invitations followed from a source's feed
(on the hint event and on the timer, surviving a source that is not running), the RPC
flow of a bad rating through its case, replication from a child site, and privacy: the
rater's phone and name appear in no RPC response, log line, metric or feed record."""

import json
import logging
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import requests
from nameko.containers import ServiceContainer
from nameko.events import EventDispatcher
from nameko.rpc import rpc

from services.common import service as base
from services.common.access import BASE_ACCESS, OPERATOR, rule
from services.common.config import ConfigError
from services.common.errors import Conflict, Forbidden, InvalidInput  # registers typed errors
from services.rating.service import RatingService
from tests.conftest import amqp_uri, free_port, operator_rpc, site_config, staff_rpc
from tests.service.helpers import wait_for

pytestmark = pytest.mark.service

VhostFactory = Callable[[str], str]
Start = Callable[[type, dict[str, Any]], ServiceContainer]
Site = tuple[Any, int]  # a ClusterRpcProxy into the site, and rating's HTTP port

PHONE, NAME = "13712340987", "欧阳修远"


ACCESS = {**BASE_ACCESS, "complete": rule(OPERATOR)}


class InvitationSource(base.SiteService):
    """Test source: a minimal real service publishing ``evaluation_invitations`` as queue does
    (the contract), so rating's follower is exercised end to end."""

    name = "queue"
    feeds = ("evaluation_invitations",)
    access = ACCESS
    dispatch = EventDispatcher()

    @rpc
    def complete(self, window: str, staff_id: str, ended_minutes_ago: int = 1) -> str:
        ticket = f"{self.runtime.identity.code}-{uuid.uuid4().hex}"
        now = datetime.now(UTC)
        ended = now - timedelta(minutes=ended_minutes_ago)
        self.runtime.store.collection("evaluation_invitations").insert(
            {
                "id": f"ticket:{ticket}",
                "schema": 1,
                "service_ref": {"kind": "ticket", "id": ticket},
                "site_code": self.runtime.identity.code,
                "window": window,
                "staff_id": staff_id,
                "matter_code": "11100000000",
                "department": "人社局",
                "service_channel": "window",
                "service_ended_at": ended.isoformat().replace("+00:00", "Z"),
                "created_at": now.isoformat().replace("+00:00", "Z"),
            }
        )
        self.dispatch("evaluation_invited", {"id": f"ticket:{ticket}"})
        return ticket


@pytest.fixture(scope="module")
def site_vhost(vhost_factory: VhostFactory) -> str:
    return vhost_factory("rating")


@pytest.fixture(scope="module")
def site(site_vhost: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    """One county site shared by the tests that only add their own records (own windows)."""
    vhost = site_vhost
    data = tmp_path_factory.mktemp("rating-site")
    port = free_port()
    config = site_config(
        vhost,
        data,
        "421302",
        "county",
        port=port,
        RATING={"privacy_salt": "service-test-salt-0001"},
    )
    containers = [
        ServiceContainer(RatingService, config),
        ServiceContainer(InvitationSource, site_config(vhost, data, "421302", "county")),
    ]
    for container in containers:
        container.start()
    try:
        with operator_rpc(amqp_uri(vhost), timeout=20) as rpc_:
            yield rpc_, port
    finally:
        for container in containers:  # rating first: it follows the source
            container.stop()


def test_invitation_reaches_the_pad_and_binds_the_evaluation(site: Site) -> None:
    rpc_, _ = site
    ticket = rpc_.queue.complete("7", "staff-7")
    pending = wait_for(lambda: rpc_.rating.pending_for_window("7"), timeout=8)
    assert pending["service_ref"] == {"kind": "ticket", "id": ticket}
    ev = rpc_.rating.submit_evaluation(
        {
            "invitation_id": pending["id"],
            "service_ref": {"kind": "ticket"},
            "channel": "pad",
            "level": "very_satisfied",
            "details": {"guide_clear": True, "procedure_convenient": True, "suggestion": "很好"},
        }
    )
    assert (ev["window"], ev["staff_id"], ev["sequence"]) == ("7", "staff-7", 1)
    assert rpc_.rating.pending_for_window("7") is None
    again = {
        "invitation_id": pending["id"],
        "service_ref": {"kind": "ticket"},
        "channel": "qr_code",
        "level": "satisfied",
    }
    assert rpc_.rating.submit_evaluation(again)["sequence"] == 2  # one supplementary rating
    with pytest.raises(Conflict) as caught:
        rpc_.rating.submit_evaluation(again)
    assert "追加评价" in caught.value.message
    stats = rpc_.rating.stats({"window": "7"}, "window")
    assert stats["total"]["counts"]["very_satisfied"] == 1
    assert stats["total"]["counts"]["satisfied"] == 1
    assert [g["key"] for g in stats["groups"]] == ["421302:7"]
    feed = rpc_.rating.feed("evaluations", 0, 500)
    mine = [d["id"] for d in feed["items"] if d["service_ref"]["id"] == ticket]
    assert mine == [ev["id"], ev["id"][:-1] + "2"]


def wait_for_follow_failure(port: int, reason: str, timeout: float) -> None:
    """Until rating's /metrics count a failed follow of the queue source for ``reason``."""
    sample = f'reason="{reason}",service="rating",site="421302",source="queue"'
    url = f"http://127.0.0.1:{port}/metrics"
    wait_for(lambda: sample in requests.get(url, timeout=5).text, timeout=timeout)


def test_source_not_running_is_retried_without_crashing(
    start: Start, vhost_factory: VhostFactory, tmp_path: Path
) -> None:
    vhost = vhost_factory("late-source")
    port = free_port()
    start(RatingService, site_config(vhost, tmp_path, "421302", "county", port=port))
    with operator_rpc(amqp_uri(vhost), timeout=20) as rpc_:
        wait_for_follow_failure(port, "unknown_service", timeout=8)
        assert rpc_.rating.site_info()["service"] == "rating"  # still serving
        start(InvitationSource, site_config(vhost, tmp_path, "421302", "county"))
        ticket = rpc_.queue.complete("2", "staff-2")
        pending = wait_for(lambda: rpc_.rating.pending_for_window("2"), timeout=8)
        assert pending["service_ref"]["id"] == ticket


def test_source_that_stops_answering_times_out_and_is_retried(
    start: Start, vhost_factory: VhostFactory, tmp_path: Path
) -> None:
    vhost = vhost_factory("gone-source")
    port = free_port()
    start(RatingService, site_config(vhost, tmp_path, "421302", "county", port=port))
    source_config = site_config(vhost, tmp_path, "421302", "county")
    source = start(InvitationSource, source_config)
    with operator_rpc(amqp_uri(vhost), timeout=20) as rpc_:
        rpc_.queue.complete("4", "staff-4")
        wait_for(lambda: rpc_.rating.pending_for_window("4"), timeout=8)
        source.stop()  # its durable RPC queue stays: calls to it wait, unanswered
        wait_for_follow_failure(port, "timeout", timeout=15)
        assert rpc_.rating.site_info()["service"] == "rating"
        start(InvitationSource, source_config)  # back, with its store: the feed continues
        ticket = rpc_.queue.complete("4", "staff-4")
        found = wait_for(
            lambda: (p := rpc_.rating.pending_for_window("4")) and p["service_ref"]["id"] == ticket,
            timeout=20,
        )
        assert found


def test_privacy_bad_rating_through_its_case(
    site: Site, site_vhost: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    rpc_, port = site
    rpc_.queue.complete("3", "staff-3")
    pending = wait_for(lambda: rpc_.rating.pending_for_window("3"), timeout=8)
    responses: list[Any] = []

    def call(method: str, *args: Any) -> Any:
        result = getattr(rpc_.rating, method)(*args)
        responses.append(result)
        return result

    ev = call(
        "submit_evaluation",
        {
            "invitation_id": pending["id"],
            "service_ref": {"kind": "ticket"},
            "channel": "pad",
            "level": "very_dissatisfied",
            "reasons": {"tags": ["态度差"], "text": f"打 {PHONE}"},
            "comment": f"我是{NAME}，电话{PHONE}",
            "details": {"suggestion": f"{NAME}建议增加窗口"},
            "rater": {"real_name": True, "name": NAME, "phone": PHONE, "device_id": "pad-3"},
        },
    )
    assert ev["rater"]["phone_masked"] == "137****0987"
    case_id = ev["case_id"]
    call("get_evaluation", ev["id"])
    call("list_cases", {"state": "callback_pending"})
    call("assign_case", {"case_id": case_id, "handler": "h1", "by": "lead"})
    with pytest.raises(Forbidden):  # not even the operator reads a rater's phone
        rpc_.rating.reveal_phone(case_id, "h1")
    with staff_rpc(site_vhost, "intruder", "manager") as intruder:
        with pytest.raises(Forbidden):  # a manager, but not the case's handler
            intruder.rating.reveal_phone(case_id)
        with pytest.raises(Forbidden):  # nor by naming the handler
            intruder.rating.reveal_phone(case_id, "h1")
    with staff_rpc(site_vhost, "h1", "clerk") as handler:
        revealed = handler.rating.reveal_phone(case_id)  # the one response allowed to hold it
    assert revealed["phone"] == PHONE
    call("record_callback", {"case_id": case_id, "by": "h1", "contacted": True, "note": "已回访"})
    call(
        "classify_case",
        {
            "case_id": case_id,
            "by": "h1",
            "classification": "ledger",
            "note": "建立台账",
            "deadline": None,
        },
    )
    call("record_rectification", {"case_id": case_id, "by": "h1", "measures": "培训"})
    closed = call(
        "record_feedback",
        {"case_id": case_id, "by": "h1", "method": "phone", "content": "已告知整改结果"},
    )
    assert closed["state"] == "closed"
    assert closed["on_time"] is True
    assert [s["step"] for s in closed["steps"]] == [
        "opened",
        "assigned",
        "callback",
        "classified",
        "rectified",
        "feedback",
    ]
    call("get_case", case_id)
    audit = call("reveal_audit", case_id)
    assert [a["by"] for a in audit] == ["h1"]
    stats = call("stats", {}, "department")
    assert stats["total"]["rectification_rate"] == 1.0
    assert stats["total"]["callback_rate"] == 1.0
    call("public_report", datetime.now(UTC).strftime("%Y-%m"))
    today = datetime.now(UTC).date().isoformat()
    call("export", {"profile": "gbt39046", "date_from": "2020-01-01", "date_to": "2030-12-31"})
    call("rankings", today[:7], "staff")
    responses.extend(rpc_.rating.feed(feed, 0, 100) for feed in ("evaluations", "cases"))
    metrics = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    assert 'hall_rating_phone_reveals_total{service="rating",site="421302"} 1.0' in metrics
    refused = 'method="reveal_phone",reason="forbidden",service="rating",site="421302"} 2.0'
    assert f"hall_access_refused_total{{{refused}" in metrics  # the operator, the impostor
    assert (
        'hall_evaluations_total{channel="pad",level="very_dissatisfied",outcome="counted",'
        'service="rating",site="421302"} 1.0'
    ) in metrics

    # Every record of this process at DEBUG, the rating container's included. The one
    # exception: the caller's own nameko trace of the reveal_phone reply it asked for (the
    # test client, not the service, logs replies at DEBUG).
    def callers_reveal_trace(record: logging.LogRecord) -> bool:
        return record.msg.startswith("RPC reply event complete") and revealed["audit_id"] in str(
            record.args
        )

    kept = [r for r in caplog.records if not callers_reveal_trace(r)]
    assert len(kept) < len(caplog.records)  # that trace exists (nameko logs it twice)
    logs = "\n".join(f"{r.name} {r.getMessage()} {r.args!r}" for r in kept)
    assert "revealed to its handler" in logs  # the log was captured, and says who not what
    for protected in (PHONE, NAME, PHONE[-8:]):
        for response in responses:
            assert protected not in json.dumps(response, ensure_ascii=False)
        assert protected not in metrics
        assert protected not in logs


def test_refusals_come_back_typed_with_chinese_fields(site: Site) -> None:
    rpc_, _ = site
    with pytest.raises(InvalidInput) as caught:
        rpc_.rating.submit_evaluation(
            {"service_ref": {"kind": "hotline"}, "channel": "fax", "level": "satisfied"}
        )
    assert caught.value.fields["channel"][0].startswith("应为以下之一")
    with pytest.raises(Forbidden) as forbidden:
        rpc_.rating.submit_evaluation(
            {
                "service_ref": {"kind": "hotline"},
                "channel": "phone",
                "level": "satisfied",
                "entered_by": "clerk",
            }
        )
    assert "代替" in forbidden.value.message
    ok = rpc_.rating.submit_evaluation(
        {"service_ref": {"kind": "hotline"}, "channel": "phone", "level": "satisfied"}
    )
    assert ok["service_ref"]["id"].startswith("421302-")


def test_apply_replicated_from_a_child_counts_in_parent_stats(site: Site) -> None:
    rpc_, _ = site
    today = datetime.now(ZoneInfo("Asia/Shanghai")).date().isoformat()
    docs = [
        {
            "id": f"ev:421302101:ticket:421302101-t{n}:1",
            "schema": 1,
            "version": 1,
            "site_code": "421302101",
            "recorded_at_site": "421302101",
            "service_ref": {"kind": "ticket", "id": f"421302101-t{n}"},
            "sequence": 1,
            "window": "1",
            "staff_id": "t-staff",
            "matter_code": "M",
            "department": "民政办",
            "channel": "qr_code",
            "level": level,
            "bad": level == "dissatisfied",
            "rater": {"real_name": False, "phone_masked": None, "name_masked": None},
            "submitted_at": f"{today}T02:00:00.000Z",
            "day": today,
            "held": False,
            "excluded": None,
        }
        for n, level in ((1, "satisfied"), (2, "dissatisfied"))
    ]
    assert rpc_.rating.apply_replicated("evaluations", docs) == {"applied": 2}
    assert rpc_.rating.apply_replicated("evaluations", docs) == {"applied": 0}
    town = rpc_.rating.stats({"site_code": "421302101", "date_from": today, "date_to": today})
    assert (town["total"]["total"], town["total"]["bad"]) == (2, 1)
    newer = [{**docs[1], "version": 2, "excluded": {"kind": "appeal_upheld", "reason": "申诉成立"}}]
    assert rpc_.rating.apply_replicated("evaluations", newer) == {"applied": 1}
    town = rpc_.rating.stats({"site_code": "421302101", "date_from": today, "date_to": today})
    assert (town["total"]["total"], town["total"]["excluded"]) == (1, 1)
    feed = rpc_.rating.feed("evaluations", 0, 100)  # travels on to the next tier
    assert {d["id"] for d in feed["items"]} >= {d["id"] for d in docs}


def test_bad_rating_section_refuses_to_start(vhost_factory: VhostFactory, tmp_path: Path) -> None:
    vhost = vhost_factory("bad-rating")
    config = site_config(
        vhost, tmp_path, "421302", "county", RATING={"rectification_working_days": 0}
    )
    with pytest.raises(ConfigError) as caught:
        ServiceContainer(RatingService, config)
    assert "RATING.rectification_working_days" in caught.value.fields
    assert not (tmp_path / "421302").exists()


def test_a_fold_that_fails_is_logged_counted_and_retried_not_fatal(
    start: Start,
    vhost_factory: VhostFactory,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    from services.rating import provider
    from services.rating.app import RatingApp

    real_fold, calls = RatingApp.fold, []

    def fails_once(self: RatingApp) -> int:
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("a record the fold cannot count")
        return real_fold(self)

    monkeypatch.setattr(RatingApp, "fold", fails_once)
    monkeypatch.setattr(provider, "FOLD_RETRY_S", 0.05)
    vhost, port = vhost_factory("rating-fold"), free_port()
    config = site_config(
        vhost,
        tmp_path,
        "421302",
        "county",
        port=port,
        RATING={"privacy_salt": "fold-test-salt-0001"},
    )
    with caplog.at_level(logging.ERROR, logger="services.rating.provider"):
        start(RatingService, config)
        wait_for(lambda: len(calls) >= 2, timeout=10)
    assert "rollup fold failed" in caplog.text
    metrics = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    assert any(
        line.startswith("hall_rating_fold_errors_total{") and line.endswith(" 1.0")
        for line in metrics.splitlines()
    )
    with operator_rpc(amqp_uri(vhost), timeout=10) as cluster:
        assert cluster.rating.site_info()["site_code"] == "421302"
