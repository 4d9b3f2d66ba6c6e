"""Matters domain rules: catalog validation, deadlines over the official calendar (调休
included), suspension, due states, the application state machine, desk checks, privacy,
and the keyword index."""

import copy
from datetime import date
from pathlib import Path
from typing import Any

import pytest
import yaml

from services.common.calendar import ScheduleMissing, WorkingCalendar, load_calendar
from services.common.errors import Conflict, InvalidInput
from services.common.privacy import resident_id_valid
from services.common.validation import load
from services.matters import domain, schemas
from services.matters.domain import Application, Matter
from services.matters.search import CatalogIndex

pytestmark = pytest.mark.unit

SEED = Path(__file__).parents[2] / "services" / "matters" / "seed" / "catalog.yaml"
CAL = WorkingCalendar()


def matter(**changes: Any) -> dict[str, Any]:
    """A valid 承诺件, changed by ``changes`` (dotted keys reach into lists/dicts)."""
    base = {
        "code": "0700018002421302001",
        "basic_code": "0700018002",
        "name": "国有建设用地使用权及房屋所有权转移登记",
        "aliases": ["二手房过户"],
        "type": "07",
        "legal_basis": ["《不动产登记暂行条例》"],
        "exercise_level": "4",
        "agency": {"name": "随州市曾都区不动产登记中心", "credit_code": None, "nature": "2"},
        "legal_limit_days": 30,
        "promised_limit_days": 3,
        "case_type": "2",
        "conditions": ["买卖双方已签订存量房买卖合同"],
        "procedure": [{"step": "受理", "description": ""}],
        "result": {"name": "不动产权证书"},
        "materials": [
            {
                "name": "不动产登记申请书",
                "originals": 1,
                "copies": 0,
                "required": True,
                "form": "1",
                "acceptance_standard": "填写完整",
            },
            {
                "name": "居民身份证",
                "originals": 1,
                "copies": 1,
                "required": True,
                "form": "1",
                "acceptance_standard": "在有效期内",
            },
        ],
        "audience": ["1"],
        "handling_forms": ["1", "2"],
        "online": True,
        "visits": 1,
        "place": "政务服务中心",
        "hours": "工作日",
        "consultation_phone": "0722-3301201",
        "supervision_phone": "0722-12345",
        "handled_at": ["county"],
        "proxy_at": [],
    }
    data = load(schemas.MatterSchema(), base)
    for key, value in changes.items():
        target: Any = data
        *path, last = key.split(".")
        for part in path:
            target = target[int(part)] if part.isdigit() else target[part]
        target[int(last) if last.isdigit() else last] = value
    return data


def broken(data: dict[str, Any]) -> dict[str, list[str]]:
    with pytest.raises(InvalidInput) as caught:
        Matter(data).validate()
    return caught.value.fields


def test_valid_matter_passes() -> None:
    Matter(matter()).validate()


