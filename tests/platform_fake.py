"""A fake 好差评 platform for the connector's tests and bench (docs/api.md, "sync: the
platform connector"): a real HTTP server in a thread that verifies every request's
signature, validates every record against its coding's tables (the evaluations' profile, or
``rectification_v1`` for cases) (codes, labels, required
fields, the time format), dedupes by idempotency key, and fails a seeded share of the
requests with timeouts (it sleeps past the client's timeout), 500s and connections closed
mid-response.

It counts raw arrivals apart from what it accepts, and notes every arrival of a key whose
acknowledgement it had already delivered in full: that is a needless resend by the
client, which the dedupe would otherwise hide."""

from __future__ import annotations

import hmac
import json
import random
import re
import socket
import threading
import time
from collections import Counter
from datetime import UTC, date, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from bench.rating import seeded_doc
from services.common.calendar import WorkingCalendar
from services.common.clock import Clock, parse_iso
from services.common.evaluation_coding import (
    CASE_CLASSIFICATIONS,
    CASE_STATES,
    EXPORT_PROFILES,
    FEEDBACK_METHODS,
    LEVEL_ZH,
    RECTIFICATION_FIELDS,
    RECTIFICATION_V1,
    TIME_FORMAT,
)
from services.common.runtime import SiteContext
from services.common.store import open_store
from services.rating.domain.cases import open_case
from services.rating.settings import RatingSettings
from services.sync.adapters.platform_http import PlatformHttp
from services.sync.app import SyncApp
from services.sync.domain.platform import body_digest, request_signature
from services.sync.settings import SyncSettings

FAILURES = ("timeout", "error500", "drop")
REQUIRED = (
    "办件编号",
    "评价渠道",
    "评价渠道代码",
    "评价人",
    "评价时间",
    "评价次数",
    "满意度",
    "满意度代码",
    "文字评价",
    "行政区划",
    "是否计入统计",
)
DIVISION = re.compile(r"^[0-9]{6}([0-9]{3}){0,2}$")
TIME = re.compile(r"^[0-9]{8}T[0-9]{6}$")
DAY = re.compile(r"^[0-9]{8}$")
PHONE = re.compile(r"1[3-9][0-9]{9}")
MAX_SKEW_S = 300


def _fields_problem(data: Any, fields: tuple[str, ...]) -> str | None:
    """Why ``data`` is not an object of exactly ``fields``, each text; or None."""
    if not isinstance(data, dict):
        return "记录不是对象"
    missing = [name for name in fields if not isinstance(data.get(name), str)]
    if missing:
        return f"缺少字段：{'、'.join(missing)}"
    extra = sorted(set(data) - set(fields))
    if extra:
        return f"多余字段：{'、'.join(extra)}"
    return None


def coding_problem(data: Any, profile: str) -> str | None:
    """Why ``data`` is not a valid record of ``profile``'s coding, or None."""
    coding = EXPORT_PROFILES[profile]
    problem = _fields_problem(data, REQUIRED)
    if problem is not None:
        return problem
    channels = {pair for pair in coding.channels.values() if pair is not None}
    if (data["评价渠道代码"], data["评价渠道"]) not in channels:
        return f"评价渠道代码 {data['评价渠道代码']} 与渠道 {data['评价渠道']} 不在代码表中"
    levels = {code: LEVEL_ZH[level] for level, code in coding.levels.items()}
    if levels.get(data["满意度代码"]) != data["满意度"]:
        return f"满意度代码 {data['满意度代码']} 与满意度 {data['满意度']} 不符"
    if data["评价次数"] not in set(coding.sequences.values()):
        return "评价次数不在代码表中"
    if data["是否计入统计"] not in ("是", "否"):
        return "是否计入统计只能是 是 或 否"
    if not DIVISION.match(data["行政区划"]) or not data["办件编号"]:
        return "行政区划或办件编号不对"
    if not TIME.match(data["评价时间"]):
        return "评价时间格式应为 YYYYMMDDThhmmss"
    try:
        datetime.strptime(data["评价时间"], TIME_FORMAT).replace(tzinfo=UTC)
    except ValueError:
        return "评价时间不是有效时间"
    return None


