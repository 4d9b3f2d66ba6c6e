"""Queueing rules (排队叫号): site setup, the ticket state machine, the calling order,
appointments, estimates and daily figures. Standard library only, no I/O: every function
takes the current time (and anything else it needs) as arguments.

Words used here: a ``Ticket`` (号/排队号) is one visit in one ``Category`` (业务类别) at one
site; a ``Window`` (窗口) calls tickets of the categories it serves; ``Staff`` (窗口工作人员)
sign in at windows; a ``Booking`` (预约) reserves a slot and becomes a ticket at check-in.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

# --- errors (mapped to the common typed errors at the service boundary) -------------------


class RuleError(Exception):
    """A queueing rule refused an input or an action; ``fields`` names what broke it."""

    kind = "invalid"

    def __init__(self, message: str, fields: Mapping[str, Sequence[str]] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.fields = {k: list(v) for k, v in (fields or {}).items()}


class InvalidRule(RuleError):
    """Bad input (→ InvalidInput)."""

    kind = "invalid"

    @classmethod
    def field(cls, name: str, rule: str) -> InvalidRule:
        return cls(f"{name}：{rule}", {name: [rule]})


class Refusal(RuleError):
    """The action is not allowed in the current state (→ Conflict)."""

    kind = "conflict"


class NotAllowed(RuleError):
    """The person may not do this (→ Forbidden)."""

    kind = "forbidden"


class Missing(RuleError):
    """No such thing (→ NotFound)."""

    kind = "not_found"


# --- vocabulary ----------------------------------------------------------------------------

CHANNELS = ("kiosk", "web", "wechat", "appointment", "staff")
PRIORITY_REASONS = {
    "elderly": "老年人",
    "disabled": "残疾人",
    "pregnant": "孕妇",
    "military": "军人",
}
OUTCOMES = {"done": "办结", "accepted": "已受理", "consulted": "咨询", "not_accepted": "不予受理"}
STATE_NAMES = {
    "waiting": "等候中",
    "called": "已叫号",
    "serving": "办理中",
    "completed": "已办结",
    "no_show": "过号",
    "held": "暂挂",
    "cancelled": "已取消",
    "expired": "已作废",
}
ACTION_NAMES = {
    "take": "取号",
    "call": "叫号",
    "recall": "重呼",
    "start": "开始办理",
    "complete": "办结",
    "no_show": "标记过号",
    "requeue": "过号重排",
    "transfer": "转移",
    "hold": "暂挂",
    "resume": "恢复",
    "cancel": "取消",
    "expire": "作废",
    "revert_call": "撤回叫号",
}
# action -> (states it may start from, state it leads to)
TRANSITIONS: dict[str, tuple[frozenset[str], str]] = {
    "call": (frozenset({"waiting"}), "called"),
    "recall": (frozenset({"called"}), "called"),
    "start": (frozenset({"called"}), "serving"),
    "complete": (frozenset({"called", "serving"}), "completed"),
    "no_show": (frozenset({"called"}), "no_show"),
    "requeue": (frozenset({"no_show"}), "waiting"),
    "transfer": (frozenset({"waiting", "called", "serving", "held"}), "waiting"),
    "hold": (frozenset({"waiting", "called", "serving"}), "held"),
    "resume": (frozenset({"held"}), "waiting"),
    "cancel": (frozenset({"waiting", "called", "held"}), "cancelled"),
    "expire": (frozenset({"waiting", "called", "serving", "held"}), "expired"),
}
UNSERVED = ("waiting", "called", "serving", "held")
ACTIVE_AT_WINDOW = ("called", "serving")
# Lanes of the calling rule: lower is called first.
LANE_GREEN, LANE_APPOINTMENT, LANE_NORMAL = 0, 1, 2
HISTORY_LIMIT = 100  # audit entries kept per ticket (a ticket rarely has more than 15)
WINDOW_STATES = {"closed": "关闭", "open": "开放", "paused": "暂停"}
WAIT_BUCKET_S = 15  # resolution of the per-day wait distribution behind p50/p90

_PREFIX = re.compile(r"[A-Z]\Z")
_HHMM = re.compile(r"([01]\d|2[0-3]):([0-5]\d)\Z")
_PHONE = re.compile(r"1[3-9]\d{9}\Z")


# --- site setup ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Category:
    """业务类别: a prefix letter, what it covers, when and how much it issues."""

    prefix: str
    name: str
    matter_codes: tuple[str, ...] = ()
    department: str | None = None
    daily_cap: int | None = None
    hours: tuple[tuple[time, time], ...] = ((time(8, 30), time(17, 30)),)
    service_minutes: float = 10.0
    enabled: bool = True
    working_days_only: bool = True
    slot_minutes: int | None = None  # appointments: slot length (None: no appointments)
    slot_capacity: int = 0

    def open_at(self, moment: time) -> bool:
        return any(start <= moment < end for start, end in self.hours)

    def hours_text(self) -> str:
        return "、".join(f"{s:%H:%M}-{e:%H:%M}" for s, e in self.hours)


@dataclass(frozen=True)
class Window:
    """窗口: a number shown on the board, the categories it serves with their weights."""

    number: str
    name: str
    weights: dict[str, int]  # category prefix -> weight (>= 1), in the configured order
    kind: str = "dedicated"  # or "comprehensive" (综合窗口)

    def serves(self, prefix: str) -> bool:
        return prefix in self.weights


@dataclass(frozen=True)
class Staff:
    """窗口工作人员: the windows one may sign in at, and those one backs up (AB岗)."""

    id: str
    name: str
    windows: tuple[str, ...] = ()
    backup_windows: tuple[str, ...] = ()


@dataclass(frozen=True)
class Policy:
    waiting_target_minutes: int = 30
    no_show_after_calls: int = 3
    recall_cooldown_seconds: int = 30
    requeue_behind: int = 3
    check_in_before_minutes: int = 30
    check_in_after_minutes: int = 15
    booking_no_show_limit: int = 3
    booking_no_show_days: int = 30
    booking_block_days: int = 30
    booking_days_ahead: int = 14
    timezone: str = "Asia/Shanghai"
    estimate_window: int = 20
    day_close_time: time = time(19, 0)


POLICY_KEYS = tuple(Policy.__dataclass_fields__)


@dataclass(frozen=True)
class Setup:
    """One version of a site's queue configuration."""

    categories: dict[str, Category] = field(default_factory=dict)
    windows: dict[str, Window] = field(default_factory=dict)
    staff: dict[str, Staff] = field(default_factory=dict)
    policy: Policy = field(default_factory=Policy)

    def category(self, prefix: str) -> Category:
        found = self.categories.get(prefix)
        if found is None:
            known = "、".join(self.categories) or "（本站未配置业务类别）"
            raise InvalidRule.field("category", f"没有业务类别 {prefix}；可选：{known}")
        return found

    def window(self, number: str) -> Window:
        found = self.windows.get(str(number))
        if found is None:
            raise Missing(f"没有 {number} 号窗口", {"window": [f"没有 {number} 号窗口"]})
        return found

    def staff_member(self, staff_id: str) -> Staff:
        found = self.staff.get(staff_id)
        if found is None:
            raise Missing(f"没有工作人员 {staff_id}", {"staff_id": ["未登记的工作人员"]})
        return found