@pytest.mark.parametrize(
    ("changes", "field", "words"),
    [
        ({"basic_code": "07000180"}, "basic_code", "10 位"),
        ({"basic_code": "0100018002"}, "basic_code", "事项类型代码 07"),
        ({"code": "0700018002-421302"}, "code", "数字或大写字母"),
        ({"code": "0700099999421302001"}, "code", "以基本编码"),
        ({"type": "11"}, "type", "附录 A"),
        ({"exercise_level": "8"}, "exercise_level", "行使层级"),
        ({"agency.nature": "9"}, "agency.nature", "性质"),
        ({"audience": ["7"]}, "audience[0]", "服务对象"),
        ({"handling_forms": ["1", "5"]}, "handling_forms[1]", "办理形式"),
        ({"case_type": "9"}, "case_type", "即办件"),
        ({"materials.0.form": "4"}, "materials[0].form", "材料形式"),
        ({"promised_limit_days": 31}, "promised_limit_days", "不得超过法定时限"),
        ({"case_type": "1"}, "promised_limit_days", "即办件的承诺办结时限应为 0"),
        ({"promised_limit_days": 0}, "promised_limit_days", "承诺件"),
        ({"conditions": ["身份证等有效证件"]}, "conditions[0]", "“等”"),
        ({"conditions": ["其他需要提供的条件"]}, "conditions[0]", "“其他”"),
        ({"materials.1.name": "其它证明"}, "materials[1].name", "“其它”"),
        ({"materials.1.name": "户口簿等材料"}, "materials[1].name", "“等”"),
        ({"materials.1.name": "不动产登记申请书"}, "materials[1].name", "重复"),
        ({"legal_basis": ["不动产登记暂行条例"]}, "legal_basis[0]", "书名号"),
        ({"legal_basis": []}, "legal_basis", "至少"),
        ({"online": False}, "online", "网办"),
        ({"handling_forms": ["1"]}, "online", "网办"),
        ({"supervision_phone": "打12345"}, "supervision_phone", "监督电话"),
        ({"handled_at": []}, "handled_at", "至少"),
        ({"handled_at": ["county", "hamlet"]}, "handled_at[1]", "层级"),
        ({"proxy_at": ["county"]}, "proxy_at", "不应同时列为代办"),
        ({"fees": {"charged": True, "basis": "", "standard": ""}}, "fees.basis", "收费依据"),
        ({"visits": -1}, "visits", "非负整数"),
        ({"conditions": []}, "conditions", "至少"),
        ({"name": " "}, "name", "不能为空"),
        ({"aliases": [" "]}, "aliases[0]", "不能为空"),
        ({"agency.name": " "}, "agency.name", "不能为空"),
        ({"agency.credit_code": "12345"}, "agency.credit_code", "18 位"),
        ({"materials.0.copies": -2}, "materials[0].copies", "非负整数"),
        ({"materials.0.name": " "}, "materials[0].name", "不能为空"),
        ({"consultation_phone": "电话"}, "consultation_phone", "咨询电话"),
        ({"legal_limit_days": -1}, "legal_limit_days", "非负整数"),
        ({"procedure": []}, "procedure", "至少"),
        (
            {"fees": {"charged": True, "basis": "《收费办法》", "standard": ""}},
            "fees.standard",
            "标准",
        ),
        ({"materials.0.acceptance_standard": " "}, "materials[0].acceptance_standard", "受理标准"),
    ],
)
def test_each_catalog_rule_names_its_field(changes: dict[str, Any], field: str, words: str) -> None:
    fields = broken(matter(**changes))
    assert field in fields, fields
    assert any(words in message for message in fields[field]), fields[field]


def test_deng_inside_a_word_is_not_a_catch_all() -> None:
    Matter(matter(conditions=["重度残疾人：残疾等级为一级、二级"])).validate()
    assert domain.catch_all_word("残疾等级为一级") is None
    assert domain.catch_all_word("残疾等级、户口簿等") == "等"


def test_required_material_or_explicit_no_materials() -> None:
    data = matter()
    for m in data["materials"]:
        m["required"] = False
    assert "materials" in broken(data)
    data["no_materials_needed"] = True
    Matter(data).validate()
    assert "no_materials_needed" in broken(matter(no_materials_needed=True))
    empty = matter(materials=[], no_materials_needed=True)
    Matter(empty).validate()


def test_immediate_matter_with_zero_limit_is_valid() -> None:
    data = matter(case_type="1", promised_limit_days=0)
    Matter(data).validate()
    assert Matter(data).is_immediate


def test_same_basic_code_must_keep_name_and_type() -> None:
    data = matter()
    other = {**data, "code": "0700018002421302002"}
    domain.check_same_matter(data, [other])  # same name and type: a second implementation
    with pytest.raises(InvalidInput) as caught:
        domain.check_same_matter(data, [{**other, "name": "别的名称"}])
    assert "basic_code" in caught.value.fields