def _valid_time(value: str, pattern: re.Pattern[str], form: str) -> bool:
    """Empty (not reached yet), or a real time of ``form``."""
    if not value:
        return True
    try:
        datetime.strptime(value, form).replace(tzinfo=UTC)
    except ValueError:
        return False
    return bool(pattern.match(value))


def rectification_problem(data: Any) -> str | None:
    """Why ``data`` is not a valid ``rectification_v1`` record, or None."""
    problem = _fields_problem(data, RECTIFICATION_FIELDS)
    if problem is not None:
        return problem
    if (data["办理状态代码"], data["办理状态"]) not in set(CASE_STATES.values()):
        return f"办理状态代码 {data['办理状态代码']} 与办理状态 {data['办理状态']} 不符"
    if (data["定性代码"], data["定性"]) not in {("", ""), *CASE_CLASSIFICATIONS.values()}:
        return f"定性代码 {data['定性代码']} 与定性 {data['定性']} 不符"
    if data["反馈方式"] not in {"", *FEEDBACK_METHODS.values()}:
        return "反馈方式不在代码表中"
    if data["是否按期"] not in ("", "是", "否"):
        return "是否按期只能是 是、否 或空"
    closed = data["办理状态"] == "已办结"
    if closed != bool(data["办结时间"]) or closed != bool(data["是否按期"]):
        return "已办结的案件须有办结时间和是否按期，未办结的不能有"
    if not DIVISION.match(data["行政区划"]) or not data["评价编号"] or not data["办件编号"]:
        return "行政区划、评价编号或办件编号不对"
    for name in ("回访时间", "整改完成时间", "反馈时间", "办结时间"):
        if not _valid_time(data[name], TIME, TIME_FORMAT):
            return f"{name}格式应为 YYYYMMDDThhmmss"
    for name in ("回访期限", "整改期限"):
        if not _valid_time(data[name], DAY, "%Y%m%d"):
            return f"{name}格式应为 YYYYMMDD"
    if PHONE.search(data["整改措施"]):
        return "整改措施含有手机号码"
    return None


