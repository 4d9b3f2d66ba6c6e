"""Matters use cases over a real SQLite store (no broker): catalog lifecycle and replication,
every application path, deadlines with suspension, overdue rules, privacy, the durable
evaluation invitation (outbox + sweep after a crash), lists and gauges."""

from datetime import datetime
from pathlib import Path
from typing import Any, Protocol, TypeVar
from zoneinfo import ZoneInfo

import pytest

from services.common.calendar import WorkingCalendar
from services.common.clock import ManualClock
from services.common.config import ConfigError
from services.common.errors import Conflict, Forbidden, InvalidInput, NotFound
from services.common.privacy import resident_id_check
from services.matters.app import MattersApp
from services.matters.settings import MattersSettings
from tests.conftest import MakeContext

pytestmark = pytest.mark.unit

SEED = str(Path(__file__).parents[2] / "services" / "matters" / "seed" / "catalog.yaml")
TRANSFER = "0700018002421302001"  # 承诺件, 3 working days, county only
RELEASE = "0700018004421302001"  # 抵押权注销登记, 即办件
PENSION = "2000021001421302001"  # 即办件; town handles, village proxy
SUBSIDY = "0500051003421302001"  # 承诺件 10 days; town handles, village proxy


SHANGHAI = ZoneInfo("Asia/Shanghai")
T = TypeVar("T")


def got(value: T | None) -> T:
    """``value``, which the test expects to exist."""
    assert value is not None
    return value


def at(clock: ManualClock, local: str) -> None:
    """Move the clock to ``local`` time in Asia/Shanghai."""
    clock.set(datetime.fromisoformat(local).replace(tzinfo=SHANGHAI))


def resident_id(seventeen: str) -> str:
    return seventeen + resident_id_check(seventeen)


PERSON_ID = resident_id("42130219900101123")


class Make(Protocol):
    def __call__(
        self,
        code: str = ...,
        tier: str = ...,
        calendar: WorkingCalendar | None = ...,
        **section: Any,
    ) -> MattersApp: ...


@pytest.fixture
def make(make_context: MakeContext, clock: ManualClock) -> Make:
    """A started ``MattersApp`` on a real SQLite store; the clock at 2025-09-01 09:00."""
    at(clock, "2025-09-01T09:00")

    def build(
        code: str = "421302",
        tier: str = "county",
        calendar: WorkingCalendar | None = None,
        **section: Any,
    ) -> MattersApp:
        ctx = make_context("matters", code=code, tier=tier, section=section, calendar=calendar)
        app = MattersApp(ctx, MattersSettings.from_section(section, ctx.identity.tier), clock)
        app.start()
        return app

    return build


def person(**extra: Any) -> dict[str, Any]:
    return {
        "kind": "person",
        "name": "张三丰",
        "id_number": PERSON_ID,
        "phone": "13812345678",
        **extra,
    }


def submit(
    app: MattersApp,
    code: str = TRANSFER,
    materials: list[dict[str, Any]] | None = None,
    **extra: Any,
) -> tuple[dict[str, Any], list[str]]:
    if materials is None:
        current = got(app.repo.current(code))
        materials = [{"name": m["name"]} for m in current["materials"] if m["required"]]
    view, invited = app.submit(
        {
            "matter_code": code,
            "applicant": person(),
            "channel": "window",
            "materials": materials,
            "window": "A03",
            "staff_id": "S-017",
            **extra,
        }
    )
    return view, invited


def test_seed_catalog_published_once_at_a_catalog_source(make: Make) -> None:
    app = make(seed_catalog=SEED)
    result = app.search({"q": ""})
    assert result["total"] >= 30
    assert app.get_matter(TRANSFER)["matter_version"] == 1
    assert app.search({"q": "二手房"})["items"][0]["code"] == TRANSFER
    seq = app.repo.catalog.last_seq()
    app.start()  # a restart does not load the seed again
    assert app.repo.catalog.last_seq() == seq


def test_packaged_seed_found_by_relative_path(make: Make) -> None:
    app = make(seed_catalog="seed/catalog.yaml")
    assert app.get_matter(PENSION)["name"] == "城乡居民基本养老保险参保登记"


