"""The rating use cases over a real store (SQLite and mongomock, no broker): binding to
invitations, refusals, outbox steps, rollups (incl. replication deltas and crash replay),
statistics over a subtree, exclusions, holds, default ratings, export, privacy at rest."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, NoReturn, Protocol, TypeVar
from zoneinfo import ZoneInfo

import pytest

from services.common.calendar import load_calendar
from services.common.clock import ManualClock
from services.common.errors import Conflict, Forbidden, InvalidInput, NotFound
from services.common.store import Doc, open_store
from services.rating import domain
from services.rating.app import RatingApp
from services.rating.settings import RatingSettings
from tests.conftest import MakeContext

pytestmark = pytest.mark.unit

SH = ZoneInfo("Asia/Shanghai")
PHONE, NAME = "13912345678", "王小明"
T = TypeVar("T")


def at(day: str, hour: int = 10, minute: int = 0) -> datetime:
    """A Shanghai wall-clock time as aware UTC."""
    return (
        datetime.fromisoformat(f"{day}T{hour:02d}:{minute:02d}").replace(tzinfo=SH).astimezone(UTC)
    )


def some(value: T | None) -> T:
    """``value``, which the test expects to exist."""
    assert value is not None
    return value


class Make(Protocol):
    def __call__(self, site: str = ..., tier: str = ..., **rules: Any) -> RatingApp: ...


@pytest.fixture
def make(make_context: MakeContext, store_uri: str, clock: ManualClock) -> Make:
    """``make(site, tier, **settings)``: a ``RatingApp`` on its own store, on the shared
    clock set to Friday 2024-09-13 10:00 Shanghai."""
    clock.set(at("2024-09-13"))

    def build(site: str = "421302", tier: str = "county", **rules: Any) -> RatingApp:
        uri = f"{store_uri}/{site}" if store_uri.startswith("sqlite") else f"{store_uri}{site}"
        rules.setdefault("privacy_salt", "test-salt-0123456789")
        context = make_context("rating", code=site, tier=tier, store_uri=uri)
        return RatingApp(context, RatingSettings(**rules), clock)

    return build


def invitation(
    n: int, site: str = "421302", window: str = "3", ended: str | None = None, kind: str = "ticket"
) -> dict[str, Any]:
    return {
        "id": f"{kind}:{site}-t{n}",
        "schema": 1,
        "version": 1,
        "_seq": n,
        "service_ref": {"kind": kind, "id": f"{site}-t{n}"},
        "site_code": site,
        "window": window,
        "staff_id": f"staff-{window}",
        "matter_code": "M1",
        "department": "人社局",
        "service_channel": "window",
        "service_ended_at": ended or "2024-09-13T01:30:00Z",
        "created_at": "2024-09-13T01:30:00Z",
        "future_field": "ignored",
    }


def submit(
    rating: RatingApp, n: int = 1, level: str = "satisfied", site: str = "421302", **extra: Any
) -> dict[str, Any]:
    payload = {
        "service_ref": {"kind": "ticket", "id": f"{site}-t{n}"},
        "channel": "pad",
        "level": level,
        **extra,
    }
    if domain.Level(level).bad and "reasons" not in extra:
        payload["reasons"] = {"tags": ["等候过长"]}
    return rating.submit(payload)


def test_invitations_are_idempotent_and_bind_the_evaluation(make: Make) -> None:
    rating = make()
    assert rating.apply_invitations("queue", [invitation(1), invitation(2, window="5")]) == 2
    assert rating.apply_invitations("queue", [invitation(1)]) == 0  # replay changes nothing
    assert rating.apply_invitations("queue", [{"id": "broken"}]) == 0  # parked, not fatal
    pad = some(rating.pending_for_window("3"))
    assert pad["id"] == "ticket:421302-t1"
    assert "future_field" not in pad  # unknown fields are ignored
    answer = {
        "invitation_id": pad["id"],
        "service_ref": {"kind": "ticket"},
        "channel": "pad",
        "level": "very_satisfied",
        "window": "9",  # a pad at window 9 (its identity's window) rating window 3's service
        "staff_id": "someone-else",
    }
    with pytest.raises(Forbidden) as refused:
        rating.submit(answer)
    assert "window" in refused.value.fields
    ev = rating.submit({**answer, "window": "3"})
    assert (ev["window"], ev["staff_id"], ev["department"]) == ("3", "staff-3", "人社局")
    assert ev["invitation_id"] == "ticket:421302-t1"
    assert ev["sequence"] == 1
    assert ev["id"] == "ev:421302:ticket:421302-t1:1"
    assert rating.pending_for_window("3") is None
    assert some(rating.repo.invitations.get("ticket:421302-t1"))["state"] == "answered"  # repaired
    assert some(rating.pending_for_window("5"))["id"] == "ticket:421302-t2"
    with pytest.raises(NotFound):
        rating.submit(
            {
                "invitation_id": "ticket:nope",
                "service_ref": {"kind": "ticket"},
                "channel": "pad",
                "level": "satisfied",
            }
        )


def test_sweep_marks_answered_invitations(make: Make) -> None:
    rating = make()
    rating.apply_invitations("queue", [invitation(1), invitation(2)])
    submit(rating, 1)
    assert (
        some(rating.repo.invitations.get("ticket:421302-t1"))["state"] == "open"
    )  # one commit only
    rating.sweep()
    assert some(rating.repo.invitations.get("ticket:421302-t1"))["state"] == "answered"
    assert some(rating.repo.invitations.get("ticket:421302-t2"))["state"] == "open"


def test_pad_shows_most_recent_open_invitation_and_repairs_stale_state(make: Make) -> None:
    rating = make()
    rating.apply_invitations(
        "queue",
        [invitation(1, ended="2024-09-13T01:00:00Z"), invitation(2, ended="2024-09-13T01:20:00Z")],
    )
    assert some(rating.pending_for_window("3"))["id"] == "ticket:421302-t2"
    # an evaluation stored while the invitation flag was not yet cleared (crash between steps)
    submit(rating, 2)
    rating.repo.invitations.update("ticket:421302-t2", {"state": "open"})
    assert some(rating.pending_for_window("3"))["id"] == "ticket:421302-t1"
    assert some(rating.repo.invitations.get("ticket:421302-t2"))["state"] == "answered"


def test_one_first_one_supplementary_then_refusals(make: Make, clock: ManualClock) -> None:
    rating = make()
    rating.apply_invitations("queue", [invitation(1)])
    assert submit(rating)["sequence"] == 1
    clock.set(at("2024-09-14"))
    assert submit(rating, level="very_satisfied")["sequence"] == 2
    with pytest.raises(Conflict) as caught:
        submit(rating)
    assert "追加评价" in caught.value.message
    rating.apply_invitations("queue", [invitation(2)])
    clock.set(at("2024-09-24"))  # service ended 13 Sep; window closed on 23 Sep
    with pytest.raises(Conflict) as caught:
        submit(rating, 2)
    assert "2024-09-23" in caught.value.message
    metrics = rating.metrics.m.exposition().decode()
    assert (
        'hall_evaluation_refusals_total{error="Conflict",service="rating",site="421302"} 2.0'
        in metrics
    )


def test_input_refusals_name_field_and_rule_in_chinese(make: Make) -> None:
    rating = make()
    rating.apply_invitations("queue", [invitation(1)])
    with pytest.raises(InvalidInput) as caught:
        rating.submit(
            {
                "service_ref": {"kind": "ticket", "id": "x"},
                "channel": "carrier-pigeon",
                "level": "great",
                "extra": 1,
            }
        )
    fields = caught.value.fields
    assert fields["channel"][0].startswith("应为以下之一")
    assert fields["level"][0].startswith("应为以下之一")
    assert fields["extra"] == ["不认识的字段"]
    with pytest.raises(InvalidInput) as caught:
        rating.submit({"service_ref": {"kind": "ticket"}, "channel": "pad", "level": "satisfied"})
    assert "service_ref.id" in caught.value.fields
    with pytest.raises(InvalidInput) as caught:
        submit(rating, rater={"real_name": True})
    assert "rater.phone" in caught.value.fields
    with pytest.raises(InvalidInput) as caught:
        submit(rating, rater={"real_name": False, "phone": PHONE})
    assert "rater.real_name" in caught.value.fields
    with pytest.raises(InvalidInput) as caught:
        rating.submit(
            {
                "service_ref": {"kind": "online"},
                "channel": "pc",
                "level": "satisfied",
                "site_code": "421303",
            }
        )
    assert "site_code" in caught.value.fields
    with pytest.raises(InvalidInput) as caught:
        submit(rating, level="dissatisfied", reasons={"tags": []})
    assert "reasons" in caught.value.fields


def test_bad_rating_opens_a_case_and_personal_data_stays_out_of_published_records(
    make: Make,
) -> None:
    rating = make()
    rating.apply_invitations("queue", [invitation(1)])
    ev = submit(
        rating,
        level="very_dissatisfied",
        rater={"real_name": True, "name": NAME, "phone": PHONE},
        comment=f"请回电 {PHONE}",
        reasons={"text": f"太慢了，电话{PHONE}"},
    )
    assert ev["rater"] == {"real_name": True, "phone_masked": "139****5678", "name_masked": "王**"}
    assert ev["case_pending"] is False
    case = rating.get_case(ev["case_id"])
    assert case["state"] == "callback_pending"
    assert case["unit"] == "人社局"
    assert case["evaluation"]["id"] == ev["id"]
    for name in ("evaluations", "cases"):
        text = json.dumps(rating.repo.c[name].changes_since(0, 1000), ensure_ascii=False)
        assert PHONE not in text
        assert NAME not in text
    # the clear contact lives only in the unpublished collection
    assert some(rating.repo.contacts.get(ev["id"]))["phone"] == PHONE


def test_reveal_phone_only_to_the_handler_and_audited(make: Make) -> None:
    rating = make()
    rating.apply_invitations("queue", [invitation(1), invitation(2)])
    ev = submit(
        rating, level="dissatisfied", rater={"real_name": True, "name": NAME, "phone": PHONE}
    )
    anon = submit(rating, 2, level="dissatisfied")
    with pytest.raises(Forbidden):
        rating.reveal_phone(ev["case_id"], "h1")  # nobody assigned yet
    rating.assign_case({"case_id": ev["case_id"], "handler": "h1", "by": "lead"})
    with pytest.raises(Forbidden):
        rating.reveal_phone(ev["case_id"], "h2")
    revealed = rating.reveal_phone(ev["case_id"], "h1")
    assert revealed["phone"] == PHONE
    audit = rating.reveal_audit(ev["case_id"])
    assert [(a["by"], a["audit_id"] if "audit_id" in a else a["id"]) for a in audit] == [
        ("h1", revealed["audit_id"])
    ]
    rating.assign_case({"case_id": anon["case_id"], "handler": "h1", "by": "lead"})
    with pytest.raises(NotFound):
        rating.reveal_phone(anon["case_id"], "h1")
    assert len(rating.reveal_audit(anon["case_id"])) == 0


def walk_case(
    rating: RatingApp,
    case_id: str,
    clock: ManualClock,
    classification: str = "fix_now",
    approver: str | None = None,
    day: str = "2024-09-13",
) -> dict[str, Any]:
    rating.assign_case({"case_id": case_id, "handler": "h1", "by": "lead"})
    rating.record_callback({"case_id": case_id, "by": "h1", "contacted": True, "note": "已回访"})
    rating.classify_case(
        {
            "case_id": case_id,
            "by": approver or "h1",  # not adopted: the approving manager submits it
            "classification": classification,
            "note": "核实",
            "approver": approver,
        }
    )
    if classification in ("fix_now", "ledger"):
        rating.record_rectification({"case_id": case_id, "by": "h1", "measures": "已整改"})
    return rating.record_feedback(
        {"case_id": case_id, "by": "h1", "method": "phone", "content": "已反馈"}
    )


def test_stats_from_rollups_with_cases_and_exclusions(make: Make, clock: ManualClock) -> None:
    rating = make()
    rating.apply_invitations("queue", [invitation(n, window=str(n % 2 + 1)) for n in range(1, 7)])
    for n, level in enumerate(
        [
            "very_satisfied",
            "satisfied",
            "basically_satisfied",
            "dissatisfied",
            "very_dissatisfied",
            "satisfied",
        ],
        1,
    ):
        rater = (
            {"real_name": True, "name": NAME, "phone": f"1391234567{n}"} if n in (4, 5) else None
        )
        extra: dict[str, Any] = {"rater": rater} if rater else {}
        submit(rating, n, level=level, **extra)
    stats = rating.stats({"date_from": "2024-09-01", "date_to": "2024-09-30"})["total"]
    assert stats["counts"] == {
        "very_satisfied": 1,
        "satisfied": 2,
        "basically_satisfied": 1,
        "dissatisfied": 1,
        "very_dissatisfied": 1,
    }
    assert (stats["total"], stats["bad"], stats["good_rate"], stats["satisfaction_rate"]) == (
        6,
        2,
        0.5,
        0.6667,
    )
    assert (stats["cases"], stats["real_name_bad"], stats["callback_rate"]) == (2, 2, 0.0)
    # case 4 closes on time; case 5 is not adopted (approved by another) → excluded
    walk_case(rating, "case:ev:421302:ticket:421302-t4:1", clock)
    walk_case(rating, "case:ev:421302:ticket:421302-t5:1", clock, "not_adopted", approver="chief")
    ev5 = rating.get_evaluation("ev:421302:ticket:421302-t5:1")
    assert ev5["excluded"]["reason"] == "不予采纳：核实"
    stats = rating.stats({"date_from": "2024-09-13", "date_to": "2024-09-13"})["total"]
    assert (stats["total"], stats["bad"], stats["excluded"]) == (5, 1, 1)
    assert (stats["cases_closed"], stats["cases_closed_on_time"]) == (2, 2)
    assert (stats["callback_rate"], stats["rectification_rate"]) == (1.0, 1.0)
    by_window = rating.stats({"date_from": "2024-09-13", "date_to": "2024-09-13"}, "window")
    assert {g["key"]: g["total"] for g in by_window["groups"]} == {"421302:1": 3, "421302:2": 2}
    only = rating.stats({"date_from": "2024-09-13", "date_to": "2024-09-13", "window": "2"}, "day")
    assert [(g["key"], g["total"]) for g in only["groups"]] == [("2024-09-13", 2)]
    month = rating.stats({"date_from": "2024-09-01", "date_to": "2024-09-30"}, "month")
    assert [g["key"] for g in month["groups"]] == ["2024-09"]
    with pytest.raises(InvalidInput) as caught:
        rating.stats({"window": "1", "staff": "s"}, "channel")  # three dimensions
    assert "group_by" in caught.value.fields
    with pytest.raises(InvalidInput) as caught:
        rating.stats({"window": "1", "staff": "s", "channel": "pad"})
    assert "filters" in caught.value.fields
    with pytest.raises(InvalidInput):
        rating.stats({}, "weekday")
    with pytest.raises(Forbidden):
        rating.stats({"site_code": "421303"})


def test_stats_filter_on_two_dimensions_at_once(make: Make, clock: ManualClock) -> None:
    """Two filters, or a filter and a grouping on another dimension, are read from the pair
    buckets; a record that changes later (excluded) moves out of them exactly."""
    rating = make()
    departments = {1: "人社局", 2: "人社局", 3: "民政局", 4: "民政局", 5: "民政局"}
    rating.apply_invitations(
        "queue",
        [
            {**invitation(n, window=str(n % 2 + 1)), "department": dept}
            for n, dept in departments.items()
        ],
    )
    for n in departments:
        submit(rating, n, level="dissatisfied" if n == 5 else "satisfied")
    day = {"date_from": "2024-09-13", "date_to": "2024-09-13"}
    both = rating.stats({**day, "department": "民政局", "window": "2"})
    assert both["filter"] == {"window": "2", "department": "民政局"}
    assert (both["total"]["total"], both["total"]["bad"]) == (2, 1)  # tickets 3 and 5
    by_window = rating.stats({**day, "department": "民政局"}, "window")
    assert {g["key"]: g["total"] for g in by_window["groups"]} == {"421302:1": 1, "421302:2": 2}
    by_dept = rating.stats({**day, "channel": "pad"}, "department")
    assert {g["key"]: g["total"] for g in by_dept["groups"]} == {"人社局": 2, "民政局": 3}
    none = rating.stats({**day, "department": "人社局", "staff": "staff-9"})
    assert none["total"]["total"] == 0
    walk_case(rating, "case:ev:421302:ticket:421302-t5:1", clock, "not_adopted", approver="chief")
    after = rating.stats({**day, "department": "民政局", "window": "2"})["total"]
    assert (after["total"], after["bad"], after["excluded"]) == (1, 0, 1)
    whole = rating.stats(day)["total"]
    assert (whole["total"], whole["excluded"]) == (4, 1)


def child_evaluation(n: int, day: str, window: str) -> dict[str, Any]:
    """An evaluation of town 421302101 as sync stores it at the county (what rollups count)."""
    site = "421302101"
    return {
        "id": f"ev:{site}:ticket:{site}-t{n}:1",
        "schema": 1,
        "version": 1,
        "site_code": site,
        "recorded_at_site": site,
        "window": window,
        "channel": "pad",
        "level": "satisfied",
        "day": day,
        "held": False,
        "excluded": None,
    }


def test_a_month_mostly_covered_is_read_whole_less_its_other_days(make: Make) -> None:
    """Month to date reads the month bucket less the days outside the range: the same
    figures as adding the days up, and a window rated only outside the range is absent."""
    county = make()
    days = [("2024-09-02", "1"), ("2024-09-13", "1"), ("2024-09-20", "2"), ("2024-10-01", "2")]
    county.store_replicated(
        "evaluations", [child_evaluation(n, d, w) for n, (d, w) in enumerate(days)]
    )
    today = date(2024, 9, 13)  # the clock's
    assert domain.plan_trimmed(date(2024, 9, 1), today, False, today) == (
        ["2024-09"],
        [],
        [("2024-09-14", "2024-09-30")],  # no buckets yet: nothing to read there
    )
    assert domain.plan_trimmed(date(2024, 9, 1), date(2024, 9, 5), False, today) == (
        [],
        [("2024-09-01", "2024-09-05")],  # 5 days, fewer than the 8 it would subtract
        [],
    )
    assert domain.plan_trimmed(date(2024, 9, 1), today, True, today)[0] == []
    to_date = county.stats({"date_from": "2024-09-01", "date_to": "2024-09-13"}, "window")
    assert to_date["total"]["total"] == 2
    assert {g["key"]: g["total"] for g in to_date["groups"]} == {"421302101:1": 2}
    later = county.stats({"date_from": "2024-09-05", "date_to": "2024-09-30"}, "window")
    assert {g["key"]: g["total"] for g in later["groups"]} == {
        "421302101:1": 1,
        "421302101:2": 1,
    }
    per_day = county.stats({"date_from": "2024-09-05", "date_to": "2024-09-30"}, "day")
    assert sum(g["total"] for g in per_day["groups"]) == later["total"]["total"] == 2
    by_month = county.stats({"date_from": "2024-09-03", "date_to": "2024-10-01"}, "month")
    assert [(g["key"], g["total"]) for g in by_month["groups"]] == [
        ("2024-09", 2),
        ("2024-10", 1),
    ]


def test_appeal_upheld_excludes_with_reason(make: Make, clock: ManualClock) -> None:
    rating = make()
    rating.apply_invitations("queue", [invitation(1)])
    ev = submit(rating, level="dissatisfied")
    with pytest.raises(Forbidden):
        rating.appeal({"case_id": ev["case_id"], "by": "u1", "unit": "民政局", "reason": "r"})
    rating.appeal({"case_id": ev["case_id"], "by": "u1", "unit": "人社局", "reason": "恶意"})
    case = rating.review_appeal(
        {"case_id": ev["case_id"], "reviewer": "chief", "upheld": True, "reason": "监控录像证明"}
    )
    assert case["appeal"]["state"] == "upheld"
    assert case["state"] == "feedback_pending"
    assert case["exclusion"]["reason"] == "申诉成立：监控录像证明"
    assert rating.get_evaluation(ev["id"])["excluded"]["kind"] == "appeal_upheld"
    total = rating.stats({"date_from": "2024-09-13", "date_to": "2024-09-13"})["total"]
    assert (total["total"], total["excluded"], total["bad"]) == (0, 1, 0)


def test_exclusion_outbox_is_repaired_by_the_sweep(make: Make, clock: ManualClock) -> None:
    rating = make()
    rating.apply_invitations("queue", [invitation(1)])
    ev = submit(rating, level="dissatisfied")
    case = some(rating.repo.cases.get(ev["case_id"]))
    # a crash right after the case write: the flag is set, the evaluation not yet excluded
    rating.repo.cases.update(
        case["id"], {"pending_exclusion": {"kind": "not_adopted", "reason": "r"}}
    )
    assert rating.get_evaluation(ev["id"])["excluded"] is None
    assert rating.sweep()["repaired"] == 1
    assert rating.get_evaluation(ev["id"])["excluded"]["kind"] == "not_adopted"
    assert some(rating.repo.cases.get(case["id"]))["pending_exclusion"] is None


def test_case_outbox_is_repaired_by_the_sweep(make: Make) -> None:
    rating = make()
    rating.apply_invitations("queue", [invitation(1)])
    ev = submit(rating, level="dissatisfied")
    # simulate a crash between the evaluation insert and the case insert
    rating.repo.evaluations.update(ev["id"], {"case_pending": True})
    rating.repo.cases.update(ev["case_id"], {"state": "closed"})  # mark to see it is not reopened
    other = rating.repo.evaluations.insert(
        {
            **some(rating.repo.evaluations.get(ev["id"])),
            "id": "ev:ticket:x:1",
            "case_id": "case:ev:ticket:x:1",
            "version": 1,
        }
    )
    assert rating.repo.cases.get(other["case_id"]) is None
    assert rating.sweep()["repaired"] == 2
    assert some(rating.repo.cases.get(other["case_id"]))["state"] == "callback_pending"
    assert some(rating.repo.cases.get(ev["case_id"]))["state"] == "closed"  # insert was a no-op
    assert rating.repo.evaluations.find({"case_pending": True}) == []


def test_a_bad_rating_at_year_end_is_kept_and_its_case_deadlines_follow_the_schedule(
    make: Make, clock: ManualClock, tmp_path: Path
) -> None:
    rating = make()
    clock.set(at("2026-12-31", 9))  # the next working day is in 2027, not loaded yet
    rating.apply_invitations("queue", [invitation(1, ended="2026-12-31T00:30:00Z")])
    ev = submit(rating, level="very_dissatisfied")  # recorded, not refused
    case = rating.get_case(ev["case_id"])
    assert (case["callback_due"], case["deadlines_unknown"]) == (None, True)
    clock.set(at("2027-01-20"))
    rating.sweep()
    assert rating.get_case(ev["case_id"])["overdue"] == []  # no deadline, no guessed overdue

    # the operator loads 2027 (test data, not the official schedule) and restarts rating
    override = tmp_path / "calendar.yaml"
    override.write_text("2027:\n  holidays: [2027-01-01]\n  workdays: []\n", encoding="utf-8")
    rating.calendar = load_calendar(str(override))
    rating.sweep()
    case = rating.get_case(ev["case_id"])
    assert (case["callback_due"], case["appeal_due"]) == ("2027-01-04", "2027-01-06")
    assert case["deadlines_unknown"] is False
    assert case["overdue"] == ["callback"]  # now known, and long past


def test_overdue_cases_escalate_and_show_in_gauges(make: Make, clock: ManualClock) -> None:
    rating = make()
    rating.apply_invitations("queue", [invitation(1)])
    ev = submit(rating, level="dissatisfied")
    clock.set(at("2024-09-18"))  # callback was due Sat 14 Sep
    assert rating.sweep()["escalated"] == 1
    assert rating.sweep()["escalated"] == 0  # once
    case = rating.get_case(ev["case_id"])
    assert case["overdue"] == ["callback"]
    assert [c["id"] for c in rating.list_cases({"overdue": True})] == [ev["case_id"]]
    assert rating.list_cases({"overdue": False}) == []
    metrics = rating.metrics.m.exposition().decode()
    assert (
        'hall_rating_cases_overdue{service="rating",site="421302",step="callback"} 1.0' in metrics
    )
    assert (
        'hall_rating_cases_open{service="rating",site="421302",state="callback_pending"} 1.0'
        in metrics
    )


def test_suspicious_ratings_are_held_then_reviewed(make: Make, clock: ManualClock) -> None:
    rating = make(max_ratings_per_phone_per_day=2)
    rating.apply_invitations("queue", [invitation(n) for n in range(1, 5)])
    rater = {"real_name": True, "name": NAME, "phone": PHONE}
    assert submit(rating, 1, rater=rater)["held"] is False
    assert submit(rating, 2, rater=rater)["held"] is False
    third = submit(rating, 3, level="dissatisfied", rater=rater)
    assert third["held"] is True
    assert third["hold_reasons"] == [
        {"code": "phone_daily_limit", "text": "同一手机号当日评价次数过多"}
    ]
    assert rating.repo.cases.get(third["case_id"]) is None  # no case until accepted
    own = submit(rating, 4, rater={"real_name": False, "staff_id": "staff-3"})
    assert [r["code"] for r in own["hold_reasons"]] == ["self_rating"]
    total = rating.stats({"date_from": "2024-09-13", "date_to": "2024-09-13"})["total"]
    assert (total["total"], total["held"]) == (2, 2)
    accepted = rating.review_held(
        {
            "evaluation_id": third["id"],
            "reviewer": "chief",
            "accept": True,
            "note": "家属代为办理多件",
        }
    )
    assert accepted["held"] is False
    assert rating.get_case(third["case_id"])["state"] == "callback_pending"
    rating.review_held(
        {"evaluation_id": own["id"], "reviewer": "chief", "accept": False, "note": "本人刷评"}
    )
    with pytest.raises(Conflict):
        rating.review_held(
            {"evaluation_id": own["id"], "reviewer": "chief", "accept": True, "note": "again"}
        )
    total = rating.stats({"date_from": "2024-09-13", "date_to": "2024-09-13"})["total"]
    assert (total["total"], total["held"], total["excluded"], total["cases"]) == (3, 0, 1, 1)


def test_one_phone_in_any_written_form_counts_once_for_the_daily_limit(make: Make) -> None:
    rating = make(max_ratings_per_phone_per_day=2)
    rating.apply_invitations("queue", [invitation(n) for n in range(1, 4)])
    forms = ("138 1234 5678", "+86 138-1234-5678", "13812345678")
    held = [
        submit(rating, n, rater={"real_name": True, "name": NAME, "phone": phone})
        for n, phone in enumerate(forms, 1)
    ]
    assert [ev["held"] for ev in held] == [False, False, True]
    assert held[2]["hold_reasons"][0]["code"] == "phone_daily_limit"
    assert {ev["rater"]["phone_masked"] for ev in held} == {"138****5678"}


def test_phones_in_free_text_are_scrubbed_in_every_written_form(make: Make) -> None:
    rating = make()
    rating.apply_invitations("queue", [invitation(1)])
    ev = submit(
        rating,
        level="dissatisfied",
        comment="请回电 138 1234 5678 或 +86-139-1234-5678",
        reasons={"text": "全角号码１３８１２３４５６７８"},
        details={"suggestion": "电话 137－1234－0987"},
    )
    stored = json.dumps([ev, rating.repo.c["evaluations"].changes_since(0, 10)], ensure_ascii=False)
    for digits in ("1234 5678", "1234-5678", "１２３４５６７８", "1234－0987"):
        assert digits not in stored
    assert ev["comment"] == "请回电 138****5678 或 139****5678"
    assert ev["reasons"]["text"] == "全角号码138****5678"
    assert ev["details"]["suggestion"] == "电话 137****0987"


def test_rating_before_service_end_is_held(make: Make, clock: ManualClock) -> None:
    rating = make()
    rating.apply_invitations("queue", [invitation(1, ended="2024-09-13T05:00:00Z")])  # 13:00 local
    assert submit(rating)["hold_reasons"][0]["code"] == "before_service_end"


def test_paper_form_records_the_clerk(make: Make) -> None:
    rating = make()
    rating.apply_invitations("queue", [invitation(1)])
    with pytest.raises(Forbidden):
        submit(rating, entered_by="clerk")
    ev = rating.submit(
        {
            "service_ref": {"kind": "ticket", "id": "421302-t1"},
            "channel": "paper",
            "level": "satisfied",
            "entered_by": "clerk",
        }
    )
    assert ev["entered_by"] == "clerk"
    assert ev["held"] is False


def test_default_rating_after_n_days_when_enabled(make: Make, clock: ManualClock) -> None:
    off = make()
    off.apply_invitations("queue", [invitation(1)])
    clock.set(at("2024-09-21"))
    assert off.sweep()["defaults"] == 0
    on = make(site="421302101", tier="town", default_rating_after_days=7)
    on.apply_invitations(
        "queue",
        [
            invitation(1, site="421302101"),
            invitation(2, site="421302101", ended="2024-09-15T01:00:00Z"),
        ],
    )
    clock.set(at("2024-09-20", 9, 29))  # 7 days minus one minute after 13 Sep 09:30
    assert on.sweep()["defaults"] == 0
    clock.set(at("2024-09-20", 9, 31))
    assert on.sweep()["defaults"] == 1
    ev = on.get_evaluation("ev:421302101:ticket:421302101-t1:1")
    assert (ev["channel"], ev["level"], ev["rater"]["real_name"]) == (
        "system_default",
        "basically_satisfied",
        False,
    )
    assert on.sweep()["defaults"] == 0
    assert some(on.repo.invitations.get("ticket:421302101-t1"))["state"] == "answered"


def replicated(rating_src: RatingApp) -> list[dict[str, Any]]:
    return [dict(d) for d in rating_src.repo.evaluations.changes_since(0, 1000)]


def test_replication_into_parent_subtree_stats_delta_and_idempotence(
    make: Make, clock: ManualClock
) -> None:
    county, town = make(), make(site="421302101", tier="town")
    town.apply_invitations("queue", [invitation(n, site="421302101") for n in (1, 2)])
    submit(town, 1, site="421302101", level="satisfied")
    submit(town, 2, site="421302101", level="dissatisfied")
    county.apply_invitations("queue", [invitation(1)])
    submit(county, 1, level="very_satisfied")
    assert county.store_replicated("evaluations", replicated(town)) == 2
    assert county.store_replicated("cases", town.repo.cases.changes_since(0)) == 1
    day = {"date_from": "2024-09-13", "date_to": "2024-09-13"}
    total = county.stats(day)["total"]
    assert (total["total"], total["bad"], total["cases"]) == (3, 1, 1)
    by_site = county.stats(day, "site")["groups"]
    assert {g["key"]: g["total"] for g in by_site} == {"421302": 1, "421302101": 2}
    assert county.stats({**day, "site_code": "421302101"})["total"]["total"] == 2
    assert town.stats(day)["total"]["total"] == 2  # the town sees only its own subtree
    with pytest.raises(Forbidden):
        town.stats({**day, "site_code": "421302"})
    # resend: nothing changes
    assert county.store_replicated("evaluations", replicated(town)) == 0
    assert county.stats(day)["total"]["total"] == 3
    # a newer version replaces the older: the town excludes its bad rating after an appeal
    case_id = "case:ev:421302101:ticket:421302101-t2:1"
    town.appeal({"case_id": case_id, "by": "u", "unit": "人社局", "reason": "r"})
    town.review_appeal({"case_id": case_id, "reviewer": "chief", "upheld": True, "reason": "证据"})
    county.store_replicated("evaluations", replicated(town))
    county.store_replicated("cases", town.repo.cases.changes_since(0))
    total = county.stats(day)["total"]
    assert (total["total"], total["bad"], total["excluded"]) == (2, 0, 1)
    # an older version arriving late is ignored
    old = [{**d, "version": 1, "excluded": None} for d in replicated(town)]
    assert county.store_replicated("evaluations", old) == 0
    assert county.stats(day)["total"]["excluded"] == 1
    # replicated cases are read-only at the parent
    with pytest.raises(Forbidden):
        county.assign_case({"case_id": case_id, "handler": "x", "by": "y"})


def test_rollup_fold_replays_exactly_once_after_a_crash(
    make: Make, clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    rating = make()
    rating.apply_invitations("queue", [invitation(n) for n in range(1, 4)])
    for n in (1, 2, 3):
        submit(rating, n)
    folder = rating.repo.folders["evaluations"]
    calls = {"n": 0}
    real = folder.marks.upsert_versioned_many

    def crash(docs: object) -> NoReturn:
        calls["n"] += 1
        raise RuntimeError("power cut after the buckets, before the marks")

    monkeypatch.setattr(folder.marks, "upsert_versioned_many", crash)
    with pytest.raises(RuntimeError):
        rating.fold()
    monkeypatch.setattr(folder.marks, "upsert_versioned_many", real)
    rating.apply_invitations("queue", [invitation(4)])
    submit(rating, 4, level="dissatisfied")  # more arrives before the replay
    total = rating.stats({"date_from": "2024-09-13", "date_to": "2024-09-13"})["total"]
    assert (total["total"], total["counts"]["satisfied"], total["bad"]) == (4, 3, 1)
    for period in ("2024-09-13", "2024-09"):
        bucket = some(rating.repo.rollups.get(f"{period}|421302|all"))
        assert bucket["values"]["*"] == {"n_satisfied": 3, "n_dissatisfied": 1, "cases": 1}


def test_rankings_public_report_and_export(make: Make, clock: ManualClock) -> None:
    rating = make()
    rating.apply_invitations("queue", [invitation(n, window=str(n % 3)) for n in range(1, 7)])
    levels = [
        "very_satisfied",
        "satisfied",
        "dissatisfied",
        "very_satisfied",
        "satisfied",
        "basically_satisfied",
    ]
    for n, level in enumerate(levels, 1):
        submit(
            rating,
            n,
            level=level,
            rater={"real_name": True, "name": NAME, "phone": PHONE}
            if n == 3
            else {"real_name": False},
        )
    rows = rating.rankings("2024-09", "window")["rows"]
    assert [(r["key"], r["rank"]) for r in rows] == [
        ("421302:1", 1),
        ("421302:2", 1),  # a tie with window 1
        ("421302:0", 3),
    ]
    staff = rating.rankings("2024-09", "staff")["rows"]
    assert {r["key"] for r in staff} == {"staff-0", "staff-1", "staff-2"}
    report = rating.public_report("2024-09")
    text = json.dumps(report, ensure_ascii=False)
    assert report["total"]["total"] == 6
    assert "staff-" not in text
    assert PHONE not in text
    assert NAME not in text
    assert "王*" not in text
    assert {g["key"] for g in report["by_channel"]} == {"pad"}
    page = rating.export(
        {"profile": "gbt39046", "date_from": "2024-09-13", "date_to": "2024-09-13", "limit": 4}
    )
    assert len(page["records"]) == 4
    assert page["next_after"] is not None
    rest = rating.export(
        {
            "profile": "gbt39046",
            "date_from": "2024-09-13",
            "date_to": "2024-09-13",
            "after": page["next_after"],
        }
    )
    codes = [r["满意度代码"] for r in page["records"] + rest["records"]]
    assert codes == ["1", "2", "4", "1", "2", "3"]
    provincial = rating.export(
        {"profile": "provincial_phone", "date_from": "2024-09-13", "date_to": "2024-09-13"}
    )
    assert [r["满意度代码"] for r in provincial["records"]] == ["5", "4", "2", "5", "4", "3"]
    assert {r["评价渠道代码"] for r in provincial["records"]} == {"4"}
    assert PHONE not in json.dumps(provincial, ensure_ascii=False)
    with pytest.raises(InvalidInput):
        rating.export({"profile": "klingon", "date_from": "2024-09-13", "date_to": "2024-09-13"})


def test_export_reports_records_a_target_cannot_code(make: Make, clock: ManualClock) -> None:
    rating = make(default_rating_after_days=1)
    rating.apply_invitations("queue", [invitation(1)])
    clock.set(at("2024-09-15"))
    rating.sweep()
    national = rating.export(
        {"profile": "gbt39046", "date_from": "2024-09-15", "date_to": "2024-09-15"}
    )
    assert national["records"] == []
    assert national["unmapped"][0]["channel"] == "system_default"
    provincial = rating.export(
        {"profile": "provincial_default", "date_from": "2024-09-15", "date_to": "2024-09-15"}
    )
    assert provincial["records"][0]["评价渠道"] == "系统默认评价"


def test_salt_comes_from_config_or_is_generated_once_per_site(make: Make) -> None:
    configured = make()
    assert configured.salt == "test-salt-0123456789"
    generated = make(site="421302101", tier="town", privacy_salt=None)
    again = make(site="421302101", tier="town", privacy_salt=None)  # the same store again
    assert len(generated.salt) == 64
    assert generated.salt == again.salt


def test_a_salt_stored_by_an_earlier_version_is_kept(make: Make) -> None:
    first = make(site="421302101", tier="town", privacy_salt=None)
    settings = first.repo.c["settings"]
    legacy = "0123456789abcdef" * 4
    doc = some(settings.get("privacy_salt"))
    # the shape rating stored before the common privacy module: the salt under "value"
    settings.upsert_versioned({"id": doc["id"], "value": legacy, "version": doc["version"] + 1})
    assert "salt" not in some(settings.get("privacy_salt"))
    again = make(site="421302101", tier="town", privacy_salt=None)
    assert again.salt == legacy
    assert some(settings.get("privacy_salt"))["salt"] == legacy


def test_the_sweep_runs_when_due_on_the_injected_clock(make: Make, clock: ManualClock) -> None:
    rating = make(sweep_interval_seconds=30)
    assert rating.sweep_if_due() is not None
    clock.advance(seconds=29)
    assert rating.sweep_if_due() is None
    clock.advance(seconds=1)
    assert rating.sweep_if_due() == {
        "repaired": 0,
        "escalated": 0,
        "defaults": 0,
        "contacts_purged": 0,
        "counters_pruned": 0,
    }


def test_group_commit_writes_concurrent_evaluations_in_one_batch(tmp_path: Path) -> None:
    import eventlet

    from services.rating.adapters.group_commit import GroupCommit

    store = open_store(f"sqlite:///{tmp_path}", "rating")
    collection = store.collection("evaluations")
    batches: list[int] = []
    real = collection.insert_many

    def counting(docs: Iterable[Mapping[str, Any]]) -> list[Doc]:
        docs = list(docs)
        batches.append(len(docs))
        return real(docs)

    collection.insert_many = counting  # type: ignore[method-assign]
    commit = GroupCommit(collection)
    results: dict[int, int | str] = {}

    def one(i: int, doc_id: str) -> None:
        try:
            results[i] = commit.insert({"id": doc_id, "n": i})["n"]
        except Conflict:
            results[i] = "conflict"

    pile = eventlet.GreenPile()
    for i in range(10):
        pile.spawn(one, i, f"d{i}")
    list(pile)
    assert results == {i: i for i in range(10)}
    assert batches == [10]  # one transaction for ten workers
    pile = eventlet.GreenPile()
    pile.spawn(one, 20, "d20")
    pile.spawn(one, 21, "d3")  # a duplicate: the batch is refused, each answered alone
    pile.spawn(one, 22, "d22")
    list(pile)
    assert (results[20], results[21], results[22]) == (20, "conflict", 22)
    assert some(collection.get("d3"))["n"] == 3
    store.close()
