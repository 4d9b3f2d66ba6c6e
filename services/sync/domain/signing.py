"""Signed messages between a child and its upstream (docs/architecture.md, "Replication"):
one canonical JSON form, HMAC-SHA256 over it, and which of a rotation's keys signed."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping, Sequence
from typing import Any

from services.common.errors import InvalidInput

SCHEMA = 1


def canonical_json(value: Any) -> bytes:
    """The one byte form a batch is signed over: sorted keys, no spaces, UTF-8."""
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode("utf-8")


def signature(payload: Mapping[str, Any], key: str) -> str:
    """HMAC-SHA256 (hex) of the canonical JSON of ``payload`` without its ``signature``."""
    body = {k: v for k, v in payload.items() if k != "signature"}
    return hmac.new(key.encode("utf-8"), canonical_json(body), hashlib.sha256).hexdigest()


def sign(payload: Mapping[str, Any], key: str) -> dict[str, Any]:
    """``payload`` with its ``signature`` added."""
    return {**payload, "signature": signature(payload, key)}


def verify(payload: Mapping[str, Any], keys: Sequence[str]) -> bool:
    """True when ``payload`` was signed with one of ``keys`` (two during a key rotation)."""
    return matching_key(payload, keys) is not None


def matching_key(payload: Mapping[str, Any], keys: Sequence[str]) -> int | None:
    """The position in ``keys`` of the key ``payload`` was signed with, or None. During a
    rotation (``[old, new]``) this tells whether a child still signs with the old key."""
    given = payload.get("signature")
    if not isinstance(given, str):
        return None
    found = None
    # Every key is tried, so the time taken does not tell which one matched.
    for index, key in enumerate(keys):
        try:
            expected = signature(payload, key)
        except ValueError:  # NaN or infinity (ValueError), a lone surrogate (UnicodeError)
            raise InvalidInput.field(
                "batch", "含有无法签名的值（NaN、无穷大或无效的 Unicode 字符）"
            ) from None
        if hmac.compare_digest(expected, given):
            found = index
    return found