def test_bad_seed_refuses_start_naming_the_entry(make: Make, tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        Path(SEED).read_text(encoding="utf-8").replace("年满 80 周岁", "年满 80 周岁等条件"),
        encoding="utf-8",
    )
    with pytest.raises(ConfigError) as caught:
        make(seed_catalog=str(bad))
    assert "MATTERS.seed_catalog" in caught.value.message
    assert "0500051004421302001" in caught.value.message
    assert "“等”" in caught.value.message


def test_settings_defaults_and_refusals() -> None:
    from services.common.site import Tier

    assert MattersSettings.from_section({}, Tier.COUNTY).catalog_source is True
    assert MattersSettings.from_section({}, Tier.TOWN).catalog_source is False
    with pytest.raises(ConfigError) as caught:
        MattersSettings.from_section({"catalog_source": True}, Tier.VILLAGE)
    assert "MATTERS.catalog_source" in caught.value.fields
    with pytest.raises(ConfigError):
        MattersSettings.from_section({"due_soon_working_days": "two"}, Tier.COUNTY)
    with pytest.raises(ConfigError):
        MattersSettings.from_section({"timezone": "Mars/Olympus"}, Tier.COUNTY)
    with pytest.raises(ConfigError):
        MattersSettings.from_section({"due_soon": 2}, Tier.COUNTY)


def test_draft_approve_publish_versions_and_retire(make: Make) -> None:
    app = make(seed_catalog=SEED)
    original = got(app.repo.version(TRANSFER, 1))["matter"]
    changed = {**original, "promised_limit_days": 2}
    draft = app.save_draft(changed)
    assert draft["state"] == "draft"
    with pytest.raises(Conflict):
        app.publish(TRANSFER)  # not approved yet
    approved = app.approve_change(TRANSFER, "审改办 李四")
    assert approved["publish_due"] == "2025-09-02"
    published = app.publish(TRANSFER)
    assert published["matter_version"] == 2
    assert app.get_matter(TRANSFER)["promised_limit_days"] == 2
    assert app.get_matter(TRANSFER, 1)["promised_limit_days"] == 3  # old version kept
    with pytest.raises(Conflict):
        app.publish(TRANSFER)  # the draft is already published
    retired = app.retire(TRANSFER, "并入“一件事”套餐办理")
    assert (retired["matter_version"], retired["status"]) == (3, "retired")
    assert app.search({"q": "二手房"})["total"] == 0
    with pytest.raises(Conflict):
        app.retire(TRANSFER, "again")
    with pytest.raises(Conflict):
        submit(app)
    feed = app.catalog_changes(0, 500)["items"]
    assert [d["id"] for d in feed if d["code"] == TRANSFER] == [
        f"{TRANSFER}@1", f"{TRANSFER}@2", f"{TRANSFER}@3"
    ]  # fmt: skip


def test_invalid_matter_and_errors(make: Make) -> None:
    app = make(seed_catalog=SEED)
    bad = {**got(app.repo.version(TRANSFER, 1))["matter"], "promised_limit_days": 45}
    with pytest.raises(InvalidInput) as caught:
        app.save_draft(bad)
    assert "promised_limit_days" in caught.value.fields
    with pytest.raises(NotFound):
        app.get_matter("9999999999421302001")
    with pytest.raises(NotFound):
        app.approve_change("9999999999421302001", "李四")
    with pytest.raises(InvalidInput):
        app.approve_change(TRANSFER, " ")


def test_unpublished_approved_change_is_flagged_after_one_working_day(
    make: Make, clock: ManualClock
) -> None:
    at(clock, "2025-09-30T10:00")  # Tuesday before National Day
    app = make(seed_catalog=SEED)
    app.save_draft({**got(app.repo.version(TRANSFER, 1))["matter"], "visits": 2})
    app.approve_change(TRANSFER, "李四")
    [change] = app.unpublished_changes()
    assert (change["publish_due"], change["overdue"]) == ("2025-10-09", False)
    at(clock, "2025-10-09T16:00")
    assert app.unpublished_changes()[0]["overdue"] is False
    at(clock, "2025-10-10T09:00")
    assert app.unpublished_changes()[0]["overdue"] is True
    app.refresh_gauges()
    assert _gauge(app, "hall_matter_changes_unpublished_overdue") == 1
    app.publish(TRANSFER)
    app.refresh_gauges()
    assert app.unpublished_changes() == []
    assert _gauge(app, "hall_matter_changes_unpublished_overdue") == 0


