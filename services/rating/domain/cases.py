"""Bad-rating rectification cases (差评整改): the state machine from call-back through
classification and rectification to the feedback that closes a case, with working-day
deadlines that wait for a holiday schedule rather than guess, and escalation (督办)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime
from enum import StrEnum
from typing import Any

from services.common.calendar import ScheduleMissing
from services.common.clock import iso, parse_iso
from services.common.errors import Conflict, Forbidden, InvalidInput
from services.rating.domain.records import Case
from services.rating.domain.rules import Calendar, Rules, local_day
from services.rating.domain.submission import case_id


class CaseState(StrEnum):
    CALLBACK_PENDING = "callback_pending"  # 待回访核实
    CLASSIFICATION_PENDING = "classification_pending"  # 待定性
    RECTIFYING = "rectifying"  # 整改中
    FEEDBACK_PENDING = "feedback_pending"  # 待反馈
    CLOSED = "closed"  # 已办结


class Classification(StrEnum):
    FIX_NOW = "fix_now"  # 立行立改
    LEDGER = "ledger"  # 建立台账，限期整改
    EXPLAIN = "explain"  # 解释说明
    NOT_ADOPTED = "not_adopted"  # 误评或恶意差评，不予采纳


STATE_ZH = {
    CaseState.CALLBACK_PENDING: "待回访核实",
    CaseState.CLASSIFICATION_PENDING: "待定性",
    CaseState.RECTIFYING: "整改中",
    CaseState.FEEDBACK_PENDING: "待反馈",
    CaseState.CLOSED: "已办结",
}
OPEN_STATES = (
    CaseState.CALLBACK_PENDING,
    CaseState.CLASSIFICATION_PENDING,
    CaseState.RECTIFYING,
    CaseState.FEEDBACK_PENDING,
)
CLASSIFICATION_ZH = {
    Classification.FIX_NOW: "立行立改",
    Classification.LEDGER: "台账限期整改",
    Classification.EXPLAIN: "解释说明",
    Classification.NOT_ADOPTED: "不予采纳",
}


def require_state(case: Mapping[str, Any], *states: CaseState) -> None:
    if case["state"] not in states:
        allowed = "、".join(STATE_ZH[s] for s in states)
        raise Conflict(
            f"案件当前为“{STATE_ZH[CaseState(case['state'])]}”，此操作只能在“{allowed}”时进行",
            {"state": [case["state"]]},
        )


def step(name: str, by: str, now: datetime, **details: Any) -> dict[str, Any]:
    return {"step": name, "by": by, "at": iso(now), **details}


def _due(calendar: Calendar, start: date, working_days: int) -> str | None:
    try:
        return calendar.add_working_days(start, working_days).isoformat()
    except ScheduleMissing:
        return None


def case_deadlines(opened: date, rules: Rules, calendar: Calendar) -> dict[str, Any]:
    """Call-back and appeal deadlines of a case opened on ``opened``. A deadline that runs
    into a year without a loaded holiday schedule stays None (never guessed) and
    ``deadlines_unknown`` is set: the case opens anyway, and the sweep fills the deadline in
    once the operator has loaded that year's schedule (``fill_deadlines``)."""
    callback = _due(calendar, opened, rules.callback_working_days)
    appeal = _due(calendar, opened, rules.appeal_working_days)
    return {
        "callback_due": callback,
        "appeal_due": appeal,
        "deadlines_unknown": callback is None or appeal is None,
    }


def fill_deadlines(
    case: Mapping[str, Any], rules: Rules, calendar: Calendar
) -> dict[str, Any] | None:
    """The changes that complete a case's unknown deadlines, or None while still unknown."""
    if not case.get("deadlines_unknown"):
        return None
    opened = local_day(parse_iso(case["opened_at"]), rules.zone)
    found = case_deadlines(opened, rules, calendar)
    if found["callback_due"] == case["callback_due"] and found["appeal_due"] == case["appeal_due"]:
        return None
    changes = dict(found)
    callback = next((s for s in case["steps"] if s["step"] == "callback"), None)
    if callback is not None and found["callback_due"] is not None:
        done = local_day(parse_iso(callback["at"]), rules.zone)
        changes["callback_on_time"] = done <= date.fromisoformat(found["callback_due"])
    return changes


