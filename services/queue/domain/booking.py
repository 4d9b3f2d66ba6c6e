"""Appointments (预约): slots, the booking rules, the no-show block, check-in timing."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import date, datetime, time, timedelta
from typing import Any

from services.common.errors import Conflict, Forbidden, InvalidInput
from services.queue.domain.categories import Category, Policy


def slot_key(day: date, prefix: str, slot: str) -> str:
    """The store counter of the bookings of one slot."""
    return f"slot:{day.isoformat()}:{prefix}:{slot}"


def slot_key_of(booking: Mapping[str, Any]) -> str:
    return slot_key(date.fromisoformat(booking["date"]), booking["category"], booking["slot"])


def booking_hold(day: date, prefix: str, phone_hash: str) -> str:
    """What a booked booking holds (unique in the store): one phone, one category, one day,
    so two processes booking for the same phone at once cannot both succeed. A booking that
    is no longer booked holds its own id instead."""
    return f"{day.isoformat()}:{prefix}:{phone_hash}"


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
        raise Conflict(f"{category.name}不提供预约", {"category": ["不提供预约"]})
    if category.working_days_only and not working_day:
        rule = f"{day.isoformat()} 不是工作日，不能预约{category.name}"
        raise Conflict(rule, {"date": [rule]})
    if slot not in slot_starts(category):
        choices = "、".join(f"{s:%H:%M}" for s in slot_starts(category))
        raise InvalidInput.field("slot", f"没有 {slot:%H:%M} 这个时段；可选：{choices}")
    starts_at = datetime.combine(day, slot, tzinfo=local_now.tzinfo)
    if starts_at <= local_now:
        raise Conflict("该时段已过，不能预约", {"slot": ["该时段已过"]})
    if day > local_now.date() + timedelta(days=policy.booking_days_ahead):
        rule = f"最多可预约{policy.booking_days_ahead}天内的时段"
        raise Conflict(rule, {"date": [rule]})


def check_not_booked(others: Iterable[Mapping[str, Any]], day: date, category: Category) -> None:
    """One booking per phone, category and day: ``others`` are the phone's open bookings."""
    for other in others:
        if other["date"] == day.isoformat() and other["category"] == category.prefix:
            rule = f"您已预约 {other['date']} {other['slot']} 的{category.name}，请勿重复预约"
            raise Conflict(rule, {"phone": [rule]})


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


def check_not_blocked(no_show_days: Iterable[date], today: date, policy: Policy) -> None:
    """Refuse a booking (``Forbidden``, naming the period) while the phone is blocked."""
    until = booking_block(no_show_days, today, policy)
    if until is not None:
        rule = (
            f"您在{policy.booking_no_show_days}天内有{policy.booking_no_show_limit}次预约未到，"
            f"{until.isoformat()} 前不能预约"
        )
        raise Forbidden(rule, {"phone": [rule]})


def check_in_window(slot_at: datetime, now: datetime, policy: Policy) -> bool:
    """True: on time (appointment lane); False: late (normal queue); too early: Conflict."""
    if now.date() != slot_at.date():
        rule = f"预约日期为 {slot_at:%Y-%m-%d}，只能当天签到"
        raise Conflict(rule, {"booking": [rule]})
    opens = slot_at - timedelta(minutes=policy.check_in_before_minutes)
    if now < opens:
        rule = f"预约时段为 {slot_at:%H:%M}，请于 {opens:%H:%M} 后签到"
        raise Conflict(rule, {"booking": [rule]})
    return now <= slot_at + timedelta(minutes=policy.check_in_after_minutes)


def booking_missed(slot_at: datetime, now: datetime, policy: Policy) -> bool:
    """A booking not checked in by the end of its check-in window is a no-show."""
    return now > slot_at + timedelta(minutes=policy.check_in_after_minutes)


def booking_view(booking: Mapping[str, Any]) -> dict[str, Any]:
    """A booking as shown (never the phone hash)."""
    return {k: v for k, v in booking.items() if k not in ("phone_hash", "_seq")}
