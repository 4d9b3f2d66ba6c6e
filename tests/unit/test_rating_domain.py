"""好差评 rules without I/O: submissions, suspicion, case transitions and deadlines (working
days on the official calendar), appeals, rollup contributions, figures and export tables."""

from collections.abc import Mapping
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar, cast
from zoneinfo import ZoneInfo

import pytest

from services.common.calendar import ScheduleMissing, load_calendar
from services.common.clock import iso, parse_iso
from services.common.config import ConfigError
from services.common.errors import Conflict, Forbidden, InvalidInput
from services.common.privacy import keyed_hash, mask_name, mask_phone, phone_hash, scrub_text
from services.common.site import Tier
from services.rating import domain
from services.rating.domain import Channel, Classification, Level, RefKind
from services.rating.domain.records import Case
from services.rating.settings import RatingSettings

pytestmark = pytest.mark.unit
T = TypeVar("T")


def some(value: T | None) -> T:
    """``value``, which the test expects to exist."""
    assert value is not None
    return value


CAL = load_calendar(None)
RULES = RatingSettings()
SH = ZoneInfo("Asia/Shanghai")


def at(day: str, hour: int = 10, minute: int = 0) -> datetime:
    """A Shanghai wall-clock time as aware UTC."""
    return (
        datetime.fromisoformat(f"{day}T{hour:02d}:{minute:02d}:00")
        .replace(tzinfo=SH)
        .astimezone(UTC)
    )


def facts(ended: datetime | None = None, staff: str | None = "s1") -> domain.ServiceFacts:
    return domain.ServiceFacts(
        kind=RefKind.TICKET,
        ref_id="421302-t1",
        site_code="421302",
        window="3",
        staff_id=staff,
        matter_code="M1",
        department="人社局",
        service_channel="window",
        service_ended_at=ended,
        invitation_id="ticket:421302-t1",
    )


ENDED = at("2024-09-30", 9)  # Mon 30 Sep 2024, the day before National Day
RATED = at("2024-09-30", 10)


def rating_at(moment: datetime = RATED) -> dict[str, Any]:
    """An earlier rating of the same service, as ``existing`` holds it."""
    return {"submitted_at": iso(moment)}


def check(**overrides: Any) -> int:
    args: dict[str, Any] = {
        "facts": facts(ENDED),
        "channel": Channel.PAD,
        "level": Level.SATISFIED,
        "reasons": None,
        "entered_by": None,
        "existing": [],
        "now": RATED,
        "rules": RULES,
        "calendar": CAL,
    }
    args.update(overrides)
    return domain.check_submission(**args)


# --- scale -------------------------------------------------------------------------------


def test_five_levels_last_two_bad_and_chinese_names() -> None:
    assert [lv.zh for lv in Level] == ["非常满意", "满意", "基本满意", "不满意", "非常不满意"]
    assert [lv.bad for lv in Level] == [False, False, False, True, True]


def test_settings_defaults_and_refusals_name_the_key() -> None:
    rules = RatingSettings.from_section({}, Tier.COUNTY)
    assert (rules.supplementary_working_days, rules.default_rating_after_days) == (5, None)
    assert (rules.callback_working_days, rules.rectification_working_days) == (1, 5)
    assert (rules.appeal_working_days, rules.timezone) == (3, "Asia/Shanghai")
    seven = RatingSettings.from_section({"default_rating_after_days": 7}, Tier.TOWN)
    assert seven.default_rating_after_days == 7
    cases: list[tuple[dict[str, Any], str]] = [
        ({"rectification_working_days": 0}, "RATING.rectification_working_days"),
        ({"default_rating_after_days": "7"}, "RATING.default_rating_after_days"),
        ({"privacy_salt": "short"}, "RATING.privacy_salt"),
        ({"timezone": "Mars/Base"}, "RATING.timezone"),
        ({"sweep_interval_seconds": 0}, "RATING.sweep_interval_seconds"),
        ({"bogus": 1}, "RATING.bogus"),
    ]
    for section, key in cases:
        with pytest.raises(ConfigError) as caught:
            RatingSettings.from_section(section, Tier.COUNTY)
        assert key in caught.value.fields
        assert caught.value.message.startswith(key)


