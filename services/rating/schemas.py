"""Marshmallow schemas of the rating service, built with ``services.common.validation``:
RPC arguments refuse unknown fields (``Arguments``); invitation records written by queue
and matters ignore them (``Message``), see docs/architecture.md, "Validation"."""

from __future__ import annotations

from typing import Any

from marshmallow import ValidationError, fields, validate, validates_schema

from services.common.validation import (
    Arguments,
    Message,
    boolean,
    identifier,
    integer,
    one_of,
    text,
)
from services.rating.domain import (
    DETAIL_QUESTIONS,
    DIMENSIONS,
    EXPORT_PROFILES,
    SUGGESTION,
    CaseState,
    Channel,
    Classification,
    Level,
    RefKind,
)

SITE_CODE = r"^\d{6}(\d{3}){0,2}$"
SITE_CODE_RULE = "应为 6、9 或 12 位站点编码"
GROUP_BY = (*DIMENSIONS, "site", "day", "week", "month")


def optional(max_len: int) -> fields.String:
    """A string of at most ``max_len`` characters, or null (the default)."""
    return text(max_len, min_len=0, load_default=None, allow_none=True)


def optional_id(max_len: int) -> fields.String:
    """An id or code (``validation.identifier``), or null (the default)."""
    return identifier(max_len, load_default=None, allow_none=True)


def values(enum: Any) -> list[str]:
    return [e.value for e in enum]


class ServiceRefSchema(Arguments):
    kind = fields.String(required=True, validate=one_of(values(RefKind)))
    id = optional_id(100)


class RaterSchema(Arguments):
    real_name = boolean(load_default=False)
    name = optional(50)
    phone = text(
        21,
        min_len=0,
        pattern=r"^\+?\d[\d -]{5,18}\d$",
        rule="应为电话号码",
        load_default=None,
        allow_none=True,
    )
    device_id = optional(100)
    staff_id = optional_id(64)

    @validates_schema
    def _real_name(self, data: dict[str, Any], **kwargs: Any) -> None:
        if data.get("real_name") and not data.get("phone"):
            raise ValidationError("实名评价须留手机号以便回访", "phone")
        if not data.get("real_name") and (data.get("name") or data.get("phone")):
            raise ValidationError("匿名评价不收集姓名和手机号", "real_name")


class ReasonsSchema(Arguments):
    tags = fields.List(
        text(20), load_default=list, validate=validate.Length(max=10, error="最多 10 项")
    )
    text = optional(500)


class DetailsSchema(Arguments):
    guide_clear = boolean(load_default=None, allow_none=True)
    procedure_convenient = boolean(load_default=None, allow_none=True)
    materials_simplified = boolean(load_default=None, allow_none=True)
    interface_friendly = boolean(load_default=None, allow_none=True)
    suggestion = optional(500)


assert set(DetailsSchema._declared_fields) == {*DETAIL_QUESTIONS, SUGGESTION}


class SubmissionSchema(Arguments):
    service_ref = fields.Nested(ServiceRefSchema, required=True)
    invitation_id = optional_id(120)
    # The client's idempotency key (the pad's): a retry with the same key gets the first
    # result and stores nothing more.
    request_id = optional_id(64)
    site_code = text(12, pattern=SITE_CODE, rule=SITE_CODE_RULE, load_default=None, allow_none=True)
    window = optional(20)
    staff_id = optional_id(64)
    matter_code = optional_id(40)
    department = optional(100)
    service_ended_at = fields.AwareDateTime(load_default=None, allow_none=True)
    channel = fields.String(required=True, validate=one_of(values(Channel)))
    level = fields.String(required=True, validate=one_of(values(Level)))
    details = fields.Nested(DetailsSchema, load_default=dict)
    reasons = fields.Nested(ReasonsSchema, load_default=None, allow_none=True)
    comment = optional(1000)
    rater = fields.Nested(RaterSchema, load_default=lambda: {"real_name": False})
    entered_by = optional_id(64)


class CaseListSchema(Arguments):
    state = fields.String(load_default=None, allow_none=True, validate=one_of(values(CaseState)))
    unit = optional(100)
    overdue = boolean(load_default=None, allow_none=True)
    limit = integer(1, 1000, load_default=100)


