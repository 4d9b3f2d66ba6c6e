"""好差评 rules: evaluations, bad-rating rectification cases, appeals, rollups, exports.

Standard library only: no I/O, no Nameko. Times are aware UTC ``datetime``s; days and
deadlines are local ``date``s of the site's time zone. Sources: 国办发〔2019〕51号 (seed 003
篇一) and GB/T 39046-2020 table 9, as summarised in DOMAIN.md "Evaluation".
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from enum import StrEnum
from typing import Any, Protocol
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from services.common.calendar import ScheduleMissing
from services.common.errors import Conflict, Forbidden, InvalidInput


class Calendar(Protocol):
    def add_working_days(self, start: date, n: int) -> date: ...


# --- The scale and the enumerations ------------------------------------------------------


class Level(StrEnum):
    """满意度: the national five levels, best first; the last two are bad ratings (差评)."""

    VERY_SATISFIED = "very_satisfied"
    SATISFIED = "satisfied"
    BASICALLY_SATISFIED = "basically_satisfied"
    DISSATISFIED = "dissatisfied"
    VERY_DISSATISFIED = "very_dissatisfied"

    @property
    def zh(self) -> str:
        return LEVEL_ZH[self]

    @property
    def bad(self) -> bool:
        return self in BAD_LEVELS


LEVEL_ZH = {
    Level.VERY_SATISFIED: "非常满意",
    Level.SATISFIED: "满意",
    Level.BASICALLY_SATISFIED: "基本满意",
    Level.DISSATISFIED: "不满意",
    Level.VERY_DISSATISFIED: "非常不满意",
}
BAD_LEVELS = frozenset({Level.DISSATISFIED, Level.VERY_DISSATISFIED})
# 好评 = the two top levels; 满意 (satisfaction) = every level that is not bad.
GOOD_LEVELS = frozenset({Level.VERY_SATISFIED, Level.SATISFIED})
SATISFIED_LEVELS = frozenset(set(Level) - BAD_LEVELS)


class RefKind(StrEnum):
    """What was evaluated: a ticket (一次一评), an application (一事一评), or other channels."""

    TICKET = "ticket"
    APPLICATION = "application"
    ONLINE = "online"
    HOTLINE = "hotline"
    OTHER = "other"


class Channel(StrEnum):
    """评价渠道, canonical: how the rating was given (mapped to codes only on export)."""

    PAD = "pad"  # 窗口评价器/平板
    QR_CODE = "qr_code"
    PC = "pc"
    MOBILE = "mobile"
    SMS = "sms"
    PHONE = "phone"
    SELF_SERVICE = "self_service"  # 自助终端
    PAPER = "paper"  # 纸质评价表, entered by a clerk
    SYSTEM_DEFAULT = "system_default"  # 系统默认评价 (a per-site option)


# 评价问询 detail questions (51号文 三(二)); the first four are yes/no, the last is text.
DETAIL_QUESTIONS = (
    "guide_clear",
    "procedure_convenient",
    "materials_simplified",
    "interface_friendly",
)
SUGGESTION = "suggestion"

# Dimensions statistics can filter and group by, each kept as its own rollup bucket.
DIMENSIONS = ("window", "staff", "matter", "department", "channel")
ALL = "*"

FIRST, SUPPLEMENTARY = 1, 2


# --- Configuration -----------------------------------------------------------------------


@dataclass(frozen=True)
class RatingRules:
    """The ``RATING:`` config section, validated; every number is a documented default."""

    supplementary_working_days: int = 5
    default_rating_after_days: int | None = None
    callback_working_days: int = 1
    rectification_working_days: int = 5
    appeal_working_days: int = 3
    privacy_salt: str | None = None
    timezone: str = "Asia/Shanghai"
    max_ratings_per_phone_per_day: int = 5
    max_ratings_per_device_per_day: int = 50
    ranking_min_evaluations: int = 1
    sweep_interval_seconds: float = 30.0

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


_INT_KEYS = {
    "supplementary_working_days": 0,
    "callback_working_days": 1,
    "rectification_working_days": 1,
    "appeal_working_days": 1,
    "max_ratings_per_phone_per_day": 1,
    "max_ratings_per_device_per_day": 1,
    "ranking_min_evaluations": 1,
}


def parse_rules(section: Mapping[str, Any], key: str = "RATING") -> RatingRules:
    """Validate the config section; errors name ``RATING.<key>`` and the rule."""
    known = set(RatingRules.__dataclass_fields__)
    if unknown := sorted(set(section) - known):
        raise InvalidInput.field(
            f"{key}.{unknown[0]}", f"不认识的配置项；可用：{', '.join(sorted(known))}"
        )
    values: dict[str, Any] = {}
    for name, minimum in _INT_KEYS.items():
        if name in section:
            value = section[name]
            if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
                raise InvalidInput.field(f"{key}.{name}", f"应为不小于 {minimum} 的整数")
            values[name] = value
    if section.get("default_rating_after_days") is not None:
        value = section["default_rating_after_days"]
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise InvalidInput.field(
                f"{key}.default_rating_after_days", "应为不小于 1 的自然日天数，或留空表示关闭"
            )
        values["default_rating_after_days"] = value
    if section.get("privacy_salt") is not None:
        salt = str(section["privacy_salt"])
        if len(salt) < 16:
            raise InvalidInput.field(f"{key}.privacy_salt", "至少 16 个字符")
        values["privacy_salt"] = salt
    if "timezone" in section:
        try:
            ZoneInfo(str(section["timezone"]))
        except (ZoneInfoNotFoundError, ValueError):
            raise InvalidInput.field(
                f"{key}.timezone", "应为 IANA 时区名，如 Asia/Shanghai"
            ) from None
        values["timezone"] = str(section["timezone"])
    if "sweep_interval_seconds" in section:
        value = section["sweep_interval_seconds"]
        if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
            raise InvalidInput.field(f"{key}.sweep_interval_seconds", "应为正数（秒）")
        values["sweep_interval_seconds"] = float(value)
    return RatingRules(**values)


# --- Time helpers --------------------------------------------------------------------------


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_time(text: str) -> datetime:
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        raise ValueError(f"time without zone: {text!r}")
    return moment.astimezone(UTC)


def local_day(moment: datetime, zone: ZoneInfo) -> date:
    return moment.astimezone(zone).date()


def week_key(day: date) -> str:
    year, week, _ = day.isocalendar()
    return f"{year}-W{week:02d}"


def month_key(day: date) -> str:
    return f"{day.year}-{day.month:02d}"


def parse_period(period: str) -> tuple[date, date]:
    """``YYYY-MM`` (a month) or ``YYYY`` (a year) → first and last day."""
    if re.fullmatch(r"\d{4}-\d{2}", period or ""):
        year, month = int(period[:4]), int(period[5:])
        if not 1 <= month <= 12:
            raise InvalidInput.field("period", "月份应在 01 到 12 之间")
        first = date(year, month, 1)
        nxt = date(year + month // 12, month % 12 + 1, 1)
        return first, nxt - timedelta(days=1)
    if re.fullmatch(r"\d{4}", period or ""):
        year = int(period)
        return date(year, 1, 1), date(year, 12, 31)
    raise InvalidInput.field("period", "应为 YYYY-MM（月）或 YYYY（年）")


# --- Privacy -------------------------------------------------------------------------------

_PHONE_LIKE = re.compile(r"(?<!\d)(1\d{2})\d{4}(\d{4})(?!\d)")


def protect_hash(salt: str, kind: str, value: str) -> str:
    """A salted hash for lookups (abuse counting); never reversible to the value."""
    return hmac.new(salt.encode(), f"{kind}:{value}".encode(), hashlib.sha256).hexdigest()


def mask_phone(phone: str) -> str:
    digits = re.sub(r"\D", "", phone)
    if len(digits) < 7:
        return "*" * len(digits)
    return f"{digits[:3]}****{digits[-4:]}"


def mask_name(name: str) -> str:
    name = name.strip()
    if len(name) <= 1:
        return "*"
    return name[0] + "*" * (len(name) - 1)


def scrub_text(text: str | None, names: Iterable[str | None] = ()) -> str | None:
    """Free text a citizen typed, with anything that looks like a mobile number masked, and
    the rater's own name (when given) replaced by its masked form."""
    if text is None:
        return None
    for name in names:
        if name and name.strip():
            text = text.replace(name.strip(), mask_name(name))
    return _PHONE_LIKE.sub(r"\1****\2", text)


