"""Validation at the boundary of ``sync``: its configuration section and what children send."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from marshmallow import EXCLUDE, Schema, ValidationError, fields, validate, validates_schema

from services.common.errors import InvalidInput
from services.common.site import Tier
from services.sync.domain import DEFAULT_MASK_KEYS, Backoff, FeedRef

DEFAULT_UPWARD = (
    {"service": "rating", "feed": "evaluations"},
    {"service": "rating", "feed": "cases"},
    {"service": "matters", "feed": "application_summaries"},
    {"service": "queue", "feed": "daily_figures"},
)
SITE_CODE = r"^[0-9]{6}([0-9]{3}){0,2}$"
NAME = r"^[A-Za-z][A-Za-z0-9_-]{0,63}$"
MAX_PAGE = 5000


def _messages(rule: str = "") -> dict[str, str | list[Any] | dict[Any, Any]]:
    """Chinese texts for marshmallow's generic errors; ``rule`` describes a valid value."""
    suffix = f"（{rule}）" if rule else ""
    return {
        "required": "必须填写",
        "null": "不能为空",
        "invalid": f"格式不正确{suffix}",
        "not_a_list": "必须是列表",
        "type": f"类型不正确{suffix}",
    }


def _int(minimum: int, maximum: int | None = None, **kwargs: Any) -> fields.Integer:
    rule = f"不小于 {minimum} 的整数" if maximum is None else f"{minimum} 到 {maximum} 之间的整数"
    return fields.Integer(
        strict=True,
        validate=validate.Range(min=minimum, max=maximum, error=f"应为{rule}"),
        error_messages=_messages(f"应为{rule}"),
        **kwargs,
    )


def _seconds(minimum: float, default: float) -> fields.Float:
    return fields.Float(
        validate=validate.Range(min=minimum, error=f"应为不小于 {minimum} 的秒数"),
        error_messages=_messages("应为秒数"),
        load_default=default,
    )


def _text(pattern: str | None = None, rule: str = "", **kwargs: Any) -> fields.String:
    checks = [validate.Regexp(pattern, error=f"格式不正确（{rule}）")] if pattern else []
    return fields.String(validate=checks, error_messages=_messages(rule), **kwargs)


class FeedRefSchema(Schema):
    class Meta:
        unknown = EXCLUDE

    service = _text(NAME, "服务名，如 rating", required=True)
    feed = _text(NAME, "数据源名，如 evaluations", required=True)


def _feed_list(default: Any) -> fields.List[Any]:
    return fields.List(
        fields.Nested(FeedRefSchema), error_messages=_messages(), load_default=default
    )


class SettingsSchema(Schema):
    """The ``SYNC:`` configuration section."""

    class Meta:
        unknown = EXCLUDE

    key = fields.String(
        load_default=None,
        allow_none=True,
        validate=validate.Length(min=16, error="同步密钥至少 16 个字符"),
        error_messages=_messages("至少 16 个字符"),
    )
    children = fields.Dict(
        keys=_text(SITE_CODE, "下级站点编码"),
        values=fields.List(
            fields.String(
                validate=validate.Length(min=16, error="同步密钥至少 16 个字符"),
                error_messages=_messages(),
            ),
            validate=validate.Length(
                min=1, max=2, error="每个下级站点 1 到 2 个密钥（轮换时 2 个）"
            ),
            error_messages=_messages(),
        ),
        load_default=dict,
        error_messages=_messages("下级站点编码 → 密钥列表"),
    )
    upward = _feed_list(lambda: [dict(ref) for ref in DEFAULT_UPWARD])
    accept = _feed_list(None)
    catalog_service = _text(NAME, "服务名", load_default="matters")
    pull_catalog = fields.Boolean(
        load_default=None, allow_none=True, error_messages=_messages("true 或 false")
    )
    batch_size = _int(1, MAX_PAGE, load_default=500)
    max_batch_bytes = _int(10_000, 64_000_000, load_default=4_000_000)
    max_record_bytes = _int(1_000, 4_000_000, load_default=256_000)
    rpc_timeout = _seconds(0.5, 30.0)
    local_timeout = _seconds(0.5, 10.0)
    cycle_seconds = _seconds(1.0, 20.0)
    push_interval = _seconds(0.1, 2.0)
    pull_interval = _seconds(0.1, 10.0)
    reconcile_interval = _seconds(1.0, 3600.0)
    reconcile_days = _int(1, 3660, load_default=31)
    status_interval = _seconds(0.5, 5.0)
    key_check_interval = _seconds(1.0, 60.0)
    backoff_base = _seconds(0.01, 1.0)
    backoff_cap = _seconds(0.1, 300.0)
    mask_keys = fields.List(
        fields.String(), load_default=lambda: list(DEFAULT_MASK_KEYS), error_messages=_messages()
    )

    @validates_schema
    def _cap_above_base(self, data: dict[str, Any], **kwargs: Any) -> None:
        if data["backoff_cap"] < data["backoff_base"]:
            raise ValidationError("不能小于 backoff_base", "backoff_cap")


@dataclass(frozen=True)
class Settings:
    key: str | None
    children: dict[str, list[str]]
    upward: tuple[FeedRef, ...]
    accept: tuple[FeedRef, ...]
    catalog_service: str
    pull_catalog: bool
    batch_size: int
    max_batch_bytes: int
    max_record_bytes: int
    rpc_timeout: float
    local_timeout: float
    cycle_seconds: float
    push_interval: float
    pull_interval: float
    reconcile_interval: float
    reconcile_days: int
    status_interval: float
    key_check_interval: float
    backoff: Backoff
    mask_keys: tuple[str, ...]


