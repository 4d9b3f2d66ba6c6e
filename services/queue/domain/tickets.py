"""Taking a ticket (取号): numbering, the checks before issuing, the stored ticket, the
audit trail every action appends to, and what people are shown of a ticket."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime
from typing import Any

from services.common.clock import iso
from services.common.errors import Conflict, InvalidInput
from services.common.privacy import is_mobile, mask_phone, phone_hash
from services.queue.domain.categories import Category
from services.queue.domain.records import Ticket
from services.queue.domain.vocabulary import (
    CHANNELS,
    HISTORY_LIMIT,
    LANE_APPOINTMENT,
    LANE_GREEN,
    LANE_NORMAL,
    PRIORITY_REASONS,
    STATE_NAMES,
)

# Never shown to clerks or citizens: the phone hash, the audit trail, the calling keys.
HIDDEN = frozenset({"phone_hash", "history", "_seq", "order_key", "lane", "invited"})


def counter_key(day: date, prefix: str) -> str:
    """The store counter numbering one category on one site-local day (restarts daily)."""
    return f"{day.isoformat()}:{prefix}"


def walk_in_key(day: date, prefix: str) -> str:
    """The store counter of one category's walk-in tickets on one day (``daily_cap``)."""
    return f"walkin:{day.isoformat()}:{prefix}"


def format_number(prefix: str, value: int) -> str:
    """A012: the prefix and at least three digits."""
    return f"{prefix}{value:03d}"


def ticket_id(site_code: str, day: date, number: str) -> str:
    """Natural key: a number is unique per site and day, so the id is never reused."""
    return f"{site_code}:{day.isoformat()}:{number}"


def timestamp(moment: datetime) -> float:
    """A place in time for the calling order (epoch seconds, microsecond resolution)."""
    return round(moment.timestamp(), 6)


def protect_phone(phone: str, salt: str) -> tuple[str, str]:
    """(keyed hash for lookups and limits, masked form for display) of a mobile number,
    normalised first (docs/architecture.md, "Privacy"); the number itself is dropped."""
    if not is_mobile(str(phone)):
        raise InvalidInput.field("phone", "应为11位手机号码")
    if not salt:
        raise InvalidInput.field("phone", "本站未配置 QUEUE.privacy_salt，暂不能登记手机号")
    return phone_hash(salt, str(phone)), mask_phone(str(phone))


def check_issue(
    category: Category,
    local_now: datetime,
    working_day: bool,
    walk_ins: int | None,
    *,
    appointment: bool = False,
) -> None:
    """Refuse a ticket when the category is closed, outside its hours or past its cap.
    ``walk_ins`` is the day's walk-in count with this ticket (None: not counted yet).
    Appointment check-ins are not capped: their slot was reserved when booked."""
    if not category.enabled:
        raise Conflict(f"{category.name}（{category.prefix}）暂停取号", {"category": ["暂停取号"]})
    if category.working_days_only and not working_day:
        rule = f"今天（{local_now:%Y-%m-%d}）不是工作日，{category.name}不办理"
        raise Conflict(rule, {"category": [rule]})
    if not category.open_at(local_now.time().replace(tzinfo=None)):
        rule = f"现在不在{category.name}的取号时间内（{category.hours_text()}）"
        raise Conflict(rule, {"category": [rule]})
    cap = category.daily_cap
    if not appointment and cap is not None and walk_ins is not None and walk_ins > cap:
        rule = f"{category.name}今日号已取完（每日限{cap}个），请改日或预约办理"
        raise Conflict(rule, {"category": [rule]})


def lane_for(priority: str | None, appointment_on_time: bool) -> int:
    if priority:
        return LANE_GREEN
    return LANE_APPOINTMENT if appointment_on_time else LANE_NORMAL


def history_entry(
    now: datetime, by: str, action: str, from_state: str | None, to_state: str, **extra: Any
) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "at": iso(now),
        "by": by,
        "action": action,
        "from": from_state,
        "to": to_state,
    }
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
) -> Ticket:
    """A waiting ticket as stored; ``order_key`` is its place in time (epoch seconds)."""
    if channel not in CHANNELS:
        raise InvalidInput.field("channel", f"应为 {'、'.join(CHANNELS)} 之一")
    if priority is not None and priority not in PRIORITY_REASONS:
        names = "、".join(f"{k}（{v}）" for k, v in PRIORITY_REASONS.items())
        raise InvalidInput.field("priority", f"绿色通道原因应为 {names} 之一")
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


def ticket_view(ticket: Mapping[str, Any]) -> dict[str, Any]:
    """What clerks and citizens see of a ticket (never the phone hash)."""
    shown = {k: v for k, v in ticket.items() if k not in HIDDEN}
    shown["state_name"] = STATE_NAMES[ticket["state"]]
    shown["green_channel"] = ticket.get("lane") == LANE_GREEN
    return shown