def test_schema_messages_are_chinese_and_name_the_field() -> None:
    data = matter()
    del data["name"]
    data["legal_limit_days"] = "三十"
    data["materials"][0]["originals"] = -1
    with pytest.raises(InvalidInput) as caught:
        load(schemas.MatterSchema(), data)
    fields = caught.value.fields
    assert fields["name"] == ["必填"]
    assert fields["legal_limit_days"] == ["应为整数"]
    assert fields["materials[0].originals"] == ["应在 0 到 99 之间"]


def test_seed_catalog_is_valid_and_covers_the_categories() -> None:
    items = yaml.safe_load(SEED.read_text(encoding="utf-8"))["matters"]
    assert len(items) >= 30
    codes = set()
    loaded: list[dict[str, Any]] = []
    for item in items:
        data = load(schemas.MatterSchema(), item)
        Matter(data).validate()
        domain.check_same_matter(data, loaded)
        loaded.append(data)
        codes.add(data["code"])
    assert len(codes) == len(items)
    agencies = " ".join(m["agency"]["name"] for m in loaded)
    for department in ("不动产", "社会保险", "医疗保障", "公安", "市场监督", "民政"):
        assert department in agencies
    assert any(m["case_type"] == "1" for m in loaded)
    assert any(m["online"] for m in loaded)
    assert any("village" in m["proxy_at"] for m in loaded)
    assert all(any("《" in b for b in m["legal_basis"]) for m in loaded)


# --- deadlines ------------------------------------------------------------------------------
def test_deadline_across_spring_festival_2025_with_make_up_days() -> None:
    # 2025 春节: off 1-28 … 2-4; make-up working days Sun 1-26 and Sat 2-8.
    accepted = date(2025, 1, 24)  # Friday; the day of acceptance is not counted
    assert domain.due_date(CAL, accepted, 2, 0) == date(2025, 1, 27)  # Sun 1-26 counts
    assert domain.due_date(CAL, accepted, 5, 0) == date(2025, 2, 7)
    assert domain.due_date(CAL, accepted, 6, 0) == date(2025, 2, 8)  # Saturday make-up day


def test_deadline_across_national_day_2025() -> None:
    # 2025 国庆中秋: off 10-1 … 10-8; make-up working days Sun 9-28 and Sat 10-11.
    accepted = date(2025, 9, 26)
    assert domain.due_date(CAL, accepted, 3, 0) == date(2025, 9, 30)
    assert domain.due_date(CAL, accepted, 5, 0) == date(2025, 10, 10)
    assert domain.due_date(CAL, accepted, 6, 0) == date(2025, 10, 11)


def test_deadline_across_spring_festival_2026() -> None:
    # 2026 春节: off 2-15 … 2-23; Sat 2-14 is a make-up working day.
    assert domain.due_date(CAL, date(2026, 2, 13), 3, 0) == date(2026, 2, 25)


def test_2027_deadline_refused_without_schedule_and_computed_with_override(tmp_path: Path) -> None:
    with pytest.raises(ScheduleMissing) as caught:
        domain.due_date(CAL, date(2026, 12, 30), 5, 0)
    assert caught.value.year == 2027
    override = tmp_path / "calendar.yaml"
    override.write_text(
        "2027:\n"
        "  holidays: [2027-01-01, 2027-02-05, 2027-02-06, 2027-02-07, 2027-02-08,\n"
        "             2027-02-09, 2027-02-10, 2027-02-11]\n"
        "  workdays: [2027-02-13]\n",
        encoding="utf-8",
    )
    cal = load_calendar(str(override))
    # 12-31 (Thu) = 1; 1-1 holiday; 1-4 … 1-7 = 2 … 5
    assert domain.due_date(cal, date(2026, 12, 30), 5, 0) == date(2027, 1, 7)
    # across the 2027 Spring Festival of the override: 2-4 (Thu) + 2 → 2-12, 2-13 (Sat)
    assert domain.due_date(cal, date(2027, 2, 4), 2, 0) == date(2027, 2, 13)