def load_settings(section: Mapping[str, Any], tier: Tier | None = None) -> Settings:
    """Validate the ``SYNC:`` section; raises ``InvalidInput`` naming ``SYNC.<key>``.

    ``pull_catalog`` defaults to the site's place: county and above publish the catalog
    themselves (matters' ``catalog_source``), so only towns and villages pull it."""
    raw = dict(section)
    children = raw.get("children")
    if isinstance(children, Mapping):  # YAML reads an unquoted 421302101 as a number
        raw["children"] = {
            str(code): [str(k) for k in keys] if isinstance(keys, list) else keys
            for code, keys in children.items()
        }
    data = _load(SettingsSchema(), raw, "SYNC")
    upward = tuple(FeedRef(**ref) for ref in data["upward"])
    accept = data["accept"]
    return Settings(
        key=data["key"],
        children=data["children"],
        upward=upward,
        accept=upward if accept is None else tuple(FeedRef(**ref) for ref in accept),
        catalog_service=data["catalog_service"],
        pull_catalog=(
            data["pull_catalog"]
            if data["pull_catalog"] is not None
            else tier is None or tier.rank > Tier.COUNTY.rank
        ),
        batch_size=data["batch_size"],
        max_batch_bytes=data["max_batch_bytes"],
        max_record_bytes=data["max_record_bytes"],
        rpc_timeout=data["rpc_timeout"],
        local_timeout=data["local_timeout"],
        cycle_seconds=data["cycle_seconds"],
        push_interval=data["push_interval"],
        pull_interval=data["pull_interval"],
        reconcile_interval=data["reconcile_interval"],
        reconcile_days=data["reconcile_days"],
        status_interval=data["status_interval"],
        key_check_interval=data["key_check_interval"],
        backoff=Backoff(data["backoff_base"], data["backoff_cap"]),
        mask_keys=tuple(data["mask_keys"]),
    )


class _SignedSchema(Schema):
    """What every signed message from a child carries; the signature is checked over the
    raw message."""

    class Meta:
        unknown = EXCLUDE

    schema = _int(1, required=True)
    child = _text(SITE_CODE, "6、9 或 12 位站点编码", required=True)
    signature = _text(None, "十六进制签名", required=True)


class _FeedSchema(_SignedSchema):
    service = _text(NAME, "服务名", required=True)
    feed = _text(NAME, "数据源名", required=True)


class BatchSchema(_FeedSchema):
    """What ``sync.ingest`` accepts."""

    from_seq = _int(0, required=True)
    to_seq = _int(0, required=True)
    records = fields.List(fields.Raw(), required=True, error_messages=_messages())
    resend = fields.Boolean(load_default=False, error_messages=_messages())
    sent_at = fields.String(load_default=None, allow_none=True)

    @validates_schema
    def _ordered(self, data: dict[str, Any], **kwargs: Any) -> None:
        if data["to_seq"] < data["from_seq"]:
            raise ValidationError("不能小于 from_seq", "to_seq")


class ReconcileSchema(_FeedSchema):
    """What ``sync.reconcile_counts`` accepts: a child's counts per origin per day."""

    counts = fields.Dict(
        keys=_text(SITE_CODE, "站点编码"),
        values=fields.Dict(keys=fields.String(), values=_int(0)),
        required=True,
        error_messages=_messages("站点编码 → 日期 → 条数"),
    )


class KeyProbeSchema(_SignedSchema):
    """What ``sync.verify_key`` accepts: a child's signed key check (no records)."""

    upstream = _text(SITE_CODE, "6、9 或 12 位站点编码", required=True)
    sent_at = fields.String(load_default=None, allow_none=True)


def load_key_probe(probe: Any) -> dict[str, Any]:
    return _load(KeyProbeSchema(), probe, "probe")


def load_batch(batch: Any) -> dict[str, Any]:
    return _load(BatchSchema(), batch, "batch")


def load_reconcile(request: Any) -> dict[str, Any]:
    return _load(ReconcileSchema(), request, "request")


def load_page(since: Any, limit: Any) -> tuple[int, int]:
    """``since``/``limit`` of a catalog page request."""
    if isinstance(since, bool) or not isinstance(since, int) or since < 0:
        raise InvalidInput.field("since", "必须是非负整数")
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_PAGE:
        raise InvalidInput.field("limit", f"必须是 1 到 {MAX_PAGE} 之间的整数")
    return since, limit


def _load(schema: Schema, data: Any, prefix: str) -> dict[str, Any]:
    if not isinstance(data, Mapping):
        raise InvalidInput.field(prefix, "必须是对象")
    try:
        loaded: dict[str, Any] = schema.load(data)
    except ValidationError as exc:
        fields_ = _flatten(exc.messages, prefix)
        first = next(iter(sorted(fields_.items())))
        raise InvalidInput(f"{first[0]}：{first[1][0]}", fields_) from None
    return loaded


def _flatten(messages: Any, prefix: str) -> dict[str, list[str]]:
    """marshmallow's nested messages as ``{"SYNC.children.421302101": ["…"]}``."""
    flat: dict[str, list[str]] = {}
    if isinstance(messages, Mapping):
        for key, value in messages.items():
            name = prefix if key == "_schema" else f"{prefix}.{key}"
            for field_name, texts in _flatten(value, name).items():
                flat.setdefault(field_name, []).extend(texts)
    elif isinstance(messages, list) and all(isinstance(m, str) for m in messages):
        flat[prefix] = list(messages)
    elif isinstance(messages, list):
        for index, value in enumerate(messages):
            for field_name, texts in _flatten(value, f"{prefix}.{index}").items():
                flat.setdefault(field_name, []).extend(texts)
    else:
        flat[prefix] = [str(messages)]
    return flat