# --- Submission rules ----------------------------------------------------------------------


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


def evaluation_id(kind: RefKind | str, ref_id: str, sequence: int) -> str:
    """Deterministic: the store's unique id enforces one first and one supplementary each."""
    return f"ev:{kind}:{ref_id}:{sequence}"


def case_id(evaluation: str) -> str:
    return f"case:{evaluation}"


def evaluation_deadline(
    facts: ServiceFacts, first_at: datetime | None, rules: RatingRules, calendar: Calendar
) -> date | None:
    """Last local day on which this service may still be rated (补充评价期限)."""
    start = facts.service_ended_at or first_at
    if start is None:
        return None
    return calendar.add_working_days(local_day(start, rules.zone), rules.supplementary_working_days)


def within_calendar_days(
    facts: ServiceFacts, first_at: datetime | None, now: datetime, rules: RatingRules
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
    rules: RatingRules,
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
    first_at = parse_time(existing[0]["submitted_at"]) if existing else None
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
    rules: RatingRules,
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


HOLD_ZH = {
    "before_service_end": "评价时间早于服务结束时间",
    "self_rating": "工作人员评价本人办理的服务",
    "phone_daily_limit": "同一手机号当日评价次数过多",
    "device_daily_limit": "同一设备当日评价次数过多",
}


# --- Bad-rating rectification cases (差评整改) --------------------------------------------


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
CLASSIFICATION_ZH = {
    Classification.FIX_NOW: "立行立改",
    Classification.LEDGER: "台账限期整改",
    Classification.EXPLAIN: "解释说明",
    Classification.NOT_ADOPTED: "不予采纳",
}


def _require_state(case: Mapping[str, Any], *states: CaseState) -> None:
    if case["state"] not in states:
        allowed = "、".join(STATE_ZH[s] for s in states)
        raise Conflict(
            f"案件当前为“{STATE_ZH[CaseState(case['state'])]}”，此操作只能在“{allowed}”时进行",
            {"state": [case["state"]]},
        )


def _step(name: str, by: str, now: datetime, **details: Any) -> dict[str, Any]:
    return {"step": name, "by": by, "at": iso(now), **details}


def _due(calendar: Calendar, start: date, working_days: int) -> str | None:
    try:
        return calendar.add_working_days(start, working_days).isoformat()
    except ScheduleMissing:
        return None


def case_deadlines(opened: date, rules: RatingRules, calendar: Calendar) -> dict[str, Any]:
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
    case: Mapping[str, Any], rules: RatingRules, calendar: Calendar
) -> dict[str, Any] | None:
    """The changes that complete a case's unknown deadlines, or None while still unknown."""
    if not case.get("deadlines_unknown"):
        return None
    opened = local_day(parse_time(case["opened_at"]), rules.zone)
    found = case_deadlines(opened, rules, calendar)
    if found["callback_due"] == case["callback_due"] and found["appeal_due"] == case["appeal_due"]:
        return None
    changes = dict(found)
    callback = next((s for s in case["steps"] if s["step"] == "callback"), None)
    if callback is not None and found["callback_due"] is not None:
        done = local_day(parse_time(callback["at"]), rules.zone)
        changes["callback_on_time"] = done <= date.fromisoformat(found["callback_due"])
    return changes


