"""Marshmallow schemas of matters, built from ``services.common.validation`` (docs/
architecture.md, "Validation"): shapes and types only. Catalog rules (codes, enumerations,
limits, banned words) live in ``domain.catalog.Matter.validate``.

RPC arguments (``validation.Arguments``) refuse unknown fields; catalog records replicated
down from the catalog source (``validation.Message``) ignore them, so an upstream site may
run a newer version.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from services.common.feeds import MAX_PAGE
from services.common.store.port import MAX_VERSION
from services.common.validation import (
    ID_PATTERN,
    Arguments,
    Message,
    boolean,
    identifier,
    integer,
    one_of,
    text,
)
from services.matters.domain import (
    AGENCY_NATURES,
    AVAILABILITY,
    CHANNELS,
    DELIVERY_METHODS,
    DUE_STATES,
    MATERIAL_FORMS,
    MATTER_TYPES,
    STATES,
    SUSPENSION_REASONS,
    TIERS,
)


def _optional(max_len: int | None = None, default: str | None = None) -> fields.String:
    """Text that may be left out (``default``), empty, or null when the default is null."""
    return text(max_len, min_len=0, load_default=default, allow_none=default is None)


def _optional_id(max_len: int) -> fields.String:
    """An identifier (``validation.identifier``'s alphabet) that may be left out or empty."""
    return text(
        max_len,
        min_len=0,
        pattern=f"(?:{ID_PATTERN})?\\Z",
        rule="只能含字母、数字、汉字和 : . _ -，且以字母、数字或汉字开头",
        load_default=None,
        allow_none=True,
    )


def _code(**kw: Any) -> fields.String:
    """A matter's 实施编码 as an argument (its full rule is ``domain.catalog``'s)."""
    return identifier(24, **kw)


def _list(
    inner: fields.Field[Any], max_items: int = 100, min_items: int = 0, **kw: Any
) -> fields.List[Any]:
    """A list of ``min_items``..``max_items`` items, each validated by ``inner``."""
    rule = f"应列出 {min_items} 到 {max_items} 项" if min_items else f"最多 {max_items} 项"
    size = validate.Length(min=min_items or None, max=max_items, error=rule)
    return fields.List(inner, validate=[size], **kw)


def _nested(schema: type[Arguments], **kw: Any) -> fields.Nested:
    return fields.Nested(schema, **kw)


# Bounds of a matter's numbers: working days of a time limit, visits to the hall.
MAX_LIMIT_DAYS = 999
MAX_VISITS = 99


class AgencySchema(Arguments):
    name = text(100, required=True)
    credit_code = _optional(18)
    nature = text(required=True, validate=[one_of(AGENCY_NATURES)])


class StepSchema(Arguments):
    step = text(50, required=True)
    description = _optional(500, "")


class MaterialSchema(Arguments):
    name = text(100, required=True)
    issuer = _optional(100, "申请人自备")
    originals = integer(0, 99, load_default=1)
    copies = integer(0, 99, load_default=0)
    required = boolean(load_default=True)
    form = text(load_default="1", validate=[one_of(MATERIAL_FORMS)])
    blank_form = _optional(300)
    sample = _optional(300)
    acceptance_standard = text(300, required=True)
    note = _optional(300, "")


class FeesSchema(Arguments):
    charged = boolean(load_default=False)
    basis = _optional(300, "")
    standard = _optional(300, "")


class ResultSchema(Arguments):
    name = text(100, required=True)
    sample = _optional(300)


class FaqSchema(Arguments):
    q = text(300, required=True)
    a = text(1000, required=True)


class MatterSchema(Arguments):
    """The GB/T 39046 table 4 elements of one matter (事项); codes and enumerations are
    checked by ``domain.catalog.Matter.validate``, sizes and types here."""

    code = text(24, required=True)
    basic_code = text(10, required=True)
    name = text(100, required=True)
    aliases = _list(text(50), 20, load_default=list)
    type = text(2, required=True)
    legal_basis = _list(text(500), 50, required=True)
    exercise_level = text(1, required=True)
    agency = _nested(AgencySchema, required=True)
    legal_limit_days = integer(0, MAX_LIMIT_DAYS, required=True)
    promised_limit_days = integer(0, MAX_LIMIT_DAYS, required=True)
    limit_note = _optional(300, "")
    case_type = text(1, required=True)
    conditions = _list(text(300), 100, required=True)
    procedure = _list(_nested(StepSchema), 50, required=True)
    result = _nested(ResultSchema, required=True)
    materials = _list(_nested(MaterialSchema), 100, load_default=list)
    no_materials_needed = boolean(load_default=False)
    fees = _nested(FeesSchema, load_default=lambda: {"charged": False})
    audience = _list(text(1), 10, required=True)
    handling_forms = _list(text(1), 10, required=True)
    appointment = boolean(load_default=False)
    online_payment = boolean(load_default=False)
    express_delivery = boolean(load_default=False)
    online = boolean(load_default=False)
    visits = integer(0, MAX_VISITS, required=True)
    place = text(200, required=True)
    hours = text(200, required=True)
    consultation_phone = text(20, required=True)
    supervision_phone = text(20, required=True)
    faq = _list(_nested(FaqSchema), 100, load_default=list)
    handled_at = _list(text(20), 10, required=True)
    proxy_at = _list(text(20), 10, load_default=list)


class SearchSchema(Arguments):
    q = _optional(50, "")
    type = text(load_default=None, allow_none=True, validate=[one_of(MATTER_TYPES)])
    department = _optional(100)
    tier = text(load_default=None, allow_none=True, validate=[one_of(TIERS)])
    online = boolean(load_default=None, allow_none=True)
    availability = text(load_default=None, allow_none=True, validate=[one_of(AVAILABILITY)])
    include_retired = boolean(load_default=False)
    # Exactly these matters (e.g. the names of a report's rows, in one call); with the
    # other filters, those of them that also match.
    codes = _list(_code(), 100, load_default=None, allow_none=True)
    limit = integer(1, 100, load_default=20)
    offset = integer(0, 100000, load_default=0)


class ApplicantSchema(Arguments):
    kind = text(
        required=True, validate=[one_of({"person": "自然人", "organisation": "法人或组织"})]
    )
    name = text(100, required=True)
    id_number = text(30, required=True)
    phone = _optional(20)


class PresentedSchema(Arguments):
    name = text(100, required=True)
    valid = boolean(load_default=True)
    problem = _optional(200)


class RefusalSchema(Arguments):
    reason = text(500, required=True)
    basis = text(500, required=True)


class SubmitSchema(Arguments):
    matter_code = _code(required=True)
    applicant = _nested(ApplicantSchema, required=True)
    channel = text(required=True, validate=[one_of(CHANNELS)])
    materials = _list(_nested(PresentedSchema), load_default=list)
    refusal = _nested(RefusalSchema, load_default=None, allow_none=True)
    window = _optional_id(20)
    staff_id = _optional_id(64)


class ListSchema(Arguments):
    state = text(load_default=None, allow_none=True, validate=[one_of(STATES)])
    due_state = text(load_default=None, allow_none=True, validate=[one_of(DUE_STATES)])
    matter_code = _optional_id(24)
    applicant_id_number = _optional(30)
    limit = integer(1, 500, load_default=50)


class CodeSchema(Arguments):
    """``publish_matter(code)``; the base of every call naming one matter."""

    code = _code(required=True)


class MatterVersionSchema(CodeSchema):
    version = integer(1, MAX_VERSION, load_default=None, allow_none=True)


class ApprovalSchema(CodeSchema):
    approved_by = text(100, required=True, pattern=r"(?s).*\S.*", rule="审定人不能为空")


class RetireSchema(CodeSchema):
    reason = text(500, required=True, pattern=r"(?s).*\S.*", rule="废止事项应写明理由")


class AvailabilitySchema(CodeSchema):
    availability = text(required=True, validate=[one_of(AVAILABILITY)])


class ProgressSchema(Arguments):
    """``application_progress``: a citizen's 办件编号 and the last six characters of the
    applicant's ID number (the gateway's progress page)."""

    number = text(40, pattern=r"^[0-9]{6,40}\Z", rule="办件编号应为数字", required=True)
    id_suffix = text(
        6, pattern=r"^[0-9Xx]{6}\Z", rule="应为证件号码的后 6 位（数字或 X）", required=True
    )


class ApplicationRefSchema(Arguments):
    """``start_review``, ``resume_application``, ``get_application``; the base of every call
    naming one application (id ``<site>-<uuid>``)."""

    application_id = identifier(80, required=True)


class SupplementSchema(ApplicationRefSchema):
    materials = _list(_nested(PresentedSchema), 100, 1, required=True)


class RefuseSchema(ApplicationRefSchema, RefusalSchema):
    pass


class DecisionSchema(ApplicationRefSchema):
    decision = text(required=True, validate=[one_of({"approve": "准予", "deny": "不予批准"})])
    reason = _optional(500)

    @validates_schema
    def _deny_needs_reason(self, data: Mapping[str, Any], **_: Any) -> None:
        if data.get("decision") == "deny" and not (data.get("reason") or "").strip():
            raise ValidationError("不予批准应书面说明理由", "reason")


class CompletionSchema(ApplicationRefSchema):
    overdue_reason = _optional(500)
    result = _optional(500)


class DeliverySchema(ApplicationRefSchema):
    method = text(required=True, validate=[one_of(DELIVERY_METHODS)])
    tracking_number = _optional(50)

    @validates_schema
    def _mail_needs_tracking(self, data: Mapping[str, Any], **_: Any) -> None:
        if data.get("method") == "mail" and not (data.get("tracking_number") or "").strip():
            raise ValidationError("邮寄送达应填写快递单号", "tracking_number")


class SuspensionSchema(ApplicationRefSchema):
    reason = text(required=True, validate=[one_of(SUSPENSION_REASONS)])
    note = _optional(500)


def known_only(schema: Schema, data: Any) -> Any:
    """``data`` without the fields ``schema`` does not declare, at every depth: what a newer
    catalog source may add is dropped, everything this version knows is still checked."""
    if not isinstance(data, Mapping):
        return data
    return {
        key: _known_value(schema.fields[key], value)
        for key, value in data.items()
        if isinstance(key, str) and key in schema.fields
    }


def _known_value(field: fields.Field[Any], value: Any) -> Any:
    if isinstance(field, fields.Nested) and isinstance(field.schema, Schema):
        return known_only(field.schema, value)
    if isinstance(field, fields.List) and isinstance(value, list):
        return [_known_value(field.inner, item) for item in value]
    return value


class ReplicatedMatter(fields.Field[dict[str, Any]]):
    """The matter content of a replicated catalog version: sizes and types as
    ``MatterSchema`` checks them (the source applied the catalog rules when publishing)."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kw: Any) -> dict[str, Any]:
        if not isinstance(value, Mapping):
            raise ValidationError("应为对象（键值对）")
        loaded: dict[str, Any] = MATTER.load(known_only(MATTER, value))
        return loaded


class CatalogRecordSchema(Message):
    """One catalog version replicated from upstream (``<code>@<n>``, read-only below)."""

    id = text(40, required=True)
    schema = integer(1, 1000, load_default=1)
    code = _code(required=True)
    matter_version = integer(1, MAX_VERSION, required=True)
    status = text(required=True, validate=[one_of(("published", "retired"))])
    matter = ReplicatedMatter(required=True)
    site_code = identifier(24, required=True)
    published_at = _optional(40)
    retired_at = _optional(40)
    created_at = text(40, required=True)
    updated_at = text(40, required=True)
    version = integer(1, MAX_VERSION, required=True)
    approved_at = _optional(40)
    approved_by = _optional(100)
    change_id = _optional(64)
    retire_reason = _optional(500)

    @validates_schema
    def _consistent(self, data: Mapping[str, Any], **_: Any) -> None:
        code, number = data.get("code"), data.get("matter_version")
        if data.get("id") != f"{code}@{number}":
            raise ValidationError("id 应为 <实施编码>@<版本号>", "id")
        if data["matter"].get("code") != code:
            raise ValidationError("matter 应为该事项的内容（实施编码一致）", "matter")


class CatalogBatchSchema(Arguments):
    docs = _list(fields.Nested(CatalogRecordSchema), MAX_PAGE, required=True)


# Schema instances are reusable and costly to build: one each, shared by every call.
MATTER = MatterSchema()
SEARCH = SearchSchema()
SUBMIT = SubmitSchema()
LIST = ListSchema()
CODE = CodeSchema()
MATTER_VERSION = MatterVersionSchema()
APPROVAL = ApprovalSchema()
RETIREMENT = RetireSchema()
AVAILABILITY_CHOICE = AvailabilitySchema()
APPLICATION_REF = ApplicationRefSchema()
PROGRESS = ProgressSchema()
SUPPLEMENT = SupplementSchema()
REFUSE = RefuseSchema()
DECISION = DecisionSchema()
COMPLETION = CompletionSchema()
DELIVERY = DeliverySchema()
SUSPENSION = SuspensionSchema()
CATALOG_BATCH = CatalogBatchSchema()