# --- submissions ---------------------------------------------------------------------------


def test_first_then_one_supplementary_then_refused() -> None:
    assert check() == domain.FIRST
    first = rating_at()
    assert check(existing=[first]) == domain.SUPPLEMENTARY
    with pytest.raises(Conflict) as caught:
        check(existing=[first, first])
    assert "追加评价" in caught.value.message


def test_window_is_five_working_days_after_the_service_across_national_day() -> None:
    # ended Mon 30 Sep 2024; 1–7 Oct are off; Sat 12 Oct is a make-up working day (调休)
    ended = facts(ENDED)
    assert domain.evaluation_deadline(ended, None, RULES, CAL) == date(2024, 10, 12)
    assert check(facts=ended, now=at("2024-10-12", 23, 59)) == domain.FIRST
    with pytest.raises(Conflict) as caught:
        check(facts=ended, now=at("2024-10-13", 0, 1))
    assert "2024-10-12" in caught.value.message
    assert "补充评价" in caught.value.message
    first = rating_at()
    with pytest.raises(Conflict) as caught:
        check(facts=ended, existing=[first], now=at("2024-10-14"))
    assert "追加评价" in caught.value.message


def test_window_counts_from_first_rating_when_service_end_unknown() -> None:
    first = rating_at(at("2024-09-13"))
    # Fri 13 Sep; Sat 14 Sep is a make-up working day, 15–17 off: 14, 18, 19, 20, 23
    assert domain.evaluation_deadline(facts(None), at("2024-09-13"), RULES, CAL) == date(
        2024, 9, 23
    )
    assert check(facts=facts(None), existing=[first], now=at("2024-09-23")) == 2
    with pytest.raises(Conflict):
        check(facts=facts(None), existing=[first], now=at("2024-09-24"))


def test_rating_into_a_year_without_schedule_is_decided_by_calendar_days_or_refused() -> None:
    ended = facts(at("2026-12-28"))  # 5 working days run into 2027, not loaded here
    assert check(facts=ended, now=at("2026-12-28", 11)) == 1  # right after the service
    assert check(facts=ended, now=at("2027-01-02", 18)) == 1  # 5 calendar days: surely in time
    with pytest.raises(ScheduleMissing):  # beyond that only the schedule can tell: not guessed
        check(facts=ended, now=at("2027-01-03", 9))


# Test data only, not the official 2027 schedule: 1-1 (Fri) and 1-4 (Mon) off.
FICTIONAL_2027 = "2027:\n  holidays: [2027-01-01, 2027-01-04]\n  workdays: []\n"


def test_a_case_opened_before_an_unloaded_year_waits_for_its_deadlines(tmp_path: Path) -> None:
    case = opened(at("2026-12-31"))  # the next working day is already in 2027
    assert (case["callback_due"], case["appeal_due"], case["deadlines_unknown"]) == (
        None,
        None,
        True,
    )
    assert domain.overdue_steps(case, date(2027, 2, 1)) == []  # never flagged on a guess
    case = called_back(case, at("2027-01-05"))
    assert case["callback_on_time"] is None
    assert domain.file_appeal(case, "u1", "人社局", "r", at("2027-01-03"), RULES)  # 3 days
    with pytest.raises(Conflict, match="尚未载入节假日安排"):
        domain.file_appeal(case, "u1", "人社局", "r", at("2027-01-04"), RULES)
    assert domain.fill_deadlines(case, RULES, CAL) is None  # still not loaded

    override = tmp_path / "calendar.yaml"
    override.write_text(FICTIONAL_2027, encoding="utf-8")
    filled = domain.fill_deadlines(case, RULES, load_calendar(str(override)))
    assert filled == {
        "callback_due": "2027-01-05",  # 1-1 and 1-4 off, weekend 1-2/1-3
        "appeal_due": "2027-01-07",
        "deadlines_unknown": False,
        "callback_on_time": True,  # called back on 1-5
    }
    assert domain.fill_deadlines(apply(case, filled), RULES, CAL) is None


