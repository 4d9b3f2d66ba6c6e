"""Appeals (申诉) by the rated unit within its working days, and their review (复核) by
someone else: an upheld appeal keeps the evaluation but excludes it from the statistics."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime, timedelta
from typing import Any

from services.common.clock import iso, parse_iso
from services.common.errors import Conflict, Forbidden
from services.rating.domain.cases import OPEN_STATES, CaseState, require_state, step
from services.rating.domain.rules import Rules, local_day


def file_appeal(
    case: Mapping[str, Any], by: str, unit: str, reason: str, now: datetime, rules: Rules
) -> dict[str, Any]:
    """申诉: the rated unit may appeal within the configured working days of the notice."""
    if case.get("appeal") is not None:
        raise Conflict("本案件已提出过申诉", {"case_id": ["每个案件只能申诉一次"]})
    require_state(case, *OPEN_STATES)
    if unit != case["unit"]:
        raise Forbidden(
            "只有被评价的办理单位可以申诉", {"unit": [f"本案件办理单位为 {case['unit']}"]}
        )
    today = local_day(now, rules.zone)
    if case["appeal_due"] is None:
        opened = local_day(parse_iso(case["opened_at"]), rules.zone)
        if today > opened + timedelta(days=rules.appeal_working_days):
            rule = "申诉期限跨入尚未载入节假日安排的年份，暂不能确定是否逾期；请在载入后再申诉"
            raise Conflict(rule, {"case_id": [rule]})
    elif today > date.fromisoformat(case["appeal_due"]):
        raise Conflict(
            f"已超过申诉期限（{rules.appeal_working_days} 个工作日，截至 {case['appeal_due']}）",
            {"case_id": [f"申诉期限截至 {case['appeal_due']}"]},
        )
    appeal = {"state": "pending", "by": by, "unit": unit, "reason": reason, "filed_at": iso(now)}
    return {"appeal": appeal, "steps": [*case["steps"], step("appealed", by, now, reason=reason)]}


def review_appeal(
    case: Mapping[str, Any], reviewer: str, upheld: bool, reason: str, now: datetime
) -> dict[str, Any]:
    """复核: upheld → the evaluation is kept but excluded, and the citizen is told."""
    appeal = case.get("appeal")
    if appeal is None or appeal["state"] != "pending":
        raise Conflict("没有待复核的申诉", {"case_id": ["无待复核申诉"]})
    if reviewer == appeal["by"]:
        raise Forbidden("申诉人不能复核自己的申诉", {"reviewer": ["须为申诉人以外的人员"]})
    decided = {
        **appeal,
        "state": "upheld" if upheld else "rejected",
        "reviewer": reviewer,
        "review_reason": reason,
        "reviewed_at": iso(now),
    }
    changes: dict[str, Any] = {
        "appeal": decided,
        "steps": [
            *case["steps"],
            step("appeal_reviewed", reviewer, now, upheld=upheld, reason=reason),
        ],
    }
    if upheld:
        changes["pending_exclusion"] = {"kind": "appeal_upheld", "reason": f"申诉成立：{reason}"}
        if case["state"] != CaseState.CLOSED:
            changes["state"] = CaseState.FEEDBACK_PENDING.value
    return changes
