"""The 好差评 platform connector's rules (docs/api.md, "sync: the platform connector"): an
evaluation in the platform's coding with its idempotency key, the authentication headers
of a request, and what the platform's reply acknowledges. Pure: no I/O."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Container, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

from services.common.evaluation_coding import (
    RECTIFICATION_V1,
    ExportProfile,
    export_record,
    rectification_record,
)

# Per-record outcomes a platform reply may carry; "duplicate" is an earlier send of the
# same key (a resend after a lost reply): acknowledged like "accepted".
ACKED = frozenset({"accepted", "duplicate"})
REJECTED = "rejected"
SIGNATURE_HEADERS = ("X-Hall-Timestamp", "X-Hall-Content-SHA256", "Authorization")
# What each record of a batch is (``"kind"``), so one endpoint takes both sources.
EVALUATION, RECTIFICATION = "evaluation", "rectification"


def idempotency_key(record: Mapping[str, Any]) -> str:
    """One key per record version: a resend of the same version is the same key, a newer
    version (the record changed) is a new one. Record ids carry the owner's site code."""
    return f"{record['id']}@v{int(record.get('version') or 1)}"


def coded(
    record: Mapping[str, Any], profile: ExportProfile, zone: ZoneInfo
) -> tuple[dict[str, Any] | None, str | None]:
    """(the record as the platform receives it, None) or (None, why it cannot be coded)."""
    try:
        data = export_record(record, profile, zone)
    except (KeyError, ValueError, TypeError) as exc:
        return None, f"{profile.title} 无法编码该记录：{type(exc).__name__} {exc}"[:200]
    if data is None:
        return None, f"{profile.title} 没有该评价渠道（{record.get('channel')}）的代码"
    return _payload(EVALUATION, record, data), None


def coded_case(
    record: Mapping[str, Any], zone: ZoneInfo
) -> tuple[dict[str, Any] | None, str | None]:
    """A rectification case version in ``rectification_v1`` (services/common/
    evaluation_coding.py), or (None, why it cannot be coded): never guessed."""
    try:
        data, reason = rectification_record(record, zone)
    except (KeyError, ValueError, TypeError) as exc:
        return None, f"{RECTIFICATION_V1} 无法编码该记录：{type(exc).__name__} {exc}"[:200]
    if data is None:
        return None, reason
    return _payload(RECTIFICATION, record, data, coding=RECTIFICATION_V1), None


def _payload(
    kind: str, record: Mapping[str, Any], data: dict[str, Any], **extra: str
) -> dict[str, Any]:
    return {
        "kind": kind,
        "idempotency_key": idempotency_key(record),
        "record_id": record["id"],
        "version": int(record.get("version") or 1),
        **extra,
        "data": data,
    }


def body_digest(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


def string_to_sign(method: str, path: str, timestamp: str, digest: str) -> bytes:
    """What the HMAC covers, one field a line: a replay to another path, at another time, or
    with another body does not verify."""
    return f"{method.upper()}\n{path}\n{timestamp}\n{digest}".encode()


def request_signature(secret: str, method: str, path: str, timestamp: str, digest: str) -> str:
    mac = hmac.new(secret.encode(), string_to_sign(method, path, timestamp, digest), "sha256")
    return mac.hexdigest()


def auth_headers(
    auth: str, secret: str, method: str, path: str, body: bytes, timestamp: int
) -> dict[str, str]:
    """The headers authenticating one request: ``Bearer <token>`` (``auth: token``) or
    ``HMAC-SHA256 <hex>`` over method, path, timestamp and the body's SHA-256."""
    digest = body_digest(body)
    stamp = str(timestamp)
    headers = {"X-Hall-Timestamp": stamp, "X-Hall-Content-SHA256": digest}
    if auth == "token":
        headers["Authorization"] = f"Bearer {secret}"
    else:
        signature = request_signature(secret, method, path, stamp, digest)
        headers["Authorization"] = f"HMAC-SHA256 {signature}"
    return headers


@dataclass
class Acks:
    """What one reply acknowledged, in the batch's order."""

    accepted: list[str] = field(default_factory=list)
    rejected: dict[str, str] = field(default_factory=dict)  # key → the platform's reason
    missing: list[str] = field(default_factory=list)  # neither: sent again


def read_acks(keys: Sequence[str], reply: Any) -> Acks:
    """Match a 2xx reply ``{"results": [{"idempotency_key", "status", "reason"?}]}`` to the
    keys sent. A key the reply does not mention (or mentions with an unknown status) is
    not acknowledged: it is sent again, never taken as done."""
    results = reply.get("results") if isinstance(reply, Mapping) else None
    by_key: dict[str, Mapping[str, Any]] = {}
    for item in results if isinstance(results, list) else []:
        if isinstance(item, Mapping) and isinstance(item.get("idempotency_key"), str):
            by_key[item["idempotency_key"]] = item
    acks = Acks()
    for key in keys:
        item = by_key.get(key, {})
        status = item.get("status")
        if status in ACKED:
            acks.accepted.append(key)
        elif status == REJECTED:
            acks.rejected[key] = str(item.get("reason") or "平台拒收，未说明原因")[:300]
        else:
            acks.missing.append(key)
    return acks


def settled_prefix(keys: Sequence[str | None], settled: Container[str]) -> int:
    """How many of a page's ``keys`` (in feed order; None for a record skipped as uncodable)
    are settled from the first on: the checkpoint moves past them only, so a record the
    platform has not acknowledged is never left behind."""
    count = 0
    for key in keys:
        if key is not None and key not in settled:
            break
        count += 1
    return count