def test_suspended_working_days_extend_the_deadline() -> None:
    accepted = date(2025, 9, 1)  # Monday
    assert domain.due_date(CAL, accepted, 5, 0) == date(2025, 9, 8)
    # suspended on Wed 9-3, resumed Mon 9-8: Thu, Fri, Mon do not count
    days = domain.suspended_working_days(CAL, date(2025, 9, 3), date(2025, 9, 8))
    assert days == 3
    assert domain.due_date(CAL, accepted, 5, days) == date(2025, 9, 11)
    # suspended over National Day: only the working days in between count as suspended
    assert domain.suspended_working_days(CAL, date(2025, 9, 30), date(2025, 10, 9)) == 1
    assert domain.suspended_working_days(CAL, date(2025, 9, 3), date(2025, 9, 3)) == 0


def test_due_states() -> None:
    due = date(2025, 9, 10)  # Wednesday

    def state(today: date, clock: str = "running") -> str | None:
        return domain.due_state(CAL, today, due, clock, 2)

    assert state(date(2025, 9, 5)) == "on_time"  # Fri: 3 working days left
    assert state(date(2025, 9, 8)) == "due_soon"  # Mon: 2 working days left
    assert state(date(2025, 9, 10)) == "due_soon"  # the last day
    assert state(date(2025, 9, 11)) == "overdue"
    assert state(date(2025, 9, 11), "suspended") == "suspended"
    assert state(date(2025, 9, 11), "stopped") is None
    assert domain.publish_due(CAL, date(2025, 9, 30), 1) == date(2025, 10, 9)


# --- application state machine ------------------------------------------------------------
LEGAL = {
    "supplement": {"supplement_required"},
    "refuse": {"supplement_required"},
    "start_review": {"accepted"},
    "decide": {"in_review"},
    "complete": {"approved", "denied"},
    "deliver": {"completed"},
    "suspend": {"accepted", "in_review"},
    "resume": set(),  # only while suspended
}


@pytest.mark.parametrize("action", sorted(LEGAL))
@pytest.mark.parametrize("state", sorted(domain.STATES))
def test_every_transition_is_allowed_or_refused(action: str, state: str) -> None:
    app = Application({"state": state, "clock": "running"})
    if state in LEGAL[action]:
        app.require(action)
    else:
        with pytest.raises(Conflict) as caught:
            app.require(action)
        assert domain.STATES[state] in caught.value.message or "恢复" in caught.value.message


def test_suspension_blocks_progress_until_resumed() -> None:
    app = Application({"state": "in_review", "clock": "suspended"})
    for action in ("decide", "suspend"):
        with pytest.raises(Conflict):
            app.require(action)
    app.require("resume")
    assert Application({"state": "accepted", "clock": "suspended"}).suspended


def test_desk_check_lists_every_missing_and_invalid_material_at_once() -> None:
    m = Matter(matter())
    assert domain.check_materials(m, [{"name": "不动产登记申请书"}, {"name": "居民身份证"}]) == []
    problems = domain.check_materials(
        m, [{"name": "不动产登记申请书", "valid": False, "problem": "未签字"}]
    )
    assert problems == [
        {"name": "不动产登记申请书", "problem": "未签字"},
        {"name": "居民身份证", "problem": "未提交"},
    ]
    merged = domain.merge_materials(
        [{"name": "不动产登记申请书", "valid": False}], [{"name": "不动产登记申请书"}]
    )
    assert merged == [{"name": "不动产登记申请书"}]


def test_default_availability_by_tier() -> None:
    m = Matter(matter(handled_at=["county", "town"], proxy_at=["village"]))
    assert m.default_availability("county") == "offered"
    assert m.default_availability("town") == "offered"
    assert m.default_availability("village") == "proxy_only"
    assert Matter(matter()).default_availability("village") == "not_offered"


# --- privacy ----------------------------------------------------------------------------------
def person(
    id_number: str = "11010519491231002X", phone: str | None = "13812345678"
) -> dict[str, Any]:
    return {"kind": "person", "name": "欧阳小明", "id_number": id_number, "phone": phone}