def _gauge(app: MattersApp, name: str, **labels: str) -> float | None:
    return app.context.metrics.registry.get_sample_value(
        name, {"service": "matters", "site": app.identity.code, **labels}
    )


def test_lower_tier_replicates_catalog_and_sets_availability(make: Make) -> None:
    county = make(seed_catalog=SEED)
    town = make("421302101", "town")
    village = make("421302101201", "village")
    with pytest.raises(Forbidden):
        town.save_draft(got(county.repo.version(TRANSFER, 1))["matter"])
    with pytest.raises(Forbidden):
        town.publish(TRANSFER)
    page = county.catalog_changes(0, 500)
    assert town.apply_catalog(page["items"]) == len(page["items"])
    assert town.apply_catalog(page["items"]) == 0  # a resend changes nothing
    with pytest.raises(Forbidden):
        county.apply_catalog(page["items"])
    # the village pulls from the town, whose catalog feed now carries the copies
    village.apply_catalog(town.catalog_changes(0, 500)["items"])
    assert village.get_matter(PENSION)["availability"] == "proxy_only"
    assert village.get_matter(TRANSFER)["availability"] == "not_offered"
    assert town.get_matter(PENSION)["availability"] == "offered"
    assert village.search({"q": "", "availability": "proxy_only"})["total"] >= 5
    # a village decides not to proxy this one; a new version keeps that choice
    village.set_local_availability(SUBSIDY, "not_offered")
    original = got(county.repo.version(SUBSIDY, 1))["matter"]
    county.save_draft({**original, "promised_limit_days": 8})
    county.approve_change(SUBSIDY, "李四")
    county.publish(SUBSIDY)
    village.apply_catalog(county.catalog_changes(0, 500)["items"])
    current = village.get_matter(SUBSIDY)
    assert (current["matter_version"], current["availability"]) == (2, "not_offered")
    with pytest.raises(Conflict):
        submit(village, SUBSIDY, channel="proxy")
    with pytest.raises(InvalidInput) as caught:
        submit(village, PENSION)  # window at a proxy-only station
    assert "channel" in caught.value.fields
    view, _ = submit(village, PENSION, channel="proxy")
    assert view["matter_version"] == 1
    with pytest.raises(InvalidInput):
        village.apply_catalog([{"id": "x"}])
    with pytest.raises(InvalidInput):
        village.set_local_availability(PENSION, "maybe")


def test_accept_review_approve_complete_deliver_with_one_invitation(make: Make) -> None:
    app = make(seed_catalog=SEED)
    view, invited = submit(app)
    assert view["state"] == "accepted"
    assert invited == []
    receipt = view["receipt"]
    assert receipt["title"] == "受理凭证"
    assert (receipt["accepted_on"], receipt["due_date"]) == ("2025-09-01", "2025-09-04")
    assert view["due_state"] == "on_time"
    app_id = view["id"]
    with pytest.raises(Conflict):
        app.complete(app_id)  # not reviewed
    assert app.start_review(app_id)[0]["state"] == "in_review"
    with pytest.raises(InvalidInput):
        app.decide(app_id, "maybe")
    assert app.decide(app_id, "approve")[0]["state"] == "approved"
    done, invited = app.complete(app_id, result="不动产权证书 鄂(2025)曾都区不动产权第0012345号")
    assert done["state"] == "completed"
    assert done["overdue"] is False
    assert invited == [f"application:{app_id}"]
    invitation = got(app.repo.invitations.get(invited[0]))
    assert invitation["service_ref"] == {"kind": "application", "id": app_id}
    assert (invitation["window"], invitation["staff_id"]) == ("A03", "S-017")
    assert invitation["service_channel"] == "window"
    assert invitation["matter_code"] == TRANSFER
    assert invitation["department"] == "随州市曾都区不动产登记中心"
    assert invitation["schema"] == 1
    with pytest.raises(InvalidInput):
        app.deliver(app_id, "mail")  # tracking number required
    delivered, invited = app.deliver(app_id, "mail", "SF1234567890")
    assert delivered["state"] == "delivered"
    assert invited == []  # still exactly one invitation
    assert app.repo.invitations.count() == 1
    with pytest.raises(Conflict):
        app.deliver(app_id, "window_pickup")
    summary = got(app.repo.summaries.get(app_id))
    assert summary["state"] == "delivered"
    assert summary["version"] >= 6