def test_bad_rating_needs_a_reason_tag_or_text() -> None:
    with pytest.raises(InvalidInput) as caught:
        check(level=Level.DISSATISFIED, reasons={"tags": [], "text": "  "})
    assert "reasons" in caught.value.fields
    assert check(level=Level.DISSATISFIED, reasons={"tags": ["等候过长"]}) == 1
    assert check(level=Level.VERY_DISSATISFIED, reasons={"text": "态度差"}) == 1


def test_nobody_rates_on_behalf_except_paper_entered_by_clerk() -> None:
    with pytest.raises(Forbidden) as caught:
        check(channel=Channel.PAD, entered_by="clerk1")
    assert "entered_by" in caught.value.fields
    with pytest.raises(InvalidInput) as missing:
        check(channel=Channel.PAPER)
    assert "entered_by" in missing.value.fields
    assert check(channel=Channel.PAPER, entered_by="clerk1") == 1
    with pytest.raises(Forbidden):
        check(channel=Channel.SYSTEM_DEFAULT)


def suspicion(**overrides: Any) -> list[str]:
    args: dict[str, Any] = {
        "facts": facts(ENDED),
        "now": RATED,
        "rater_staff_id": None,
        "entered_by": None,
        "phone_count_today": 1,
        "device_count_today": 1,
        "rules": RULES,
    }
    args.update(overrides)
    return domain.suspicion_reasons(**args)


def test_suspicious_patterns() -> None:
    assert suspicion() == []
    assert suspicion(now=at("2024-09-30", 8)) == ["before_service_end"]
    assert suspicion(rater_staff_id="s1") == ["self_rating"]
    assert suspicion(entered_by="s1") == ["self_rating"]
    assert suspicion(entered_by="clerk2") == []
    assert suspicion(phone_count_today=5) == []
    assert suspicion(phone_count_today=6) == ["phone_daily_limit"]
    assert suspicion(device_count_today=51) == ["device_daily_limit"]
    assert set(domain.HOLD_ZH) == {
        "before_service_end",
        "self_rating",
        "phone_daily_limit",
        "device_daily_limit",
    }


# --- privacy -------------------------------------------------------------------------------


def test_masking_hashing_and_scrubbing_come_from_common_privacy() -> None:
    """Rating's former local copies now live in ``services.common.privacy`` (one behaviour:
    a one-character name keeps its character, as everywhere else)."""
    assert mask_phone("13812345678") == "138****5678"
    assert mask_phone("+86 138-1234-5678") == "138****5678"
    assert mask_name("张三丰") == "张**"
    assert mask_name("李") == "李*"
    h1 = phone_hash("salt-aaaaaaaaaaaaaaaa", "13812345678")
    assert h1 != phone_hash("salt-bbbbbbbbbbbbbbbb", "13812345678")
    assert h1 == phone_hash("salt-aaaaaaaaaaaaaaaa", "138 1234 5678")
    assert h1 == keyed_hash("salt-aaaaaaaaaaaaaaaa", "phone", "13812345678")  # stored keys kept
    assert "13812345678" not in h1
    assert len(h1) == 64
    assert scrub_text("请打13812345678找我") == "请打138****5678找我"
    assert scrub_text("请打 138 1234 5678 找我") == "请打 138****5678 找我"
    assert scrub_text("编号 2024123456789012") == "编号 2024123456789012"
    assert scrub_text("我是王小明，王小明", ["王小明", None]) == "我是王**，王**"


# --- cases ---------------------------------------------------------------------------------


def evaluation(
    level: str = "dissatisfied", real_name: bool = True, day: str = "2024-09-13"
) -> dict[str, Any]:
    return {
        "id": "ev:ticket:421302-t1:1",
        "site_code": "421302",
        "recorded_at_site": "421302",
        "level": level,
        "rater": {"real_name": real_name},
        "day": day,
        "window": "3",
        "staff_id": "s1",
        "matter_code": "M1",
        "department": "人社局",
        "channel": "pad",
    }


def opened(now: datetime | None = None) -> Case:
    return domain.open_case(evaluation(), now or at("2024-09-13"), RULES, CAL)


def apply(case: Case, changes: Mapping[str, Any]) -> Case:
    return cast(Case, {**case, **changes})


