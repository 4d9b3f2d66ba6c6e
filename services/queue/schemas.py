"""Input validation at the boundary (marshmallow); messages in Chinese, naming field and rule."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from marshmallow import Schema, ValidationError, fields, validate
from marshmallow.types import ErrorMessages

from services.common.errors import InvalidInput
from services.queue import domain

_COMMON: ErrorMessages = {
    "required": "必填",
    "null": "不能为空",
    "invalid": "类型不对",
}


def _msgs(**extra: str) -> ErrorMessages:
    return {**_COMMON, **extra}


def Str(**kw: Any) -> fields.String:  # noqa: N802 - reads like a field type
    kw.setdefault("error_messages", _msgs(invalid="应为文本"))
    return fields.String(**kw)


def Int(**kw: Any) -> fields.Integer:  # noqa: N802
    kw.setdefault("error_messages", _msgs(invalid="应为整数"))
    return fields.Integer(strict=True, **kw)


def Bool(**kw: Any) -> fields.Boolean:  # noqa: N802
    kw.setdefault("error_messages", _msgs(invalid="应为 true 或 false"))
    return fields.Boolean(**kw)


def Num(**kw: Any) -> fields.Float:  # noqa: N802
    kw.setdefault("error_messages", _msgs(invalid="应为数字"))
    return fields.Float(**kw)


def _range(low: int | float, high: int | float | None = None) -> validate.Range:
    if high is None:
        return validate.Range(min=low, error=f"应不小于 {low}")
    return validate.Range(min=low, max=high, error=f"应在 {low} 到 {high} 之间")


def _one_of(choices: Any) -> validate.OneOf:
    return validate.OneOf(list(choices), error=f"应为 {'、'.join(map(str, choices))} 之一")


def _length(low: int, high: int) -> validate.Length:
    return validate.Length(min=low, max=high, error=f"长度应在 {low} 到 {high} 之间")


class WindowNumber(fields.Field[str]):
    """A window number given as text or a whole number; always text afterwards."""

    default_error_messages = _msgs(invalid="应为窗口号（数字或文本）")

    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> str:
        if isinstance(value, bool) or not isinstance(value, str | int):
            raise self.make_error("invalid")
        text = str(value).strip()
        if not 1 <= len(text) <= 16:
            raise ValidationError("长度应在 1 到 16 之间")
        return text


class Weights(fields.Field[dict[str, int]]):
    """Categories a window serves: a list of prefixes (weight 1) or a prefix → weight map."""

    default_error_messages = _msgs(invalid="应为业务类别列表或“类别: 权重”映射")

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


class AppointmentSchema(Schema):
    slot_minutes = Int(required=True, validate=_range(5, 240))
    capacity = Int(required=True, validate=_range(1, 1000))


class CategorySchema(Schema):
    prefix = Str(required=True)
    name = Str(required=True, validate=_length(1, 40))
    matter_codes = fields.List(Str(validate=_length(1, 32)), load_default=list)
    department = Str(load_default=None, allow_none=True, validate=_length(1, 60))
    daily_cap = Int(load_default=None, allow_none=True, validate=_range(1, 100000))
    hours = fields.List(Str(), load_default=lambda: ["08:30-17:30"])
    service_minutes = Num(load_default=10.0, validate=_range(0.5, 480))
    enabled = Bool(load_default=True)
    working_days_only = Bool(load_default=True)
    appointments = fields.Nested(AppointmentSchema, load_default=None, allow_none=True)


class WindowSchema(Schema):
    number = WindowNumber(required=True)
    name = Str(load_default=None, allow_none=True, validate=_length(1, 40))
    categories = Weights(required=True)
    kind = Str(load_default=None, allow_none=True, validate=_one_of(("comprehensive", "dedicated")))


class StaffSchema(Schema):
    id = Str(required=True, validate=_length(1, 64))
    name = Str(required=True, validate=_length(1, 40))
    windows = fields.List(WindowNumber(), load_default=list)
    backup_windows = fields.List(WindowNumber(), load_default=list)


class ConfigSchema(Schema):
    """The ``QUEUE:`` section and the ``queue.configure`` argument (privacy_salt only in the
    section)."""

    waiting_target_minutes = Int(validate=_range(1, 480))
    no_show_after_calls = Int(validate=_range(1, 10))
    recall_cooldown_seconds = Int(validate=_range(0, 600))
    requeue_behind = Int(validate=_range(0, 100))
    check_in_before_minutes = Int(validate=_range(0, 240))
    check_in_after_minutes = Int(validate=_range(0, 240))
    booking_no_show_limit = Int(validate=_range(1, 100))
    booking_no_show_days = Int(validate=_range(1, 365))
    booking_block_days = Int(validate=_range(1, 365))
    booking_days_ahead = Int(validate=_range(1, 90))
    timezone = Str(validate=_length(1, 64))
    estimate_window = Int(validate=_range(1, 1000))
    day_close_time = Str()
    categories = fields.List(fields.Nested(CategorySchema), load_default=list)
    windows = fields.List(fields.Nested(WindowSchema), load_default=list)
    staff = fields.List(fields.Nested(StaffSchema), load_default=list)


SECTION_ONLY = ("privacy_salt",)


def _flatten(messages: Any, prefix: str = "") -> dict[str, list[str]]:
    flat: dict[str, list[str]] = {}
    if isinstance(messages, Mapping):
        for key, value in messages.items():
            if isinstance(key, int):
                name = f"{prefix}[{key}]"
            else:
                name = f"{prefix}.{key}" if prefix else str(key)
            for k, v in _flatten(value, name).items():
                flat.setdefault(k, []).extend(v)
    elif isinstance(messages, list) and all(isinstance(m, str) for m in messages):
        flat[prefix] = [("不认识的字段" if m == "Unknown field." else m) for m in messages]
    elif isinstance(messages, list):
        for i, value in enumerate(messages):
            flat.update(_flatten(value, f"{prefix}[{i}]"))
    else:
        flat[prefix] = [str(messages)]
    return flat


def load(schema: Schema, data: Any, what: str = "输入") -> dict[str, Any]:
    """Validate ``data``; raise ``InvalidInput`` naming every field and its rule."""
    if not isinstance(data, Mapping):
        raise InvalidInput(f"{what}应为映射（字段: 值）", {"_": ["应为映射"]})
    try:
        result: dict[str, Any] = schema.load(dict(data))
    except ValidationError as exc:
        flat = _flatten(exc.messages)
        detail = "；".join(f"{k}：{'，'.join(v)}" for k, v in sorted(flat.items()))
        raise InvalidInput(f"{what}有误：{detail}", flat) from None
    return result


def load_config(data: Mapping[str, Any], *, from_section: bool) -> dict[str, Any]:
    """A validated configuration mapping (without the section-only secrets)."""
    data = dict(data or {})
    for key in SECTION_ONLY:
        if key in data and not from_section:
            raise InvalidInput.field(key, "只能在配置文件的 QUEUE 段中设置")
        data.pop(key, None)
    loaded = load(ConfigSchema(), data, "排队叫号配置")
    try:
        domain.build_setup(loaded)  # cross-field rules
    except domain.InvalidRule as exc:
        raise InvalidInput(exc.message, exc.fields) from None
    return loaded


# --- RPC arguments -------------------------------------------------------------------------


class TakeSchema(Schema):
    category = Str(required=True, validate=_length(1, 1))
    channel = Str(load_default="kiosk", validate=_one_of(domain.CHANNELS))
    phone = Str(load_default=None, allow_none=True)
    priority = Str(load_default=None, allow_none=True, validate=_one_of(domain.PRIORITY_REASONS))
    matter_code = Str(load_default=None, allow_none=True, validate=_length(1, 32))


class CompleteSchema(Schema):
    outcome = Str(load_default="done", validate=_one_of(domain.OUTCOMES))
    application_id = Str(load_default=None, allow_none=True, validate=_length(1, 128))
    matter_code = Str(load_default=None, allow_none=True, validate=_length(1, 32))


class BookSchema(Schema):
    category = Str(required=True, validate=_length(1, 1))
    date = fields.Date(required=True, error_messages=_msgs(invalid="日期应写成 YYYY-MM-DD"))
    slot = Str(required=True)
    phone = Str(required=True)
    channel = Str(load_default="web", validate=_one_of(("web", "wechat", "phone", "staff")))


def text(value: Any, name: str, max_len: int = 128, *, optional: bool = False) -> str | None:
    """A short required (or optional) text argument."""
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise InvalidInput.field(name, "应为文本")
    result = str(value).strip()
    if not 1 <= len(result) <= max_len:
        raise InvalidInput.field(name, f"长度应在 1 到 {max_len} 之间")
    return result