def test_immediate_matter_is_completed_on_acceptance_and_invites(make: Make) -> None:
    app = make(seed_catalog=SEED)
    view, invited = submit(app, RELEASE)
    assert view["state"] == "completed"
    assert view["receipt"]["due_date"] == "2025-09-01"
    assert invited == [f"application:{view['id']}"]
    assert got(app.repo.applications.get(view["id"]))["outbox_pending"] is False


def test_missing_materials_give_one_notice_then_acceptance(make: Make) -> None:
    app = make(seed_catalog=SEED)
    presented: list[dict[str, Any]] = [
        {"name": "买卖双方居民身份证", "valid": False, "problem": "卖方身份证已过期"},
        {"name": "不动产权证书"},
        {"name": "存量房买卖合同"},
    ]
    view, _ = submit(app, materials=presented)
    assert view["state"] == "supplement_required"
    notice = view["supplement_notice"]
    assert notice["title"] == "一次性告知单"
    assert notice["items"] == [
        {"name": "不动产登记申请书", "problem": "未提交"},
        {"name": "买卖双方居民身份证", "problem": "卖方身份证已过期"},
        {"name": "完税凭证", "problem": "未提交"},
    ]
    assert "不动产登记申请书（未提交）" in notice["text"]
    assert view["clock"] == "none"
    assert view["due_date"] is None
    with pytest.raises(Conflict):
        app.start_review(view["id"])
    partial, _ = app.supplement(view["id"], [{"name": "不动产登记申请书"}])
    assert [i["name"] for i in partial["supplement_notice"]["items"]] == [
        "买卖双方居民身份证",
        "完税凭证",
    ]  # only what is still missing from the first notice
    rest = [{"name": "买卖双方居民身份证"}, {"name": "完税凭证"}]
    accepted, _ = app.supplement(view["id"], rest)
    assert accepted["state"] == "accepted"
    assert accepted["receipt"]["due_date"] == "2025-09-04"
    assert len(accepted["notices"]) == 2
    assert accepted["receipt"]["materials_received"] == [
        "买卖双方居民身份证", "不动产权证书", "存量房买卖合同", "不动产登记申请书", "完税凭证"
    ]  # fmt: skip
    with pytest.raises(Conflict):
        app.supplement(view["id"], rest)


def test_refusal_needs_reason_and_basis(make: Make) -> None:
    app = make(seed_catalog=SEED)
    with pytest.raises(InvalidInput) as caught:
        submit(app, refusal={"reason": "不属于本机关职权范围", "basis": ""})
    assert "refusal.basis" in caught.value.fields
    view, _ = submit(
        app, refusal={"reason": "不属于本机关职权范围", "basis": "《行政许可法》第三十二条"}
    )
    assert view["state"] == "not_accepted"
    assert view["refusal"]["title"] == "不予受理通知书"
    pending, _ = submit(app, materials=[])
    with pytest.raises(InvalidInput):
        app.refuse(pending["id"], "材料不符合法定形式", None)
    refused, _ = app.refuse(pending["id"], "逾期未补正", "《行政许可法》第三十二条")
    assert refused["state"] == "not_accepted"
    with pytest.raises(Conflict):
        app.start_review(refused["id"])