def parse_hhmm(text: str, name: str) -> time:
    match = _HHMM.match(str(text))
    if not match:
        raise InvalidRule.field(name, f"时间应写成 HH:MM，例如 08:30，实际为 {text}")
    return time(int(match.group(1)), int(match.group(2)))


def parse_hours(spans: Iterable[str], name: str) -> tuple[tuple[time, time], ...]:
    result: list[tuple[time, time]] = []
    for i, span in enumerate(spans):
        where = f"{name}[{i}]"
        start_text, sep, end_text = str(span).partition("-")
        if not sep:
            raise InvalidRule.field(where, f"时段应写成 08:30-12:00，实际为 {span}")
        start, end = parse_hhmm(start_text, where), parse_hhmm(end_text, where)
        if end <= start:
            raise InvalidRule.field(where, f"结束时间应晚于开始时间：{span}")
        if result and start < result[-1][1]:
            raise InvalidRule.field(where, "时段应按时间先后排列且互不重叠")
        result.append((start, end))
    if not result:
        raise InvalidRule.field(name, "至少需要一个办理时段")
    return tuple(result)


def build_setup(data: Mapping[str, Any]) -> Setup:
    """A ``Setup`` from an already type-checked mapping (see schemas.ConfigSchema); checks the
    rules that span fields: unique prefixes and numbers, windows naming known categories."""
    policy_args: dict[str, Any] = {k: data[k] for k in POLICY_KEYS if k in data}
    if "day_close_time" in policy_args:
        policy_args["day_close_time"] = parse_hhmm(policy_args["day_close_time"], "day_close_time")
    policy = Policy(**policy_args)
    try:
        zone(policy.timezone)
    except (ValueError, LookupError) as exc:
        raise InvalidRule.field("timezone", f"不认识的时区 {policy.timezone}") from exc
    categories: dict[str, Category] = {}
    for i, raw in enumerate(data.get("categories") or ()):
        prefix = raw["prefix"]
        where = f"categories[{i}]"
        if not _PREFIX.match(prefix):
            raise InvalidRule.field(f"{where}.prefix", "应为一个大写字母，例如 A")
        if prefix in categories:
            raise InvalidRule.field(f"{where}.prefix", f"业务类别前缀 {prefix} 重复")
        appointments = raw.get("appointments") or {}
        categories[prefix] = Category(
            prefix=prefix,
            name=raw["name"],
            matter_codes=tuple(raw.get("matter_codes") or ()),
            department=raw.get("department"),
            daily_cap=raw.get("daily_cap"),
            hours=parse_hours(raw.get("hours") or ("08:30-17:30",), f"{where}.hours"),
            service_minutes=float(raw.get("service_minutes", 10)),
            enabled=bool(raw.get("enabled", True)),
            working_days_only=bool(raw.get("working_days_only", True)),
            slot_minutes=appointments.get("slot_minutes"),
            slot_capacity=int(appointments.get("capacity", 0)),
        )
    windows: dict[str, Window] = {}
    for i, raw in enumerate(data.get("windows") or ()):
        number = str(raw["number"])
        where = f"windows[{i}]"
        if number in windows:
            raise InvalidRule.field(f"{where}.number", f"窗口号 {number} 重复")
        weights: dict[str, int] = {}
        for prefix, weight in dict(raw["categories"]).items():
            if prefix not in categories:
                raise InvalidRule.field(f"{where}.categories", f"没有业务类别 {prefix}")
            weights[prefix] = int(weight)
        if not weights:
            raise InvalidRule.field(f"{where}.categories", "窗口至少办理一个业务类别")
        kind = raw.get("kind") or ("comprehensive" if len(weights) > 1 else "dedicated")
        windows[number] = Window(number, raw.get("name") or f"{number}号窗口", weights, kind)
    staff: dict[str, Staff] = {}
    for i, raw in enumerate(data.get("staff") or ()):
        where = f"staff[{i}]"
        if raw["id"] in staff:
            raise InvalidRule.field(f"{where}.id", f"工作人员 {raw['id']} 重复")
        own = tuple(str(n) for n in raw.get("windows") or ())
        backup = tuple(str(n) for n in raw.get("backup_windows") or ())
        for number in (*own, *backup):
            if number not in windows:
                raise InvalidRule.field(f"{where}.windows", f"没有 {number} 号窗口")
        staff[raw["id"]] = Staff(raw["id"], raw["name"], own, backup)
    return Setup(categories, windows, staff, policy)