def seed_rating_store(data: Path, code: str, coded: int, uncodable: int) -> set[str]:
    """Evaluations written into the site's rating store as rating writes them (bench/rating.py
    ``seeded_doc``: the site's own and its subtree's): ``coded`` the gbt39046 coding can
    express, and ``uncodable`` system-default ratings spread among them. The coded ids."""
    store = open_store(f"sqlite:///{data / code}", "rating")
    rng, day = random.Random(3), date(2026, 11, 23)
    docs = [{**seeded_doc(n, day, rng), "version": 1} for n in range(coded)]
    step = max(coded // max(uncodable, 1), 1)
    for n in range(uncodable):
        odd = {**seeded_doc(coded + n, day, rng), "version": 1, "channel": "system_default"}
        docs.insert(n * step, odd)
    try:
        store.collection("evaluations").upsert_versioned_many(docs)
    finally:
        store.close()
    return {d["id"] for d in docs if d["channel"] != "system_default"}


def seed_cases(data: Path, code: str) -> set[str]:
    """A rectification case opened, as rating opens it (``open_case``), for every bad
    evaluation in the site's rating store; their ids."""
    store = open_store(f"sqlite:///{data / code}", "rating")
    settings = RatingSettings(privacy_salt="platform-test-salt-0123")
    try:
        evaluations = store.collection("evaluations").changes_since(0, 1_000_000)
        cases: list[dict[str, Any]] = [
            {
                **open_case(e, parse_iso(e["submitted_at"]), settings, WorkingCalendar()),
                "version": 1,
            }
            for e in evaluations
            if e.get("bad")
        ]
        store.collection("cases").upsert_versioned_many(cases)
    finally:
        store.close()
    return {c["id"] for c in cases}


class ListedFeeds:
    """This site's rating service as sync sees it (``local.call``): its two feeds, listed."""

    def __init__(
        self, evaluations: list[dict[str, Any]], cases: list[dict[str, Any]] | None = None
    ) -> None:
        self.items = evaluations
        self.feeds = {"evaluations": evaluations, "cases": cases or []}
        self.reads: Counter[str] = Counter()

    def call(self, service: str, method: str, *args: Any) -> Any:
        assert (service, method) == ("rating", "feed"), (service, method)
        name, since, limit = args
        self.reads[name] += 1
        items = self.feeds[name]
        page = [i for i in items if i["_seq"] > since][:limit]
        return {
            "items": page,
            "last_seq": page[-1]["_seq"] if page else since,
            "high_water": items[-1]["_seq"] if items else 0,
            "incarnation": "inc-1",
        }


def connector_app(
    context: SiteContext, clock: Clock, url: str, secret: str, local: Any, **platform: Any
) -> SyncApp:
    """A ``SyncApp`` with only the platform connector (no upward feeds, no catalog), pushing
    to ``url`` what ``local`` serves; ``platform`` overrides ``SYNC.platform`` keys."""
    section = {
        "upward": [],
        "pull_catalog": False,
        "pull_outcomes": False,
        "platform": {
            "url": url,
            "profile": "gbt39046",
            "secret": secret,
            "read_timeout": 0.5,
            **platform,
        },
    }
    settings = SyncSettings.from_section(section, context.identity.tier)
    assert settings.platform is not None
    client = PlatformHttp(settings.platform, context.identity.code)
    return SyncApp(context, settings, clock, platform=client, local=local)


class FakePlatform:
    def __init__(
        self,
        secret: str,
        profile: str,
        *,
        auth: str = "hmac",
        fail_rate: float = 0.2,
        seed: int = 7,
        stall_s: float = 1.0,
    ) -> None:
        self.secret, self.profile, self.auth = secret, profile, auth
        # Record ids refused as if the platform's own checks failed (a test empties it to
        # model the platform fixed).
        self.refuse: set[str] = set()
        # Record ids for which the whole batch is refused with a 422 and no per-record
        # results (as some platforms answer a batch that fails validation).
        self.refuse_batch: set[str] = set()
        # Record ids stored but left out of the reply's results (a platform that answers
        # only part of a batch): the client must not take them as acknowledged.
        self.omit: set[str] = set()
        # Codings whose interface is down: their batches answered 503.
        self.refuse_profiles: set[str] = set()
        self.fail_rate, self.stall_s = fail_rate, stall_s
        self.rng = random.Random(seed)
        self.lock = threading.Lock()
        self.accepted: dict[str, dict[str, Any]] = {}  # idempotency key → record
        self.accepted_ids: Counter[str] = Counter()  # record id → times accepted
        self.arrivals: Counter[str] = Counter()  # idempotency key → raw arrivals
        self.acked: set[str] = set()  # keys whose settling reply was delivered in full
        self.resent_after_ack: list[str] = []
        self.rejected: dict[str, str] = {}
        self.outcomes: Counter[str] = Counter()  # ok, timeout, error500, drop, unauthorized
        self.first_at: float | None = None  # monotonic time of the first and last request
        self.last_at = 0.0
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/api/v1/evaluations"

    def start(self) -> FakePlatform:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def record_of(self, result: dict[str, Any]) -> str | None:
        item = self.accepted.get(str(result.get("idempotency_key")))
        return str(item.get("record_id")) if item else None

    def busy_seconds(self) -> float:
        """From the first request (since ``first_at`` was last cleared) to the last one."""
        return self.last_at - (self.first_at or self.last_at)

    def _mode(self) -> str:
        with self.lock:
            if self.rng.random() < self.fail_rate:
                return self.rng.choice(FAILURES)
            return "ok"

    def authentic(self, headers: Any, path: str, body: bytes) -> bool:
        stamp = headers.get("X-Hall-Timestamp", "")
        if not stamp.isdigit() or abs(time.time() - int(stamp)) > MAX_SKEW_S:
            return False
        digest = body_digest(body)
        if headers.get("X-Hall-Content-SHA256") != digest:
            return False
        given = headers.get("Authorization", "")
        if self.auth == "token":
            return hmac.compare_digest(given, f"Bearer {self.secret}")
        expected = request_signature(self.secret, "POST", path, stamp, digest)
        return hmac.compare_digest(given, f"HMAC-SHA256 {expected}")

    def receive(self, batch: Any) -> list[dict[str, Any]]:
        """Validate and store one batch; the per-record results."""
        results = []
        with self.lock:
            for item in batch.get("records") or []:
                key = item.get("idempotency_key") if isinstance(item, dict) else None
                if not isinstance(key, str) or not key:
                    results.append({"idempotency_key": None, "status": "rejected"})
                    continue
                self.arrivals[key] += 1
                if key in self.acked:
                    self.resent_after_ack.append(key)
                problem = (
                    rectification_problem(item.get("data"))
                    if batch.get("profile") == RECTIFICATION_V1
                    else coding_problem(item.get("data"), self.profile)
                )
                if item.get("record_id") in self.refuse:
                    problem = "平台校验未通过：办件不存在"
                if problem is not None:
                    self.rejected[key] = problem
                    results.append(
                        {"idempotency_key": key, "status": "rejected", "reason": problem}
                    )
                elif key in self.accepted:
                    results.append({"idempotency_key": key, "status": "duplicate"})
                else:
                    self.accepted[key] = item
                    self.accepted_ids[str(item.get("record_id"))] += 1
                    results.append({"idempotency_key": key, "status": "accepted"})
        return results

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                return None  # quiet: thousands of requests

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                fake.last_at = time.monotonic()
                fake.first_at = fake.first_at or fake.last_at
                if not fake.authentic(self.headers, self.path, body):
                    fake.outcomes["unauthorized"] += 1
                    self._reply(401, {"reason": "签名无效"})
                    return
                try:
                    batch = json.loads(body)
                except ValueError:
                    self._reply(400, {"reason": "不是 JSON"})
                    return
                if batch.get("profile") not in (fake.profile, RECTIFICATION_V1):
                    self._reply(400, {"reason": f"编码应为 {fake.profile} 或 {RECTIFICATION_V1}"})
                    return
                if batch.get("profile") in fake.refuse_profiles:
                    self._reply(503, {"reason": "该接口暂停服务"})
                    return
                ids = {
                    r.get("record_id") for r in batch.get("records") or [] if isinstance(r, dict)
                }
                if ids & fake.refuse_batch:
                    self._reply(422, {"reason": "批次中有未通过校验的记录"})
                    return
                mode = fake._mode()
                fake.outcomes[mode] += 1
                if mode == "error500":
                    self._reply(500, {"reason": "内部错误"})
                    return
                results = [r for r in fake.receive(batch) if fake.record_of(r) not in fake.omit]
                reply = json.dumps({"results": results}, ensure_ascii=False).encode()
                if mode == "timeout":
                    time.sleep(fake.stall_s)  # past the client's read timeout
                    self.close_connection = True
                    return
                self.send_response(200)
                self.send_header("Content-Type", "application/json; charset=utf-8")
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                if mode == "drop":
                    self.wfile.write(reply[: len(reply) // 2])
                    self.wfile.flush()
                    self.connection.shutdown(socket.SHUT_RDWR)
                    self.close_connection = True
                    return
                self.wfile.write(reply)
                self.wfile.flush()
                with fake.lock:
                    fake.acked.update(r["idempotency_key"] for r in results if r["idempotency_key"])

            def _reply(self, status: int, body: dict[str, Any]) -> None:
                data = json.dumps(body, ensure_ascii=False).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json; charset=utf-8")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        return Handler
