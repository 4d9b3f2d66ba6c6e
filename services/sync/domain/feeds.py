"""Feeds, records and batches (docs/architecture.md, "Replication").

- a *feed* is a local service's published change feed, named ``"<service>.<feed>"``
  (``rating.evaluations``); a *record* is one document of it;
- a *batch* (批次) is what a child site sends its upstream: records of one feed between two
  positions of the child's feed (``from_seq`` < positions <= ``to_seq``), signed with the
  child's key;
- the *high-water mark* (高水位) is the position of the child's feed up to which the
  upstream holds everything; the child moves its checkpoint only to a mark the upstream
  replied with.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from services.sync.domain.signing import SCHEMA


@dataclass(frozen=True)
class FeedRef:
    """One replicated feed: the local service that publishes it and the feed's name."""

    service: str
    feed: str

    @property
    def key(self) -> str:
        return f"{self.service}.{self.feed}"


def encoded_size(doc: Any) -> int:
    """About the bytes ``doc`` takes in a message (UTF-8 JSON; key order aside)."""
    return len(json.dumps(doc, ensure_ascii=False, allow_nan=False).encode("utf-8"))


_SITE_CODE = re.compile(r"[0-9]{6}(?:[0-9]{3}){0,2}\Z")
# Versions must stay exact in every store and in JSON: the storage port refuses more
# (services.common.store.port.MAX_VERSION), so a record claiming more is parked here.
MAX_VERSION = 2**53
_ID_SEGMENTS = re.compile(r"[:\-]")


def owner_of(doc: Mapping[str, Any]) -> Any:
    """Whose a replicated record is: the site whose service recorded it
    (``recorded_at_site``) when it says, else its origin (``site_code``). Only the owner
    may change it (docs/architecture.md, "Replication")."""
    recorded = doc.get("recorded_at_site")
    return recorded if recorded is not None else doc.get("site_code")


def ownership_problem(doc: Mapping[str, Any]) -> str | None:
    """Why a record's id is not its owner's, or None: every replicated id carries its
    owner's site code as one of its ``:``/``-`` separated segments, so two sites can never
    produce the same id."""
    owner = owner_of(doc)
    if str(owner) not in _ID_SEGMENTS.split(str(doc.get("id"))):
        return f"记录编号 {doc.get('id')} 不含其所属站点 {owner} 的编码，不能由该站点上报"
    return None


def record_problem(doc: Any, max_bytes: int) -> str | None:
    """Why a record cannot be replicated (a poison record, 问题记录), or None when it can.
    Messages are Chinese: operators read them in ``sync.parked()``."""
    if not isinstance(doc, Mapping):
        return "记录不是对象"
    doc_id = doc.get("id")
    if not isinstance(doc_id, str) or not doc_id or len(doc_id) > 200:
        return "id 必须是 1 到 200 个字符的文本"
    version = doc.get("version")
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        return "version 必须是不小于 1 的整数"
    if version > MAX_VERSION:
        return f"version {version} 超出上限 2^53，无法存储"
    for field in ("site_code", "recorded_at_site"):
        site = doc.get(field)
        if (field == "site_code" or site is not None) and (
            not isinstance(site, str) or not _SITE_CODE.match(site)
        ):
            return f"{field} 必须是 6、9 或 12 位数字的站点编码"
    schema = doc.get("schema", SCHEMA)
    if isinstance(schema, bool) or not isinstance(schema, int) or schema < 1:
        return "schema 必须是不小于 1 的整数"
    for stamp in ("created_at", "updated_at"):
        if stamp in doc and not isinstance(doc[stamp], str):
            return f"{stamp} 必须是 ISO-8601 时间文本"
    try:
        size = encoded_size(doc)
    except (TypeError, ValueError):
        return "记录含有无法编码为 JSON 的值"
    if size > max_bytes:
        return f"记录过大（{size} 字节，上限 {max_bytes}）"
    return None


@dataclass(frozen=True)
class Span:
    """Records of one batch and the feed positions it covers: ``from_seq`` < seq <= ``to_seq``."""

    from_seq: int
    to_seq: int
    records: list[dict[str, Any]]


def spans(
    items: Sequence[Mapping[str, Any]],
    since: int,
    last_seq: int,
    keep: Callable[[Mapping[str, Any]], dict[str, Any] | None],
    max_records: int,
    max_bytes: int,
) -> list[Span]:
    """Cut one page of a feed (``items`` after ``since``, ending at ``last_seq``) into
    batches of at most ``max_records`` records and about ``max_bytes`` bytes. ``keep``
    returns the record to send, or None to leave it out (parked); the positions of records
    left out are still covered, so the spans are contiguous from ``since`` to ``last_seq``."""
    result: list[Span] = []
    current: list[dict[str, Any]] = []
    size = 0
    start = prev_seq = since
    for item in items:
        seq = int(item["_seq"])
        record = keep(item)
        if record is not None:
            length = encoded_size(record)
            if current and (len(current) >= max_records or size + length > max_bytes):
                result.append(Span(start, prev_seq, current))
                start, current, size = prev_seq, [], 0
            current.append(record)
            size += length
        prev_seq = seq
    if current or start < last_seq or not result:
        result.append(Span(start, last_seq, current))
    return result


def acknowledge(stored: int, from_seq: int, to_seq: int) -> int:
    """The high-water mark an upstream holds for a child's feed after applying a batch.

    A batch that starts at or before the stored mark extends it; one that starts after it
    (the upstream lost data, e.g. restored from a backup) leaves it, and the child, seeing
    the lower mark in the reply, sends again from there. A resend (0, 0) never moves it."""
    if from_seq <= stored:
        return max(stored, to_seq)
    return stored


def rejection(record: Any, reason: str) -> dict[str, Any]:
    """How a refused record is named in a reply: its id and version, never its content."""
    if isinstance(record, Mapping):
        return {"id": record.get("id"), "version": record.get("version"), "reason": reason}
    return {"id": None, "version": None, "reason": reason}
