"""Applications (办件): the state machine, the desk check (一次性告知), and what an accepted,
refused or completed application records.

An illegal transition raises ``Conflict`` (the state is named in Chinese); broken input
raises ``InvalidInput``. Standard library only; moments arrive as stored text (``clock.iso``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import date
from typing import Any

from services.common.contracts import EvaluationInvitation
from services.common.errors import Conflict
from services.common.privacy import scrub_text
from services.matters.domain.catalog import CASE_TYPES, Matter
from services.matters.domain.deadlines import CLOCK_RUNNING, CLOCK_STOPPED, CLOCK_SUSPENDED
from services.matters.domain.records import ApplicationRecord, ApplicationSummary

SCHEMA = 1  # the ``schema`` of every application, summary and invitation written here

CHANNELS = {
    "window": "窗口",
    "online": "网上",
    "self_service": "自助终端",
    "proxy": "代办",
    "mail": "邮寄",
}
# 行政许可法 art. 45 and 补正: periods that do not count towards the time limit.
SUSPENSION_REASONS = {
    "hearing": "听证",
    "bidding": "招标",
    "auction": "拍卖",
    "inspection": "检验、检测、检疫",
    "appraisal": "鉴定",
    "expert_review": "专家评审",
    "supplement": "补正材料",
}
DELIVERY_METHODS = {"window_pickup": "窗口领取", "mail": "邮寄送达"}

STATES = {
    "forwarded": "已转报，待办理站点受理",
    "supplement_required": "待补正",
    "not_accepted": "不予受理",
    "accepted": "已受理",
    "in_review": "审查中",
    "approved": "审查通过",
    "denied": "不予批准",
    "completed": "已办结",
    "delivered": "已送达",
}
# action → (states it may start from, Chinese verb for messages)
TRANSITIONS: dict[str, tuple[frozenset[str], str]] = {
    "supplement": (frozenset({"supplement_required"}), "补正材料"),
    "refuse": (frozenset({"supplement_required"}), "作出不予受理决定"),
    "start_review": (frozenset({"accepted"}), "开始审查"),
    "decide": (frozenset({"in_review"}), "作出审查决定"),
    "complete": (frozenset({"approved", "denied"}), "办结"),
    "deliver": (frozenset({"completed"}), "送达"),
    "suspend": (frozenset({"accepted", "in_review"}), "中止计时"),
    "resume": (frozenset({"accepted", "in_review"}), "恢复计时"),
    # 代办: the handling site receives materials the proxy site sent again (any state: a
    # decision already made stands, and the copy only notes the request's version)
    "take_materials": (frozenset(STATES), "接收代办站点转报的材料"),
}
OPEN_STATES = frozenset({"accepted", "in_review", "approved", "denied"})
DONE_STATES = frozenset({"completed", "delivered"})


def check_materials(matter: Matter, presented: Iterable[Mapping[str, Any]]) -> list[dict[str, str]]:
    """Every required material missing or invalid, by name: the one notice (一次性告知)."""
    given: dict[str, Mapping[str, Any]] = {str(m["name"]): m for m in presented}
    problems: list[dict[str, str]] = []
    for name in matter.required_materials():
        item = given.get(name)
        if item is None:
            problems.append({"name": name, "problem": "未提交"})
        elif item.get("valid", True) is False:
            problems.append({"name": name, "problem": str(item.get("problem") or "不符合受理标准")})
    return problems


def merge_materials(
    earlier: Iterable[Mapping[str, Any]], later: Iterable[Mapping[str, Any]]
) -> list[dict[str, Any]]:
    """Materials presented so far; a later copy of a material replaces the earlier one."""
    merged: dict[str, dict[str, Any]] = {str(m["name"]): dict(m) for m in earlier}
    for m in later:
        merged[str(m["name"])] = dict(m)
    return list(merged.values())


class Application:
    """办件: the state machine over a stored application document (a dict)."""

    def __init__(self, doc: Mapping[str, Any]) -> None:
        self.doc = dict(doc)

    @property
    def state(self) -> str:
        return str(self.doc["state"])

    def require(self, action: str) -> None:
        allowed, verb = TRANSITIONS[action]
        if self.state not in allowed:
            raise _refused(f"办件当前为“{STATES[self.state]}”，不能{verb}")
        if action in ("decide", "complete", "start_review", "suspend") and self.suspended:
            if action == "suspend":
                raise _refused("办理时限已中止，不能重复中止")
            raise _refused(f"办理时限已中止，请先恢复计时再{verb}")
        if action == "resume" and not self.suspended:
            raise _refused("办理时限没有中止，无需恢复")

    @property
    def suspended(self) -> bool:
        return self.doc.get("clock") == CLOCK_SUSPENDED

    def is_overdue_on(self, today: date) -> bool:
        due = self.doc.get("due_date")
        return due is not None and today > date.fromisoformat(due)


def _refused(message: str) -> Conflict:
    return Conflict(message, {"state": [message]})


def refusal(reason: str, basis: str, issued_at: str) -> dict[str, Any]:
    """不予受理: the notice with its reason and policy basis."""
    return {
        "state": "not_accepted",
        "refusal": {
            "reason": reason,
            "basis": basis,
            "issued_at": issued_at,
            "title": "不予受理通知书",
        },
    }


def supplement_required(
    number: str, notices: list[dict[str, Any]], problems: list[dict[str, str]], issued_at: str
) -> dict[str, Any]:
    """One notice (一次性告知单) listing every missing or invalid material at once."""
    notice = {
        "title": "一次性告知单",
        "number": f"{number}-{len(notices) + 1}",
        "issued_at": issued_at,
        "items": problems,
        "text": "请补齐以下材料后再次提交："
        + "；".join(f"{p['name']}（{p['problem']}）" for p in problems),
    }
    return {
        "state": "supplement_required",
        "notices": [*notices, notice],
        "supplement_notice": notice,
    }


def accepted(
    matter: Matter,
    number: str,
    matter_version: int,
    presented: Iterable[Mapping[str, Any]],
    *,
    today: date,
    due: date,
    at: str,
    site_name: str,
) -> dict[str, Any]:
    """受理 with its receipt (受理凭证); a 即办件 is completed on the spot."""
    promised = int(matter.data["promised_limit_days"])
    receipt = {
        "title": "受理凭证",
        "number": number,
        "matter_name": matter.data["name"],
        "matter_code": matter.code,
        "matter_version": matter_version,
        "case_type_name": CASE_TYPES[matter.data["case_type"]],
        "accepted_on": today.isoformat(),
        "promised_limit_days": promised,
        "due_date": due.isoformat(),
        "materials_received": [m["name"] for m in presented],
        "site_name": site_name,
    }
    changes: dict[str, Any] = {
        "state": "accepted",
        "accepted_at": at,
        "accepted_on": today.isoformat(),
        "due_date": due.isoformat(),
        "clock": CLOCK_RUNNING,
        "receipt": receipt,
        "supplement_notice": None,
    }
    if matter.is_immediate:
        changes.update(
            state="completed",
            decision="approved",
            completed_at=at,
            completed_on=today.isoformat(),
            clock=CLOCK_STOPPED,
            overdue=False,
        )
    return changes


def summary_of(doc: ApplicationRecord, today: date) -> ApplicationSummary:
    """What may leave the site: no names, no ID numbers, no phones; its free text (the
    public overdue reason) scrubbed of phones and ID numbers (``privacy.scrub_text``)."""
    late = bool(doc.get("overdue"))
    due = doc.get("due_date")
    # a 代办 application's clock runs at the site that handles it (domain/proxy.py)
    if doc.get("handling_clock", doc.get("clock")) == CLOCK_RUNNING and due:
        late = today.isoformat() > due
    summary = ApplicationSummary(
        id=doc["id"],
        version=doc["version"],
        schema=SCHEMA,
        number=doc["number"],
        site_code=doc["site_code"],
        matter_code=doc["matter_code"],
        matter_version=doc["matter_version"],
        matter_name=doc["matter_name"],
        matter_type=doc["matter_type"],
        department=doc.get("department"),
        case_type=doc["case_type"],
        state=doc["state"],
        channel=doc["channel"],
        accepted_on=doc.get("accepted_on"),
        due_date=due,
        completed_on=doc.get("completed_on"),
        delivered_on=doc.get("delivered_on"),
        suspended_days=doc.get("suspended_days", 0),
        overdue=late,
        overdue_reason=_public(doc.get("overdue_reason")),
        created_at=doc["created_at"],
        updated_at=doc["updated_at"],
    )
    if doc.get("handled_by"):
        summary["handled_by"] = doc["handled_by"]
    return summary


def _public(text: str | None) -> str | None:
    """Free text fit to leave the site: phones and ID numbers masked, however typed."""
    return scrub_text(text) if text else text


def invitation_for(doc: ApplicationRecord, created_at: str) -> EvaluationInvitation:
    """一事一评: the one evaluation invitation of a completed application, with a
    deterministic id (docs/architecture.md, "Invitations")."""
    return EvaluationInvitation(
        id=f"application:{doc['id']}",
        schema=SCHEMA,
        service_ref={"kind": "application", "id": doc["id"]},
        site_code=doc["site_code"],
        window=doc.get("window"),
        staff_id=doc.get("staff_id"),
        matter_code=doc["matter_code"],
        department=doc.get("department"),
        service_channel=doc["channel"],
        service_ended_at=doc.get("completed_at") or "",
        created_at=created_at,
    )