def called_back(case: Case, now: datetime, note: str = "n") -> Case:
    """The case after h1's callback at ``now``."""
    return apply(case, domain.record_callback(case, "h1", True, note, now, RULES))


def classify(
    case: Case,
    classification: Classification,
    now: datetime,
    *,
    note: str = "n",
    approver: str | None = None,
    deadline: date | None = None,
    by: str = "h1",
) -> dict[str, Any]:
    """``domain.classify`` under this module's rules and calendar."""
    return domain.classify(
        case,
        by=by,
        classification=classification,
        note=note,
        approver=approver,
        deadline=deadline,
        now=now,
        rules=RULES,
        calendar=CAL,
    )


@pytest.fixture
def to_classify() -> Case:
    """A case that h1 has called back and must now classify."""
    return apply(opened(), {"state": "classification_pending", "handler": "h1"})


def test_case_opens_assigned_to_unit_with_working_day_deadlines() -> None:
    case = opened()
    assert case["unit"] == "人社局"
    assert case["state"] == "callback_pending"
    assert case["callback_due"] == "2024-09-14"  # Sat make-up working day
    assert case["appeal_due"] == "2024-09-19"  # 14, 18, 19 (15–17 Mid-Autumn)
    assert case["id"] == "case:ev:ticket:421302-t1:1"
    no_department = domain.open_case(
        {**evaluation(), "department": None}, at("2024-09-13"), RULES, CAL
    )
    assert no_department["unit"] == "421302"


def test_fix_now_path_to_closed_on_time_with_who_did_each_step() -> None:
    case = opened()
    case = apply(case, domain.assign(case, "h1", "lead", at("2024-09-13", 11)))
    case = called_back(case, at("2024-09-14"), note="已联系")
    assert case["callback_on_time"] is True
    assert case["state"] == "classification_pending"
    case = apply(case, classify(case, Classification.FIX_NOW, at("2024-09-14"), note="补充指引"))
    assert case["state"] == "rectifying"
    assert case["close_due"] == "2024-09-24"  # from Sat 14: 18, 19, 20, 23, 24
    case = apply(case, domain.record_rectification(case, "h1", "已修改指引", at("2024-09-18")))
    assert case["state"] == "feedback_pending"
    case = apply(
        case, domain.record_feedback(case, "h1", "phone", "已告知", at("2024-09-23", 17), RULES)
    )
    assert case["state"] == "closed"
    assert case["on_time"] is True
    assert [s["step"] for s in case["steps"]] == [
        "opened",
        "assigned",
        "callback",
        "classified",
        "rectified",
        "feedback",
    ]
    assert all(s["by"] and s["at"] for s in case["steps"])


def test_late_callback_or_late_close_is_not_on_time() -> None:
    case = opened()
    case = called_back(case, at("2024-09-18"))
    assert case["callback_on_time"] is False
    assert case["handler"] == "h1"
    case = apply(case, classify(case, Classification.EXPLAIN, at("2024-09-18"), note="无法定依据"))
    assert case["state"] == "feedback_pending"  # explanation needs no rectification step
    done = apply(
        case, domain.record_feedback(case, "h1", "phone", "已解释", at("2024-09-19"), RULES)
    )
    assert done["on_time"] is False  # the callback was late
    late = called_back(opened(), at("2024-09-13"))
    late = apply(late, classify(late, Classification.FIX_NOW, at("2024-09-13")))
    assert late["close_due"] == "2024-09-23"
    late = apply(late, domain.record_rectification(late, "h1", "m", at("2024-09-20")))
    closed = domain.record_feedback(late, "h1", "sms", "c", at("2024-09-24"), RULES)
    assert closed["on_time"] is False


def test_ledger_takes_its_own_deadline_not_in_the_past(to_classify: Case) -> None:
    now = at("2024-09-14")
    changes = classify(
        to_classify, Classification.LEDGER, now, note="台账", deadline=date(2024, 10, 31)
    )
    assert changes["close_due"] == "2024-10-31"
    assert changes["state"] == "rectifying"
    with pytest.raises(InvalidInput):
        classify(to_classify, Classification.LEDGER, now, deadline=date(2024, 9, 1))
    with pytest.raises(InvalidInput):
        classify(to_classify, Classification.FIX_NOW, now, deadline=date(2024, 10, 1))


