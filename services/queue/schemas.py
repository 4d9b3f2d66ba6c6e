"""The queue's marshmallow schemas (docs/architecture.md, "Validation"): the site
configuration (the ``QUEUE:`` section and ``queue.configure``) and the RPC arguments, all
``validation.Arguments`` (unknown fields refused), built with the common field builders."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from marshmallow import ValidationError, fields, validates_schema
from marshmallow.types import ErrorMessages

from services.common import validation
from services.common.errors import InvalidInput
from services.common.store.port import MAX_VERSION
from services.common.validation import (
    ID_PATTERN,
    Arguments,
    boolean,
    identifier,
    integer,
    number,
    one_of,
    plain,
    text,
)
from services.queue import domain

WHOLE_DAY = "日期应写成 YYYY-MM-DD"
_WINDOW = re.compile(f"{ID_PATTERN}\\Z")


def _invalid(rule: str) -> ErrorMessages:
    return {"invalid": rule}


class WindowNumber(fields.Field[str]):
    """A window number given as text or a whole number; always text afterwards, with the
    alphabet of an identifier (validation.identifier): it is part of the window's id."""

    default_error_messages = _invalid("应为窗口号（数字或文本）")

    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> str:
        if isinstance(value, bool) or not isinstance(value, str | int):
            raise self.make_error("invalid")
        if isinstance(value, int) and not 0 <= value < 10**16:
            raise ValidationError("长度应在 1 到 16 之间")
        shown = str(value)
        plain(shown)
        shown = shown.strip()
        if not 1 <= len(shown) <= 16:
            raise ValidationError("长度应在 1 到 16 之间")
        if not _WINDOW.match(shown):
            raise ValidationError("只能含字母、数字、汉字和 : . _ -，且以字母、数字或汉字开头")
        return shown


class Weights(fields.Field[dict[str, int]]):
    """Categories a window serves: a list of prefixes (weight 1) or a prefix → weight map."""

    default_error_messages = _invalid("应为业务类别列表或“类别: 权重”映射")

    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> dict[str, int]:
        if isinstance(value, list | tuple):
            value = dict.fromkeys(value, 1)
        if not isinstance(value, Mapping):
            raise self.make_error("invalid")
        result: dict[str, int] = {}
        for prefix, weight in value.items():
            if not isinstance(prefix, str):
                raise self.make_error("invalid")
            if isinstance(weight, bool) or not isinstance(weight, int) or not 1 <= weight <= 100:
                raise ValidationError(f"{prefix} 的权重应为 1 到 100 之间的整数")
            result[prefix] = weight
        return result


# --- the site configuration ------------------------------------------------------------------


class AppointmentSchema(Arguments):
    slot_minutes = integer(5, 240, required=True)
    capacity = integer(1, 1000, required=True)


class CategorySchema(Arguments):
    prefix = text(min_len=0, required=True)
    name = text(40, required=True)
    matter_codes = fields.List(identifier(32), load_default=list)
    department = text(60, load_default=None, allow_none=True)
    daily_cap = integer(1, 100000, load_default=None, allow_none=True)
    hours = fields.List(text(min_len=0), load_default=lambda: ["08:30-17:30"])
    service_minutes = number(0.5, 480, load_default=10.0)
    enabled = boolean(load_default=True)
    working_days_only = boolean(load_default=True)
    appointments = fields.Nested(AppointmentSchema, load_default=None, allow_none=True)


class WindowSchema(Arguments):
    number = WindowNumber(required=True)
    name = text(40, load_default=None, allow_none=True)
    categories = Weights(required=True)
    kind = fields.String(
        load_default=None, allow_none=True, validate=one_of(("comprehensive", "dedicated"))
    )


class StaffSchema(Arguments):
    id = identifier(64, required=True)
    name = text(40, required=True)
    windows = fields.List(WindowNumber(), load_default=list)
    backup_windows = fields.List(WindowNumber(), load_default=list)


class ConfigSchema(Arguments):
    """The site configuration: the ``QUEUE:`` section without its operational keys (see
    settings.py), and the ``queue.configure`` argument."""

    waiting_target_minutes = integer(1, 480)
    no_show_after_calls = integer(1, 10)
    recall_cooldown_seconds = integer(0, 600)
    requeue_behind = integer(0, 100)
    check_in_before_minutes = integer(0, 240)
    check_in_after_minutes = integer(0, 240)
    booking_no_show_limit = integer(1, 100)
    booking_no_show_days = integer(1, 365)
    booking_block_days = integer(1, 365)
    booking_days_ahead = integer(1, 90)
    timezone = text(64)
    estimate_window = integer(1, 1000)
    day_close_time = text(min_len=0)
    categories = fields.List(fields.Nested(CategorySchema), load_default=list)
    windows = fields.List(fields.Nested(WindowSchema), load_default=list)
    staff = fields.List(fields.Nested(StaffSchema), load_default=list)