class ActorSchema(Arguments):
    case_id = identifier(200, required=True)
    by = identifier(64, required=True)


class AssignSchema(ActorSchema):
    handler = identifier(64, required=True)


class CallbackSchema(ActorSchema):
    contacted = boolean(required=True)
    note = text(1000, required=True)


class ClassifySchema(ActorSchema):
    classification = fields.String(required=True, validate=one_of(values(Classification)))
    note = text(1000, required=True)
    approver = optional_id(64)
    deadline = fields.Date(load_default=None, allow_none=True)


class RectificationSchema(ActorSchema):
    measures = text(2000, required=True)


class FeedbackSchema(ActorSchema):
    method = fields.String(
        required=True, validate=one_of(["phone", "sms", "letter", "visit", "online"])
    )
    content = text(2000, required=True)


class AppealSchema(ActorSchema):
    unit = text(100, required=True)
    reason = text(2000, required=True)


class ReviewAppealSchema(Arguments):
    case_id = identifier(200, required=True)
    reviewer = identifier(64, required=True)
    upheld = boolean(required=True)
    reason = text(1000, required=True)


class ReviewHeldSchema(Arguments):
    evaluation_id = identifier(250, required=True)
    reviewer = identifier(64, required=True)
    accept = boolean(required=True)
    note = text(1000, required=True)


class StatsFilterSchema(Arguments):
    site_code = text(12, pattern=SITE_CODE, rule=SITE_CODE_RULE, load_default=None, allow_none=True)
    date_from = fields.Date(load_default=None, allow_none=True)
    date_to = fields.Date(load_default=None, allow_none=True)
    window = optional(20)
    staff = optional_id(64)
    matter = optional_id(40)
    department = optional(100)
    channel = fields.String(load_default=None, allow_none=True, validate=one_of(values(Channel)))

    @validates_schema
    def _dates_in_order(self, data: dict[str, Any], **kwargs: Any) -> None:
        if data.get("date_from") and data.get("date_to") and data["date_from"] > data["date_to"]:
            raise ValidationError("起始日期不能晚于截止日期", "date_from")


class RankingsSchema(Arguments):
    month = text(7, pattern=r"^[0-9]{4}-[0-9]{2}\Z", rule="应为 YYYY-MM", required=True)
    dimension = fields.String(required=True, validate=one_of(["window", "staff"]))
    limit = integer(1, 1000, required=True)


class EvaluationArgs(Arguments):
    evaluation_id = identifier(250, required=True)


class WindowArgs(Arguments):
    window = text(20, required=True)


class InvitationStatusArgs(Arguments):
    """A ticket or an application, as its capability link names it (the gateway's)."""

    kind = fields.String(required=True, validate=one_of([RefKind.TICKET, RefKind.APPLICATION]))
    ref_id = identifier(100, required=True)
    request_id = optional_id(64)


class CaseArgs(Arguments):
    case_id = identifier(200, required=True)


class RevealArgs(Arguments):
    case_id = identifier(200, required=True)
    by = identifier(64, required=True)


class GroupByArgs(Arguments):
    group_by = fields.String(load_default=None, allow_none=True, validate=one_of(GROUP_BY))


class PeriodArgs(Arguments):
    period = text(
        7, pattern=r"^[0-9]{4}(-[0-9]{2})?\Z", rule="应为 YYYY-MM（月）或 YYYY（年）", required=True
    )


class ExportSchema(Arguments):
    profile = fields.String(required=True, validate=one_of(sorted(EXPORT_PROFILES)))
    date_from = fields.Date(required=True)
    date_to = fields.Date(required=True)
    after = integer(0, load_default=0)
    limit = integer(1, 5000, load_default=500)


class InvitationSchema(Message):
    """A record of the ``evaluation_invitations`` feeds; unknown fields are ignored."""

    id = text(200, required=True)
    schema = fields.Integer(required=True, validate=validate.Equal(1, error="只支持 schema 1"))
    service_ref = fields.Nested(ServiceRefSchema, required=True)
    site_code = fields.String(required=True)
    window = optional(20)
    staff_id = optional(64)
    matter_code = optional(40)
    department = optional(100)
    service_channel = optional(20)
    service_ended_at = fields.String(required=True)
    created_at = fields.String(load_default=None, allow_none=True)