def test_not_adopted_needs_an_approver_other_than_the_handler(to_classify: Case) -> None:
    now = at("2024-09-14")

    def not_adopted(approver: str | None, by: str | None = None) -> dict[str, Any]:
        return classify(
            to_classify,
            Classification.NOT_ADOPTED,
            now,
            note="恶意差评",
            approver=approver,
            by=by or approver or "h1",
        )

    with pytest.raises(InvalidInput) as caught:
        not_adopted(None)
    assert "approver" in caught.value.fields
    with pytest.raises(Forbidden):
        not_adopted("h1")  # the handler approving their own case
    with pytest.raises(Forbidden) as named:
        not_adopted("chief", by="h1")  # the handler naming an approver
    assert "approver" in named.value.fields
    changes = not_adopted("chief")
    assert changes["state"] == "feedback_pending"
    assert changes["pending_exclusion"] == {"kind": "not_adopted", "reason": "不予采纳：恶意差评"}
    assert changes["management_notified"] is True
    assert changes["steps"][-1]["approver"] == "chief"
    with pytest.raises(InvalidInput):
        classify(to_classify, Classification.FIX_NOW, now, approver="chief")


def test_illegal_transitions_and_other_handlers_are_refused() -> None:
    case = opened()
    with pytest.raises(Conflict):
        domain.record_rectification(case, "h1", "m", at("2024-09-13"))
    with pytest.raises(Conflict):  # feedback is required to close, and only after the steps
        domain.record_feedback(case, "h1", "phone", "c", at("2024-09-13"), RULES)
    with pytest.raises(Conflict):
        classify(case, Classification.FIX_NOW, at("2024-09-13"))
    assigned = apply(case, {"handler": "h1"})
    with pytest.raises(Forbidden):
        domain.record_callback(assigned, "h2", True, "n", at("2024-09-13"), RULES)
    closed = apply(case, {"state": "closed"})
    with pytest.raises(Conflict):
        domain.assign(closed, "h3", "lead", at("2024-09-13"))
    with pytest.raises(Conflict):
        domain.record_callback(closed, "h1", True, "n", at("2024-09-13"), RULES)


def test_overdue_steps_are_flagged_and_escalated_once() -> None:
    case = opened()  # callback due Sat 14 Sep
    assert domain.escalate(case, date(2024, 9, 14), at("2024-09-14")) is None
    changes = some(domain.escalate(case, date(2024, 9, 18), at("2024-09-18")))
    assert changes["overdue"] == ["callback"]
    assert [e["step"] for e in changes["escalations"]] == ["callback"]
    case = apply(case, changes)
    assert domain.escalate(case, date(2024, 9, 19), at("2024-09-19")) is None  # once
    case = called_back(case, at("2024-09-19"))
    assert case["overdue"] == []
    case = apply(case, {"state": "rectifying", "close_due": "2024-09-20"})
    changes = some(domain.escalate(case, date(2024, 9, 23), at("2024-09-23")))
    assert changes["overdue"] == ["close"]
    assert [e["step"] for e in changes["escalations"]] == ["callback", "close"]
    assert domain.overdue_steps({**case, "state": "closed"}, date(2024, 12, 1)) == []


