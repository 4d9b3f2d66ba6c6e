"""Replication rules between tiers (同步): signing, masking, batching, checkpoints, backoff.

Pure: standard library only, no I/O, no Nameko. The service (``service.py``) and the
replicator (``replicator.py``) call these; unit tests exercise them directly.

Words used here:
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

import hashlib
import hmac
import json
import random
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from typing import Any

SCHEMA = 1

# Keys that name or identify a person. Dropped (at any depth) from every record before it
# leaves the site, even though the feeds are meant to be clean already (DESIGN §6.8).
DEFAULT_MASK_KEYS = (
    "phone",
    "phone_number",
    "mobile",
    "mobile_phone",
    "telephone",
    "contact_phone",
    "applicant_phone",
    "name",
    "applicant_name",
    "citizen_name",
    "contact_name",
    "rater_name",
    "id_number",
    "id_card",
    "id_card_number",
    "applicant_id_number",
    "address",
    "email",
    "openid",
)
# Values under these keys are identifiers or codes, never free text: left as they are.
_STRUCTURAL_KEY = re.compile(
    r"(^id$|_id$|^site_code$|_code$|_at$|^date$|^schema$|_masked$|^number$|_number$|_no$)"
)
_LONG_NUMBER = re.compile(r"[0-9]{11}")
_MOBILE = re.compile(r"(?<![0-9])(1[3-9][0-9])([0-9]{4})([0-9]{4})(?![0-9])")
_ID_NUMBER = re.compile(
    r"(?<![0-9])([1-9][0-9]{3})[0-9]{2}(?:18|19|20)[0-9]{2}(?:0[1-9]|1[0-2])"
    r"(?:0[1-9]|[12][0-9]|3[01])([0-9]{3}[0-9Xx])(?![0-9A-Za-z])"
)


@dataclass(frozen=True)
class FeedRef:
    """One replicated feed: the local service that publishes it and the feed's name."""

    service: str
    feed: str

    @property
    def key(self) -> str:
        return f"{self.service}.{self.feed}"


# --- Canonical JSON and signatures --------------------------------------------------------


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
        if hmac.compare_digest(signature(payload, key), given):
            found = index
    return found


# --- Privacy ----------------------------------------------------------------------------


def mask_phone(text: str) -> str:
    """Mobile numbers inside free text shown as 138****5678."""
    return _MOBILE.sub(lambda m: f"{m.group(1)}****{m.group(3)}", text)


def mask_id_numbers(text: str) -> str:
    """Resident ID numbers inside free text shown as 4213**********1234."""
    return _ID_NUMBER.sub(lambda m: f"{m.group(1)}{'*' * 10}{m.group(2)}", text)


def mask_record(doc: Mapping[str, Any], drop: Iterable[str] = DEFAULT_MASK_KEYS) -> dict[str, Any]:
    """A copy of ``doc`` fit to leave the site: personal keys dropped at any depth, phone
    and ID numbers masked inside free text, the local feed position ``_seq`` removed.
    ``phone_masked`` and the ``real_name`` flag are kept."""
    dropped = frozenset(drop)
    cleaned: dict[str, Any] = _mask_value(doc, dropped, key="")
    cleaned.pop("_seq", None)
    return cleaned


@lru_cache(maxsize=4096)
def _free_text(key: str) -> bool:
    return not _STRUCTURAL_KEY.search(key)


def _mask_value(value: Any, drop: frozenset[str], key: str) -> Any:
    if isinstance(value, str):
        # Only text with a run of 11+ digits can hold a phone or ID number: most values don't.
        if _free_text(key) and _LONG_NUMBER.search(value):
            return mask_id_numbers(mask_phone(value))
        return value
    if isinstance(value, Mapping):
        return {k: _mask_value(v, drop, k) for k, v in value.items() if k not in drop}
    if isinstance(value, list):
        return [_mask_value(item, drop, key) for item in value]
    return value


def personal_keys(doc: Mapping[str, Any], drop: Iterable[str] = DEFAULT_MASK_KEYS) -> list[str]:
    """The personal keys present in ``doc`` at any depth (empty for a clean record)."""
    dropped = frozenset(drop)
    found: set[str] = set()

    def walk(value: Any) -> None:
        if isinstance(value, Mapping):
            found.update(dropped.intersection(value))
            for v in value.values():
                if isinstance(v, Mapping | list):
                    walk(v)
        elif isinstance(value, list):
            for item in value:
                if isinstance(item, Mapping | list):
                    walk(item)

    walk(doc)
    return sorted(found)