def test_denial_needs_reason_and_still_invites(make: Make) -> None:
    app = make(seed_catalog=SEED)
    view, _ = submit(app)
    app.start_review(view["id"])
    with pytest.raises(InvalidInput) as caught:
        app.decide(view["id"], "deny")
    assert "reason" in caught.value.fields
    denied, _ = app.decide(view["id"], "deny", "房屋已被司法查封")
    assert denied["decision_reason"] == "房屋已被司法查封"
    _, invited = app.complete(view["id"])
    assert invited == [f"application:{view['id']}"]


def test_suspend_and_resume_extend_the_due_date(make: Make, clock: ManualClock) -> None:
    at(clock, "2025-09-01T09:00")
    app = make(seed_catalog=SEED)
    view, _ = submit(app, SUBSIDY)  # 10 working days: due 2025-09-15
    assert view["due_date"] == "2025-09-15"
    with pytest.raises(InvalidInput):
        app.suspend(view["id"], "holiday")
    at(clock, "2025-09-03T10:00")
    suspended, _ = app.suspend(view["id"], "expert_review", "组织专家评审")
    assert suspended["due_state"] == "suspended"
    with pytest.raises(Conflict):
        app.start_review(view["id"])
    with pytest.raises(Conflict):
        app.suspend(view["id"], "hearing")
    at(clock, "2025-09-08T10:00")
    resumed, _ = app.resume(view["id"])
    assert resumed["suspended_days"] == 3
    assert resumed["due_date"] == "2025-09-18"
    assert resumed["suspensions"][0]["working_days"] == 3
    with pytest.raises(Conflict):
        app.resume(view["id"])


def test_overdue_completion_requires_a_public_reason(make: Make, clock: ManualClock) -> None:
    at(clock, "2025-09-26T09:00")  # Friday before National Day
    app = make(seed_catalog=SEED)
    view, _ = submit(app)  # 3 working days: Sun 9-28, Mon 9-29, Tue 9-30
    assert view["due_date"] == "2025-09-30"
    app.start_review(view["id"])
    app.decide(view["id"], "approve")
    at(clock, "2025-09-29T09:00")
    assert app.get_application(view["id"])["due_state"] == "due_soon"
    at(clock, "2025-10-09T09:00")
    assert app.get_application(view["id"])["due_state"] == "overdue"
    with pytest.raises(InvalidInput) as caught:
        app.complete(view["id"])
    assert "overdue_reason" in caught.value.fields
    done, _ = app.complete(view["id"], overdue_reason="因系统升级暂停登记两天")
    assert (done["overdue"], done["overdue_reason"]) == (True, "因系统升级暂停登记两天")
    summary = got(app.repo.summaries.get(view["id"]))
    assert (summary["overdue"], summary["overdue_reason"]) == (True, "因系统升级暂停登记两天")


def test_lists_and_gauges_by_due_state(make: Make, clock: ManualClock) -> None:
    at(clock, "2025-09-01T09:00")
    app = make(seed_catalog=SEED)
    late, _ = submit(app)  # due 09-04
    at(clock, "2025-09-03T09:00")
    soon, _ = submit(app)  # due 09-08
    later, _ = submit(app, SUBSIDY)  # due 09-17
    paused, _ = submit(app, SUBSIDY)
    app.suspend(paused["id"], "hearing")
    at(clock, "2025-09-05T09:00")  # Friday

    def ids(due_state: str) -> list[str]:
        return [a["id"] for a in app.list_applications({"due_state": due_state})["items"]]

    assert ids("overdue") == [late["id"]]
    assert ids("due_soon") == [soon["id"]]
    assert ids("on_time") == [later["id"]]
    assert ids("suspended") == [paused["id"]]
    app.refresh_gauges()
    assert _gauge(app, "hall_applications_overdue") == 1
    assert _gauge(app, "hall_applications_due_soon") == 1
    assert _gauge(app, "hall_applications_suspended") == 1
    assert got(_gauge(app, "hall_catalog_matters", status="published")) >= 30
    found = app.list_applications({"applicant_id_number": PERSON_ID.lower()})
    assert found["count"] == 4
    assert app.list_applications({"state": "accepted", "matter_code": SUBSIDY})["count"] == 2
    with pytest.raises(InvalidInput):
        app.list_applications({"due_state": "late"})