def open_case(
    evaluation: Mapping[str, Any], now: datetime, rules: RatingRules, calendar: Calendar
) -> dict[str, Any]:
    """A new case for a bad rating, assigned to the unit that handled the service."""
    today = local_day(now, rules.zone)
    unit = evaluation.get("department") or evaluation["site_code"]
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
        **{dim: evaluation.get(dim) for dim in ("window", "staff_id", "matter_code", "department")},
        "channel": evaluation["channel"],
        "state": CaseState.CALLBACK_PENDING.value,
        "opened_at": iso(now),
        **case_deadlines(today, rules, calendar),
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
        "steps": [_step("opened", "system", now, unit=unit)],
        "created_at": iso(now),
        "updated_at": iso(now),
    }


def _check_local(case: Mapping[str, Any], own_site: str) -> None:
    if case.get("recorded_at_site") != own_site:
        raise Forbidden(
            "该案件由下级站点办理，本站只读",
            {"case_id": [f"办理站点 {case.get('recorded_at_site')}"]},
        )


def assign(case: Mapping[str, Any], handler: str, by: str, now: datetime) -> dict[str, Any]:
    """安排专人: the person who calls back and handles the case."""
    _require_state(
        case,
        CaseState.CALLBACK_PENDING,
        CaseState.CLASSIFICATION_PENDING,
        CaseState.RECTIFYING,
        CaseState.FEEDBACK_PENDING,
    )
    return {
        "handler": handler,
        "steps": [*case["steps"], _step("assigned", by, now, handler=handler)],
    }


