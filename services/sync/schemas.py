"""Validation at the boundary of ``sync`` (docs/architecture.md, "Validation"): its
configuration section and its RPC arguments (``Arguments``: unknown keys refused), and
the signed messages children send (``Message``: unknown keys ignored, so a child can run
a newer version)."""

from __future__ import annotations

from typing import Any

from marshmallow import ValidationError, fields, validate, validates_schema

from services.common.evaluation_coding import EXPORT_PROFILES
from services.common.validation import (
    Arguments,
    Message,
    boolean,
    integer,
    number,
    one_of,
    text,
)
from services.sync.domain import DEFAULT_MASK_KEYS

DEFAULT_UPWARD = (
    {"service": "rating", "feed": "evaluations"},
    {"service": "rating", "feed": "cases"},
    {"service": "matters", "feed": "application_summaries"},
    {"service": "queue", "feed": "daily_figures"},
    {"service": "matters", "feed": "proxy_requests"},  # 代办, on their way to the handler
)
SITE_CODE = r"^[0-9]{6}([0-9]{3}){0,2}$"
NAME = r"^[A-Za-z][A-Za-z0-9_-]{0,63}$"
MAX_PAGE = 5000
KEY_RULE = "同步密钥至少 16 个字符"
PLATFORM_PROFILES = {name: p.title for name, p in EXPORT_PROFILES.items()}


def _site_code(**kw: Any) -> fields.String:
    return text(12, pattern=SITE_CODE, rule="6、9 或 12 位站点编码", **kw)


def _name(rule: str, **kw: Any) -> fields.String:
    return text(64, pattern=NAME, rule=rule, **kw)


def _seconds(low: float, default: float) -> fields.Float:
    return number(low, load_default=default)


def _sync_key(**kw: Any) -> fields.String:
    return fields.String(validate=validate.Length(min=16, error=KEY_RULE), **kw)


class FeedRefSchema(Arguments):
    service = _name("服务名，如 rating", required=True)
    feed = _name("数据源名，如 evaluations", required=True)


def _feed_list(default: Any) -> fields.List[Any]:
    return fields.List(fields.Nested(FeedRefSchema), load_default=default)


class PlatformSchema(Arguments):
    """``SYNC.platform``: the external 好差评 platform this site pushes its evaluations to
    (docs/api.md, "sync: the platform connector"); absent: no connector."""

    url = text(2000, pattern=r"^https?://[^\s/?#]+[^\s]*$", rule="http(s):// 地址", required=True)
    profile = text(32, required=True, validate=[one_of(PLATFORM_PROFILES)])
    auth = text(8, load_default="hmac", validate=[one_of(("token", "hmac"))])
    secret = fields.String(
        required=True, validate=validate.Length(min=16, error="平台令牌或签名密钥至少 16 个字符")
    )
    batch_size = integer(1, 1000, load_default=200)
    connect_timeout = _seconds(0.1, 5.0)
    read_timeout = _seconds(0.1, 30.0)
    interval = _seconds(0.1, 5.0)
    backoff_base = _seconds(0.01, 1.0)
    backoff_cap = _seconds(0.1, 300.0)
    timezone = text(64, load_default="Asia/Shanghai")
    cases = boolean(load_default=True)  # also push rating.cases (rectification_v1)

    @validates_schema
    def _cap_above_base(self, data: dict[str, Any], **kwargs: Any) -> None:
        if data["backoff_cap"] < data["backoff_base"]:
            raise ValidationError("不能小于 backoff_base", "backoff_cap")


