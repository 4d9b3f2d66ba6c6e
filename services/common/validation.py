"""The one marshmallow glue of every service: schema bases, field builders, and ``load``,
which turns a refusal into ``InvalidInput`` naming each field and its rule in Chinese.

Field paths have one format everywhere: ``materials[1].name`` (dots between names,
brackets around list positions), prefixed with the schema's ``what`` when one is given.

Unknown fields, the one policy (docs/architecture.md, "Validation"):

- ``Arguments`` (RPC arguments, configuration sections, anything a person or a client
  types) **refuses** unknown fields: a mistyped key is named, never silently dropped.
- ``Message`` (records and messages written by another service or another site, which may
  run a newer version: sync batches, feed pages, replicated documents) **ignores** them, so
  one service or site can be upgraded ahead of the others.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Collection, Mapping
from typing import Any

from marshmallow import EXCLUDE, RAISE, Schema, ValidationError, fields, validate

from services.common.errors import InvalidInput

__all__ = [
    "Arguments",
    "Message",
    "between",
    "boolean",
    "flatten",
    "identifier",
    "integer",
    "invalid",
    "length",
    "load",
    "number",
    "one_of",
    "plain",
    "text",
]


class Arguments(Schema):
    """Input typed by people and clients: unknown fields are refused."""

    class Meta:
        unknown = RAISE


class Message(Schema):
    """Input written by another service or site, maybe a newer one: unknown fields ignored."""

    class Meta:
        unknown = EXCLUDE


# marshmallow's default messages in Chinese; messages given by our own validators pass as is.
_TRANSLATIONS = tuple(
    (re.compile(pattern), text)
    for pattern, text in (
        (r"Missing data for required field\.", "必填"),
        (r"Unknown field\.", "不认识的字段"),
        (r"Field may not be null\.", "不能为空"),
        (r"Not a valid string\.", "应为文字"),
        (r"Not a valid integer\.", "应为整数"),
        (r"Not a valid number\.", "应为数字"),
        (r"Not a valid boolean\.", "应为 true 或 false"),
        (r"Not a valid datetime\.", "应为带时区的 ISO-8601 时间"),
        (r"Not a valid date\.", "应为 YYYY-MM-DD 日期"),
        (r"Not a valid list\.", "应为列表"),
        (r"Not a valid mapping type\.", "应为对象（键值对）"),
        (r"Invalid input type\.", "类型不对"),
        (r"Invalid value\.", "取值不对"),
        (r"Special numeric values \(nan or infinity\) are not permitted\.", "不能是 NaN 或无穷大"),
        (r"Number too large\.", "数值过大"),
        (r"Must be one of: (.*)\.", r"应为以下之一：\1"),
        (r"Longer than maximum length (\d+)\.", r"最长 \1 个字符"),
        (r"Shorter than minimum length (\d+)\.", r"最短 \1 个字符"),
        (r"Length must be between (\d+) and (\d+)\.", r"长度应在 \1 到 \2 之间"),
        (r"Length must be (\d+)\.", r"长度应为 \1"),
        (r"Must be greater than or equal to (\S+)\.", r"应不小于 \1"),
        (r"Must be less than or equal to (\S+)\.", r"应不大于 \1"),
        (
            r"Must be greater than or equal to (\S+) and less than or equal to (\S+)\.",
            r"应在 \1 到 \2 之间",
        ),
    )
)


def _zh(message: str) -> str:
    for pattern, text_ in _TRANSLATIONS:
        if pattern.fullmatch(message):
            return pattern.sub(text_, message)
    return message


def load(schema: Schema | type[Schema], data: Any, what: str = "") -> dict[str, Any]:
    """``data`` validated by ``schema``; a refusal raises ``InvalidInput`` whose fields map
    each path (under ``what`` when given) to its rules in Chinese. A schema class is built
    once and reused: building one copies all its fields, which costs more than a load."""
    if isinstance(schema, type):
        schema = instance_of(schema)
    if not isinstance(data, Mapping):
        raise InvalidInput.field(what or "输入", "应为对象（键值对）")
    try:
        result: dict[str, Any] = schema.load(data)
    except ValidationError as exc:
        raise invalid(flatten(exc.messages, what)) from None
    return result


@functools.cache
def instance_of(schema: type[Schema]) -> Schema:
    """The one shared instance of a schema class (marshmallow's ``load`` keeps no state
    on the instance, so one serves every call and thread)."""
    return schema()


def flatten(messages: Any, prefix: str = "") -> dict[str, list[str]]:
    """marshmallow's nested messages as ``{"materials[1].name": ["必填"]}``."""
    out: dict[str, list[str]] = {}
    if isinstance(messages, Mapping):
        for key, value in messages.items():
            _merge(out, flatten(value, _join(prefix, key)))
    elif isinstance(messages, list | tuple) and all(isinstance(m, str) for m in messages):
        out[prefix or "输入"] = [_zh(m) for m in messages]
    elif isinstance(messages, list | tuple):
        for index, value in enumerate(messages):
            _merge(out, flatten(value, f"{prefix}[{index}]"))
    else:
        out[prefix or "输入"] = [_zh(str(messages))]
    return out


def _merge(into: dict[str, list[str]], found: Mapping[str, list[str]]) -> None:
    for key, texts in found.items():
        into.setdefault(key, []).extend(texts)


