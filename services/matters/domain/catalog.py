"""The matter catalog (政务服务事项目录): the GB/T 39046 elements of a matter and its rules.

Sources: docs/api.md (matters), GB/T 39046-2020 table 4 and annex A. Broken rules raise
``InvalidInput`` naming every field and its rule in Chinese (docs/architecture.md,
"Validation"); standard library only.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from services.common.errors import InvalidInput
from services.matters.domain.identity import CREDIT_CODE

# --- GB/T 39046-2020 annex A enumerations ---------------------------------------------------
MATTER_TYPES = {  # A.1 事项类型
    "00": "行政权力",
    "01": "行政许可",
    "02": "行政处罚",
    "03": "行政强制",
    "04": "行政征收",
    "05": "行政给付",
    "06": "行政检查",
    "07": "行政确认",
    "08": "行政奖励",
    "09": "行政裁决",
    "10": "其他行政权力",
    "20": "公共服务",
}
EXERCISE_LEVELS = {  # A.2 行使层级
    "1": "国家级",
    "2": "省级",
    "3": "市级",
    "4": "县级",
    "5": "乡镇（街道）级",
    "6": "村（社区）级",
    "7": "分级管理",
}
AUDIENCES = {  # A.3 服务对象
    "1": "自然人",
    "2": "企业法人",
    "3": "事业法人",
    "4": "社会组织法人",
    "5": "行政机关",
    "6": "其他组织",
}
HANDLING_FORMS = {  # A.4 办理形式
    "1": "窗口办理",
    "2": "网上办理",
    "3": "移动端办理",
    "4": "快递申请",
    "9": "其他",
}
CASE_TYPES = {"1": "即办件", "2": "承诺件"}  # A.x 办件类型 (9 其他 is not accepted: no deadline)
MATERIAL_FORMS = {"1": "纸质", "2": "电子", "3": "纸质或电子"}
AGENCY_NATURES = {"1": "法定机关", "2": "授权组织", "3": "受委托组织"}
TIERS = {
    "national": "国家",
    "province": "省",
    "city": "市",
    "county": "县（区）",
    "town": "乡镇（街道）",
    "village": "村（社区）",
}
AVAILABILITY = {"offered": "本站可办", "proxy_only": "本站代办", "not_offered": "本站不办"}

# Words that make a list open-ended (兜底表述), banned in conditions and material names
# (003 篇四 二(三)2). "等" inside these words is not a catch-all and is allowed.
CATCH_ALL_WORDS = ("其他", "其它")
WORDS_WITH_DENG = ("等级", "同等", "相等", "平等", "等同", "对等", "等待", "等候")

BASIC_CODE = re.compile(r"\d{10}\Z")
IMPLEMENTATION_CODE = re.compile(r"[0-9A-Z]{11,24}\Z")
PHONE = re.compile(r"[0-9][0-9-]{2,19}\Z")
NO_MATERIALS = "无需材料"


class _Problems:
    def __init__(self) -> None:
        self.fields: dict[str, list[str]] = {}

    def add(self, field: str, rule: str) -> None:
        self.fields.setdefault(field, []).append(rule)

    def raise_if_any(self) -> None:
        """One ``InvalidInput`` naming every broken rule (field path → messages)."""
        if not self.fields:
            return
        items = sorted(self.fields.items())
        if len(items) == 1 and len(items[0][1]) == 1:
            raise InvalidInput.field(items[0][0], items[0][1][0])
        summary = "；".join(f"{k}：{'，'.join(v)}" for k, v in items[:5])
        more = f"（共 {len(items)} 处）" if len(items) > 5 else ""
        raise InvalidInput(f"事项不符合目录规则：{summary}{more}", self.fields)


def catch_all_word(text: str) -> str | None:
    """The catch-all word ("等" or "其他") in ``text``, or None."""
    for word in CATCH_ALL_WORDS:
        if word in text:
            return word
    stripped = text
    for word in WORDS_WITH_DENG:
        stripped = stripped.replace(word, "")
    return "等" if "等" in stripped else None


# --- Matter ---------------------------------------------------------------------------------
class Matter:
    """政务服务事项: one catalog entry (a dict with the GB/T 39046 elements, see schemas)."""

    def __init__(self, data: Mapping[str, Any]) -> None:
        self.data = dict(data)

    @property
    def code(self) -> str:
        return str(self.data["code"])

    @property
    def is_immediate(self) -> bool:
        """即办件: done on the spot once the materials are complete."""
        return self.data.get("case_type") == "1"

    def required_materials(self) -> list[str]:
        return [m["name"] for m in self.data.get("materials", []) if m.get("required")]

    def default_availability(self, tier: str) -> str:
        """Offered where the catalog says it is handled, proxy-only where it is 代办."""
        if tier in self.data.get("handled_at", []):
            return "offered"
        if tier in self.data.get("proxy_at", []):
            return "proxy_only"
        return "not_offered"

    def validate(self) -> None:
        """Every catalog rule; raises ``InvalidInput`` listing each problem with its field."""
        d, p = self.data, _Problems()
        type_code = d.get("type")
        if type_code not in MATTER_TYPES:
            p.add("type", f"事项类型应为 GB/T 39046 附录 A 的代码之一：{_codes(MATTER_TYPES)}")
        basic = str(d.get("basic_code", ""))
        if not BASIC_CODE.match(basic):
            p.add("basic_code", "基本编码应为 10 位数字（2 位事项类型 + 5 位主项 + 3 位子项）")
        elif type_code in MATTER_TYPES and basic[:2] != type_code:
            p.add("basic_code", f"基本编码前两位应为事项类型代码 {type_code}，实际为 {basic[:2]}")
        code = str(d.get("code", ""))
        if not IMPLEMENTATION_CODE.match(code):
            p.add("code", "实施编码应为 11 到 24 位数字或大写字母")
        elif BASIC_CODE.match(basic) and not code.startswith(basic):
            p.add("code", f"实施编码应以基本编码 {basic} 开头")
        if not str(d.get("name", "")).strip():
            p.add("name", "事项名称不能为空")
        for i, alias in enumerate(d.get("aliases", [])):
            if not str(alias).strip():
                p.add(f"aliases[{i}]", "别名不能为空")
        bases = d.get("legal_basis", [])
        if not bases:
            p.add("legal_basis", "至少列出一项设定依据")
        for i, basis in enumerate(bases):
            if not re.search(r"《[^》]+》", str(basis)):
                p.add(f"legal_basis[{i}]", "设定依据应写明法律法规名称（用书名号《》）")
        if d.get("exercise_level") not in EXERCISE_LEVELS:
            p.add("exercise_level", f"行使层级应为代码之一：{_codes(EXERCISE_LEVELS)}")
        self._check_agency(p)
        self._check_limits(p)
        conditions = d.get("conditions", [])
        if not conditions:
            p.add("conditions", "至少列出一项受理条件")
        for i, condition in enumerate(conditions):
            if word := catch_all_word(str(condition)):
                p.add(f"conditions[{i}]", f"受理条件不得使用“{word}”这类兜底表述，应逐项列明")
        if not d.get("procedure"):
            p.add("procedure", "至少列出一个办理环节")
        self._check_materials(p)
        fees = d.get("fees") or {}
        if fees.get("charged"):
            if not str(fees.get("basis", "")).strip():
                p.add("fees.basis", "收费事项应写明收费依据")
            if not str(fees.get("standard", "")).strip():
                p.add("fees.standard", "收费事项应写明收费标准")
        self._check_codes(p, "audience", AUDIENCES, "服务对象")
        self._check_codes(p, "handling_forms", HANDLING_FORMS, "办理形式")
        forms = set(d.get("handling_forms", []))
        if bool(d.get("online")) != bool(forms & {"2", "3"}):
            p.add("online", "是否网办应与办理形式一致（网上办理或移动端办理即为网办）")
        visits = d.get("visits")
        if not isinstance(visits, int) or isinstance(visits, bool) or visits < 0:
            p.add("visits", "到办事现场次数应为非负整数")
        for key, label in (("consultation_phone", "咨询电话"), ("supervision_phone", "监督电话")):
            if not PHONE.match(str(d.get(key, ""))):
                p.add(key, f"{label}应为电话号码（数字和连字符）")
        self._check_tiers(p)
        p.raise_if_any()

    def _check_agency(self, p: _Problems) -> None:
        agency = self.data.get("agency") or {}
        if not str(agency.get("name", "")).strip():
            p.add("agency.name", "实施主体名称不能为空")
        credit = agency.get("credit_code")
        if credit and not CREDIT_CODE.match(str(credit)):
            p.add("agency.credit_code", "实施主体统一社会信用代码应为 18 位")
        if agency.get("nature") not in AGENCY_NATURES:
            p.add("agency.nature", f"实施主体性质应为代码之一：{_codes(AGENCY_NATURES)}")

    def _check_limits(self, p: _Problems) -> None:
        d = self.data
        legal, promised = d.get("legal_limit_days"), d.get("promised_limit_days")
        ok = True
        for key, value, label in (
            ("legal_limit_days", legal, "法定办结时限"),
            ("promised_limit_days", promised, "承诺办结时限"),
        ):
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                p.add(key, f"{label}应为非负整数（工作日）")
                ok = False
        case_type = d.get("case_type")
        if case_type not in CASE_TYPES:
            p.add("case_type", "办件类型应为 1（即办件）或 2（承诺件）")
            return
        if not ok:
            return
        assert isinstance(legal, int)
        assert isinstance(promised, int)
        if promised > legal:
            p.add("promised_limit_days", f"承诺办结时限（{promised}）不得超过法定时限（{legal}）")
        if case_type == "1" and promised != 0:
            p.add("promised_limit_days", "即办件的承诺办结时限应为 0 个工作日")
        if case_type == "2" and promised == 0:
            p.add("promised_limit_days", "承诺件的承诺办结时限应至少 1 个工作日")

    def _check_materials(self, p: _Problems) -> None:
        d = self.data
        materials = d.get("materials", [])
        names: set[str] = set()
        for i, material in enumerate(materials):
            name = str(material.get("name", "")).strip()
            if not name:
                p.add(f"materials[{i}].name", "材料名称不能为空")
            elif word := catch_all_word(name):
                p.add(f"materials[{i}].name", f"材料名称不得使用“{word}”这类兜底表述")
            elif name in names:
                p.add(f"materials[{i}].name", f"材料“{name}”重复列出")
            names.add(name)
            if material.get("form") not in MATERIAL_FORMS:
                p.add(f"materials[{i}].form", f"材料形式应为代码之一：{_codes(MATERIAL_FORMS)}")
            for key in ("originals", "copies"):
                value = material.get(key)
                if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                    p.add(f"materials[{i}].{key}", "份数应为非负整数")
            if not str(material.get("acceptance_standard", "")).strip():
                p.add(f"materials[{i}].acceptance_standard", "应写明受理标准")
        required = any(m.get("required") for m in materials)
        if d.get("no_materials_needed"):
            if required:
                p.add("no_materials_needed", "已列出必备材料，不能同时标注“无需材料”")
        elif not required:
            p.add("materials", "至少列出一项必备材料，或明确标注“无需材料”")

    def _check_codes(self, p: _Problems, key: str, table: Mapping[str, str], label: str) -> None:
        values = self.data.get(key, [])
        if not values:
            p.add(key, f"至少选择一项{label}")
        for i, value in enumerate(values):
            if value not in table:
                p.add(f"{key}[{i}]", f"{label}应为代码之一：{_codes(table)}")

    def _check_tiers(self, p: _Problems) -> None:
        handled, proxy = self.data.get("handled_at", []), self.data.get("proxy_at", [])
        if not handled:
            p.add("handled_at", "至少列出一个可办理的层级")
        for key, values in (("handled_at", handled), ("proxy_at", proxy)):
            for i, tier in enumerate(values):
                if tier not in TIERS:
                    p.add(f"{key}[{i}]", f"层级应为之一：{'、'.join(TIERS)}")
        if both := sorted(set(handled) & set(proxy)):
            p.add("proxy_at", f"层级 {'、'.join(both)} 已可直接办理，不应同时列为代办")


def check_same_matter(matter: Mapping[str, Any], others: Iterable[Mapping[str, Any]]) -> None:
    """同一事项名称、编码、依据、类型统一: another matter with the same 基本编码 must agree."""
    for other in others:
        if other["code"] == matter["code"] or other.get("basic_code") != matter["basic_code"]:
            continue
        if other.get("name") != matter.get("name") or other.get("type") != matter.get("type"):
            raise InvalidInput.field(
                "basic_code",
                f"基本编码 {matter['basic_code']} 已用于事项“{other.get('name')}”"
                f"（{other['code']}），同一基本编码的事项名称和类型必须一致",
            )


def _codes(table: Mapping[str, str]) -> str:
    return "、".join(f"{k} {v}" for k, v in table.items())