# --- Records: what may be replicated ----------------------------------------------------


def encoded_size(doc: Any) -> int:
    """About the bytes ``doc`` takes in a message (UTF-8 JSON; key order aside)."""
    return len(json.dumps(doc, ensure_ascii=False, allow_nan=False).encode("utf-8"))


_SITE_CODE = re.compile(r"[0-9]{6}(?:[0-9]{3}){0,2}\Z")


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
    site = doc.get("site_code")
    if not isinstance(site, str) or not _SITE_CODE.match(site):
        return "site_code 必须是 6、9 或 12 位数字的站点编码"
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


# --- Batches and checkpoints -------------------------------------------------------------


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


# --- Retry schedule ---------------------------------------------------------------------


@dataclass(frozen=True)
class Backoff:
    """Exponential backoff with jitter, capped, never giving up (重试退避)."""

    base: float = 1.0
    cap: float = 300.0

    def delay(self, failures: int, rand: Callable[[], float] = random.random) -> float:
        """Seconds to wait after the ``failures``-th failure in a row: "equal jitter",
        between half and all of ``min(cap, base * 2**(failures-1))``."""
        exponent = min(max(failures, 1) - 1, 60)
        ceiling = min(self.cap, self.base * 2.0**exponent)
        return ceiling / 2 + rand() * ceiling / 2


@dataclass
class Task:
    """A periodic job (push one feed, pull the catalog, reconcile) and when it runs next."""

    interval: float
    backoff: Backoff
    next_due: float = 0.0
    failures: int = 0
    rand: Callable[[], float] = field(default=random.random, repr=False)

    def due(self, now: float) -> bool:
        return now >= self.next_due

    def succeeded(self, now: float) -> None:
        self.failures = 0
        self.next_due = now + self.interval

    def failed(self, now: float) -> float:
        self.failures += 1
        wait = self.backoff.delay(self.failures, self.rand)
        self.next_due = now + wait
        return wait

    def hurry(self) -> None:
        """Run at the next tick (an operator asked, or a page was full)."""
        self.next_due = 0.0


# --- Reconciliation ---------------------------------------------------------------------

Counts = dict[str, dict[str, int]]  # origin site -> day -> number of records


def day_of(doc: Mapping[str, Any]) -> str:
    """The day a record counts under: its ``date`` (daily figures) or the day it was created."""
    value = doc.get("date") or doc.get("created_at") or ""
    text = str(value)[:10]
    return text if len(text) == 10 else "unknown"


def tally(docs: Iterable[Mapping[str, Any]], first_day: str) -> Counts:
    """Records per origin site per day, from ``first_day`` on."""
    counts: Counts = {}
    for doc in docs:
        day = day_of(doc)
        if day < first_day and day != "unknown":
            continue
        per_day = counts.setdefault(str(doc.get("site_code")), {})
        per_day[day] = per_day.get(day, 0) + 1
    return counts


def shortfalls(mine: Counts, theirs: Counts) -> set[tuple[str, str]]:
    """(origin, day) pairs for which the upstream holds fewer records than this site."""
    return {
        (origin, day)
        for origin, days in mine.items()
        for day, count in days.items()
        if theirs.get(origin, {}).get(day, 0) < count
    }


def first_day(today: date, days: int) -> str:
    """The first day a reconciliation looks at: ``days`` days back, inclusive of today."""
    return (today - timedelta(days=max(days, 1) - 1)).isoformat()


# --- Time -------------------------------------------------------------------------------


def utc_now_iso(now: datetime | None = None) -> str:
    moment = now or datetime.now(UTC)
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def age_seconds(stamp: object, now: datetime) -> float | None:
    """Seconds since an ISO-8601 timestamp, or None when it is missing or unreadable."""
    if not isinstance(stamp, str) or not stamp:
        return None
    try:
        moment = datetime.fromisoformat(stamp)
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return max((now - moment).total_seconds(), 0.0)
