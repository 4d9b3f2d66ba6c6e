"""The cross-cutting glue every service shares: validation, the clock, privacy, remote errors."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from marshmallow import fields

from services.common import privacy, validation
from services.common.clock import ManualClock, iso, parse_iso
from services.common.errors import HallError, InvalidInput, NotFound

pytestmark = pytest.mark.unit


class Item(validation.Arguments):
    name = validation.text(8, required=True)
    count = validation.integer(1, 9, load_default=1)


class Order(validation.Arguments):
    kind = fields.String(required=True, validate=validation.one_of({"a": "甲", "b": "乙"}))
    items = fields.List(fields.Nested(Item), required=True)
    urgent = validation.boolean(load_default=False)


class Note(validation.Message):
    text = validation.text(20, required=True)


def refusal(schema: validation.Arguments | validation.Message, data: object) -> InvalidInput:
    with pytest.raises(InvalidInput) as caught:
        validation.load(schema, data, "订单")
    return caught.value


def test_paths_have_one_format_and_rules_are_chinese() -> None:
    error = refusal(Order(), {"kind": "c", "items": [{"name": "ok"}, {"name": "", "count": 0}]})
    assert error.fields == {
        "订单.items[1].count": ["应在 1 到 9 之间"],
        "订单.items[1].name": ["长度应在 1 到 8 之间"],
        "订单.kind": ["应为以下之一：a（甲）、b（乙）"],
    }
    assert error.message.startswith("输入有误：订单.items[1].count：应在 1 到 9 之间")


def test_arguments_refuse_unknown_fields_messages_ignore_them() -> None:
    error = refusal(Order(), {"kind": "a", "items": [], "colour": "red"})
    assert error.fields == {"订单.colour": ["不认识的字段"]}
    assert validation.load(Note(), {"text": "好", "newer_field": 1}) == {"text": "好"}


@pytest.mark.parametrize("value", ["false", "true", 0, 1, "yes", None])
def test_booleans_are_never_guessed_from_text_or_numbers(value: object) -> None:
    error = refusal(Order(), {"kind": "a", "items": [], "urgent": value})
    assert list(error.fields) == ["订单.urgent"]


def test_integers_are_strict_and_numbers_finite() -> None:
    assert list(refusal(Item(), {"name": "x", "count": "3"}).fields) == ["订单.count"]
    assert list(refusal(Item(), {"name": "x", "count": 2.5}).fields) == ["订单.count"]

    class Reading(validation.Arguments):
        value = validation.number(0, 10, required=True)

    assert refusal(Reading(), {"value": float("nan")}).fields == {
        "订单.value": ["不能是 NaN 或无穷大"]
    }


class Named(validation.Arguments):
    name = validation.text(20, required=True)
    comment = validation.text(200, multiline=True, load_default=None)
    id = validation.identifier(required=True)


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"name": "张\x00三", "id": "a"}, "name"),
        ({"name": "张三\n", "id": "a"}, "name"),
        ({"name": "\u202e张三", "id": "a"}, "name"),
        ({"name": "张三\ud800", "id": "a"}, "name"),
        ({"name": "张三", "comment": "好\x1b[31m", "id": "a"}, "comment"),
        ({"name": "张三", "id": {"$ne": None}}, "id"),
        ({"name": "张三", "id": "a b"}, "id"),
        ({"name": "张三", "id": ":a"}, "id"),
        ({"name": "张三", "id": "x" * 129}, "id"),
    ],
)
def test_text_refuses_control_characters_surrogates_and_objects(
    data: dict[str, object], field: str
) -> None:
    assert list(refusal(Named(), data).fields) == [f"订单.{field}"]


def test_text_keeps_what_people_write() -> None:
    data = {"name": "张三", "comment": "第一行\n第二行\t好", "id": "ticket:421302:2026-11-23:A001"}
    assert validation.load(Named(), data) == data


def test_a_non_mapping_is_named() -> None:
    assert refusal(Order(), ["kind"]).fields == {"订单": ["应为对象（键值对）"]}


def test_a_single_refusal_reads_as_field_and_rule() -> None:
    assert refusal(Note(), {}).message == "订单.text：必填"


def test_stored_moments_have_one_width_and_sort_as_time() -> None:
    east8 = timezone(timedelta(hours=8))
    a = datetime(2026, 11, 24, 10, 0, 0, tzinfo=east8)
    b = a + timedelta(microseconds=1)
    assert iso(a) == "2026-11-24T02:00:00.000000Z"
    assert iso(a) < iso(b)
    assert len(iso(a)) == len(iso(b))
    assert parse_iso(iso(b)) == b
    with pytest.raises(ValueError, match="timezone"):
        iso(datetime(2026, 1, 1))  # noqa: DTZ001  naive on purpose: iso() refuses it
    with pytest.raises(ValueError, match="timezone"):
        parse_iso("2026-01-01T00:00:00")


def test_manual_clock_moves_only_when_told() -> None:
    clock = ManualClock(datetime(2026, 1, 1, tzinfo=UTC))
    assert clock() == clock()
    assert clock.advance(minutes=5) == datetime(2026, 1, 1, 0, 5, tzinfo=UTC)


@pytest.mark.parametrize(
    "written",
    [
        "13812345678",
        "138 1234 5678",
        "138-1234-5678",
        "+86 138 1234 5678",
        "+8613812345678",
        "008613812345678",
        "8613812345678",
        "１３８１２３４５６７８",
        "＋８６－１３８－１２３４－５６７８",
        "(138)1234-5678",
    ],
)
def test_every_way_of_writing_a_phone_is_one_phone(written: str) -> None:
    assert privacy.normalise_phone(written) == "13812345678"
    assert privacy.is_mobile(written)
    assert privacy.phone_hash("salt", written) == privacy.phone_hash("salt", "13812345678")
    assert privacy.mask_phone(written) == "138****5678"
    assert "1234" not in privacy.scrub_text(f"请回电{written}谢谢")


def test_hashes_are_keyed_by_salt_and_kind() -> None:
    assert privacy.phone_hash("a", "13812345678") != privacy.phone_hash("b", "13812345678")
    assert privacy.keyed_hash("a", "phone", "1") != privacy.keyed_hash("a", "id_number", "1")


def test_id_numbers_are_upper_cased_validated_and_masked() -> None:
    body = "42130219900101123"
    number = body + privacy.resident_id_check(body)
    assert privacy.resident_id_valid(number.lower())
    assert privacy.id_number_hash("s", number.lower()) == privacy.id_number_hash("s", number)
    assert privacy.mask_id_number(number) == "4213**********" + number[-4:]
    assert not privacy.resident_id_valid(body + "0" if number[-1] != "0" else body + "1")


@pytest.mark.parametrize(
    ("text", "kept"),
    [
        ("身份证421302199001011234办事", "身份证4213**********1234办事"),
        ("身份证 4213 0219 9001 0112 3x", "身份证 4213**********123X"),
        ("老证号421302900101123", "老证号4213*******1123"),
        ("手机 138-1234-5678 联系", "手机 138****5678 联系"),
        ("窗口 3 号，等了 45 分钟", "窗口 3 号，等了 45 分钟"),
        ("站点 421302101201 的服务", "站点 421302101201 的服务"),
    ],
)
def test_free_text_is_scrubbed_in_every_written_form(text: str, kept: str) -> None:
    assert privacy.scrub_text(text) == kept


def test_names_are_masked_in_free_text() -> None:
    assert privacy.scrub_text("张三很耐心", ["张三", None, " "]) == "张*很耐心"
    assert privacy.mask_name("李") == "李*"


def test_typed_errors_survive_an_rpc_round_trip() -> None:
    from nameko.exceptions import deserialize, serialize

    from services.common import remote
    from services.common.calendar import ScheduleMissing

    remote.register_errors()
    back = deserialize(serialize(NotFound("没有这个事项", {"code": ["x"]})))
    assert isinstance(back, NotFound)
    kinds = [k for k in HallError.__subclasses__() if k.__module__ == "services.common.errors"]
    assert len(kinds) >= 7
    for kind in kinds:  # every common kind survives with its message
        assert type(deserialize(serialize(kind("出错了")))) is kind
    assert isinstance(deserialize(serialize(ScheduleMissing(2031))), ScheduleMissing)


def test_refusals_are_one_info_line_and_unexpected_errors_keep_their_traceback(
    caplog: pytest.LogCaptureFixture,
) -> None:
    import logging

    from services.common.logs import quiet_refusals

    quiet_refusals()
    quiet_refusals()  # installed once however often services import it
    containers = logging.getLogger("nameko.containers")
    assert len(containers.filters) == 1
    with caplog.at_level(logging.INFO, logger="nameko.containers"):
        for error in (InvalidInput.field("phone", "13812345678 不是本站号码"), ValueError("bug")):
            exc_info = (type(error), error, None)
            containers.error("error handling worker %s: %s", "<worker>", error, exc_info=exc_info)
    refused, unexpected = caplog.records
    assert (refused.levelname, refused.exc_info) == ("INFO", None)
    assert "138****5678" in refused.getMessage()
    assert "13812345678" not in refused.getMessage()
    assert unexpected.levelname == "ERROR"
    assert unexpected.exc_info is not None