def open_case(
    evaluation: Mapping[str, Any], now: datetime, rules: Rules, calendar: Calendar
) -> Case:
    """A new case for a bad rating, assigned to the unit that handled the service."""
    today = local_day(now, rules.zone)
    unit = evaluation.get("department") or evaluation["site_code"]
    deadlines = case_deadlines(today, rules, calendar)
    return {
        "id": case_id(evaluation["id"]),
        "schema": 1,
        "evaluation_id": evaluation["id"],
        "site_code": evaluation["site_code"],
        "recorded_at_site": evaluation["recorded_at_site"],
        "unit": unit,
        "handler": None,
        "level": evaluation["level"],
        "real_name": bool(evaluation["rater"]["real_name"]),
        "day": evaluation["day"],
        "window": evaluation.get("window"),
        "staff_id": evaluation.get("staff_id"),
        "matter_code": evaluation.get("matter_code"),
        "department": evaluation.get("department"),
        "channel": evaluation["channel"],
        "state": CaseState.CALLBACK_PENDING.value,
        "opened_at": iso(now),
        "callback_due": deadlines["callback_due"],
        "appeal_due": deadlines["appeal_due"],
        "deadlines_unknown": deadlines["deadlines_unknown"],
        "close_due": None,
        "classification": None,
        "called_back": False,
        "callback_on_time": None,
        "closed_at": None,
        "on_time": None,
        "overdue": [],
        "escalations": [],
        "appeal": None,
        "exclusion": None,
        "pending_exclusion": None,
        "steps": [step("opened", "system", now, unit=unit)],
        "created_at": iso(now),
        "updated_at": iso(now),
    }


def check_local(case: Mapping[str, Any], own_site: str) -> None:
    if case.get("recorded_at_site") != own_site:
        raise Forbidden(
            "该案件由下级站点办理，本站只读",
            {"case_id": [f"办理站点 {case.get('recorded_at_site')}"]},
        )


def assign(case: Mapping[str, Any], handler: str, by: str, now: datetime) -> dict[str, Any]:
    """安排专人: the person who calls back and handles the case."""
    require_state(case, *OPEN_STATES)
    return {
        "handler": handler,
        "steps": [*case["steps"], step("assigned", by, now, handler=handler)],
    }


def check_handler(case: Mapping[str, Any], by: str) -> None:
    if case.get("handler") and case["handler"] != by:
        raise Forbidden("只有本案件的经办人可以办理此步骤", {"by": ["不是本案件经办人"]})


def record_callback(
    case: Mapping[str, Any], by: str, contacted: bool, note: str, now: datetime, rules: Rules
) -> dict[str, Any]:
    """回访核实: done by the handler (the first to call back becomes the handler)."""
    require_state(case, CaseState.CALLBACK_PENDING)
    check_handler(case, by)
    today = local_day(now, rules.zone)
    due = case["callback_due"]
    on_time = None if due is None else today <= date.fromisoformat(due)  # None: filled later
    return {
        "state": CaseState.CLASSIFICATION_PENDING.value,
        "handler": case.get("handler") or by,
        "called_back": True,
        "callback_on_time": on_time,
        "overdue": [s for s in case["overdue"] if s != "callback"],
        "steps": [*case["steps"], step("callback", by, now, contacted=contacted, note=note)],
    }


