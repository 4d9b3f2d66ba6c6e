"""Submission rules: what a rating is about (``ServiceFacts``), its deterministic id, the
first / supplementary sequence and its working-day deadline, who may rate, what makes a
rating suspicious, and the evaluation record as stored (no phone, no name: masked only)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from services.common.calendar import ScheduleMissing
from services.common.clock import iso, parse_iso
from services.common.errors import Conflict, Forbidden, InvalidInput
from services.rating.domain.records import Evaluation, Invitation, Rater, Reasons
from services.rating.domain.rules import Calendar, Rules, local_day
from services.rating.domain.scale import (
    DETAIL_QUESTIONS,
    FIRST,
    HOLD_ZH,
    SUGGESTION,
    SUPPLEMENTARY,
    Channel,
    Level,
    RefKind,
)


@dataclass(frozen=True)
class ServiceFacts:
    """What the evaluation is about, from the invitation when there is one (bound)."""

    kind: RefKind
    ref_id: str
    site_code: str
    window: str | None
    staff_id: str | None
    matter_code: str | None
    department: str | None
    service_channel: str | None
    service_ended_at: datetime | None
    invitation_id: str | None


def evaluation_id(site: str, kind: RefKind | str, ref_id: str, sequence: int) -> str:
    """Deterministic, so the store's unique id enforces one first and one supplementary
    rating each; owned, so two sites never produce the same id: the recording site is a
    segment of its own (docs/architecture.md, "Replication")."""
    return f"ev:{site}:{kind}:{ref_id}:{sequence}"


def legacy_evaluation_id(kind: RefKind | str, ref_id: str, sequence: int) -> str:
    """The id an earlier version gave (no site): still looked up, never given."""
    return f"ev:{kind}:{ref_id}:{sequence}"


def case_id(evaluation: str) -> str:
    return f"case:{evaluation}"


def evaluation_deadline(
    facts: ServiceFacts, first_at: datetime | None, rules: Rules, calendar: Calendar
) -> date | None:
    """Last local day on which this service may still be rated (补充评价期限)."""
    start = facts.service_ended_at or first_at
    if start is None:
        return None
    return calendar.add_working_days(local_day(start, rules.zone), rules.supplementary_working_days)


def within_calendar_days(
    facts: ServiceFacts, first_at: datetime | None, now: datetime, rules: Rules
) -> bool:
    """Whether ``now`` is at most ``supplementary_working_days`` calendar days after the
    service: then it is inside the working-day deadline, with or without a schedule."""
    start = facts.service_ended_at or first_at
    if start is None:
        return True
    bound = local_day(start, rules.zone) + timedelta(days=rules.supplementary_working_days)
    return local_day(now, rules.zone) <= bound


def check_submission(
    *,
    facts: ServiceFacts,
    channel: Channel,
    level: Level,
    reasons: Mapping[str, Any] | None,
    entered_by: str | None,
    existing: Sequence[Mapping[str, Any]],
    now: datetime,
    rules: Rules,
    calendar: Calendar,
) -> int:
    """The sequence (1 first, 2 supplementary) this submission takes, or a refusal."""
    if channel is Channel.SYSTEM_DEFAULT:
        raise Forbidden("系统默认评价只能由系统生成", {"channel": ["不能提交系统默认评价"]})
    if channel is Channel.PAPER and not entered_by:
        raise InvalidInput.field("entered_by", "纸质评价表须记录录入的工作人员")
    if channel is not Channel.PAPER and entered_by:
        raise Forbidden(
            "除纸质评价表录入外，任何人不得代替办事群众评价",
            {"entered_by": ["仅纸质评价表渠道可由工作人员录入"]},
        )
    if level.bad:
        tags = (reasons or {}).get("tags") or []
        text = ((reasons or {}).get("text") or "").strip()
        if not tags and not text:
            raise InvalidInput.field("reasons", "差评须至少选择一个原因或填写原因说明")
    if len(existing) >= SUPPLEMENTARY:
        raise Conflict(
            "该服务已有首次评价和一次追加评价，不能再评价",
            {"service_ref": ["每次服务限首次评价一次、追加评价一次"]},
        )
    sequence = FIRST if not existing else SUPPLEMENTARY
    first_at = parse_iso(existing[0]["submitted_at"]) if existing else None
    try:
        deadline = evaluation_deadline(facts, first_at, rules, calendar)
    except ScheduleMissing:
        # N working days never end before N calendar days: a rating inside that bound is
        # in time whatever next year's schedule says; beyond it we refuse, not guess.
        if not within_calendar_days(facts, first_at, now, rules):
            raise
        deadline = None
    if deadline is not None and local_day(now, rules.zone) > deadline:
        what = "追加评价" if sequence == SUPPLEMENTARY else "补充评价"
        raise Conflict(
            f"已超过{what}期限：服务结束后 {rules.supplementary_working_days} 个工作日内"
            f"（截至 {deadline.isoformat()}）",
            {"service_ref": [f"评价期限截至 {deadline.isoformat()}"]},
        )
    return sequence


def suspicion_reasons(
    *,
    facts: ServiceFacts,
    now: datetime,
    rater_staff_id: str | None,
    entered_by: str | None,
    phone_count_today: int | None,
    device_count_today: int | None,
    rules: Rules,
) -> list[str]:
    """Patterns that hold a rating for review instead of counting it (codes, see HOLD_ZH)."""
    reasons = []
    if facts.service_ended_at is not None and now < facts.service_ended_at:
        reasons.append("before_service_end")
    if facts.staff_id and facts.staff_id in (rater_staff_id, entered_by):
        reasons.append("self_rating")
    if phone_count_today is not None and phone_count_today > rules.max_ratings_per_phone_per_day:
        reasons.append("phone_daily_limit")
    if device_count_today is not None and device_count_today > rules.max_ratings_per_device_per_day:
        reasons.append("device_daily_limit")
    return reasons


def facts_from_invitation(invitation: Invitation) -> ServiceFacts:
    """A service bound to its invitation: everything about it comes from the source."""
    return ServiceFacts(
        kind=RefKind(invitation["service_ref"]["kind"]),
        ref_id=invitation["service_ref"]["id"],
        site_code=invitation["site_code"],
        window=invitation.get("window"),
        staff_id=invitation.get("staff_id"),
        matter_code=invitation.get("matter_code"),
        department=invitation.get("department"),
        service_channel=invitation.get("service_channel"),
        service_ended_at=parse_iso(invitation["service_ended_at"]),
        invitation_id=invitation["id"],
    )


def evaluation_record(
    *,
    doc_id: str,
    own_site: str,
    facts: ServiceFacts,
    sequence: int,
    channel: Channel,
    level: Level,
    details: Mapping[str, Any],
    comment: str | None,
    reasons: Reasons,
    rater: Rater,
    entered_by: str | None,
    hold: Sequence[str],
    now: datetime,
    day: date,
    token: str | None,
) -> Evaluation:
    """The evaluation as stored; free text must already be scrubbed."""
    bad_case = level.bad and not hold
    return {
        "id": doc_id,
        "schema": 1,
        "site_code": facts.site_code,
        "recorded_at_site": own_site,
        "service_ref": {"kind": facts.kind.value, "id": facts.ref_id},
        "invitation_id": facts.invitation_id,
        "sequence": sequence,
        "window": facts.window,
        "staff_id": facts.staff_id,
        "matter_code": facts.matter_code,
        "department": facts.department,
        "service_channel": facts.service_channel,
        "service_ended_at": iso(facts.service_ended_at) if facts.service_ended_at else None,
        "channel": channel.value,
        "level": level.value,
        "level_zh": level.zh,
        "bad": level.bad,
        "details": {**dict.fromkeys(DETAIL_QUESTIONS), SUGGESTION: None, **details},
        "reasons": reasons,
        "comment": comment,
        "rater": rater,
        "entered_by": entered_by,
        "submitted_at": iso(now),
        "day": day.isoformat(),
        "held": bool(hold),
        "hold_reasons": [{"code": c, "text": HOLD_ZH[c]} for c in hold],
        "excluded": None,
        "case_id": case_id(doc_id) if level.bad else None,
        "case_pending": bad_case,
        "contact_token": token,
        "created_at": iso(now),
        "updated_at": iso(now),
    }