class SettingsSchema(Arguments):
    """The ``SYNC:`` configuration section."""

    key = _sync_key(load_default=None, allow_none=True)
    children = fields.Dict(
        keys=_site_code(),
        values=fields.List(
            _sync_key(),
            validate=validate.Length(
                min=1, max=2, error="每个下级站点 1 到 2 个密钥（轮换时 2 个）"
            ),
        ),
        load_default=dict,
    )
    upward = _feed_list(lambda: [dict(ref) for ref in DEFAULT_UPWARD])
    accept = _feed_list(None)
    catalog_service = _name("服务名", load_default="matters")
    pull_catalog = boolean(load_default=None, allow_none=True)
    pull_outcomes = boolean(load_default=None, allow_none=True)
    batch_size = integer(1, MAX_PAGE, load_default=500)
    max_batch_bytes = integer(10_000, 64_000_000, load_default=4_000_000)
    max_record_bytes = integer(1_000, 4_000_000, load_default=256_000)
    rpc_timeout = _seconds(0.5, 30.0)
    local_timeout = _seconds(0.5, 10.0)
    cycle_seconds = _seconds(1.0, 20.0)
    push_interval = _seconds(0.1, 2.0)
    pull_interval = _seconds(0.1, 10.0)
    reconcile_interval = _seconds(1.0, 3600.0)
    reconcile_days = integer(1, 3660, load_default=31)
    lease_seconds = _seconds(5.0, 60.0)
    retention_interval = _seconds(60.0, 3600.0)
    parked_retention_days = integer(1, 36600, load_default=90)
    status_interval = _seconds(0.5, 5.0)
    key_check_interval = _seconds(1.0, 60.0)
    backoff_base = _seconds(0.01, 1.0)
    backoff_cap = _seconds(0.1, 300.0)
    mask_keys = fields.List(fields.String(), load_default=lambda: list(DEFAULT_MASK_KEYS))
    platform = fields.Nested(PlatformSchema, load_default=None, allow_none=True)

    @validates_schema
    def _cap_above_base(self, data: dict[str, Any], **kwargs: Any) -> None:
        if data["backoff_cap"] < data["backoff_base"]:
            raise ValidationError("不能小于 backoff_base", "backoff_cap")


class ParkedArguments(Arguments):
    """``sync.parked(feed, limit)``."""

    feed = text(129, load_default=None, allow_none=True)
    limit = integer(1, 1000, load_default=100)


class CatalogPage(Arguments):
    """``sync.catalog_changes(since, limit)``: a page of the catalog feed."""

    since = integer(0, load_default=0)
    limit = integer(1, MAX_PAGE, load_default=500)


class _Signed(Message):
    """What every signed message from a child carries; the signature is checked over the
    raw message."""

    schema = integer(1, required=True)
    child = _site_code(required=True)
    signature = text(min_len=0, required=True)


class _FeedMessage(_Signed):
    service = _name("服务名", required=True)
    feed = _name("数据源名", required=True)


class BatchSchema(_FeedMessage):
    """What ``sync.ingest`` accepts."""

    from_seq = integer(0, required=True)
    to_seq = integer(0, required=True)
    records = fields.List(fields.Raw(), required=True)
    resend = boolean(load_default=False)
    sent_at = text(min_len=0, load_default=None, allow_none=True)
    # The epoch the child reads its feed under: a new one after its store was restored.
    incarnation = text(100, load_default=None, allow_none=True)

    @validates_schema
    def _ordered(self, data: dict[str, Any], **kwargs: Any) -> None:
        if data["to_seq"] < data["from_seq"]:
            raise ValidationError("不能小于 from_seq", "to_seq")


class ReconcileSchema(_FeedMessage):
    """What ``sync.reconcile_counts`` accepts: a child's counts per origin per day."""

    counts = fields.Dict(
        keys=_site_code(),
        values=fields.Dict(keys=fields.String(), values=integer(0)),
        required=True,
    )
    # origin -> day -> digest of (id, version) (domain.digest); absent from older children
    digests = fields.Dict(
        keys=_site_code(),
        values=fields.Dict(keys=fields.String(), values=text(64)),
        load_default=None,
        allow_none=True,
    )


class OutcomesRequestSchema(_Signed):
    """What ``sync.proxy_outcomes`` accepts: a child's signed request for the 代办 outcomes
    of its subtree after a position of this site's ``proxy_outcomes`` feed."""

    since = integer(0, required=True)
    limit = integer(1, MAX_PAGE, required=True)
    sent_at = text(min_len=0, load_default=None, allow_none=True)


class KeyProbeSchema(_Signed):
    """What ``sync.verify_key`` accepts: a child's signed key check (no records)."""

    upstream = _site_code(required=True)
    sent_at = text(min_len=0, load_default=None, allow_none=True)