# --- time ----------------------------------------------------------------------------------


def iso(moment: datetime) -> str:
    """UTC ISO-8601 with microseconds, as every record carries it."""
    return moment.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def parse_iso(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def timestamp(moment: datetime) -> float:
    return round(moment.timestamp(), 6)


def zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


# --- numbers and privacy -------------------------------------------------------------------


def counter_key(day: date, prefix: str) -> str:
    """The store counter numbering one category on one site-local day (restarts daily)."""
    return f"{day.isoformat()}:{prefix}"


def format_number(prefix: str, value: int) -> str:
    """A012: the prefix and at least three digits."""
    return f"{prefix}{value:03d}"


def ticket_id(site_code: str, day: date, number: str) -> str:
    """Natural key: a number is unique per site and day, so the id is never reused."""
    return f"{site_code}:{day.isoformat()}:{number}"


def announcement(number: str, window: str) -> str:
    return f"请{number}号到{window}号窗口办理"


def protect_phone(phone: str, salt: str) -> tuple[str, str]:
    """(salted SHA-256 for lookups, masked form for display); the number itself is dropped."""
    text = str(phone).strip().replace(" ", "").replace("-", "")
    if not _PHONE.match(text):
        raise InvalidRule.field("phone", "应为11位手机号码")
    if not salt:
        raise InvalidRule.field("phone", "本站未配置 QUEUE.privacy_salt，暂不能登记手机号")
    digest = hashlib.sha256(f"{salt}:phone:{text}".encode()).hexdigest()
    return digest, f"{text[:3]}****{text[-4:]}"


# --- taking a ticket -----------------------------------------------------------------------


def check_issue(
    category: Category,
    local_now: datetime,
    working_day: bool,
    number_value: int | None,
    *,
    appointment: bool = False,
) -> None:
    """Refuse a ticket when the category is closed, outside its hours or past its cap.
    ``number_value`` is the counter value just taken (None: not taken yet). Appointment
    check-ins are not capped: their slot was reserved when booked."""
    if not category.enabled:
        raise Refusal(f"{category.name}（{category.prefix}）暂停取号", {"category": ["暂停取号"]})
    if category.working_days_only and not working_day:
        rule = f"今天（{local_now:%Y-%m-%d}）不是工作日，{category.name}不办理"
        raise Refusal(rule, {"category": [rule]})
    if not category.open_at(local_now.time().replace(tzinfo=None)):
        rule = f"现在不在{category.name}的取号时间内（{category.hours_text()}）"
        raise Refusal(rule, {"category": [rule]})
    cap = category.daily_cap
    if not appointment and cap is not None and number_value is not None and number_value > cap:
        rule = f"{category.name}今日号已取完（每日限{cap}个），请改日或预约办理"
        raise Refusal(rule, {"category": [rule]})


def lane_for(priority: str | None, appointment_on_time: bool) -> int:
    if priority:
        return LANE_GREEN
    return LANE_APPOINTMENT if appointment_on_time else LANE_NORMAL


def history_entry(
    now: datetime, by: str, action: str, from_state: str | None, to_state: str, **extra: Any
) -> dict[str, Any]:
    entry = {"at": iso(now), "by": by, "action": action, "from": from_state, "to": to_state}
    entry.update({k: v for k, v in extra.items() if v is not None})
    return entry


def with_history(ticket: Mapping[str, Any], entry: Mapping[str, Any]) -> list[dict[str, Any]]:
    history = [*ticket.get("history", ()), dict(entry)]
    return history[-HISTORY_LIMIT:]


def new_ticket(
    *,
    site_code: str,
    day: date,
    category: Category,
    value: int,
    channel: str,
    now: datetime,
    by: str,
    priority: str | None = None,
    phone: tuple[str, str] | None = None,
    booking_id: str | None = None,
    appointment_on_time: bool = False,
    order_key: float | None = None,
    matter_code: str | None = None,
    config_version: int = 0,
) -> dict[str, Any]:
    """A waiting ticket as stored; ``order_key`` is its place in time (epoch seconds)."""
    if channel not in CHANNELS:
        raise InvalidRule.field("channel", f"应为 {'、'.join(CHANNELS)} 之一")
    if priority is not None and priority not in PRIORITY_REASONS:
        names = "、".join(f"{k}（{v}）" for k, v in PRIORITY_REASONS.items())
        raise InvalidRule.field("priority", f"绿色通道原因应为 {names} 之一")
    number = format_number(category.prefix, value)
    moment = iso(now)
    return {
        "id": ticket_id(site_code, day, number),
        "schema": 1,
        "site_code": site_code,
        "date": day.isoformat(),
        "number": number,
        "category": category.prefix,
        "issued_category": category.prefix,
        "category_name": category.name,
        "channel": channel,
        "priority": priority,
        "booking_id": booking_id,
        "lane": lane_for(priority, appointment_on_time),
        "order_key": timestamp(now) if order_key is None else order_key,
        "state": "waiting",
        "target_window": None,
        "window": None,
        "staff_id": None,
        "calls": 0,
        "first_called_at": None,
        "last_called_at": None,
        "started_at": None,
        "ended_at": None,
        "outcome": None,
        "application_id": None,
        "matter_code": matter_code,
        "phone_hash": phone[0] if phone else None,
        "phone_masked": phone[1] if phone else None,
        "requeued": False,
        "reason": None,
        "invited": None,
        "config_version": config_version,
        "taken_at": moment,
        "created_at": moment,
        "updated_at": moment,
        "history": [history_entry(now, by, "take", None, "waiting", channel=channel)],
    }


# --- the ticket state machine --------------------------------------------------------------


def _seconds_since(ticket: Mapping[str, Any], key: str, now: datetime) -> float:
    value = ticket.get(key)
    return (now - parse_iso(value)).total_seconds() if value else math.inf


def no_show_due(ticket: Mapping[str, Any], policy: Policy, now: datetime) -> bool:
    """Called the configured number of times and the cool-down since the last call is over."""
    return (
        ticket.get("state") == "called"
        and int(ticket.get("calls", 0)) >= policy.no_show_after_calls
        and _seconds_since(ticket, "last_called_at", now) >= policy.recall_cooldown_seconds
    )


def transition(
    ticket: Mapping[str, Any],
    action: str,
    now: datetime,
    by: str,
    policy: Policy,
    **details: Any,
) -> dict[str, Any]:
    """The changes one action makes to a ticket (with its audit entry), or a ``Refusal``.

    ``details`` per action: call(window, staff_id); recall/start/no_show(window optional);
    complete(outcome, application_id, matter_code); transfer(category, category_name,
    window); hold/cancel/expire(reason); requeue(order_key)."""
    allowed, target = TRANSITIONS[action]
    state = ticket["state"]
    number = ticket["number"]
    if state not in allowed:
        rule = f"{number} 当前为“{STATE_NAMES[state]}”，不能{ACTION_NAMES[action]}"
        raise Refusal(rule, {"state": [rule]})
    window = details.get("window")
    at_window = action in ("recall", "start", "no_show", "complete") and window is not None
    if at_window and state in ACTIVE_AT_WINDOW and ticket.get("window") != str(window):
        rule = f"{number} 由 {ticket.get('window')} 号窗口叫号，不属于 {window} 号窗口"
        raise Refusal(rule, {"window": [rule]})
    moment = iso(now)
    changes: dict[str, Any] = {"state": target, "updated_at": moment}
    extra: dict[str, Any] = {}
    if action == "call":
        changes.update(
            window=str(window),
            staff_id=details.get("staff_id"),
            calls=1,
            last_called_at=moment,
            first_called_at=ticket.get("first_called_at") or moment,
            target_window=None,
        )
        if not ticket.get("first_called_at") and ticket.get("taken_at"):
            waited = (now - parse_iso(ticket["taken_at"])).total_seconds()
            changes["waited_seconds"] = round(waited)  # actual, beside the estimate
        extra["window"] = str(window)
    elif action == "recall":
        calls = int(ticket.get("calls", 0))
        if calls >= policy.no_show_after_calls:
            rule = f"{number} 已呼叫{calls}次，请标记过号"
            raise Refusal(rule, {"calls": [rule]})
        waited = _seconds_since(ticket, "last_called_at", now)
        if waited < policy.recall_cooldown_seconds:
            rule = f"距上次呼叫不足{policy.recall_cooldown_seconds}秒，请稍后再呼"
            raise Refusal(rule, {"calls": [rule]})
        changes.update(calls=calls + 1, last_called_at=moment)
        extra["window"] = ticket.get("window")
    elif action == "start":
        changes["started_at"] = moment
    elif action == "complete":
        outcome = details.get("outcome") or "done"
        if outcome not in OUTCOMES:
            raise InvalidRule.field("outcome", f"应为 {'、'.join(OUTCOMES)} 之一")
        changes.update(
            ended_at=moment,
            started_at=ticket.get("started_at") or ticket.get("last_called_at"),
            outcome=outcome,
            application_id=details.get("application_id"),
            matter_code=details.get("matter_code") or ticket.get("matter_code"),
            invited=False,  # outbox flag: cleared once the evaluation invitation exists
        )
        extra["outcome"] = outcome
    elif action == "no_show":
        if not no_show_due(ticket, policy, now):
            rule = (
                f"{number} 须呼叫满{policy.no_show_after_calls}次且间隔"
                f"{policy.recall_cooldown_seconds}秒后才能标记过号"
                f"（已呼叫{ticket.get('calls', 0)}次）"
            )
            raise Refusal(rule, {"calls": [rule]})
        changes["ended_at"] = moment
    elif action == "requeue":
        if ticket.get("requeued"):
            rule = f"{number} 已过号重排过一次，不能再次重排"
            raise Refusal(rule, {"state": [rule]})
        changes.update(
            requeued=True,
            order_key=details["order_key"],
            lane=LANE_NORMAL,
            window=None,
            staff_id=None,
            calls=0,
            ended_at=None,
        )
    elif action == "transfer":
        new_category = details.get("category") or ticket["category"]
        new_window = details.get("window")
        if new_category == ticket["category"] and new_window is None:
            rule = "转移须指定新的业务类别或窗口"
            raise InvalidRule(rule, {"category": [rule], "window": [rule]})
        changes.update(
            category=new_category,
            category_name=details.get("category_name") or ticket["category_name"],
            target_window=None if new_window is None else str(new_window),
            window=None,
            staff_id=None,
            calls=0,
            started_at=None,
        )
        extra.update(category=new_category, window=changes["target_window"])
    elif action == "hold":
        changes["reason"] = details.get("reason")
        changes["held_from_window"] = ticket.get("window")
        extra["reason"] = details.get("reason")
    elif action == "resume":
        # back to the window that held it, keeping its place in time
        changes.update(
            target_window=ticket.get("held_from_window") or ticket.get("target_window"),
            window=None,
            calls=0,
            started_at=None,
            reason=None,
        )
    elif action in ("cancel", "expire"):
        changes.update(reason=details.get("reason"), ended_at=moment)
        extra["reason"] = details.get("reason")
    changes["history"] = with_history(
        ticket, history_entry(now, by, action, state, target, **extra)
    )
    return changes


def revert_call(
    ticket: Mapping[str, Any], before: Mapping[str, Any], now: datetime, by: str
) -> dict[str, Any]:
    """Undo a call that lost the race for its window (see the service's call_next)."""
    return {
        "state": "waiting",
        "target_window": before.get("target_window"),
        "window": None,
        "staff_id": None,
        "calls": 0,
        "last_called_at": None,
        "first_called_at": None,
        "updated_at": iso(now),
        "history": with_history(
            ticket, history_entry(now, by, "revert_call", ticket["state"], "waiting")
        ),
    }


def requeue_key(ticket: Mapping[str, Any], queue_ahead: Sequence[float], behind: int) -> float:
    """The order key placing a requeued no-show behind ``behind`` waiting people.

    ``queue_ahead`` holds the ascending order keys of the waiting tickets of its category."""
    keys = sorted(queue_ahead)
    if len(keys) <= behind:
        base = keys[-1] if keys else float(ticket["order_key"])
        return round(max(base, float(ticket["order_key"])) + 0.001, 6)
    before, after = keys[behind - 1] if behind else -math.inf, keys[behind]
    if before == -math.inf:
        return round(after - 0.001, 6)
    return round((before + after) / 2, 6)


# --- the calling rule ----------------------------------------------------------------------


def eligible(window: Window, ticket: Mapping[str, Any]) -> bool:
    if ticket.get("state") != "waiting":
        return False
    target = ticket.get("target_window")
    if target is not None:
        return str(target) == window.number
    return window.serves(ticket["category"])


def calling_order(
    window: Window, tickets: Iterable[Mapping[str, Any]], now_ts: float
) -> list[Mapping[str, Any]]:
    """The order in which ``window`` calls the given tickets (ineligible ones are dropped).

    1. Green channel (lane 0): oldest place in time first.
    2. Appointments checked in within their check-in window (lane 1): earliest first.
    3. Everyone else, by weighted longest wait: among the categories the window serves
       (plus tickets transferred to this very window, weight 1 if their category is not
       one of the window's), the category whose first ticket has the largest
       ``weight × seconds waited`` goes next; ties go to the category listed first for the
       window, then to the lower prefix. Within a category: oldest place in time, then id.
    ``now_ts`` is the current epoch time; the order is fully determined by its inputs."""
    pool = [t for t in tickets if eligible(window, t)]

    def by_time(t: Mapping[str, Any]) -> tuple[float, str]:
        return float(t["order_key"]), str(t["id"])

    green = sorted((t for t in pool if t.get("lane") == LANE_GREEN), key=by_time)
    booked = sorted((t for t in pool if t.get("lane") == LANE_APPOINTMENT), key=by_time)
    queues: dict[str, list[Mapping[str, Any]]] = {}
    for t in sorted((t for t in pool if t.get("lane", LANE_NORMAL) == LANE_NORMAL), key=by_time):
        queues.setdefault(t["category"], []).append(t)
    rank = {prefix: i for i, prefix in enumerate(window.weights)}
    heads = dict.fromkeys(queues, 0)
    rest: list[Mapping[str, Any]] = []
    while heads:

        def score(prefix: str) -> tuple[float, int, str]:
            head = queues[prefix][heads[prefix]]
            waited = max(0.0, now_ts - float(head["order_key"]))
            weight = window.weights.get(prefix, 1)
            return (-weight * waited, rank.get(prefix, len(rank)), prefix)

        best = min(heads, key=score)
        rest.append(queues[best][heads[best]])
        heads[best] += 1
        if heads[best] == len(queues[best]):
            del heads[best]
    return [*green, *booked, *rest]


# --- windows and staff ---------------------------------------------------------------------


def check_sign_in(setup: Setup, staff_id: str, number: str) -> bool:
    """Whether ``staff_id`` may sign in at window ``number``; returns True for a backup
    (AB岗) sign-in, raises ``NotAllowed`` when neither."""
    member = setup.staff_member(staff_id)
    if number in member.windows:
        return False
    if number in member.backup_windows:
        return True
    rule = f"{member.name}（{staff_id}）未被安排在 {number} 号窗口，也不是该窗口的B岗"
    raise NotAllowed(rule, {"staff_id": [rule]})


# --- estimates -----------------------------------------------------------------------------


def service_seconds(ticket: Mapping[str, Any]) -> float:
    """How long a completed ticket was served (from start, or from its call)."""
    ended, started = parse_iso(ticket["ended_at"]), parse_iso(ticket["started_at"])
    return max(0.0, (ended - started).total_seconds())


def moving_average(samples: Sequence[float], fallback: float) -> float:
    return sum(samples) / len(samples) if samples else fallback


def add_sample(samples: Sequence[float], value: float, size: int) -> list[float]:
    return [*samples, round(value, 3)][-max(1, size) :]


def estimate_wait(ahead: int, mean_service_s: float, open_windows: int) -> dict[str, int]:
    """Expected wait and a range in minutes: people ahead × mean service time / windows,
    from 0.7× to 1.3× (at least ±2 minutes), rounded outwards to whole minutes."""
    windows = max(1, open_windows)
    expected = ahead * mean_service_s / windows
    spread = max(0.3 * expected, 120.0) if ahead else 0.0
    low = max(0.0, expected - spread)
    high = expected + spread
    return {
        "expected_seconds": round(expected),
        "low_minutes": math.floor(low / 60),
        "high_minutes": math.ceil(high / 60),
    }


# --- appointments --------------------------------------------------------------------------


def slot_starts(category: Category) -> list[time]:
    """The appointment slots of a category on one day: back to back within its hours."""
    if not category.slot_minutes or category.slot_capacity <= 0:
        return []
    starts: list[time] = []
    step = timedelta(minutes=category.slot_minutes)
    for start, end in category.hours:
        cursor = datetime.combine(date(2000, 1, 1), start)
        stop = datetime.combine(date(2000, 1, 1), end)
        while cursor + step <= stop:
            starts.append(cursor.time())
            cursor += step
    return starts


def check_booking(
    category: Category,
    day: date,
    slot: time,
    local_now: datetime,
    working_day: bool,
    policy: Policy,
) -> None:
    if not category.slot_minutes or category.slot_capacity <= 0:
        raise Refusal(f"{category.name}不提供预约", {"category": ["不提供预约"]})
    if category.working_days_only and not working_day:
        rule = f"{day.isoformat()} 不是工作日，不能预约{category.name}"
        raise Refusal(rule, {"date": [rule]})
    if slot not in slot_starts(category):
        choices = "、".join(f"{s:%H:%M}" for s in slot_starts(category))
        raise InvalidRule.field("slot", f"没有 {slot:%H:%M} 这个时段；可选：{choices}")
    starts_at = datetime.combine(day, slot, tzinfo=local_now.tzinfo)
    if starts_at <= local_now:
        raise Refusal("该时段已过，不能预约", {"slot": ["该时段已过"]})
    if day > local_now.date() + timedelta(days=policy.booking_days_ahead):
        rule = f"最多可预约{policy.booking_days_ahead}天内的时段"
        raise Refusal(rule, {"date": [rule]})


def booking_block(no_show_days: Iterable[date], today: date, policy: Policy) -> date | None:
    """The last day of a booking block, or None: ``booking_no_show_limit`` no-shows within
    ``booking_no_show_days`` block new bookings for ``booking_block_days`` after the last."""
    recent = sorted(
        d for d in no_show_days if d > today - timedelta(days=policy.booking_no_show_days)
    )
    if len(recent) < policy.booking_no_show_limit:
        return None
    until = recent[-1] + timedelta(days=policy.booking_block_days)
    return until if until >= today else None


def check_in_window(slot_at: datetime, now: datetime, policy: Policy) -> bool:
    """True: on time (appointment lane); False: late (normal queue); too early: Refusal."""
    if now.date() != slot_at.date():
        rule = f"预约日期为 {slot_at:%Y-%m-%d}，只能当天签到"
        raise Refusal(rule, {"booking": [rule]})
    opens = slot_at - timedelta(minutes=policy.check_in_before_minutes)
    if now < opens:
        rule = f"预约时段为 {slot_at:%H:%M}，请于 {opens:%H:%M} 后签到"
        raise Refusal(rule, {"booking": [rule]})
    return now <= slot_at + timedelta(minutes=policy.check_in_after_minutes)


def booking_missed(slot_at: datetime, now: datetime, policy: Policy) -> bool:
    """A booking not checked in by the end of its check-in window is a no-show."""
    return now > slot_at + timedelta(minutes=policy.check_in_after_minutes)


# --- daily figures -------------------------------------------------------------------------


def empty_stats(site_code: str, day: date, prefix: str) -> dict[str, Any]:
    return {
        "id": f"{site_code}:{day.isoformat()}:{prefix}",
        "site_code": site_code,
        "date": day.isoformat(),
        "category": prefix,
        "issued": 0,
        "called": 0,
        "served": 0,
        "no_show": 0,
        "within_target": 0,
        "wait_buckets": {},
    }


def waiting_over_target(
    tickets: Iterable[Mapping[str, Any]], now: datetime, target_s: float
) -> int:
    """How many of these waiting tickets have waited longer than the target (from taking
    the ticket, the original place in time a transfer or hold keeps)."""
    return sum(
        1
        for t in tickets
        if t.get("taken_at") and (now - parse_iso(t["taken_at"])).total_seconds() > target_s
    )


def add_wait(stats: Mapping[str, Any], wait_s: float, target_s: float) -> dict[str, Any]:
    buckets = dict(stats.get("wait_buckets") or {})
    key = str(int(max(0.0, wait_s) // WAIT_BUCKET_S))
    buckets[key] = buckets.get(key, 0) + 1
    return {
        "called": stats.get("called", 0) + 1,
        "within_target": stats.get("within_target", 0) + (1 if wait_s <= target_s else 0),
        "wait_buckets": buckets,
    }


def merge_stats(stats: Mapping[str, Any], delta: Mapping[str, Any]) -> dict[str, Any]:
    """The fields of ``stats`` that ``delta`` changes: counts added, wait buckets merged."""
    merged: dict[str, Any] = {}
    for key in ("issued", "called", "served", "no_show", "within_target"):
        if delta.get(key):
            merged[key] = stats.get(key, 0) + delta[key]
    if delta.get("wait_buckets"):
        buckets = dict(stats.get("wait_buckets") or {})
        for key, count in delta["wait_buckets"].items():
            buckets[key] = buckets.get(key, 0) + count
        merged["wait_buckets"] = buckets
    return merged


def bucket_quantile(buckets: Mapping[str, int], q: float) -> int | None:
    """The q-quantile of waits kept in ``WAIT_BUCKET_S`` buckets (upper bucket edge)."""
    total = sum(buckets.values())
    if not total:
        return None
    rank = math.ceil(q * total)
    seen = 0
    for key in sorted(buckets, key=int):
        seen += buckets[key]
        if seen >= rank:
            return (int(key) + 1) * WAIT_BUCKET_S
    return None  # pragma: no cover - rank <= total


def figures(stats: Mapping[str, Any]) -> dict[str, Any]:
    """The published daily figure (feed ``daily_figures``) from the private day stats."""
    called = stats.get("called", 0)
    buckets = stats.get("wait_buckets") or {}
    return {
        "id": stats["id"],
        "schema": 1,
        "site_code": stats["site_code"],
        "date": stats["date"],
        "category": stats["category"],
        "issued": stats.get("issued", 0),
        "served": stats.get("served", 0),
        "no_show": stats.get("no_show", 0),
        "wait_p50_s": bucket_quantile(buckets, 0.5),
        "wait_p90_s": bucket_quantile(buckets, 0.9),
        "within_target_share": round(stats.get("within_target", 0) / called, 4) if called else None,
    }


def stats_from_tickets(
    site_code: str, day: date, prefix: str, tickets: Iterable[Mapping[str, Any]], target_s: float
) -> dict[str, Any]:
    """Recount a day's stats from its tickets (day close repairs any drift)."""
    stats = empty_stats(site_code, day, prefix)
    for t in tickets:
        if t.get("issued_category", t.get("category")) == prefix:
            stats["issued"] += 1
        if t.get("category") != prefix:
            continue
        if t.get("first_called_at"):
            wait = (parse_iso(t["first_called_at"]) - parse_iso(t["taken_at"])).total_seconds()
            stats.update(add_wait(stats, wait, target_s))
        if t.get("state") == "completed":
            stats["served"] += 1
        if t.get("state") == "no_show":
            stats["no_show"] += 1
    return stats


def invitation(ticket: Mapping[str, Any], department: str | None, now: datetime) -> dict[str, Any]:
    """The evaluation invitation (一次一评) one completed ticket creates, exactly once."""
    return {
        "id": f"ticket:{ticket['id']}",
        "schema": 1,
        "service_ref": {"kind": "ticket", "id": ticket["id"]},
        "site_code": ticket["site_code"],
        "window": ticket.get("window"),
        "staff_id": ticket.get("staff_id"),
        "matter_code": ticket.get("matter_code"),
        "department": department,
        "service_channel": "window",
        "service_ended_at": ticket["ended_at"],
        "created_at": iso(now),
    }