def _check_handler(case: Mapping[str, Any], by: str) -> None:
    if case.get("handler") and case["handler"] != by:
        raise Forbidden("只有本案件的经办人可以办理此步骤", {"by": ["不是本案件经办人"]})


def record_callback(
    case: Mapping[str, Any], by: str, contacted: bool, note: str, now: datetime, rules: RatingRules
) -> dict[str, Any]:
    """回访核实: done by the handler (the first to call back becomes the handler)."""
    _require_state(case, CaseState.CALLBACK_PENDING)
    _check_handler(case, by)
    today = local_day(now, rules.zone)
    due = case["callback_due"]
    on_time = None if due is None else today <= date.fromisoformat(due)  # None: filled later
    return {
        "state": CaseState.CLASSIFICATION_PENDING.value,
        "handler": case.get("handler") or by,
        "called_back": True,
        "callback_on_time": on_time,
        "overdue": [s for s in case["overdue"] if s != "callback"],
        "steps": [*case["steps"], _step("callback", by, now, contacted=contacted, note=note)],
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
    rules: RatingRules,
    calendar: Calendar,
) -> dict[str, Any]:
    """定性: fix now, ledger with a deadline, explanation, or not adopted (needs approval)."""
    _require_state(case, CaseState.CLASSIFICATION_PENDING)
    _check_handler(case, by)
    today = local_day(now, rules.zone)
    close_due = calendar.add_working_days(today, rules.rectification_working_days)
    changes: dict[str, Any] = {"classification": classification.value}
    details: dict[str, Any] = {"classification": classification.value, "note": note}
    if classification is Classification.NOT_ADOPTED:
        if not approver:
            raise InvalidInput.field("approver", "不予采纳须由经办人以外的负责人审批")
        if approver in (by, case.get("handler")):
            raise Forbidden(
                "不予采纳的审批人不能是经办人本人", {"approver": ["须为经办人以外的人员"]}
            )
        details["approver"] = approver
        changes["pending_exclusion"] = {"kind": "not_adopted", "reason": f"不予采纳：{note}"}
        changes["management_notified"] = True  # 通报同级政务服务管理机构
    elif approver:
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
    changes["steps"] = [*case["steps"], _step("classified", by, now, **details)]
    return changes


def record_rectification(
    case: Mapping[str, Any], by: str, measures: str, now: datetime
) -> dict[str, Any]:
    _require_state(case, CaseState.RECTIFYING)
    _check_handler(case, by)
    return {
        "state": CaseState.FEEDBACK_PENDING.value,
        "steps": [*case["steps"], _step("rectified", by, now, measures=measures)],
    }