def _join(prefix: str, key: Any) -> str:
    if isinstance(key, int):
        return f"{prefix}[{key}]"
    if key == "_schema":  # a rule over several fields belongs to the object itself
        return prefix
    return f"{prefix}.{key}" if prefix else str(key)


def invalid(found: Mapping[str, list[str]]) -> InvalidInput:
    """One ``InvalidInput`` for every broken rule; its message lists the first five."""
    items = sorted(found.items())
    if len(items) == 1 and len(items[0][1]) == 1:
        return InvalidInput(f"{items[0][0]}：{items[0][1][0]}", found)
    summary = "；".join(f"{k}：{'，'.join(v)}" for k, v in items[:5])
    more = f"（共 {len(items)} 处）" if len(items) > 5 else ""
    return InvalidInput(f"输入有误：{summary}{more}", found)


# --- validators with Chinese messages ------------------------------------------------------


def one_of(choices: Collection[Any] | Mapping[Any, str]) -> validate.OneOf:
    """One of ``choices``; a mapping's values are shown as the labels of its keys."""
    if isinstance(choices, Mapping):
        shown = "、".join(f"{k}（{v}）" for k, v in choices.items())
    else:
        shown = "、".join(map(str, choices))
    return validate.OneOf(list(choices), error=f"应为以下之一：{shown}")


def length(low: int | None = None, high: int | None = None) -> validate.Length:
    if low is not None and high is not None:
        rule = f"长度应在 {low} 到 {high} 之间"
    elif high is not None:
        rule = f"最长 {high} 个字符"
    else:
        rule = f"最短 {low} 个字符"
    return validate.Length(min=low, max=high, error=rule)


def between(low: float | None = None, high: float | None = None) -> validate.Range:
    if low is not None and high is not None:
        rule = f"应在 {low} 到 {high} 之间"
    elif low is not None:
        rule = f"应不小于 {low}"
    else:
        rule = f"应不大于 {high}"
    return validate.Range(min=low, max=high, error=rule)


# --- field builders -----------------------------------------------------------------------


# Control characters break logs, screens and printed tickets, bidirectional overrides make
# text read other than it is stored, and a lone surrogate cannot be encoded at all (UTF-8,
# JSON, SQLite). Multi-line text keeps tab and line breaks.
_BIDI = "\u202a-\u202e\u2066-\u2069"
_CONTROL_LINE = re.compile(f"[\x00-\x1f\x7f-\x9f\ud800-\udfff\u2028\u2029{_BIDI}]")
_CONTROL_TEXT = re.compile(f"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff{_BIDI}]")
ID_PATTERN = r"[A-Za-z0-9\u4e00-\u9fff][A-Za-z0-9\u4e00-\u9fff:._\-]*"


def plain(value: str, *, multiline: bool = False) -> None:
    """Refuse ``value`` when it holds a control character or a lone surrogate."""
    if (_CONTROL_TEXT if multiline else _CONTROL_LINE).search(value) is not None:
        raise ValidationError("不能含控制字符或无效字符")


def text(
    max_len: int | None = None,
    *,
    min_len: int = 1,
    pattern: str | None = None,
    rule: str = "",
    multiline: bool = False,
    **kw: Any,
) -> fields.String:
    """A string of ``min_len``..``max_len`` characters without control characters or lone
    surrogates (tab and line breaks allowed when ``multiline``), optionally matching
    ``pattern`` (``rule`` is the Chinese description shown when it does not)."""
    validators = [
        *kw.pop("validate", ()),
        length(min_len or None, max_len),
        lambda value: plain(value, multiline=multiline),
    ]
    if pattern is not None:
        validators.append(validate.Regexp(pattern, error=rule or "格式不对"))
    return fields.String(validate=validators, **kw)


def identifier(max_len: int = 128, **kw: Any) -> fields.String:
    """A record id or code: letters, digits, CJK, and ``: . _ -`` inside, at most
    ``max_len`` characters (never an object, never a control character)."""
    return text(
        max_len,
        pattern=f"{ID_PATTERN}\\Z",
        rule="只能含字母、数字、汉字和 : . _ -，且以字母、数字或汉字开头",
        **kw,
    )


def integer(low: int | None = None, high: int | None = None, **kw: Any) -> fields.Integer:
    """A whole number (never a float or a numeric string, never a boolean)."""
    validators = [*kw.pop("validate", ())]
    if low is not None or high is not None:
        validators.append(between(low, high))
    return fields.Integer(strict=True, validate=validators, **kw)


def number(low: float | None = None, high: float | None = None, **kw: Any) -> fields.Float:
    """A finite number."""
    validators = [*kw.pop("validate", ())]
    if low is not None or high is not None:
        validators.append(between(low, high))
    return fields.Float(allow_nan=False, validate=validators, **kw)


class StrictBoolean(fields.Boolean):
    """``true`` or ``false`` only: ``"false"``, 0 or ``"no"`` are refused, never guessed."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> bool:
        if not isinstance(value, bool):
            raise self.make_error("invalid")
        return value


def boolean(**kw: Any) -> fields.Boolean:
    """A strict ``true`` / ``false`` (see ``StrictBoolean``)."""
    return StrictBoolean(**kw)