def test_appeal_by_the_rated_unit_within_three_working_days() -> None:
    case = opened()  # appeal due 19 Sep
    with pytest.raises(Forbidden):
        domain.file_appeal(case, "x", "民政局", "r", at("2024-09-14"), RULES)
    with pytest.raises(Conflict) as caught:
        domain.file_appeal(case, "x", "人社局", "r", at("2024-09-20"), RULES)
    assert "2024-09-19" in caught.value.message
    case = apply(case, domain.file_appeal(case, "u1", "人社局", "恶意", at("2024-09-19"), RULES))
    assert some(case["appeal"])["state"] == "pending"
    with pytest.raises(Conflict):
        domain.file_appeal(case, "u1", "人社局", "again", at("2024-09-19"), RULES)
    with pytest.raises(Forbidden):
        domain.review_appeal(case, "u1", True, "self", at("2024-09-19"))
    rejected = domain.review_appeal(case, "chief", False, "证据不足", at("2024-09-19"))
    assert rejected["appeal"]["state"] == "rejected"
    assert "pending_exclusion" not in rejected
    assert "state" not in rejected
    upheld = domain.review_appeal(case, "chief", True, "录像显示服务规范", at("2024-09-19"))
    assert upheld["appeal"]["state"] == "upheld"
    assert upheld["pending_exclusion"]["reason"] == "申诉成立：录像显示服务规范"
    assert upheld["state"] == "feedback_pending"
    with pytest.raises(Conflict):
        domain.review_appeal(apply(case, rejected), "chief", True, "r", at("2024-09-19"))


def test_replicated_cases_are_read_only_here() -> None:
    with pytest.raises(Forbidden):
        domain.check_local({**opened(), "recorded_at_site": "421302101"}, "421302")


# --- rollups and figures -----------------------------------------------------------------


def test_evaluation_contribution_per_dimension_day_and_month() -> None:
    ev = {**evaluation(level="satisfied"), "held": False, "excluded": None}
    cells = domain.expand(domain.evaluation_contribution(ev))
    dims = [
        ("all", "*"),
        ("window", "3"),
        ("staff", "s1"),
        ("matter", "M1"),
        ("department", "人社局"),
        ("channel", "pad"),
    ]
    # and every pair of them, for two filters (or a filter and a grouping) at once
    dims += [
        (f"{a}+{b}", f"{va}\x1f{vb}")
        for i, (a, va) in enumerate(dims[1:], 1)
        for b, vb in dims[i + 1 :]
    ]
    assert ("department+channel", "人社局\x1fpad") in dims
    assert set(cells) == {
        (f"{period}|421302|{dim}", value)
        for period in ("2024-09-13", "2024-09")
        for dim, value in dims
    }
    assert all(v == {"n_satisfied": 1} for v in cells.values())
    held = domain.expand(domain.evaluation_contribution({**ev, "held": True, "window": None}))
    assert ("2024-09-13|421302|window", "3") not in held
    assert held[("2024-09|421302|all", "*")] == {"held": 1}
    excluded = domain.expand(
        domain.evaluation_contribution({**ev, "excluded": {"kind": "not_adopted"}})
    )
    assert excluded[("2024-09-13|421302|all", "*")] == {"excluded": 1}
    diff = domain.delta(excluded, cells)
    assert diff[("2024-09-13|421302|all", "*")] == {"excluded": 1, "n_satisfied": -1}
    assert len(diff) == 2 * (1 + 5 + 10)
    assert domain.delta(cells, cells) == {}
    assert domain.delta({}, cells)[("2024-09|421302|staff", "s1")] == {"n_satisfied": -1}
    assert domain.expand(None) == {}


def test_a_value_holding_the_pair_separator_is_refused() -> None:
    ev = {**evaluation(level="satisfied"), "held": False, "excluded": None, "window": "3\x1f4"}
    with pytest.raises(ValueError, match="pair separator"):
        domain.expand(domain.evaluation_contribution(ev))


def test_bucket_values_add_and_drop_zeros() -> None:
    values = {"3": {"n_satisfied": 1}}
    domain.add_to(values, "3", {"n_satisfied": -1, "excluded": 1})
    assert values == {"3": {"excluded": 1}}
    domain.add_to(values, "3", {"excluded": -1})
    assert values == {}


def test_periods_plan_whole_months_and_edge_days() -> None:
    months, days = domain.plan_periods(date(2024, 1, 15), date(2024, 4, 10), by_day=False)
    assert months == ["2024-02", "2024-03"]
    assert days == [("2024-01-15", "2024-01-31"), ("2024-04-01", "2024-04-10")]
    assert domain.plan_periods(date(2024, 2, 1), date(2024, 2, 29), by_day=False) == (
        ["2024-02"],
        [],
    )
    assert domain.plan_periods(date(2024, 12, 5), date(2025, 1, 31), by_day=False) == (
        ["2025-01"],
        [("2024-12-05", "2024-12-31")],
    )
    assert domain.plan_periods(date(2024, 1, 1), date(2024, 3, 31), by_day=True) == (
        [],
        [("2024-01-01", "2024-03-31")],
    )