def test_personal_data_is_never_stored_or_published_in_clear(make: Make) -> None:
    app = make(seed_catalog=SEED)
    view, _ = submit(app, RELEASE)
    stored = got(app.repo.applications.get(view["id"]))
    text = repr(stored) + repr(view)
    for clear in (PERSON_ID, "张三丰", "13812345678"):
        assert clear not in text
    assert view["applicant"] == {
        "kind": "person",
        "name": "张**",
        "id_masked": "4213**********" + PERSON_ID[-4:],
        "phone_masked": "138****5678",
    }
    published = repr(app.repo.summaries.get(view["id"])) + repr(app.repo.invitations.find())
    for secret in ("张", "138", PERSON_ID[-4:], stored["applicant"]["id_hash"]):
        assert secret not in published
    with pytest.raises(InvalidInput) as caught:
        app.submit({"matter_code": RELEASE, "channel": "window",
                    "applicant": person(id_number="421302199001011234")})  # fmt: skip
    assert "applicant.id_number" in caught.value.fields


def test_salt_generated_once_per_site_and_configurable(make: Make, tmp_path: Path) -> None:
    app = make(seed_catalog=SEED)
    again = make(seed_catalog=SEED)
    assert app.salt == again.salt
    assert len(app.salt) == 64
    other = make("421303", "county", privacy_salt="从配置读取的盐")
    assert other.salt == "从配置读取的盐"


def test_crash_before_the_invitation_is_repaired_by_the_sweep(make: Make) -> None:
    app = make(seed_catalog=SEED)
    view, _ = submit(app)
    app.start_review(view["id"])
    app.decide(view["id"], "approve")
    # Simulate a crash right after the state change: the flag is set in the same write,
    # but neither the invitation nor the summary were written.
    doc = got(app.repo.applications.get(view["id"]))
    crashed = app.repo.applications.update(
        view["id"],
        {
            "state": "completed",
            "completed_at": "2025-09-01T01:30:00Z",
            "completed_on": "2025-09-01",
            "clock": "stopped",
            "overdue": False,
            "outbox_pending": True,
        },
        expect={"version": doc["version"]},
    )
    assert crashed is not None
    assert app.repo.invitations.get(f"application:{view['id']}") is None
    assert app.sweep_outbox() == [f"application:{view['id']}"]
    invitation = got(app.repo.invitations.get(f"application:{view['id']}"))
    assert invitation["service_ended_at"] == "2025-09-01T01:30:00Z"
    assert got(app.repo.summaries.get(view["id"]))["state"] == "completed"
    assert got(app.repo.applications.get(view["id"]))["outbox_pending"] is False
    assert app.sweep_outbox() == []  # nothing left; a replay changes nothing
    assert app.repo.invitations.count() == 1
    assert _gauge(app, "hall_outbox_repaired_total", record="invitation") == 1


def test_crash_after_the_invitation_but_before_clearing_the_flag(make: Make) -> None:
    app = make(seed_catalog=SEED)
    view, invited = submit(app, RELEASE)
    doc = got(app.repo.applications.get(view["id"]))
    app.repo.applications.update(
        view["id"], {"outbox_pending": True}, expect={"version": doc["version"]}
    )
    assert app.sweep_outbox() == []  # the invitation exists: no second one, no second hint
    assert app.repo.invitations.count() == 1
    assert invited == [f"application:{view['id']}"]


def test_search_params_are_validated(make: Make) -> None:
    app = make(seed_catalog=SEED)
    with pytest.raises(InvalidInput) as caught:
        app.search({"q": "登记", "limit": 1000})
    assert "limit" in caught.value.fields
    with pytest.raises(InvalidInput):
        app.search({"tier": "planet"})
    result = app.search({"q": "登记", "type": "07", "online": True, "limit": 5})
    assert result["total"] >= 1
    assert all(i["type"] == "07" and i["online"] for i in result["items"])


