"""The matters service in real containers on the real RabbitMQ: catalog over RPC and HTTP
(search, detail, printable guide), replication to a town, applications end to end with
typed errors, the evaluation_invited hint, the durable invitation feed across a restart and
a lost event, and the timer that repairs an interrupted outbox and refreshes the gauges."""

from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, ClassVar

import pytest
import requests
from nameko.events import event_handler
from nameko.standalone.rpc import ServiceRpcProxy

from services.common.errors import Conflict, Forbidden, InvalidInput, NotFound
from services.common.feeds import FeedFollower
from services.common.store import open_store
from services.matters.schemas import MatterSchema
from services.matters.service import MattersService
from tests.conftest import amqp_uri, free_port, operator_context, site_config
from tests.service.helpers import SEED, resident_id, wait_for

pytestmark = pytest.mark.service

Start = Callable[[type, dict[str, object]], Any]  # tests/service/conftest.py ``start``
VhostFactory = Callable[[str], str]  # tests/conftest.py ``vhost_factory``

TRANSFER = "0700018002421302001"
RELEASE = "0700018004421302001"  # 即办件
PENSION = "2000021001421302001"


PERSON = {"kind": "person", "name": "李四", "id_number": resident_id("42130219851212567")}


class Listener:
    """Stands in for rating: records the wake-up hints matters dispatches."""

    name = "hint_listener"
    received: ClassVar[list[dict[str, Any]]] = []

    @event_handler("matters", "evaluation_invited")
    def on_invited(self, payload: dict[str, Any]) -> None:
        Listener.received.append(payload)


def county_config(
    vhost: str, tmp_path: Path, port: int | None = None, **matters: Any
) -> dict[str, object]:
    section = {"seed_catalog": SEED, "sweep_interval_seconds": 0.2, **matters}
    return site_config(vhost, tmp_path, "421302", "county", port=port, MATTERS=section)


def rpc(vhost: str, timeout: float = 15) -> Any:
    return ServiceRpcProxy(
        "matters", {"AMQP_URI": amqp_uri(vhost)}, timeout=timeout, context_data=operator_context()
    )


def required(matters: Any, code: str) -> list[dict[str, Any]]:
    return [{"name": m["name"]} for m in matters.get_matter(code)["materials"] if m["required"]]


def submit(matters: Any, code: str, channel: str, **extra: Any) -> dict[str, Any]:
    """PERSON applies for ``code`` with its required materials."""
    application: dict[str, Any] = {
        "matter_code": code,
        "applicant": PERSON,
        "channel": channel,
        "materials": required(matters, code),
        **extra,
    }
    view: dict[str, Any] = matters.submit_application(application)
    return view


def test_catalog_search_detail_and_printable_guide(
    start: Start, vhost_factory: VhostFactory, tmp_path: Path
) -> None:
    vhost, port = vhost_factory("matters"), free_port()
    start(MattersService, county_config(vhost, tmp_path, port))
    base = f"http://127.0.0.1:{port}"
    found = requests.get(f"{base}/matters", params={"q": "二手房"}, timeout=5).json()
    assert found["items"][0]["code"] == TRANSFER
    assert found["items"][0]["department"] == "随州市曾都区不动产登记中心"
    flags = {"online": "true", "limit": "100"}
    online = requests.get(f"{base}/matters", params=flags, timeout=5)
    assert all(item["online"] for item in online.json()["items"])
    detail = requests.get(f"{base}/matters/{TRANSFER}", timeout=5).json()
    assert detail["legal_basis"][1] == "《不动产登记暂行条例》"
    assert detail["type_name"] == "行政确认"
    missing = requests.get(f"{base}/matters/0000000000421302001", timeout=5)
    assert missing.status_code == 404
    assert missing.json()["error"] == "not_found"
    bad = requests.get(f"{base}/matters", params={"limit": "1000"}, timeout=5)
    assert bad.status_code == 400
    assert "limit" in bad.json()["fields"]

    guide = requests.get(f"{base}/matters/{TRANSFER}/guide", timeout=5)
    assert guide.status_code == 200
    assert guide.headers["Content-Type"].startswith("text/html")
    page = guide.text
    for heading in ("办事指南", "设定依据", "受理条件", "申请材料", "办理流程", "办理时限",
                    "收费依据", "监督电话", "评价渠道", "常见问题"):  # fmt: skip
        assert heading in page
    assert "承诺 3 个工作日办结" in page
    published = detail["published_at"]  # UTC; the page shows the local (Beijing) date
    local = datetime.fromisoformat(published) + timedelta(hours=8)
    assert f"发布于 {local.date().isoformat()}" in page

    # catalog text is escaped on the page
    with rpc(vhost) as matters:
        source = matters.get_matter(TRANSFER)
        # a draft carries the matter's elements only: unknown fields (the view's
        # availability, names, timestamps, each material's form_name) are refused in RPC
        # arguments
        elements = {k: v for k, v in source.items() if k in MatterSchema().fields}
        elements["materials"] = [
            {k: v for k, v in m.items() if k != "form_name"} for m in source["materials"]
        ]
        tricky = {**elements, "code": "0700018002421302002", "name": source["name"]}
        tricky["faq"] = [{"q": "<script>alert(1)</script>", "a": "A & B"}]
        matters.save_matter_draft(tricky)
        matters.approve_matter_change(tricky["code"], "李四")
        published = matters.publish_matter(tricky["code"])
        assert published["matter_version"] == 1
    page = requests.get(f"{base}/matters/{tricky['code']}/guide", timeout=5).text
    assert "<script>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "A &amp; B" in page


