"""A site's queue setup: categories (业务类别), windows (窗口), staff (窗口工作人员) and the
policy, built from an already type-checked configuration (see schemas.ConfigSchema)."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import time
from typing import Any
from zoneinfo import ZoneInfo

from services.common.errors import InvalidInput, NotFound

_PREFIX = re.compile(r"[A-Z]\Z")
_HHMM = re.compile(r"([01]\d|2[0-3]):([0-5]\d)\Z")


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
            raise InvalidInput.field("category", f"没有业务类别 {prefix}；可选：{known}")
        return found

    def window(self, number: str) -> Window:
        found = self.windows.get(str(number))
        if found is None:
            raise NotFound(f"没有 {number} 号窗口", {"window": [f"没有 {number} 号窗口"]})
        return found

    def staff_member(self, staff_id: str) -> Staff:
        found = self.staff.get(staff_id)
        if found is None:
            raise NotFound(f"没有工作人员 {staff_id}", {"staff_id": ["未登记的工作人员"]})
        return found


def zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def parse_hhmm(text: str, name: str) -> time:
    match = _HHMM.match(str(text))
    if not match:
        raise InvalidInput.field(name, f"时间应写成 HH:MM，例如 08:30，实际为 {text}")
    return time(int(match.group(1)), int(match.group(2)))


def parse_hours(spans: Iterable[str], name: str) -> tuple[tuple[time, time], ...]:
    result: list[tuple[time, time]] = []
    for i, span in enumerate(spans):
        where = f"{name}[{i}]"
        start_text, sep, end_text = str(span).partition("-")
        if not sep:
            raise InvalidInput.field(where, f"时段应写成 08:30-12:00，实际为 {span}")
        start, end = parse_hhmm(start_text, where), parse_hhmm(end_text, where)
        if end <= start:
            raise InvalidInput.field(where, f"结束时间应晚于开始时间：{span}")
        if result and start < result[-1][1]:
            raise InvalidInput.field(where, "时段应按时间先后排列且互不重叠")
        result.append((start, end))
    if not result:
        raise InvalidInput.field(name, "至少需要一个办理时段")
    return tuple(result)


def build_setup(data: Mapping[str, Any]) -> Setup:
    """A ``Setup`` from an already type-checked mapping (see schemas.ConfigSchema); checks the
    rules that span fields: unique prefixes and numbers, windows naming known categories."""
    policy = _policy(data)
    categories = _categories(data.get("categories") or ())
    windows = _windows(data.get("windows") or (), categories)
    staff = _staff(data.get("staff") or (), windows)
    return Setup(categories, windows, staff, policy)


def _policy(data: Mapping[str, Any]) -> Policy:
    args: dict[str, Any] = {k: data[k] for k in POLICY_KEYS if k in data}
    if "day_close_time" in args:
        args["day_close_time"] = parse_hhmm(args["day_close_time"], "day_close_time")
    policy = Policy(**args)
    try:
        zone(policy.timezone)
    except (ValueError, LookupError) as exc:
        raise InvalidInput.field("timezone", f"不认识的时区 {policy.timezone}") from exc
    return policy


def _categories(raws: Iterable[Mapping[str, Any]]) -> dict[str, Category]:
    categories: dict[str, Category] = {}
    for i, raw in enumerate(raws):
        prefix = raw["prefix"]
        where = f"categories[{i}]"
        if not _PREFIX.match(prefix):
            raise InvalidInput.field(f"{where}.prefix", "应为一个大写字母，例如 A")
        if prefix in categories:
            raise InvalidInput.field(f"{where}.prefix", f"业务类别前缀 {prefix} 重复")
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
    return categories


def _windows(
    raws: Iterable[Mapping[str, Any]], categories: Mapping[str, Category]
) -> dict[str, Window]:
    windows: dict[str, Window] = {}
    for i, raw in enumerate(raws):
        number = str(raw["number"])
        where = f"windows[{i}]"
        if number in windows:
            raise InvalidInput.field(f"{where}.number", f"窗口号 {number} 重复")
        weights: dict[str, int] = {}
        for prefix, weight in dict(raw["categories"]).items():
            if prefix not in categories:
                raise InvalidInput.field(f"{where}.categories", f"没有业务类别 {prefix}")
            weights[prefix] = int(weight)
        if not weights:
            raise InvalidInput.field(f"{where}.categories", "窗口至少办理一个业务类别")
        kind = raw.get("kind") or ("comprehensive" if len(weights) > 1 else "dedicated")
        windows[number] = Window(number, raw.get("name") or f"{number}号窗口", weights, kind)
    return windows


def _staff(raws: Iterable[Mapping[str, Any]], windows: Mapping[str, Window]) -> dict[str, Staff]:
    staff: dict[str, Staff] = {}
    for i, raw in enumerate(raws):
        where = f"staff[{i}]"
        if raw["id"] in staff:
            raise InvalidInput.field(f"{where}.id", f"工作人员 {raw['id']} 重复")
        own = tuple(str(n) for n in raw.get("windows") or ())
        backup = tuple(str(n) for n in raw.get("backup_windows") or ())
        for number in (*own, *backup):
            if number not in windows:
                raise InvalidInput.field(f"{where}.windows", f"没有 {number} 号窗口")
        staff[raw["id"]] = Staff(raw["id"], raw["name"], own, backup)
    return staff