def test_search_by_codes_answers_exactly_those_in_one_call(make: Make) -> None:
    app = make(seed_catalog=SEED)
    some_codes = [i["code"] for i in app.search({"limit": 3})["items"]]
    wanted = [*some_codes, "0700018999421302999"]  # the last is no matter of the catalog
    found = app.search({"codes": wanted, "limit": 10})
    assert sorted(i["code"] for i in found["items"]) == sorted(some_codes)
    assert found["total"] == 3
    narrowed = app.search({"codes": wanted, "q": found["items"][0]["name"], "limit": 10})
    assert [i["code"] for i in narrowed["items"]] == [found["items"][0]["code"]]
    for bad in (["x"] * 101, ["<script>"], "0700018004421302001"):
        with pytest.raises(InvalidInput) as caught:
            app.search({"codes": bad})
        assert [k.split("[")[0] for k in caught.value.fields] == ["codes"]


OVERRIDE_2027 = """2027:
  holidays: [2027-01-01, 2027-02-05, 2027-02-06, 2027-02-07, 2027-02-08, 2027-02-09,
             2027-02-10, 2027-02-11]
  workdays: [2027-02-13]
"""


def test_2027_deadline_refused_without_override_and_computed_with_it(
    make: Make, clock: ManualClock, tmp_path: Path
) -> None:
    from services.common.calendar import ScheduleMissing, load_calendar

    at(clock, "2026-12-30T10:00")  # Wednesday: the limits run into 2027
    app = make(seed_catalog=SEED)
    with pytest.raises(ScheduleMissing) as caught:
        submit(app)  # 3 working days: 12-31, then 2027
    assert "2027" in caught.value.message
    assert app.repo.applications.count() == 0  # nothing half-accepted
    immediate, _ = submit(app, RELEASE)  # a 即办件 needs no schedule ahead
    assert immediate["state"] == "completed"
    with pytest.raises(ScheduleMissing):
        app.list_applications({"due_state": "due_soon"})
    app.refresh_gauges()  # the other gauges still refresh
    assert _gauge(app, "hall_applications_overdue") == 0

    override = tmp_path / "calendar-2027.yaml"
    override.write_text(OVERRIDE_2027, encoding="utf-8")
    county = make("421303", "county", calendar=load_calendar(str(override)),
                  seed_catalog=SEED)  # fmt: skip
    view, _ = submit(county)
    # 12-31 (Thu); 1-1 is a holiday; Mon 1-4, Tue 1-5
    assert view["due_date"] == "2027-01-05"
    assert view["due_state"] == "on_time"
    assert county.list_applications({"due_state": "on_time"})["count"] == 1


def test_applications_found_by_id_number_as_people_type_it(make: Make) -> None:
    app = make(seed_catalog=SEED)
    view, _ = submit(app, RELEASE, applicant=person(id_number="11010519491231002X"))
    for typed in ("11010519491231002x", "110105 19491231 002X", " 11010519491231002x "):
        found = app.list_applications({"applicant_id_number": typed})
        assert [a["id"] for a in found["items"]] == [view["id"]]


def test_unknown_argument_fields_are_refused_but_replicated_records_tolerate_them(
    make: Make,
) -> None:
    county = make(seed_catalog=SEED)
    with pytest.raises(InvalidInput) as caught:
        submit(county, RELEASE, priority="high")
    assert caught.value.fields == {"priority": ["不认识的字段"]}
    with pytest.raises(InvalidInput) as caught:
        county.search({"q": "登记", "sort": "name"})
    assert "sort" in caught.value.fields
    town = make("421302101", "town")
    newer = [{**d, "added_upstream_later": 1} for d in county.catalog_changes(0, 500)["items"]]
    assert town.apply_catalog(newer) == len(newer)
    stored = town.repo.version(TRANSFER, 1)
    assert stored is not None
    assert "added_upstream_later" not in stored


def test_stored_moments_carry_microseconds(make: Make, clock: ManualClock) -> None:
    app = make(seed_catalog=SEED)
    clock.advance(microseconds=250)
    view, _ = submit(app)
    assert view["created_at"] == "2025-09-01T01:00:00.000250Z"