def test_applications_end_to_end_with_hint_and_typed_errors(
    start: Start, vhost_factory: VhostFactory, tmp_path: Path
) -> None:
    vhost = vhost_factory("matters")
    Listener.received.clear()
    start(Listener, {"AMQP_URI": amqp_uri(vhost)})
    start(MattersService, county_config(vhost, tmp_path))
    with rpc(vhost) as matters:
        immediate = submit(matters, RELEASE, "window", window="B07")
        assert immediate["state"] == "completed"
        wait_for(lambda: {"id": f"application:{immediate['id']}"} in Listener.received)

        view = submit(matters, TRANSFER, "online")
        assert view["receipt"]["title"] == "受理凭证"
        with pytest.raises(Conflict):
            matters.complete_application(view["id"])
        matters.start_review(view["id"])
        matters.suspend_application(view["id"], "expert_review", "专家评审")
        assert matters.get_application(view["id"])["due_state"] == "suspended"
        matters.resume_application(view["id"])
        with pytest.raises(InvalidInput) as caught:
            matters.decide_application(view["id"], "deny")
        assert "reason" in caught.value.fields
        matters.decide_application(view["id"], "approve")
        done = matters.complete_application(view["id"])
        assert done["state"] == "completed"
        wait_for(lambda: {"id": f"application:{view['id']}"} in Listener.received)
        matters.deliver_application(view["id"], "window_pickup")
        with pytest.raises(NotFound):
            matters.get_application("421302-nope")
        with pytest.raises(InvalidInput) as caught:
            matters.submit_application({"matter_code": TRANSFER, "channel": "fax"})
        assert {"applicant", "channel"} <= set(caught.value.fields)

        invitations = matters.feed("evaluation_invitations", 0, 100)["items"]
        assert sorted(i["service_ref"]["id"] for i in invitations) == sorted(
            [immediate["id"], view["id"]]
        )
        assert {i["service_channel"] for i in invitations} == {"window", "online"}
        summaries = matters.feed("application_summaries", 0, 100)["items"]
        latest = {s["id"]: s for s in summaries}
        assert latest[view["id"]]["state"] == "delivered"
        text = repr(summaries) + repr(invitations)
        assert PERSON["id_number"] not in text
        assert "李" not in text
    assert len([r for r in Listener.received if r["id"] == f"application:{view['id']}"]) == 1


def test_invitation_survives_a_lost_hint_and_a_restart(
    start: Start, vhost_factory: VhostFactory, tmp_path: Path
) -> None:
    vhost = vhost_factory("matters")
    container = start(MattersService, county_config(vhost, tmp_path))
    with rpc(vhost) as matters:  # nobody listens: the hint is lost
        done = submit(matters, RELEASE, "mail")
    container.stop()
    start(MattersService, county_config(vhost, tmp_path))
    # what rating does on its timer: pull the feed after its checkpoint, idempotently
    rating_store = open_store(f"sqlite:///{tmp_path / 'rating'}", "rating")
    try:
        follower = FeedFollower(rating_store, "matters", "evaluation_invitations")
        got: list[dict[str, Any]] = []
        with rpc(vhost) as matters:

            def fetch(since: int, limit: int) -> dict[str, Any]:
                page: dict[str, Any] = matters.feed("evaluation_invitations", since, limit)
                return page

            assert follower.pull(fetch, got.extend) == 1
            assert follower.pull(fetch, got.extend) == 0
    finally:
        rating_store.close()
    assert got[0]["id"] == f"application:{done['id']}"
    assert got[0]["service_channel"] == "mail"


