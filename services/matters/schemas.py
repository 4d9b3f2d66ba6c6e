"""Marshmallow schemas at the boundary: shapes and types, with Chinese messages that name the
field and the rule. Catalog rules (codes, enumerations, limits, banned words) live in
``domain.Matter.validate``; unknown fields are ignored so newer callers keep working."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from marshmallow import EXCLUDE, Schema, ValidationError, fields, validate

from services.common.errors import InvalidInput
from services.matters import domain

_INVALID: dict[type[fields.Field[Any]], str] = {
    fields.String: "应为文字",
    fields.Integer: "应为整数",
    fields.Boolean: "应为 true 或 false",
    fields.List: "应为列表",
    fields.Nested: "应为对象",
    fields.Dict: "应为对象",
}


def _messages(cls: type[fields.Field[Any]], label: str) -> dict[str, Any]:
    return {
        "required": f"缺少{label}（必填）",
        "null": f"{label}不能为空",
        "invalid": f"{label}{_INVALID.get(cls, '格式不正确')}",
        "type": f"{label}{_INVALID.get(cls, '格式不正确')}",
        "too_large": f"{label}数值过大",
        "validator_failed": f"{label}取值不符合要求",
    }


def str_field(
    label: str,
    *,
    required: bool = False,
    one_of: Mapping[str, str] | None = None,
    max_len: int | None = None,
    **kw: Any,
) -> fields.String:
    validators = list(kw.pop("validate", []))
    if one_of is not None:
        allowed = "、".join(f"{k}（{v}）" for k, v in one_of.items())
        validators.append(validate.OneOf(list(one_of), error=f"{label}应为之一：{allowed}"))
    if max_len is not None:
        validators.append(validate.Length(max=max_len, error=f"{label}最多 {max_len} 个字"))
    if required:
        validators.append(validate.Length(min=1, error=f"{label}不能为空"))
    return fields.String(
        required=required,
        validate=validators,
        error_messages=_messages(fields.String, label),
        **kw,
    )


def int_field(
    label: str,
    *,
    required: bool = False,
    low: int | None = None,
    high: int | None = None,
    **kw: Any,
) -> fields.Integer:
    validators = []
    if low is not None or high is not None:
        rule = f"应在 {low} 到 {high} 之间" if high is not None else f"应不小于 {low}"
        validators.append(validate.Range(min=low, max=high, error=f"{label}{rule}"))
    return fields.Integer(
        required=required,
        strict=True,
        validate=validators,
        error_messages=_messages(fields.Integer, label),
        **kw,
    )


def bool_field(label: str, **kw: Any) -> fields.Boolean:
    return fields.Boolean(error_messages=_messages(fields.Boolean, label), **kw)


def list_field(inner: fields.Field[Any], label: str, **kw: Any) -> fields.List[Any]:
    return fields.List(inner, error_messages=_messages(fields.List, label), **kw)


def nested_field(schema: type[Schema], label: str, **kw: Any) -> fields.Nested:
    return fields.Nested(schema, error_messages=_messages(fields.Nested, label), **kw)


class _Base(Schema):
    class Meta:
        unknown = EXCLUDE


class AgencySchema(_Base):
    name = str_field("实施主体名称", required=True, max_len=100)
    credit_code = str_field("统一社会信用代码", load_default=None, allow_none=True)
    nature = str_field("实施主体性质", required=True, one_of=domain.AGENCY_NATURES)


class StepSchema(_Base):
    step = str_field("环节名称", required=True, max_len=50)
    description = str_field("环节说明", load_default="", max_len=500)


class MaterialSchema(_Base):
    name = str_field("材料名称", required=True, max_len=100)
    issuer = str_field("出具机构", load_default="申请人自备", max_len=100)
    originals = int_field("原件份数", load_default=1, low=0, high=99)
    copies = int_field("复印件份数", load_default=0, low=0, high=99)
    required = bool_field("是否必备", load_default=True)
    form = str_field("材料形式", load_default="1", one_of=domain.MATERIAL_FORMS)
    blank_form = str_field("空白表格", load_default=None, allow_none=True, max_len=300)
    sample = str_field("示例样表", load_default=None, allow_none=True, max_len=300)
    acceptance_standard = str_field("受理标准", required=True, max_len=300)
    note = str_field("备注", load_default="", max_len=300)


class FeesSchema(_Base):
    charged = bool_field("是否收费", load_default=False)
    basis = str_field("收费依据", load_default="", max_len=300)
    standard = str_field("收费标准", load_default="", max_len=300)


class ResultSchema(_Base):
    name = str_field("结果名称", required=True, max_len=100)
    sample = str_field("结果样本", load_default=None, allow_none=True, max_len=300)


class FaqSchema(_Base):
    q = str_field("问题", required=True, max_len=300)
    a = str_field("解答", required=True, max_len=1000)


class MatterSchema(_Base):
    """The GB/T 39046 table 4 elements of one matter (事项)."""

    code = str_field("实施编码", required=True)
    basic_code = str_field("基本编码", required=True)
    name = str_field("事项名称", required=True, max_len=100)
    aliases = list_field(str_field("别名", max_len=50), "别名", load_default=list)
    type = str_field("事项类型", required=True)
    legal_basis = list_field(str_field("设定依据", max_len=500), "设定依据", required=True)
    exercise_level = str_field("行使层级", required=True)
    agency = nested_field(AgencySchema, "实施主体", required=True)
    legal_limit_days = int_field("法定办结时限", required=True)
    promised_limit_days = int_field("承诺办结时限", required=True)
    limit_note = str_field("时限说明", load_default="", max_len=300)
    case_type = str_field("办件类型", required=True)
    conditions = list_field(str_field("受理条件", max_len=300), "受理条件", required=True)
    procedure = list_field(nested_field(StepSchema, "办理环节"), "办理流程", required=True)
    result = nested_field(ResultSchema, "办理结果", required=True)
    materials = list_field(nested_field(MaterialSchema, "申请材料"), "申请材料", load_default=list)
    no_materials_needed = bool_field("无需材料", load_default=False)
    fees = nested_field(FeesSchema, "收费", load_default=lambda: {"charged": False})
    audience = list_field(str_field("服务对象"), "服务对象", required=True)
    handling_forms = list_field(str_field("办理形式"), "办理形式", required=True)
    appointment = bool_field("是否支持预约", load_default=False)
    online_payment = bool_field("是否支持网上支付", load_default=False)
    express_delivery = bool_field("是否支持物流快递", load_default=False)
    online = bool_field("是否网办", load_default=False)
    visits = int_field("到办事现场次数", required=True)
    place = str_field("办理地点", required=True, max_len=200)
    hours = str_field("办理时间", required=True, max_len=200)
    consultation_phone = str_field("咨询电话", required=True)
    supervision_phone = str_field("监督电话", required=True)
    faq = list_field(nested_field(FaqSchema, "常见问题"), "常见问题", load_default=list)
    handled_at = list_field(str_field("可办理层级"), "可办理层级", required=True)
    proxy_at = list_field(str_field("代办层级"), "代办层级", load_default=list)


class SearchSchema(_Base):
    q = str_field("关键词", load_default="", max_len=50)
    type = str_field("事项类型", load_default=None, allow_none=True, one_of=domain.MATTER_TYPES)
    department = str_field("实施部门", load_default=None, allow_none=True, max_len=100)
    tier = str_field("层级", load_default=None, allow_none=True, one_of=domain.TIERS)
    online = bool_field("是否网办", load_default=None, allow_none=True)
    availability = str_field(
        "本站办理方式", load_default=None, allow_none=True, one_of=domain.AVAILABILITY
    )
    include_retired = bool_field("含已废止事项", load_default=False)
    limit = int_field("每页条数", load_default=20, low=1, high=100)
    offset = int_field("起始位置", load_default=0, low=0, high=100000)


class ApplicantSchema(_Base):
    kind = str_field(
        "申请人类型", required=True, one_of={"person": "自然人", "organisation": "法人或组织"}
    )
    name = str_field("申请人名称", required=True, max_len=100)
    id_number = str_field("证件号码", required=True, max_len=30)
    phone = str_field("联系电话", load_default=None, allow_none=True, max_len=20)


class PresentedSchema(_Base):
    name = str_field("材料名称", required=True, max_len=100)
    valid = bool_field("是否符合受理标准", load_default=True)
    problem = str_field("问题说明", load_default=None, allow_none=True, max_len=200)


class RefusalSchema(_Base):
    reason = str_field("不予受理理由", required=True, max_len=500)
    basis = str_field("政策依据", required=True, max_len=500)


class SubmitSchema(_Base):
    matter_code = str_field("事项编码", required=True, max_len=24)
    applicant = nested_field(ApplicantSchema, "申请人", required=True)
    channel = str_field("办理渠道", required=True, one_of=domain.CHANNELS)
    materials = list_field(nested_field(PresentedSchema, "提交材料"), "提交材料", load_default=list)
    refusal = nested_field(RefusalSchema, "不予受理", load_default=None, allow_none=True)
    window = str_field("窗口号", load_default=None, allow_none=True, max_len=20)
    staff_id = str_field("工作人员编号", load_default=None, allow_none=True, max_len=50)


class ListSchema(_Base):
    state = str_field("办件状态", load_default=None, allow_none=True, one_of=domain.STATES)
    due_state = str_field("时限状态", load_default=None, allow_none=True, one_of=domain.DUE_STATES)
    matter_code = str_field("事项编码", load_default=None, allow_none=True, max_len=24)
    applicant_id_number = str_field(
        "申请人证件号码", load_default=None, allow_none=True, max_len=30
    )
    limit = int_field("每页条数", load_default=50, low=1, high=500)


# Schema instances are reusable and costly to build: one each, shared by every call.
MATTER = MatterSchema()
SEARCH = SearchSchema()
SUBMIT = SubmitSchema()
MATERIALS = SubmitSchema(only=("materials",))
REFUSAL = RefusalSchema()
LIST = ListSchema()


def load(schema: Schema, data: Any, what: str = "输入") -> dict[str, Any]:
    """Validate ``data``; a broken rule raises ``InvalidInput`` with flattened field paths."""
    if not isinstance(data, Mapping):
        raise InvalidInput.field(what, "应为对象（键值对）")
    try:
        result: dict[str, Any] = schema.load(data)
    except ValidationError as exc:
        raise invalid(flatten(exc.messages)) from None
    return result


def invalid(fields_: Mapping[str, list[str]]) -> InvalidInput:
    items = sorted(fields_.items())
    if len(items) == 1 and len(items[0][1]) == 1:
        return InvalidInput(f"{items[0][0]}：{items[0][1][0]}", fields_)
    summary = "；".join(f"{k}：{'，'.join(v)}" for k, v in items[:5])
    more = f"（共 {len(items)} 处）" if len(items) > 5 else ""
    return InvalidInput(f"输入有误：{summary}{more}", fields_)


def flatten(messages: Any, prefix: str = "") -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    if isinstance(messages, Mapping):
        for key, value in messages.items():
            if isinstance(key, int):
                path = f"{prefix}[{key}]"
            elif key == "_schema":
                path = prefix or "输入"
            else:
                path = f"{prefix}.{key}" if prefix else str(key)
            for k, v in flatten(value, path).items():
                out.setdefault(k, []).extend(v)
    elif isinstance(messages, list) and all(isinstance(m, str) for m in messages):
        out[prefix] = list(messages)
    elif isinstance(messages, list):
        for i, value in enumerate(messages):
            out.update(flatten(value, f"{prefix}[{i}]"))
    else:
        out[prefix] = [str(messages)]
    return out