def record_feedback(
    case: Mapping[str, Any], by: str, method: str, content: str, now: datetime, rules: RatingRules
) -> dict[str, Any]:
    """反馈: telling the citizen the outcome is required to close the case."""
    _require_state(case, CaseState.FEEDBACK_PENDING)
    _check_handler(case, by)
    today = local_day(now, rules.zone)
    closed_on_time = case["close_due"] is None or today <= date.fromisoformat(case["close_due"])
    callback_ok = case.get("callback_on_time") is not False
    return {
        "state": CaseState.CLOSED.value,
        "closed_at": iso(now),
        "on_time": bool(closed_on_time and callback_ok),
        "overdue": [],
        "steps": [*case["steps"], _step("feedback", by, now, method=method, content=content)],
    }


def file_appeal(
    case: Mapping[str, Any], by: str, unit: str, reason: str, now: datetime, rules: RatingRules
) -> dict[str, Any]:
    """申诉: the rated unit may appeal within the configured working days of the notice."""
    if case.get("appeal") is not None:
        raise Conflict("本案件已提出过申诉", {"case_id": ["每个案件只能申诉一次"]})
    _require_state(
        case,
        CaseState.CALLBACK_PENDING,
        CaseState.CLASSIFICATION_PENDING,
        CaseState.RECTIFYING,
        CaseState.FEEDBACK_PENDING,
    )
    if unit != case["unit"]:
        raise Forbidden(
            "只有被评价的办理单位可以申诉", {"unit": [f"本案件办理单位为 {case['unit']}"]}
        )
    today = local_day(now, rules.zone)
    if case["appeal_due"] is None:
        opened = local_day(parse_time(case["opened_at"]), rules.zone)
        if today > opened + timedelta(days=rules.appeal_working_days):
            rule = "申诉期限跨入尚未载入节假日安排的年份，暂不能确定是否逾期；请在载入后再申诉"
            raise Conflict(rule, {"case_id": [rule]})
    elif today > date.fromisoformat(case["appeal_due"]):
        raise Conflict(
            f"已超过申诉期限（{rules.appeal_working_days} 个工作日，截至 {case['appeal_due']}）",
            {"case_id": [f"申诉期限截至 {case['appeal_due']}"]},
        )
    appeal = {"state": "pending", "by": by, "unit": unit, "reason": reason, "filed_at": iso(now)}
    return {"appeal": appeal, "steps": [*case["steps"], _step("appealed", by, now, reason=reason)]}


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
            _step("appeal_reviewed", reviewer, now, upheld=upheld, reason=reason),
        ],
    }
    if upheld:
        changes["pending_exclusion"] = {"kind": "appeal_upheld", "reason": f"申诉成立：{reason}"}
        if case["state"] != CaseState.CLOSED:
            changes["state"] = CaseState.FEEDBACK_PENDING.value
    return changes


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


# --- Rollups -------------------------------------------------------------------------------

LEVEL_FIELDS = {level: f"n_{level.value}" for level in Level}
CASE_FIELDS = (
    "cases",
    "cases_closed",
    "cases_closed_on_time",
    "rn_bad",
    "rn_called_back",
    "rn_rectified",
)
COUNT_FIELDS = (*LEVEL_FIELDS.values(), "excluded", "held", *CASE_FIELDS)
_DIM_SOURCES = {
    "window": "window",
    "staff": "staff_id",
    "matter": "matter_code",
    "department": "department",
    "channel": "channel",
}


def bucket_id(period: str, site_code: str, dim: str) -> str:
    """A rollup document: one period (a day ``YYYY-MM-DD`` or a month ``YYYY-MM``), one
    site, one dimension; inside, counters per dimension value and field."""
    return f"{period}|{site_code}|{dim}"


def _keys(doc: Mapping[str, Any]) -> list[list[str]]:
    pairs = [["all", ALL]]
    for dim, field in _DIM_SOURCES.items():
        value = doc.get(field)
        if value not in (None, ""):
            pairs.append([dim, str(value)])
    return pairs


