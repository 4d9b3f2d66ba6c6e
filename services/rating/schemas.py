"""Marshmallow schemas at the RPC boundary; every message names the field and the rule in
Chinese and comes back as ``InvalidInput(message, fields)``."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from marshmallow import EXCLUDE, RAISE, Schema, ValidationError, fields, validate, validates_schema

from services.common.errors import InvalidInput
from services.rating.domain import (
    DETAIL_QUESTIONS,
    DIMENSIONS,
    EXPORT_PROFILES,
    SUGGESTION,
    Channel,
    Classification,
    Level,
    RefKind,
)

_TRANSLATIONS = (
    (re.compile(r"Missing data for required field\."), "必填"),
    (re.compile(r"Unknown field\."), "不认识的字段"),
    (re.compile(r"Field may not be null\."), "不能为空"),
    (re.compile(r"Not a valid string\."), "应为字符串"),
    (re.compile(r"Not a valid integer\."), "应为整数"),
    (re.compile(r"Not a valid boolean\."), "应为 true 或 false"),
    (re.compile(r"Not a valid datetime\."), "应为带时区的 ISO-8601 时间"),
    (re.compile(r"Not a valid date\."), "应为 YYYY-MM-DD 日期"),
    (re.compile(r"Not a valid list\."), "应为列表"),
    (re.compile(r"Invalid input type\."), "类型不对"),
    (re.compile(r"Not a valid mapping type\."), "应为对象"),
    (re.compile(r"Must be one of: (.*)\."), r"应为以下之一：\1"),
    (re.compile(r"Longer than maximum length (\d+)\."), r"最长 \1"),
    (re.compile(r"Shorter than minimum length (\d+)\."), r"最短 \1"),
    (re.compile(r"Length must be between (\d+) and (\d+)\."), r"长度应在 \1 到 \2 之间"),
    (
        re.compile(r"Must be greater than or equal to (\S+) and less than or equal to (\S+)\."),
        r"应在 \1 到 \2 之间",
    ),
)


def _zh(message: str) -> str:
    for pattern, text in _TRANSLATIONS:
        if pattern.fullmatch(message):
            return pattern.sub(text, message)
    return message


def _flatten(messages: Any, prefix: str = "") -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    if isinstance(messages, Mapping):
        for key, value in messages.items():
            name = f"{prefix}.{key}" if prefix else str(key)
            for k, v in _flatten(value, name).items():
                out.setdefault(k, []).extend(v)
    elif isinstance(messages, list | tuple):
        for item in messages:
            if isinstance(item, Mapping | list | tuple):
                for k, v in _flatten(item, prefix).items():
                    out.setdefault(k, []).extend(v)
            else:
                out.setdefault(prefix or "_schema", []).append(_zh(str(item)))
    else:
        out.setdefault(prefix or "_schema", []).append(_zh(str(messages)))
    return out


def load(schema: Schema, data: Any) -> dict[str, Any]:
    """Validate ``data``; raise ``InvalidInput`` naming every bad field and rule in Chinese."""
    if not isinstance(data, Mapping):
        raise InvalidInput("输入应为对象", {"_schema": ["输入应为对象"]})
    try:
        result: dict[str, Any] = schema.load(data)
    except ValidationError as exc:
        fields_ = _flatten(exc.messages)
        summary = "；".join(f"{k}：{'，'.join(v)}" for k, v in sorted(fields_.items()))
        raise InvalidInput(f"输入有误：{summary}", fields_) from None
    return result


def _enum(enum: Any) -> validate.OneOf:
    return validate.OneOf([e.value for e in enum])


def Text(n: int, **kw: Any) -> fields.String:  # noqa: N802  (reads like a field type)
    return fields.String(validate=validate.Length(min=1, max=n), **kw)


def Opt(n: int) -> fields.String:  # noqa: N802
    return fields.String(load_default=None, allow_none=True, validate=validate.Length(max=n))


class _Strict(Schema):
    class Meta:
        unknown = RAISE


class ServiceRefSchema(_Strict):
    kind = fields.String(required=True, validate=_enum(RefKind))
    id = Text(100, load_default=None, allow_none=True)


class RaterSchema(_Strict):
    real_name = fields.Boolean(load_default=False)
    name = Opt(50)
    phone = fields.String(
        load_default=None,
        allow_none=True,
        validate=validate.Regexp(r"^\+?\d[\d -]{5,18}\d$", error="应为电话号码"),
    )
    device_id = Opt(100)
    staff_id = Opt(64)

    @validates_schema
    def _real_name(self, data: dict[str, Any], **kwargs: Any) -> None:
        if data.get("real_name") and not data.get("phone"):
            raise ValidationError("实名评价须留手机号以便回访", "phone")
        if not data.get("real_name") and (data.get("name") or data.get("phone")):
            raise ValidationError("匿名评价不收集姓名和手机号", "real_name")


class ReasonsSchema(_Strict):
    tags = fields.List(
        fields.String(validate=validate.Length(min=1, max=20)),
        load_default=list,
        validate=validate.Length(max=10),
    )
    text = Opt(500)


class DetailsSchema(_Strict):
    guide_clear = fields.Boolean(load_default=None, allow_none=True)
    procedure_convenient = fields.Boolean(load_default=None, allow_none=True)
    materials_simplified = fields.Boolean(load_default=None, allow_none=True)
    interface_friendly = fields.Boolean(load_default=None, allow_none=True)
    suggestion = Opt(500)


assert set(DetailsSchema._declared_fields) == {*DETAIL_QUESTIONS, SUGGESTION}


class SubmissionSchema(_Strict):
    service_ref = fields.Nested(ServiceRefSchema, required=True)
    invitation_id = Opt(120)
    site_code = fields.String(
        load_default=None,
        allow_none=True,
        validate=validate.Regexp(r"^\d{6}(\d{3}){0,2}$", error="应为 6、9 或 12 位站点编码"),
    )
    window = Opt(20)
    staff_id = Opt(64)
    matter_code = Opt(40)
    department = Opt(100)
    service_ended_at = fields.AwareDateTime(load_default=None, allow_none=True)
    channel = fields.String(required=True, validate=_enum(Channel))
    level = fields.String(required=True, validate=_enum(Level))
    details = fields.Nested(DetailsSchema, load_default=dict)
    reasons = fields.Nested(ReasonsSchema, load_default=None, allow_none=True)
    comment = Opt(1000)
    rater = fields.Nested(RaterSchema, load_default=lambda: {"real_name": False})
    entered_by = Opt(64)


class CaseListSchema(_Strict):
    state = fields.String(
        load_default=None,
        allow_none=True,
        validate=validate.OneOf(
            [
                "callback_pending",
                "classification_pending",
                "rectifying",
                "feedback_pending",
                "closed",
            ]
        ),
    )
    unit = Opt(100)
    overdue = fields.Boolean(load_default=None, allow_none=True)
    limit = fields.Integer(load_default=100, validate=validate.Range(min=1, max=1000))


class ActorSchema(_Strict):
    case_id = Text(200, required=True)
    by = Text(64, required=True)


class AssignSchema(ActorSchema):
    handler = Text(64, required=True)


class CallbackSchema(ActorSchema):
    contacted = fields.Boolean(required=True)
    note = Text(1000, required=True)


class ClassifySchema(ActorSchema):
    classification = fields.String(required=True, validate=_enum(Classification))
    note = Text(1000, required=True)
    approver = Opt(64)
    deadline = fields.Date(load_default=None, allow_none=True)


class RectificationSchema(ActorSchema):
    measures = Text(2000, required=True)


class FeedbackSchema(ActorSchema):
    method = fields.String(
        required=True, validate=validate.OneOf(["phone", "sms", "letter", "visit", "online"])
    )
    content = Text(2000, required=True)


class AppealSchema(ActorSchema):
    unit = Text(100, required=True)
    reason = Text(2000, required=True)


class ReviewAppealSchema(_Strict):
    case_id = Text(200, required=True)
    reviewer = Text(64, required=True)
    upheld = fields.Boolean(required=True)
    reason = Text(1000, required=True)


class ReviewHeldSchema(_Strict):
    evaluation_id = Text(250, required=True)
    reviewer = Text(64, required=True)
    accept = fields.Boolean(required=True)
    note = Text(1000, required=True)


class StatsFilterSchema(_Strict):
    site_code = fields.String(
        load_default=None,
        allow_none=True,
        validate=validate.Regexp(r"^\d{6}(\d{3}){0,2}$", error="应为 6、9 或 12 位站点编码"),
    )
    date_from = fields.Date(load_default=None, allow_none=True)
    date_to = fields.Date(load_default=None, allow_none=True)
    window = Opt(20)
    staff = Opt(64)
    matter = Opt(40)
    department = Opt(100)
    channel = fields.String(load_default=None, allow_none=True, validate=_enum(Channel))

    @validates_schema
    def _one_dimension(self, data: dict[str, Any], **kwargs: Any) -> None:
        given = [d for d in DIMENSIONS if data.get(d) is not None]
        if len(given) > 1:
            raise ValidationError(f"一次只能按一个维度筛选，收到 {', '.join(given)}", given[1])
        if data.get("date_from") and data.get("date_to") and data["date_from"] > data["date_to"]:
            raise ValidationError("起始日期不能晚于截止日期", "date_from")


GROUP_BY = (*DIMENSIONS, "site", "day", "week", "month")


class ExportSchema(_Strict):
    profile = fields.String(required=True, validate=validate.OneOf(sorted(EXPORT_PROFILES)))
    date_from = fields.Date(required=True)
    date_to = fields.Date(required=True)
    after = fields.Integer(load_default=0, validate=validate.Range(min=0))
    limit = fields.Integer(load_default=500, validate=validate.Range(min=1, max=5000))


class InvitationSchema(Schema):
    """A record of the ``evaluation_invitations`` feeds; unknown fields are ignored."""

    class Meta:
        unknown = EXCLUDE

    id = Text(200, required=True)
    schema = fields.Integer(required=True, validate=validate.Equal(1, error="只支持 schema 1"))
    service_ref = fields.Nested(ServiceRefSchema, required=True)
    site_code = fields.String(required=True)
    window = Opt(20)
    staff_id = Opt(64)
    matter_code = Opt(40)
    department = Opt(100)
    service_channel = Opt(20)
    service_ended_at = fields.String(required=True)
    created_at = fields.String(load_default=None, allow_none=True)