def test_applicant_is_masked_hashed_and_checked() -> None:
    kept = domain.protect_applicant(person(), "salt1")
    assert kept["name"] == "欧***"
    assert kept["id_masked"] == "1101**********002X"
    assert kept["phone_masked"] == "138****5678"
    other = domain.protect_applicant(person(), "salt2")
    assert kept["id_hash"] != other["id_hash"]
    assert len(kept["id_hash"]) == 64
    assert "002X" not in kept["id_hash"]
    assert resident_id_valid("11010519491231002X")
    assert not resident_id_valid("110105194912310021")
    assert not resident_id_valid("1101051949123100")
    with pytest.raises(InvalidInput) as caught:
        domain.protect_applicant(person("110105194912310021"), "salt1")
    assert "applicant.id_number" in caught.value.fields
    assert domain.protect_applicant(person(phone=None), "s")["phone_hash"] is None


def test_id_numbers_and_phones_are_normalised_before_hashing() -> None:
    kept = domain.protect_applicant(person(), "s")
    for typed in (
        "11010519491231002x",
        "110105 19491231 002X",
        "１１０１０５１９４９１２３１００２Ｘ",
    ):
        assert domain.protect_applicant(person(typed), "s")["id_hash"] == kept["id_hash"]
    for phone in ("138 1234 5678", "+86-138-1234-5678"):
        same = domain.protect_applicant(person(phone=phone), "s")
        assert same["phone_hash"] == kept["phone_hash"]
        assert same["phone_masked"] == "138****5678"


# --- keyword index ----------------------------------------------------------------------------
def _doc(code: str, name: str, seq: int, **extra: Any) -> dict[str, Any]:
    return {
        "id": code,
        "name": name,
        "aliases": extra.pop("aliases", []),
        "type": extra.pop("type", "07"),
        "agency": {"name": extra.pop("department", "不动产登记中心")},
        "handled_at": extra.pop("handled_at", ["county"]),
        "proxy_at": extra.pop("proxy_at", []),
        "online": extra.pop("online", False),
        "status": extra.pop("status", "published"),
        "availability": "offered",
        "_seq": seq,
    }


def test_index_matches_names_and_aliases_with_filters_and_ranking() -> None:
    index = CatalogIndex()
    docs = [
        _doc("A1", "抵押权首次登记", 1, aliases=["房屋抵押"], online=True),
        _doc("A2", "抵押权注销登记", 2, aliases=["解押"]),
        _doc(
            "B1",
            "城乡居民基本养老保险参保登记",
            3,
            type="20",
            department="社会保险事业中心",
            proxy_at=["village"],
        ),
        _doc("C1", "不动产登记资料查询", 4, status="retired"),
    ]
    index.apply(docs, lambda d: {"code": d["id"]})

    def codes(q: str, **kw: Any) -> list[str]:
        return [i["code"] for i in index.search(q, **kw)[1]]

    assert codes("抵押") == ["A1", "A2"]
    assert codes("解押") == ["A2"]
    assert codes("登记") == ["A1", "A2", "B1"]  # retired C1 left out
    assert codes("登记", include_retired=True) == ["A1", "A2", "B1", "C1"]
    assert codes("首次 抵押") == ["A1"]
    assert codes("", online=True) == ["A1"]
    assert codes("", type="20") == ["B1"]
    assert codes("", department="社会保险") == ["B1"]
    assert codes("", tier="village") == ["B1"]
    assert codes("养") == ["B1"]  # one character
    assert codes("不存在的事项") == []
    assert index.search("登记", limit=1, offset=1) == (3, [{"code": "A2"}])
    # a new version re-indexes the matter under its new name
    index.apply([_doc("A2", "抵押权注销", 5)], lambda d: {"code": d["id"]})
    assert codes("解押") == []
    assert index.seq == 5


def test_matter_copies_do_not_share_state() -> None:
    data = matter()
    copy_ = copy.deepcopy(data)
    Matter(data).validate()
    assert data == copy_