def test_town_holds_a_read_only_replicated_catalog(
    start: Start, vhost_factory: VhostFactory, tmp_path: Path
) -> None:
    county, town = vhost_factory("county"), vhost_factory("town")
    start(MattersService, county_config(county, tmp_path))
    start(
        MattersService,
        site_config(town, tmp_path, "421302101", "town", "421302", county),
    )
    with rpc(county) as county_matters, rpc(town) as town_matters:
        page = county_matters.catalog_changes(0, 500)
        assert len(page["items"]) >= 30
        assert town_matters.apply_catalog(page["items"]) == {"applied": len(page["items"])}
        with pytest.raises(Forbidden):
            county_matters.apply_catalog(page["items"])
        with pytest.raises(Forbidden):
            town_matters.publish_matter(TRANSFER)
        assert town_matters.search_matters("二手房")["total"] == 1
        assert town_matters.get_matter(TRANSFER)["availability"] == "not_offered"
        assert town_matters.get_matter(PENSION)["availability"] == "offered"
        changed = town_matters.set_local_availability(TRANSFER, "proxy_only")
        assert changed["availability"] == "proxy_only"
        view = submit(town_matters, TRANSFER, "proxy")
        assert (view["site_code"], view["matter_version"]) == ("421302101", 1)
        assert view["number"].startswith("421302101")


def test_timer_repairs_an_interrupted_outbox_and_refreshes_gauges(
    start: Start, vhost_factory: VhostFactory, tmp_path: Path
) -> None:
    vhost, port = vhost_factory("matters"), free_port()
    Listener.received.clear()
    start(Listener, {"AMQP_URI": amqp_uri(vhost)})
    start(MattersService, county_config(vhost, tmp_path, port))
    with rpc(vhost) as matters:
        crashed = submit(matters, TRANSFER, "window")
        late = submit(matters, TRANSFER, "window")
        matters.start_review(crashed["id"])
        matters.decide_application(crashed["id"], "approve")
    # A second writer on the same store: the completion was written with its flag, then the
    # process died before the invitation; and an application whose due date has passed.
    store = open_store(f"sqlite:///{tmp_path / '421302'}", "matters")
    try:
        apps = store.collection("applications")
        doc = apps.get(crashed["id"])
        assert doc is not None
        apps.update(
            crashed["id"],
            {
                "state": "completed",
                "completed_at": "2025-09-01T02:00:00Z",
                "clock": "stopped",
                "completed_on": "2025-09-01",
                "overdue": False,
                "outbox_pending": True,
            },
            expect={"version": doc["version"]},
        )
        apps.update(late["id"], {"due_date": "2020-01-02"})
    finally:
        store.close()
    wait_for(lambda: {"id": f"application:{crashed['id']}"} in Listener.received)
    with rpc(vhost) as matters:
        invitations = matters.feed("evaluation_invitations", 0, 100)["items"]
        assert [i["id"] for i in invitations] == [f"application:{crashed['id']}"]
        overdue = matters.list_applications({"due_state": "overdue"})
        assert [a["id"] for a in overdue["items"]] == [late["id"]]
        assert overdue["items"][0]["due_state"] == "overdue"

    def metrics_show_overdue() -> str | None:
        text = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
        shown = 'hall_applications_overdue{service="matters",site="421302"} 1.0' in text
        return text if shown else None

    text = wait_for(metrics_show_overdue)
    assert (
        'hall_outbox_repaired_total{record="invitation",service="matters",site="421302"} 1.0'
        in text
    )
    # Anonymous HTTP no longer lists applications (it was an ID-number oracle).
    listed = requests.get(
        f"http://127.0.0.1:{port}/applications",
        params={"applicant_id_number": "42130219800101001X"},
        timeout=5,
    )
    assert listed.status_code == 404
    assert "42130219800101001X" not in listed.text