def test_case_contribution_real_name_rates() -> None:
    case = {**opened(), "real_name": True}
    assert some(domain.case_contribution(case))["n"] == {"cases": 1, "rn_bad": 1}
    done = {**case, "state": "closed", "on_time": True, "called_back": True}
    assert some(domain.case_contribution(done))["n"] == {
        "cases": 1,
        "cases_closed": 1,
        "cases_closed_on_time": 1,
        "rn_bad": 1,
        "rn_called_back": 1,
        "rn_rectified": 1,
    }
    anonymous = {**done, "real_name": False}
    assert "rn_bad" not in some(domain.case_contribution(anonymous))["n"]
    assert some(domain.case_contribution(done))["v"][0] == ["all", "*"]


def test_figures_rates() -> None:
    counts = {
        "n_very_satisfied": 5,
        "n_satisfied": 3,
        "n_basically_satisfied": 1,
        "n_dissatisfied": 1,
        "n_very_dissatisfied": 0,
        "excluded": 2,
        "held": 1,
        "cases": 1,
        "cases_closed": 1,
        "cases_closed_on_time": 0,
        "rn_bad": 1,
        "rn_called_back": 1,
        "rn_rectified": 1,
    }
    fig = domain.figures(counts)
    assert fig["total"] == 10
    assert fig["good_rate"] == 0.8
    assert fig["satisfaction_rate"] == 0.9
    assert fig["bad"] == 1
    assert (fig["excluded"], fig["held"]) == (2, 1)
    assert fig["closed_on_time_rate"] == 0.0
    assert (fig["callback_rate"], fig["rectification_rate"]) == (1.0, 1.0)
    empty = domain.figures({})
    assert empty["good_rate"] is None
    assert empty["callback_rate"] is None


def test_ranking_orders_by_satisfaction_then_good_then_volume_with_ties() -> None:
    f = domain.figures
    rows = domain.rank(
        [
            ("a", f({"n_satisfied": 2})),
            ("b", f({"n_very_satisfied": 3, "n_dissatisfied": 1})),
            ("c", f({"n_very_satisfied": 4})),
            ("d", f({"n_satisfied": 2})),
            ("e", f({"n_satisfied": 1})),
        ],
        minimum=2,
    )
    assert [(r["key"], r["rank"]) for r in rows] == [("c", 1), ("a", 2), ("d", 2), ("b", 4)]


def test_periods() -> None:
    assert domain.parse_period("2024-02") == (date(2024, 2, 1), date(2024, 2, 29))
    assert domain.parse_period("2024-12") == (date(2024, 12, 1), date(2024, 12, 31))
    assert domain.parse_period("2024") == (date(2024, 1, 1), date(2024, 12, 31))
    for bad in ("2024-13", "24-01", "", "2024/01"):
        with pytest.raises(InvalidInput):
            domain.parse_period(bad)
    assert domain.week_key(date(2024, 12, 30)) == "2025-W01"


# --- export mapping tables, value by value ---------------------------------------------------


def test_gbt39046_satisfaction_codes_annex_a8() -> None:
    levels = domain.GBT39046.levels
    assert levels[Level.VERY_SATISFIED] == "1"
    assert levels[Level.SATISFIED] == "2"
    assert levels[Level.BASICALLY_SATISFIED] == "3"
    assert levels[Level.DISSATISFIED] == "4"
    assert levels[Level.VERY_DISSATISFIED] == "5"


def test_provincial_satisfaction_codes_are_reversed() -> None:
    for profile in (domain.PROVINCIAL_PHONE, domain.PROVINCIAL_DEFAULT):
        assert profile.levels[Level.VERY_DISSATISFIED] == "1"
        assert profile.levels[Level.DISSATISFIED] == "2"
        assert profile.levels[Level.BASICALLY_SATISFIED] == "3"
        assert profile.levels[Level.SATISFIED] == "4"
        assert profile.levels[Level.VERY_SATISFIED] == "5"