def load_config(data: Any, what: str = "") -> dict[str, Any]:
    """A validated configuration (types by the schema, cross-field rules by the domain);
    field paths under ``what`` (e.g. ``QUEUE``) when given."""
    loaded = validation.load(ConfigSchema, data, what)
    domain.build_setup(loaded)  # cross-field rules raise InvalidInput naming the field
    return loaded


# --- RPC arguments ---------------------------------------------------------------------------


def _id(**kw: Any) -> fields.String:
    return identifier(128, **kw)


def _who(**kw: Any) -> fields.String:
    """An actor (``by``) or a staff id: an identifier, optional."""
    return identifier(64, load_default=None, allow_none=True, **kw)


def _category(**kw: Any) -> fields.String:
    """A category prefix as typed (the configuration says which exist)."""
    return identifier(1, **kw)


def _matter(**kw: Any) -> fields.String:
    return identifier(32, load_default=None, allow_none=True, **kw)


def _window(**kw: Any) -> WindowNumber:
    return WindowNumber(**kw)


def _reason() -> fields.String:
    return text(200, load_default=None, allow_none=True)


class ConfigureArgs(Arguments):
    config = fields.Raw(required=True)
    by = identifier(64, required=True)
    expected_version = integer(0, MAX_VERSION, load_default=None, allow_none=True)


class VersionArgs(Arguments):
    version = integer(1, MAX_VERSION, load_default=None, allow_none=True)


class TakeArgs(Arguments):
    category = _category(required=True)
    channel = fields.String(load_default="kiosk", validate=one_of(domain.CHANNELS))
    phone = text(32, load_default=None, allow_none=True)
    priority = fields.String(
        load_default=None, allow_none=True, validate=one_of(domain.PRIORITY_REASONS)
    )
    matter_code = _matter()


class TicketArgs(Arguments):
    ticket_id = _id(required=True)


class ActionArgs(Arguments):
    """An action on one ticket at a window (recall, start, no-show)."""

    ticket_id = _id(required=True)
    window = _window(load_default=None, allow_none=True)
    by = _who()


class CompleteArgs(ActionArgs):
    outcome = fields.String(load_default="done", validate=one_of(domain.OUTCOMES))
    application_id = identifier(128, load_default=None, allow_none=True)
    matter_code = _matter()


class ByArgs(Arguments):
    ticket_id = _id(required=True)
    by = _who()


class ReasonArgs(ByArgs):
    reason = _reason()


class TransferArgs(ByArgs):
    category = _category(load_default=None, allow_none=True)
    window = _window(load_default=None, allow_none=True)


class CallArgs(Arguments):
    window = _window(required=True)
    staff_id = _who()


class StaffArgs(Arguments):
    window = _window(required=True)
    staff_id = identifier(64, required=True)


class PauseArgs(Arguments):
    window = _window(required=True)
    reason = _reason()
    by = _who()


class CloseWindowArgs(Arguments):
    window = _window(required=True)
    by = _who()


class CloseDayArgs(Arguments):
    date = fields.Date(load_default=None, allow_none=True, error_messages={"invalid": WHOLE_DAY})
    by = _who()
    early = boolean(load_default=False)


class SlotsArgs(Arguments):
    category = _category(required=True)
    date = fields.Date(required=True, error_messages={"invalid": WHOLE_DAY})


class DateRangeArgs(Arguments):
    """A span of days for the subtree's figures: both ends given, in order, at most
    ``MAX_SPAN_DAYS`` days (a bounded read)."""

    MAX_SPAN_DAYS = 92

    date_from = fields.Date(required=True, error_messages={"invalid": WHOLE_DAY})
    date_to = fields.Date(required=True, error_messages={"invalid": WHOLE_DAY})

    @validates_schema
    def _bounded(self, data: dict[str, Any], **kwargs: Any) -> None:
        days = (data["date_to"] - data["date_from"]).days
        if days < 0:
            raise ValidationError("起始日期不能晚于截止日期", "date_from")
        if days >= self.MAX_SPAN_DAYS:
            raise ValidationError(f"一次最多查询 {self.MAX_SPAN_DAYS} 天", "date_to")


class BookArgs(SlotsArgs):
    slot = text(5, required=True)
    phone = text(32, required=True)
    channel = fields.String(load_default="web", validate=one_of(domain.BOOKING_CHANNELS))


class BookingArgs(Arguments):
    booking = _id(required=True)


BOARD_AFTER = re.compile(r"[0-9]{1,16}\Z")


def board_after(value: str) -> int:
    """``GET /board?after=``: the board version last seen (ASCII digits, at most 2^53)."""
    if not BOARD_AFTER.match(value) or int(value) > MAX_VERSION:
        raise InvalidInput.field("after", "应为整数（上次看板的 version）")
    return int(value)