def classify(
    case: Mapping[str, Any],
    *,
    by: str,
    classification: Classification,
    note: str,
    approver: str | None,
    deadline: date | None,
    now: datetime,
    rules: Rules,
    calendar: Calendar,
) -> dict[str, Any]:
    """定性: fix now, ledger with a deadline, explanation, or not adopted (needs approval)."""
    require_state(case, CaseState.CLASSIFICATION_PENDING)
    today = local_day(now, rules.zone)
    close_due = calendar.add_working_days(today, rules.rectification_working_days)
    changes: dict[str, Any] = {"classification": classification.value}
    details: dict[str, Any] = {"classification": classification.value, "note": note}
    if classification is Classification.NOT_ADOPTED:
        # Not adopting a bad rating is decided by the approving manager, who submits it
        # (the approver is the caller, never a name typed by someone else: docs/security.md).
        if not approver:
            raise InvalidInput.field("approver", "不予采纳须由经办人以外的负责人审批")
        if approver != by:
            raise Forbidden("不予采纳须由审批人本人提交", {"approver": ["须为提交人本人"]})
        if approver == case.get("handler"):
            raise Forbidden(
                "不予采纳的审批人不能是经办人本人", {"approver": ["须为经办人以外的人员"]}
            )
        details["approver"] = approver
        changes["pending_exclusion"] = {"kind": "not_adopted", "reason": f"不予采纳：{note}"}
        changes["management_notified"] = True  # 通报同级政务服务管理机构
    else:
        check_handler(case, by)
        if approver:
            raise InvalidInput.field("approver", "只有不予采纳需要审批人")
    if classification is Classification.LEDGER and deadline is not None:
        if deadline < today:
            raise InvalidInput.field("deadline", "整改期限不能早于今天")
        close_due = deadline
        details["deadline"] = deadline.isoformat()
    elif deadline is not None:
        raise InvalidInput.field("deadline", "只有台账限期整改可以另定期限")
    rectify = classification in (Classification.FIX_NOW, Classification.LEDGER)
    changes["state"] = (CaseState.RECTIFYING if rectify else CaseState.FEEDBACK_PENDING).value
    changes["close_due"] = close_due.isoformat()
    changes["steps"] = [*case["steps"], step("classified", by, now, **details)]
    return changes


def record_rectification(
    case: Mapping[str, Any], by: str, measures: str, now: datetime
) -> dict[str, Any]:
    require_state(case, CaseState.RECTIFYING)
    check_handler(case, by)
    return {
        "state": CaseState.FEEDBACK_PENDING.value,
        "steps": [*case["steps"], step("rectified", by, now, measures=measures)],
    }


def record_feedback(
    case: Mapping[str, Any], by: str, method: str, content: str, now: datetime, rules: Rules
) -> dict[str, Any]:
    """反馈: telling the citizen the outcome is required to close the case."""
    require_state(case, CaseState.FEEDBACK_PENDING)
    check_handler(case, by)
    today = local_day(now, rules.zone)
    closed_on_time = case["close_due"] is None or today <= date.fromisoformat(case["close_due"])
    callback_ok = case.get("callback_on_time") is not False
    return {
        "state": CaseState.CLOSED.value,
        "closed_at": iso(now),
        "on_time": bool(closed_on_time and callback_ok),
        "overdue": [],
        "steps": [*case["steps"], step("feedback", by, now, method=method, content=content)],
    }


def overdue_steps(case: Mapping[str, Any], today: date) -> list[str]:
    """Steps past their deadline now: ``callback`` and ``close``."""
    steps = []
    callback_due = case.get("callback_due")
    if (
        case["state"] == CaseState.CALLBACK_PENDING
        and callback_due is not None
        and today > date.fromisoformat(callback_due)
    ):
        steps.append("callback")
    if (
        case["state"] != CaseState.CLOSED
        and case.get("close_due")
        and today > date.fromisoformat(case["close_due"])
    ):
        steps.append("close")
    return steps


def escalate(case: Mapping[str, Any], today: date, now: datetime) -> dict[str, Any] | None:
    """Flag overdue steps; each newly overdue step is escalated once (督办)."""
    steps = overdue_steps(case, today)
    if steps == list(case.get("overdue") or []):
        return None
    escalated = {e["step"] for e in case.get("escalations") or []}
    new = [
        {"step": s, "at": iso(now), "to": "政务服务管理机构"} for s in steps if s not in escalated
    ]
    return {"overdue": steps, "escalations": [*(case.get("escalations") or []), *new]}