def test_gbt39046_channels() -> None:
    ch = domain.GBT39046.channels
    assert ch[Channel.PC] == ("1", "PC端")
    assert ch[Channel.MOBILE] == ("2", "移动服务端")
    assert ch[Channel.QR_CODE] == ("3", "二维码")
    assert ch[Channel.PAD] == ("4", "政务大厅平板电脑")
    assert ch[Channel.SELF_SERVICE] == ("5", "政务大厅其他终端")
    assert ch[Channel.PAPER] == ("5", "政务大厅其他终端")
    assert ch[Channel.PHONE] == ("6", "电话")
    assert ch[Channel.SMS] == ("7", "短信")
    assert ch[Channel.SYSTEM_DEFAULT] is None


def test_provincial_channel_numberings() -> None:
    # both numberings agree up to 5; they differ in what 6 and 7 are
    in_the_hall = {
        Channel.PC: ("1", "pc"),
        Channel.MOBILE: ("2", "移动端"),
        Channel.QR_CODE: ("3", "二维码"),
        Channel.PAD: ("4", "平板/评价器"),
        Channel.PAPER: ("4", "平板/评价器"),
        Channel.SELF_SERVICE: ("5", "自助终端"),
    }
    assert dict(domain.PROVINCIAL_PHONE.channels) == {
        **in_the_hall,
        Channel.PHONE: ("6", "电话"),
        Channel.SMS: ("7", "短信"),
        Channel.SYSTEM_DEFAULT: None,
    }
    assert dict(domain.PROVINCIAL_DEFAULT.channels) == {
        **in_the_hall,
        Channel.SMS: ("6", "短信"),
        Channel.PHONE: None,
        Channel.SYSTEM_DEFAULT: ("7", "系统默认评价"),
    }


def test_every_profile_maps_every_canonical_value_explicitly() -> None:
    for profile in domain.EXPORT_PROFILES.values():
        assert set(profile.levels) == set(Level)
        assert set(profile.channels) == set(Channel)
        assert profile.sequences == {1: "1", 2: "2"}


def test_export_record_fields_and_unmapped() -> None:
    doc = {
        "id": "ev:ticket:t1:2",
        "service_ref": {"kind": "ticket", "id": "t1"},
        "channel": "qr_code",
        "level": "very_dissatisfied",
        "submitted_at": "2024-09-13T02:03:04.000Z",
        "sequence": 2,
        "comment": "慢",
        "site_code": "421302101",
        "rater": {"name_masked": "张*"},
        "excluded": None,
        "held": False,
    }
    national = domain.export_record(doc, domain.GBT39046, SH)
    assert national == {
        "办件编号": "t1",
        "评价渠道": "二维码",
        "评价渠道代码": "3",
        "评价人": "张*",
        "评价时间": "20240913T100304",
        "评价次数": "2",
        "满意度": "非常不满意",
        "满意度代码": "5",
        "文字评价": "慢",
        "行政区划": "421302101",
        "是否计入统计": "是",
    }
    provincial = some(domain.export_record(doc, domain.PROVINCIAL_PHONE, SH))
    assert provincial["满意度代码"] == "1"
    assert some(domain.export_record({**doc, "rater": {}}, domain.GBT39046, SH))["评价人"] == "匿名"
    assert domain.export_record({**doc, "channel": "system_default"}, domain.GBT39046, SH) is None
    excluded = some(domain.export_record({**doc, "excluded": {"kind": "x"}}, domain.GBT39046, SH))
    assert excluded["是否计入统计"] == "否"


def test_times_are_utc_iso_and_local_days() -> None:
    moment = at("2024-09-13", 7)
    assert iso(moment) == "2024-09-12T23:00:00.000000Z"  # microseconds, as every service
    assert domain.local_day(moment, SH) == date(2024, 9, 13)
    assert parse_iso("2024-09-12T23:00:00Z") == moment
    assert parse_iso("2024-09-12T23:00:00.000Z") == moment  # as stored by earlier versions
    with pytest.raises(ValueError, match="no timezone"):
        parse_iso("2024-09-12T23:00:00")
    assert moment - timedelta(hours=1) < moment