def _compact(doc: Mapping[str, Any], counts: dict[str, int]) -> dict[str, Any]:
    """A contribution, compactly: day, site, (dimension, value) pairs, and the counters each
    of those buckets gets (the same for all of them)."""
    return {"d": doc["day"], "s": doc["site_code"], "v": _keys(doc), "n": counts}


def evaluation_contribution(doc: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """What one evaluation adds to the rollups (None for nothing)."""
    if doc is None:
        return None
    if doc.get("held"):
        counts = {"held": 1}
    elif doc.get("excluded"):
        counts = {"excluded": 1}
    else:
        counts = {LEVEL_FIELDS[Level(doc["level"])]: 1}
    return _compact(doc, counts)


def case_contribution(doc: Mapping[str, Any] | None) -> dict[str, Any] | None:
    if doc is None:
        return None
    closed = doc["state"] == CaseState.CLOSED
    counts = {
        "cases": 1,
        "cases_closed": int(closed),
        "cases_closed_on_time": int(closed and bool(doc.get("on_time"))),
    }
    if doc.get("real_name"):
        counts |= {
            "rn_bad": 1,
            "rn_called_back": int(bool(doc.get("called_back"))),
            "rn_rectified": int(closed),
        }
    return _compact(doc, {k: v for k, v in counts.items() if v})


CONTRIBUTIONS = {"evaluations": evaluation_contribution, "cases": case_contribution}

Cell = tuple[str, str]  # (bucket id, dimension value)


def expand(contribution: Mapping[str, Any] | None) -> dict[Cell, dict[str, int]]:
    """Every (bucket, value) cell a contribution adds to: its day and its month. The cells
    share one counters mapping: read it, never change it."""
    if not contribution:
        return {}
    day, site, counts = contribution["d"], contribution["s"], contribution["n"]
    month = day[:7]
    cells: dict[Cell, dict[str, int]] = {}
    for dim, value in contribution["v"]:
        cells[(f"{day}|{site}|{dim}", value)] = counts
        cells[(f"{month}|{site}|{dim}", value)] = counts
    return cells


def delta(
    new: Mapping[Cell, Mapping[str, int]], old: Mapping[Cell, Mapping[str, int]]
) -> dict[Cell, dict[str, int]]:
    """new − old, per cell and field, zero entries dropped."""
    out: dict[Cell, dict[str, int]] = {}
    for cell in {*new, *old}:
        n, o = new.get(cell, {}), old.get(cell, {})
        diff = {f: n.get(f, 0) - o.get(f, 0) for f in {*n, *o}}
        diff = {f: v for f, v in diff.items() if v}
        if diff:
            out[cell] = diff
    return out


def add_to(values: dict[str, dict[str, int]], value: str, diff: Mapping[str, int]) -> None:
    """Apply ``diff`` to one value's counters inside a bucket (dropping zeros)."""
    counts = values.setdefault(value, {})
    for field, n in diff.items():
        total = counts.get(field, 0) + n
        if total:
            counts[field] = total
        else:
            counts.pop(field, None)
    if not counts:
        del values[value]


def plan_periods(
    date_from: date, date_to: date, by_day: bool
) -> tuple[list[str], list[tuple[str, str]]]:
    """Whole months inside the range read month buckets; the edges read day buckets."""
    if by_day:
        return [], [(date_from.isoformat(), date_to.isoformat())]
    months: list[str] = []
    days: list[tuple[str, str]] = []
    first = date_from.replace(day=1)
    while first <= date_to:
        nxt = date(first.year + first.month // 12, first.month % 12 + 1, 1)
        last = nxt - timedelta(days=1)
        if first >= date_from and last <= date_to:
            months.append(month_key(first))
        else:
            days.append((max(first, date_from).isoformat(), min(last, date_to).isoformat()))
        first = nxt
    return months, days


def rate(numerator: int, denominator: int) -> float | None:
    return round(numerator / denominator, 4) if denominator else None


def figures(counts: Mapping[str, int]) -> dict[str, Any]:
    """Statistics over summed bucket counters."""
    levels = {level.value: int(counts.get(LEVEL_FIELDS[level], 0)) for level in Level}
    total = sum(levels.values())
    good = sum(levels[lv.value] for lv in GOOD_LEVELS)
    satisfied = sum(levels[lv.value] for lv in SATISFIED_LEVELS)
    bad = total - satisfied

    def get(field: str) -> int:
        return int(counts.get(field, 0))

    return {
        "counts": levels,
        "total": total,
        "good_rate": rate(good, total),
        "satisfaction_rate": rate(satisfied, total),
        "bad": bad,
        "excluded": get("excluded"),
        "held": get("held"),
        "cases": get("cases"),
        "cases_closed": get("cases_closed"),
        "cases_closed_on_time": get("cases_closed_on_time"),
        "closed_on_time_rate": rate(get("cases_closed_on_time"), get("cases_closed")),
        "real_name_bad": get("rn_bad"),
        "callback_rate": rate(get("rn_called_back"), get("rn_bad")),
        "rectification_rate": rate(get("rn_rectified"), get("rn_bad")),
    }


def add_counts(into: dict[str, int], counts: Mapping[str, Any]) -> None:
    for field, value in counts.items():
        if value:
            into[field] = into.get(field, 0) + int(value)


def group_key(bucket: Mapping[str, Any], value: str, group_by: str | None) -> str:
    """The group a bucket value falls in; day and week need day buckets."""
    if group_by is None:
        return ALL
    period = str(bucket["period"])
    if group_by == "day":
        return period
    if group_by == "week":
        return week_key(date.fromisoformat(period))
    if group_by == "month":
        return period[:7]
    if group_by == "site":
        return str(bucket["site_code"])
    if group_by == "window":
        return f"{bucket['site_code']}:{value}"  # window numbers repeat from site to site
    return value


def rank(groups: Iterable[tuple[str, Mapping[str, Any]]], minimum: int) -> list[dict[str, Any]]:
    """Best first: satisfaction rate, then good rate, then volume; ties share a rank."""
    rows = [{"key": key, **fig} for key, fig in groups if fig["total"] >= minimum]
    rows.sort(
        key=lambda r: (
            -(r["satisfaction_rate"] or 0),
            -(r["good_rate"] or 0),
            -r["total"],
            r["key"],
        )
    )
    ranked: list[dict[str, Any]] = []
    for i, row in enumerate(rows):
        same = ranked and (row["satisfaction_rate"], row["good_rate"], row["total"]) == (
            ranked[-1]["satisfaction_rate"],
            ranked[-1]["good_rate"],
            ranked[-1]["total"],
        )
        ranked.append({**row, "rank": ranked[-1]["rank"] if same else i + 1})
    return ranked


# --- Export mapping tables -----------------------------------------------------------------
# One canonical enum is stored; each upstream target gets its own explicit table. A target
# that has no code for a canonical value maps it to None and the export reports the record
# as unmapped instead of guessing.


@dataclass(frozen=True)
class ExportProfile:
    name: str
    title: str
    levels: Mapping[Level, str]
    channels: Mapping[Channel, tuple[str, str] | None]  # code, label
    sequences: Mapping[int, str]


# GB/T 39046-2020 table 9: 满意度代码 per annex A.8 (1 = 非常满意 … 5 = 非常不满意); 评价渠道
# named as the table lists them (PC端, 移动服务端, 二维码, 政务大厅平板电脑, 政务大厅其他终端,
# 电话, 短信), numbered in that order.
GBT39046 = ExportProfile(
    name="gbt39046",
    title="GB/T 39046-2020 表9",
    levels={
        Level.VERY_SATISFIED: "1",
        Level.SATISFIED: "2",
        Level.BASICALLY_SATISFIED: "3",
        Level.DISSATISFIED: "4",
        Level.VERY_DISSATISFIED: "5",
    },
    channels={
        Channel.PC: ("1", "PC端"),
        Channel.MOBILE: ("2", "移动服务端"),
        Channel.QR_CODE: ("3", "二维码"),
        Channel.PAD: ("4", "政务大厅平板电脑"),
        Channel.SELF_SERVICE: ("5", "政务大厅其他终端"),
        Channel.PAPER: ("5", "政务大厅其他终端"),  # a paper form keyed in at the hall
        Channel.PHONE: ("6", "电话"),
        Channel.SMS: ("7", "短信"),
        Channel.SYSTEM_DEFAULT: None,  # the table has no code for a system default rating
    },
    sequences={FIRST: "1", SUPPLEMENTARY: "2"},
)

_PROVINCIAL_LEVELS = {
    Level.VERY_DISSATISFIED: "1",
    Level.DISSATISFIED: "2",
    Level.BASICALLY_SATISFIED: "3",
    Level.SATISFIED: "4",
    Level.VERY_SATISFIED: "5",
}

# Provincial interface numbering with 6 = 电话 and 7 = 短信 (no system default rating).
PROVINCIAL_PHONE = ExportProfile(
    name="provincial_phone",
    title="省级接口（6 电话，7 短信）",
    levels=_PROVINCIAL_LEVELS,
    channels={
        Channel.PC: ("1", "pc"),
        Channel.MOBILE: ("2", "移动端"),
        Channel.QR_CODE: ("3", "二维码"),
        Channel.PAD: ("4", "平板/评价器"),
        Channel.PAPER: ("4", "平板/评价器"),  # entered at the window in place of the pad
        Channel.SELF_SERVICE: ("5", "自助终端"),
        Channel.PHONE: ("6", "电话"),
        Channel.SMS: ("7", "短信"),
        Channel.SYSTEM_DEFAULT: None,
    },
    sequences={FIRST: "1", SUPPLEMENTARY: "2"},
)

# Provincial interface numbering with 6 = 短信 (SMS and phone call-backs) and 7 = 系统默认评价.
PROVINCIAL_DEFAULT = ExportProfile(
    name="provincial_default",
    title="省级接口（6 短信，7 系统默认评价）",
    levels=_PROVINCIAL_LEVELS,
    channels={
        Channel.PC: ("1", "pc"),
        Channel.MOBILE: ("2", "移动端"),
        Channel.QR_CODE: ("3", "二维码"),
        Channel.PAD: ("4", "平板/评价器"),
        Channel.PAPER: ("4", "平板/评价器"),
        Channel.SELF_SERVICE: ("5", "自助终端"),
        Channel.SMS: ("6", "短信"),
        Channel.PHONE: None,  # this numbering has no telephone channel
        Channel.SYSTEM_DEFAULT: ("7", "系统默认评价"),
    },
    sequences={FIRST: "1", SUPPLEMENTARY: "2"},
)

EXPORT_PROFILES = {p.name: p for p in (GBT39046, PROVINCIAL_PHONE, PROVINCIAL_DEFAULT)}


def export_record(
    doc: Mapping[str, Any], profile: ExportProfile, zone: ZoneInfo
) -> dict[str, Any] | None:
    """One evaluation in the target's coding; None when the target cannot code its channel."""
    channel = profile.channels[Channel(doc["channel"])]
    if channel is None:
        return None
    level = Level(doc["level"])
    moment = parse_time(doc["submitted_at"]).astimezone(zone)
    rater = doc.get("rater") or {}
    return {
        "办件编号": doc["service_ref"]["id"],
        "评价渠道": channel[1],
        "评价渠道代码": channel[0],
        "评价人": rater.get("name_masked") or "匿名",
        "评价时间": moment.strftime("%Y%m%dT%H%M%S"),
        "评价次数": profile.sequences[int(doc["sequence"])],
        "满意度": level.zh,
        "满意度代码": profile.levels[level],
        "文字评价": doc.get("comment") or "",
        "行政区划": doc["site_code"],
        "是否计入统计": "否" if doc.get("excluded") or doc.get("held") else "是",
    }
