"""The matters use cases: catalog lifecycle, replication, search, applications, outbox.

One ``MattersApp`` per container (built by ``provider.MattersProvider``); entrypoints in
``service.py`` call it and dispatch the wake-up hints it returns. Domain rules come from
``domain``; persistence goes through ``store.MattersRepository`` only.

Durability without transactions:
- the ``matters`` current view is a projection of the append-only ``catalog`` collection,
  brought up to date from a checkpoint (after every catalog write and on the timer), so a
  crash between writing a version and updating the view is repaired;
- every application write sets ``outbox_pending`` in the same document write; the summary
  and (once completed) the evaluation invitation are then written with deterministic ids
  and the flag cleared; ``sweep_outbox`` repairs documents left flagged.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, date, datetime
from typing import Any

import yaml

from services.common.calendar import ScheduleMissing
from services.common.config import ConfigError
from services.common.errors import Conflict, Forbidden, InvalidInput, NotFound
from services.common.runtime import SiteContext
from services.common.store import Doc
from services.matters import domain, schemas
from services.matters.domain import Application, Matter
from services.matters.search import CatalogIndex
from services.matters.settings import SECTION, Settings
from services.matters.store import MattersRepository, version_id

log = logging.getLogger(__name__)

SCHEMA = 1
CAS_ATTEMPTS = 8
# Fields of a catalog version that are bookkeeping, not matter content.
_VERSION_META = ("published_at", "retired_at", "retire_reason", "approved_at", "approved_by")


def utcnow() -> datetime:
    return datetime.now(UTC)


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


@contextmanager
def rules() -> Iterator[None]:
    """Domain exceptions become the typed errors callers get back."""
    try:
        yield
    except domain.RuleBroken as exc:
        raise schemas.invalid(exc.fields) from None
    except domain.TransitionRefused as exc:
        raise Conflict(exc.message, {"state": [exc.message]}) from None


class MattersMetrics:
    def __init__(self, ctx: SiteContext) -> None:
        m = ctx.metrics
        self.site = m.site_labels()
        self.overdue = m.gauge("hall_applications_overdue", "Open applications past their due date")
        self.due_soon = m.gauge(
            "hall_applications_due_soon",
            "Open applications due within MATTERS.due_soon_working_days working days",
        )
        self.suspended = m.gauge(
            "hall_applications_suspended", "Applications whose time limit is suspended"
        )
        self.unpublished = m.gauge(
            "hall_matter_changes_unpublished_overdue",
            "Approved matter changes not published within MATTERS.publish_within_working_days",
        )
        self.catalog = m.gauge("hall_catalog_matters", "Matters in the catalog", ["status"])
        self.submitted = m.counter(
            "hall_applications_submitted_total",
            "Applications submitted, by channel and desk outcome",
            ["channel", "outcome"],
        )
        self.completed = m.counter(
            "hall_applications_completed_total",
            "Applications completed (办结), by channel and whether late",
            ["channel", "overdue"],
        )
        self.repaired = m.counter(
            "hall_outbox_repaired_total",
            "Outbox records written by the sweep after an interrupted write",
            ["record"],
        )


class MattersApp:
    def __init__(
        self,
        ctx: SiteContext,
        settings: Settings,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.ctx = ctx
        self.settings = settings
        self.identity = ctx.identity
        self.calendar = ctx.calendar
        self.repo = MattersRepository(ctx.store)
        self.metrics = MattersMetrics(ctx)
        self.index = CatalogIndex()
        self.clock = clock
        self.salt = settings.privacy_salt or self._stored_salt()
        self._last_tick = 0.0

    # --- time ------------------------------------------------------------------------------
    def now(self) -> datetime:
        return self.clock()

    def today(self) -> date:
        return domain.local_date(self.now(), self.settings.timezone)

    # --- start and timer ------------------------------------------------------------------
    def start(self) -> None:
        """Container start: load the seed catalog if due, project, repair, refresh gauges."""
        seed = self.settings.seed_catalog
        if self.settings.catalog_source and seed and self.repo.catalog_is_empty():
            self.load_seed(seed)
        self.project_catalog()
        self.tick(force=True)

    def tick(self, force: bool = False) -> list[str]:
        """Periodic work; returns invitation ids written by the sweep (for hints)."""
        if not force and time.monotonic() - self._last_tick < self.settings.sweep_interval_seconds:
            return []
        self._last_tick = time.monotonic()
        self.project_catalog()
        repaired = self.sweep_outbox()
        self.refresh_gauges()
        return repaired

    def _stored_salt(self) -> str:
        doc = self.repo.settings.get("privacy")
        if doc is None:
            self.repo.insert_once(
                self.repo.settings, {"id": "privacy", "salt": secrets.token_hex(32)}
            )
            doc = self.repo.settings.get("privacy")
        assert doc is not None
        return str(doc["salt"])

    # --- catalog: drafts, approval, publication --------------------------------------------
    def _require_source(self) -> None:
        if not self.settings.catalog_source:
            raise Forbidden(
                "本站不是事项目录发布源：事项由县级及以上站点统一发布，本站只能设置本站办理方式",
                {"catalog_source": ["false"]},
            )

    def validate_matter(self, data: Any) -> dict[str, Any]:
        matter = schemas.load(schemas.MATTER, data, "matter")
        with rules():
            Matter(matter).validate()
            domain.check_same_matter(matter, self.repo.same_basic_code(matter["basic_code"]))
        return matter

    def save_draft(self, data: Any) -> Doc:
        self._require_source()
        matter = self.validate_matter(data)
        code, now = matter["code"], iso(self.now())
        fields = {
            "code": code,
            "state": "draft",
            "change_id": uuid.uuid4().hex,
            "matter": matter,
            "approved_at": None,
            "approved_by": None,
            "publish_due": None,
            "site_code": self.identity.code,
            "updated_at": now,
        }
        existing = self.repo.drafts.get(code)
        if existing is None:
            try:
                return self.repo.drafts.insert({"id": code, **fields, "created_at": now})
            except Conflict:
                existing = self.repo.drafts.get(code)
        assert existing is not None
        updated = self.repo.drafts.update(code, fields, expect={"version": existing["version"]})
        if updated is None:
            raise Conflict("草稿正被他人同时修改，请刷新后重试")
        return updated

    def approve_change(self, code: str, approved_by: str) -> Doc:
        self._require_source()
        if not isinstance(approved_by, str) or not approved_by.strip():
            raise InvalidInput.field("approved_by", "审定人不能为空")
        draft = self._draft(code)
        if draft["state"] != "draft":
            raise Conflict(f"事项 {code} 的变更当前为“{_draft_state(draft)}”，不能审定")
        today = self.today()
        due = domain.publish_due(self.calendar, today, self.settings.publish_within_working_days)
        changes = {
            "state": "approved",
            "approved_at": iso(self.now()),
            "approved_by": approved_by.strip(),
            "publish_due": due.isoformat(),
            "updated_at": iso(self.now()),
        }
        updated = self.repo.drafts.update(code, changes, expect={"version": draft["version"]})
        if updated is None:
            raise Conflict("草稿正被他人同时修改，请刷新后重试")
        return updated

    def publish(self, code: str) -> dict[str, Any]:
        """Publish the approved draft as a new immutable version."""
        self._require_source()
        draft = self._draft(code)
        if draft["state"] != "approved":
            raise Conflict(f"事项 {code} 的变更当前为“{_draft_state(draft)}”，审定后才能发布")
        latest = self.repo.latest_catalog_version(code)
        if latest is not None and latest.get("change_id") == draft["change_id"]:
            record = latest  # published before a crash; only the draft was left behind
        else:
            with rules():
                domain.check_same_matter(
                    draft["matter"], self.repo.same_basic_code(draft["matter"]["basic_code"])
                )
            record = self._new_version(
                draft["matter"],
                "published",
                latest,
                approved_at=draft["approved_at"],
                approved_by=draft["approved_by"],
                change_id=draft["change_id"],
            )
        self.repo.drafts.update(
            code,
            {"state": "published", "published_version": record["matter_version"]},
            expect={"version": draft["version"]},
        )
        self.project_catalog()
        return self.version_view(record)

    def retire(self, code: str, reason: str) -> dict[str, Any]:
        self._require_source()
        if not isinstance(reason, str) or not reason.strip():
            raise InvalidInput.field("reason", "废止事项应写明理由")
        latest = self.repo.latest_catalog_version(code)
        if latest is None:
            raise NotFound(f"事项 {code} 不存在", {"code": [code]})
        if latest["status"] != "published":
            raise Conflict(f"事项 {code} 已废止", {"state": ["retired"]})
        record = self._new_version(latest["matter"], "retired", latest, retire_reason=reason)
        self.project_catalog()
        return self.version_view(record)

    def _new_version(
        self, matter: Mapping[str, Any], status: str, latest: Doc | None, **meta: Any
    ) -> Doc:
        record = self._version_record(matter, status, latest, **meta)
        try:
            return self.repo.catalog.insert(record)
        except Conflict:
            raise Conflict(f"事项 {matter['code']} 刚被他人发布了新版本，请刷新后重试") from None

    def _version_record(
        self, matter: Mapping[str, Any], status: str, latest: Doc | None, **meta: Any
    ) -> dict[str, Any]:
        number = (latest["matter_version"] if latest else 0) + 1
        now = iso(self.now())
        return {
            "id": version_id(matter["code"], number),
            "schema": SCHEMA,
            "code": matter["code"],
            "matter_version": number,
            "status": status,
            "matter": dict(matter),
            "site_code": self.identity.code,
            "published_at": now if status == "published" else latest and latest["published_at"],
            "retired_at": now if status == "retired" else None,
            "created_at": now,
            "updated_at": now,
            **meta,
        }

    def _draft(self, code: str) -> Doc:
        draft = self.repo.drafts.get(code)
        if draft is None:
            raise NotFound(f"事项 {code} 没有待发布的变更", {"code": [code]})
        return draft

    def unpublished_changes(self) -> list[dict[str, Any]]:
        """Approved changes not yet published, each with whether it is late."""
        today = self.today().isoformat()
        items = []
        for draft in self.repo.drafts.find({"state": "approved"}):
            items.append(
                {
                    "code": draft["code"],
                    "name": draft["matter"]["name"],
                    "approved_at": draft["approved_at"],
                    "approved_by": draft["approved_by"],
                    "publish_due": draft["publish_due"],
                    "overdue": today > draft["publish_due"],
                }
            )
        return sorted(items, key=lambda d: d["publish_due"])

    def load_seed(self, path: str) -> int:
        """Publish every matter of a YAML seed catalog (``matters: [...]``) as version 1."""
        field = f"{SECTION}.seed_catalog"
        path = resolve_seed(path)
        try:
            with open(path, encoding="utf-8") as f:
                data = yaml.safe_load(f)
        except (OSError, yaml.YAMLError) as exc:
            raise ConfigError(f"{field}：无法读取 {path}（{exc}）", {field: [str(exc)]}) from None
        items = data.get("matters") if isinstance(data, dict) else None
        if not isinstance(items, list) or not items:
            raise ConfigError(f"{field}：{path} 应含非空列表 matters", {field: ["matters"]})
        seen: dict[str, dict[str, Any]] = {}
        for i, item in enumerate(items):
            try:
                matter = self.validate_matter(item)
                with rules():
                    domain.check_same_matter(matter, seen.values())
            except InvalidInput as exc:
                where = f"{path} 第 {i + 1} 项（{(item or {}).get('code', '?')}）"
                raise ConfigError(f"{field}：{where}：{exc}", exc.fields) from None
            if matter["code"] in seen:
                raise ConfigError(f"{field}：{path} 中实施编码 {matter['code']} 重复", {field: []})
            seen[matter["code"]] = matter
        now = iso(self.now())
        self.repo.catalog.insert_many(
            self._version_record(matter, "published", None, approved_at=now, approved_by="seed")
            for matter in seen.values()
        )
        self.project_catalog()
        return len(seen)

    # --- catalog: projection, replication, availability ----------------------------------
    def project_catalog(self) -> int:
        """Bring the ``matters`` current view up to date with the ``catalog`` collection."""
        checkpoint = self.repo.settings.get("catalog_projection")
        since = int(checkpoint["seq"]) if checkpoint else 0
        done = 0
        while True:
            records = self.repo.catalog.changes_since(since, 500)
            if not records:
                return done
            self._project_new(records)
            for record in records:
                self._project(record)
            last = int(records[-1]["_seq"])
            if checkpoint is None:
                self.repo.insert_once(self.repo.settings, {"id": "catalog_projection", "seq": last})
                checkpoint = {"seq": last}
            else:
                self.repo.settings.update("catalog_projection", {"seq": last})
            since, done = last, done + len(records)

    def _project_new(self, records: list[Doc]) -> None:
        """Matters seen for the first time are inserted in one batch (one commit)."""
        latest: dict[str, Doc] = {}
        for record in records:
            known = latest.get(record["code"])
            if known is None or record["matter_version"] > known["matter_version"]:
                latest[record["code"]] = record
        new = [
            {"id": code, **self._current_fields(record, None), "created_at": iso(self.now())}
            for code, record in latest.items()
            if self.repo.current(code) is None
        ]
        if new:
            # a concurrent writer got there first: _project then goes one by one
            with contextlib.suppress(Conflict):
                self.repo.matters.insert_many(new)

    def _current_fields(self, record: Mapping[str, Any], current: Doc | None) -> dict[str, Any]:
        matter = Matter(record["matter"])
        local = bool(current and current.get("availability_local"))
        fields = {
            **record["matter"],
            "matter_version": int(record["matter_version"]),
            "status": record["status"],
            "published_at": record.get("published_at"),
            "retired_at": record.get("retired_at"),
            "retire_reason": record.get("retire_reason"),
            "origin_site": record.get("site_code"),
            "availability": current["availability"]
            if current and local
            else matter.default_availability(self.identity.tier.value),
            "availability_local": local,
            "site_code": self.identity.code,
            "updated_at": iso(self.now()),
        }
        fields.pop("id", None)
        return fields

    def _project(self, record: Mapping[str, Any]) -> None:
        code, number = record["code"], int(record["matter_version"])
        for _ in range(CAS_ATTEMPTS):
            current = self.repo.current(code)
            if current is not None and current["matter_version"] >= number:
                return
            fields = self._current_fields(record, current)
            if current is None:
                doc = {"id": code, **fields, "created_at": fields["updated_at"]}
                if self.repo.insert_once(self.repo.matters, doc):
                    return
            elif self.repo.matters.update(code, fields, expect={"version": current["version"]}):
                return
        raise Conflict(f"事项 {code} 正被同时更新，请稍后重试")

    def apply_catalog(self, docs: Any) -> int:
        """Store catalog versions replicated from upstream (read-only copies)."""
        if self.settings.catalog_source:
            raise Forbidden(
                "本站是事项目录发布源，不接收其他站点复制的事项目录",
                {"catalog_source": ["true"]},
            )
        if not isinstance(docs, list):
            raise InvalidInput.field("docs", "应为列表")
        clean = []
        for i, doc in enumerate(docs):
            problem = _catalog_record_problem(doc)
            if problem:
                raise InvalidInput.field(f"docs[{i}]", problem)
            clean.append({k: v for k, v in doc.items() if k != "_seq"})
        applied = self.repo.catalog.upsert_versioned_many(clean)
        self.project_catalog()
        return applied

    def set_local_availability(self, code: str, availability: str) -> dict[str, Any]:
        if availability not in domain.AVAILABILITY:
            allowed = "、".join(f"{k}（{v}）" for k, v in domain.AVAILABILITY.items())
            raise InvalidInput.field("availability", f"应为之一：{allowed}")
        for _ in range(CAS_ATTEMPTS):
            current = self._current(code)
            changes = {
                "availability": availability,
                "availability_local": True,
                "updated_at": iso(self.now()),
            }
            updated = self.repo.matters.update(
                code, changes, expect={"version": current["version"]}
            )
            if updated is not None:
                return self.matter_view(updated)
        raise Conflict(f"事项 {code} 正被同时更新，请稍后重试")

    def catalog_changes(self, since: int, limit: int) -> dict[str, Any]:
        from services.common.feeds import read_feed

        return read_feed(self.ctx.store, ("catalog",), "catalog", since, limit)

    # --- catalog: reading ------------------------------------------------------------------
    def _current(self, code: Any) -> Doc:
        if not isinstance(code, str) or not code:
            raise InvalidInput.field("code", "应为事项实施编码")
        current = self.repo.current(code)
        if current is None:
            raise NotFound(f"事项 {code} 不存在", {"code": [code]})
        return current

    def get_matter(self, code: str, version: int | None = None) -> dict[str, Any]:
        current = self._current(code)
        if version is None:
            return self.matter_view(current)
        record = self.repo.version(code, version)
        if record is None:
            raise NotFound(f"事项 {code} 没有第 {version} 版", {"version": [str(version)]})
        return self.version_view(record)

    def matter_view(self, doc: Mapping[str, Any]) -> dict[str, Any]:
        view = {k: v for k, v in doc.items() if k not in ("id", "_seq", "version")}
        view["type_name"] = domain.MATTER_TYPES.get(doc.get("type", ""), "")
        view["case_type_name"] = domain.CASE_TYPES.get(doc.get("case_type", ""), "")
        view["availability_name"] = domain.AVAILABILITY.get(doc.get("availability", ""), "")
        return view

    def version_view(self, record: Mapping[str, Any]) -> dict[str, Any]:
        view = {**record["matter"], "matter_version": record["matter_version"]}
        view["status"] = record["status"]
        for key in _VERSION_META:
            view[key] = record.get(key)
        view["type_name"] = domain.MATTER_TYPES.get(view.get("type", ""), "")
        view["case_type_name"] = domain.CASE_TYPES.get(view.get("case_type", ""), "")
        return view

    @staticmethod
    def search_summary(doc: Mapping[str, Any]) -> dict[str, Any]:
        return {
            "code": doc["id"],
            "basic_code": doc.get("basic_code"),
            "name": doc.get("name"),
            "aliases": doc.get("aliases", []),
            "type": doc.get("type"),
            "type_name": domain.MATTER_TYPES.get(doc.get("type", ""), ""),
            "department": (doc.get("agency") or {}).get("name"),
            "case_type": doc.get("case_type"),
            "promised_limit_days": doc.get("promised_limit_days"),
            "online": doc.get("online"),
            "visits": doc.get("visits"),
            "status": doc.get("status"),
            "matter_version": doc.get("matter_version"),
            "availability": doc.get("availability"),
        }

    def refresh_index(self) -> None:
        if self.repo.matters.last_seq() <= self.index.seq:
            return
        while True:
            docs = self.repo.matters.changes_since(self.index.seq, 2000)
            if not docs:
                return
            self.index.apply(docs, self.search_summary)

    def search(self, params: Mapping[str, Any]) -> dict[str, Any]:
        query = schemas.load(schemas.SEARCH, params, "query")
        self.refresh_index()
        total, items = self.index.search(
            query["q"],
            type=query["type"],
            department=query["department"],
            tier=query["tier"],
            online=query["online"],
            availability=query["availability"],
            include_retired=query["include_retired"],
            limit=query["limit"],
            offset=query["offset"],
        )
        return {"total": total, "items": items, "limit": query["limit"], "offset": query["offset"]}

    # --- applications ----------------------------------------------------------------------
    def submit(self, data: Any) -> tuple[dict[str, Any], list[str]]:
        d = schemas.load(schemas.SUBMIT, data, "application")
        current = self._current(d["matter_code"])
        if current["status"] != "published":
            raise Conflict(f"事项 {d['matter_code']} 已废止，不能受理", {"matter_code": ["已废止"]})
        availability = current["availability"]
        if availability == "not_offered":
            raise Conflict(
                f"本站不办理事项“{current['name']}”，请到上级站点办理",
                {"matter_code": ["本站不办"]},
            )
        if availability == "proxy_only" and d["channel"] != "proxy":
            raise InvalidInput.field("channel", "本站只代办该事项，办理渠道应为 proxy（代办）")
        applicant = self._protect_applicant(d["applicant"])
        now = self.now()
        today = self.today()
        number = self._next_number(today)
        doc: dict[str, Any] = {
            "id": f"{self.identity.code}-{uuid.uuid4().hex}",
            "schema": SCHEMA,
            "number": number,
            "site_code": self.identity.code,
            "matter_code": current["id"],
            "matter_version": current["matter_version"],
            "matter_name": current["name"],
            "matter_type": current["type"],
            "department": (current.get("agency") or {}).get("name"),
            "case_type": current["case_type"],
            "promised_limit_days": current["promised_limit_days"],
            "legal_limit_days": current["legal_limit_days"],
            "channel": d["channel"],
            "window": d["window"],
            "staff_id": d["staff_id"],
            "applicant": applicant,
            "applicant_hash": applicant["id_hash"],
            "materials": [dict(m) for m in d["materials"]],
            "notices": [],
            "clock": domain.CLOCK_NONE,
            "due_date": None,
            "suspensions": [],
            "suspended_days": 0,
            "history": [],
            "created_at": iso(now),
            "updated_at": iso(now),
            "outbox_pending": True,
        }
        if d["refusal"] is not None:
            doc.update(self._refusal(d["refusal"]["reason"], d["refusal"]["basis"]))
            outcome = "not_accepted"
        else:
            doc.update(self._desk_check(doc, Matter(current), doc["materials"], 0))
            outcome = doc["state"]
        doc["history"] = [{"action": "submit", "state": doc["state"], "at": iso(now)}]
        stored = self.repo.applications.insert(doc)
        self.metrics.submitted.labels(
            **self.metrics.site, channel=d["channel"], outcome=outcome
        ).inc()
        if stored["state"] == "completed":
            self._count_completed(stored)
        invited = self.flush_outbox(stored)
        return self.application_view(stored), invited

    def _next_number(self, today: date) -> str:
        day = today.strftime("%Y%m%d")
        seq = self.ctx.store.next_value(f"application-number-{day}")
        return f"{self.identity.code}{day}{seq:05d}"

    def _protect_applicant(self, a: Mapping[str, Any]) -> dict[str, Any]:
        id_number = a["id_number"].strip().upper()
        if a["kind"] == "person":
            if not domain.resident_id_valid(id_number):
                raise InvalidInput.field(
                    "applicant.id_number", "居民身份证号码应为 18 位且校验码正确"
                )
            name = domain.mask_name(a["name"])
        else:
            if not domain.CREDIT_CODE.match(id_number):
                raise InvalidInput.field("applicant.id_number", "统一社会信用代码应为 18 位")
            name = a["name"].strip()  # an organisation's registered name is public
        protected = {
            "kind": a["kind"],
            "name": name,
            "id_hash": domain.protect(id_number, self.salt),
            "id_masked": domain.mask_id(id_number),
            "phone_hash": None,
            "phone_masked": None,
        }
        phone = (a.get("phone") or "").strip()
        if phone:
            if not domain.PHONE.match(phone):
                raise InvalidInput.field("applicant.phone", "联系电话应为数字和连字符")
            protected["phone_hash"] = domain.protect(phone, self.salt)
            protected["phone_masked"] = domain.mask_phone(phone)
        return protected

    def _refusal(self, reason: str, basis: str) -> dict[str, Any]:
        return {
            "state": "not_accepted",
            "refusal": {
                "reason": reason,
                "basis": basis,
                "issued_at": iso(self.now()),
                "title": "不予受理通知书",
            },
        }

    def _desk_check(
        self, doc: Mapping[str, Any], matter: Matter, presented: list[dict[str, Any]], notices: int
    ) -> dict[str, Any]:
        """Accepted (即办件: completed at once) or one notice listing everything missing."""
        problems = domain.check_materials(matter, presented)
        now, today = self.now(), self.today()
        if problems:
            notice = {
                "title": "一次性告知单",
                "number": f"{doc['number']}-{notices + 1}",
                "issued_at": iso(now),
                "items": problems,
                "text": "请补齐以下材料后再次提交："
                + "；".join(f"{p['name']}（{p['problem']}）" for p in problems),
            }
            return {
                "state": "supplement_required",
                "notices": [*doc.get("notices", []), notice],
                "supplement_notice": notice,
            }
        promised = int(matter.data["promised_limit_days"])
        due = domain.due_date(self.calendar, today, promised, 0)
        receipt = {
            "title": "受理凭证",
            "number": doc["number"],
            "matter_name": matter.data["name"],
            "matter_code": matter.code,
            "matter_version": doc["matter_version"],
            "case_type_name": domain.CASE_TYPES[matter.data["case_type"]],
            "accepted_on": today.isoformat(),
            "promised_limit_days": promised,
            "due_date": due.isoformat(),
            "materials_received": [m["name"] for m in presented],
            "site_name": self.identity.name,
        }
        changes: dict[str, Any] = {
            "state": "accepted",
            "accepted_at": iso(now),
            "accepted_on": today.isoformat(),
            "due_date": due.isoformat(),
            "clock": domain.CLOCK_RUNNING,
            "receipt": receipt,
            "supplement_notice": None,
        }
        if matter.is_immediate:
            changes.update(
                {
                    "state": "completed",
                    "decision": "approved",
                    "completed_at": iso(now),
                    "completed_on": today.isoformat(),
                    "clock": domain.CLOCK_STOPPED,
                    "overdue": False,
                }
            )
        return changes

    def _version_matter(self, doc: Mapping[str, Any]) -> Matter:
        record = self.repo.version(doc["matter_code"], doc["matter_version"])
        if record is None:  # the version an application was accepted under is always kept
            raise NotFound(f"事项 {doc['matter_code']} 第 {doc['matter_version']} 版不存在")
        return Matter(record["matter"])

    def _transition(
        self, app_id: Any, action: str, make: Callable[[Doc], dict[str, Any]]
    ) -> tuple[dict[str, Any], list[str]]:
        if not isinstance(app_id, str) or not app_id:
            raise InvalidInput.field("application_id", "应为办件编号")
        for _ in range(CAS_ATTEMPTS):
            doc = self.repo.applications.get(app_id)
            if doc is None:
                raise NotFound(f"办件 {app_id} 不存在", {"application_id": [app_id]})
            with rules():
                Application(doc).require(action)
            changes = make(doc)
            now = iso(self.now())
            changes["updated_at"] = now
            changes["outbox_pending"] = True
            state = changes.get("state", doc["state"])
            changes["history"] = [*doc["history"], {"action": action, "state": state, "at": now}]
            updated = self.repo.applications.update(
                app_id, changes, expect={"version": doc["version"]}
            )
            if updated is not None:
                if updated["state"] == "completed" and doc["state"] != "completed":
                    self._count_completed(updated)
                return self.application_view(updated), self.flush_outbox(updated)
        raise Conflict("办件正被他人同时处理，请稍后重试")

    def _count_completed(self, doc: Mapping[str, Any]) -> None:
        self.metrics.completed.labels(
            **self.metrics.site,
            channel=doc["channel"],
            overdue=str(bool(doc.get("overdue"))).lower(),
        ).inc()

    def supplement(self, app_id: str, materials: Any) -> tuple[dict[str, Any], list[str]]:
        presented = schemas.load(schemas.MATERIALS, {"materials": materials}, "materials")[
            "materials"
        ]

        def make(doc: Doc) -> dict[str, Any]:
            merged = domain.merge_materials(doc["materials"], presented)
            outcome = self._desk_check(doc, self._version_matter(doc), merged, len(doc["notices"]))
            return {"materials": merged, **outcome}

        return self._transition(app_id, "supplement", make)

    def refuse(self, app_id: str, reason: Any, basis: Any) -> tuple[dict[str, Any], list[str]]:
        refusal = schemas.load(schemas.REFUSAL, {"reason": reason, "basis": basis})
        return self._transition(
            app_id, "refuse", lambda _doc: self._refusal(refusal["reason"], refusal["basis"])
        )

    def start_review(self, app_id: str) -> tuple[dict[str, Any], list[str]]:
        return self._transition(
            app_id,
            "start_review",
            lambda _doc: {"state": "in_review", "review_started_at": iso(self.now())},
        )

    def decide(
        self, app_id: str, decision: Any, reason: Any = None
    ) -> tuple[dict[str, Any], list[str]]:
        if decision not in ("approve", "deny"):
            raise InvalidInput.field("decision", "应为 approve（准予）或 deny（不予批准）")
        reason = (reason or "").strip() if isinstance(reason, str | type(None)) else None
        if reason is None:
            raise InvalidInput.field("reason", "应为文字")
        if decision == "deny" and not reason:
            raise InvalidInput.field("reason", "不予批准应书面说明理由")
        state = "approved" if decision == "approve" else "denied"
        return self._transition(
            app_id,
            "decide",
            lambda _doc: {
                "state": state,
                "decision": "approved" if decision == "approve" else "denied",
                "decision_reason": reason or None,
                "decided_at": iso(self.now()),
            },
        )

    def complete(
        self, app_id: str, overdue_reason: Any = None, result: Any = None
    ) -> tuple[dict[str, Any], list[str]]:
        if overdue_reason is not None and not isinstance(overdue_reason, str):
            raise InvalidInput.field("overdue_reason", "应为文字")
        if result is not None and not isinstance(result, str):
            raise InvalidInput.field("result", "应为文字")

        def make(doc: Doc) -> dict[str, Any]:
            today = self.today()
            late = Application(doc).is_overdue_on(today)
            reason = (overdue_reason or "").strip()
            if late and not reason:
                raise InvalidInput.field(
                    "overdue_reason",
                    f"已超过办理时限（{doc['due_date']}），办结时应书面说明超期理由（将公开）",
                )
            return {
                "state": "completed",
                "completed_at": iso(self.now()),
                "completed_on": today.isoformat(),
                "clock": domain.CLOCK_STOPPED,
                "overdue": late,
                "overdue_reason": reason if late else None,
                "result": result,
            }

        return self._transition(app_id, "complete", make)

    def deliver(
        self, app_id: str, method: Any, tracking_number: Any = None
    ) -> tuple[dict[str, Any], list[str]]:
        if method not in domain.DELIVERY_METHODS:
            raise InvalidInput.field("method", "应为 window_pickup（窗口领取）或 mail（邮寄送达）")
        if method == "mail" and not (isinstance(tracking_number, str) and tracking_number.strip()):
            raise InvalidInput.field("tracking_number", "邮寄送达应填写快递单号")
        return self._transition(
            app_id,
            "deliver",
            lambda _doc: {
                "state": "delivered",
                "delivery": {
                    "method": method,
                    "tracking_number": tracking_number if method == "mail" else None,
                    "delivered_at": iso(self.now()),
                },
                "delivered_on": self.today().isoformat(),
            },
        )

    def suspend(
        self, app_id: str, reason: Any, note: Any = None
    ) -> tuple[dict[str, Any], list[str]]:
        if reason not in domain.SUSPENSION_REASONS:
            allowed = "、".join(f"{k}（{v}）" for k, v in domain.SUSPENSION_REASONS.items())
            raise InvalidInput.field("reason", f"中止计时的理由应为法定情形之一：{allowed}")

        def make(doc: Doc) -> dict[str, Any]:
            period = {
                "reason": reason,
                "reason_name": domain.SUSPENSION_REASONS[reason],
                "note": note if isinstance(note, str) else None,
                "since_on": self.today().isoformat(),
                "until_on": None,
                "working_days": None,
            }
            return {"clock": domain.CLOCK_SUSPENDED, "suspensions": [*doc["suspensions"], period]}

        return self._transition(app_id, "suspend", make)

    def resume(self, app_id: str) -> tuple[dict[str, Any], list[str]]:
        def make(doc: Doc) -> dict[str, Any]:
            today = self.today()
            periods = [dict(p) for p in doc["suspensions"]]
            last = periods[-1]
            days = domain.suspended_working_days(
                self.calendar, date.fromisoformat(last["since_on"]), today
            )
            last.update(until_on=today.isoformat(), working_days=days)
            total = int(doc["suspended_days"]) + days
            due = domain.due_date(
                self.calendar,
                date.fromisoformat(doc["accepted_on"]),
                int(doc["promised_limit_days"]),
                total,
            )
            return {
                "clock": domain.CLOCK_RUNNING,
                "suspensions": periods,
                "suspended_days": total,
                "due_date": due.isoformat(),
            }

        return self._transition(app_id, "resume", make)

    # --- outbox ------------------------------------------------------------------------------
    def flush_outbox(self, doc: Mapping[str, Any]) -> list[str]:
        """Write the summary (and invitation once done) for a flagged application, then clear
        the flag. Idempotent; returns the invitation ids newly written (for hints)."""
        if not doc.get("outbox_pending"):
            return []
        invited = []
        if doc["state"] in domain.DONE_STATES:
            invitation = self.invitation_for(doc)
            if self.repo.insert_once(self.repo.invitations, invitation):
                invited.append(invitation["id"])
        self.repo.summaries.upsert_versioned(self.summary_for(doc))
        self.repo.applications.update(
            doc["id"], {"outbox_pending": False}, expect={"version": doc["version"]}
        )
        return invited

    def sweep_outbox(self) -> list[str]:
        """Repair applications whose outbox writes were interrupted (e.g. by a crash)."""
        invited: list[str] = []
        for doc in self.repo.flagged():
            written = self.flush_outbox(doc)
            if written:
                self.metrics.repaired.labels(**self.metrics.site, record="invitation").inc(
                    len(written)
                )
            invited.extend(written)
        return invited

    def invitation_for(self, doc: Mapping[str, Any]) -> dict[str, Any]:
        return {
            "id": f"application:{doc['id']}",
            "schema": SCHEMA,
            "service_ref": {"kind": "application", "id": doc["id"]},
            "site_code": doc["site_code"],
            "window": doc.get("window"),
            "staff_id": doc.get("staff_id"),
            "matter_code": doc["matter_code"],
            "department": doc.get("department"),
            "service_channel": doc["channel"],
            "service_ended_at": doc["completed_at"],
            "created_at": iso(self.now()),
        }

    def summary_for(self, doc: Mapping[str, Any]) -> dict[str, Any]:
        """What may leave the site: no names, no ID numbers, no phones."""
        late = bool(doc.get("overdue"))
        if doc.get("clock") == domain.CLOCK_RUNNING and doc.get("due_date"):
            late = self.today().isoformat() > doc["due_date"]
        return {
            "id": doc["id"],
            "version": doc["version"],
            "schema": SCHEMA,
            "number": doc["number"],
            "site_code": doc["site_code"],
            "matter_code": doc["matter_code"],
            "matter_version": doc["matter_version"],
            "matter_name": doc["matter_name"],
            "matter_type": doc["matter_type"],
            "department": doc.get("department"),
            "case_type": doc["case_type"],
            "state": doc["state"],
            "channel": doc["channel"],
            "accepted_on": doc.get("accepted_on"),
            "due_date": doc.get("due_date"),
            "completed_on": doc.get("completed_on"),
            "delivered_on": doc.get("delivered_on"),
            "suspended_days": doc.get("suspended_days", 0),
            "overdue": late,
            "overdue_reason": doc.get("overdue_reason"),
            "created_at": doc["created_at"],
            "updated_at": doc["updated_at"],
        }

    # --- lists, gauges --------------------------------------------------------------------------
    def application_view(self, doc: Mapping[str, Any]) -> dict[str, Any]:
        hidden = ("_seq", "applicant_hash", "outbox_pending")
        view = {k: v for k, v in doc.items() if k not in hidden}
        view["applicant"] = {
            k: v for k, v in doc["applicant"].items() if k not in ("id_hash", "phone_hash")
        }
        view["state_name"] = domain.STATES[doc["state"]]
        due = date.fromisoformat(doc["due_date"]) if doc.get("due_date") else None
        try:
            view["due_state"] = domain.due_state(
                self.calendar, self.today(), due, doc["clock"], self.settings.due_soon_working_days
            )
        except ScheduleMissing as exc:  # reading an application never fails on this
            view["due_state"] = "overdue" if due and self.today() > due else None
            view["due_state_problem"] = exc.message
        return view

    def get_application(self, app_id: Any) -> dict[str, Any]:
        doc = self.repo.applications.get(app_id) if isinstance(app_id, str) else None
        if doc is None:
            raise NotFound(f"办件 {app_id} 不存在", {"application_id": [str(app_id)]})
        return self.application_view(doc)

    def _due_filter(self, due_state: str) -> dict[str, Any]:
        today = self.today()
        if due_state == "suspended":
            return {"clock": domain.CLOCK_SUSPENDED}
        if due_state == "overdue":
            return {"clock": domain.CLOCK_RUNNING, "due_date": {"$lt": today.isoformat()}}
        # "due soon" needs the calendar ahead of today: ScheduleMissing propagates
        edge = domain.due_soon_until(self.calendar, today, self.settings.due_soon_working_days)
        if due_state == "due_soon":
            return {
                "clock": domain.CLOCK_RUNNING,
                "due_date": {"$gte": today.isoformat(), "$lte": edge.isoformat()},
            }
        return {"clock": domain.CLOCK_RUNNING, "due_date": {"$gt": edge.isoformat()}}

    def list_applications(self, filters: Any) -> dict[str, Any]:
        f = schemas.load(schemas.LIST, filters or {}, "filters")
        query: dict[str, Any] = {}
        if f["due_state"]:
            query.update(self._due_filter(f["due_state"]))
        if f["state"]:
            query["state"] = f["state"]
        if f["matter_code"]:
            query["matter_code"] = f["matter_code"]
        if f["applicant_id_number"]:
            query["applicant_hash"] = domain.protect(f["applicant_id_number"].upper(), self.salt)
        sort = [("due_date", 1)] if f["due_state"] else [("_seq", -1)]
        docs = self.repo.applications.find(query, sort=sort, limit=f["limit"])
        return {
            "items": [self.application_view(d) for d in docs],
            "count": self.repo.applications.count(query),
            "today": self.today().isoformat(),
        }

    def refresh_gauges(self) -> None:
        count = self.repo.applications.count
        site = self.metrics.site
        self.metrics.overdue.labels(**site).set(count(self._due_filter("overdue")))
        try:
            self.metrics.due_soon.labels(**site).set(count(self._due_filter("due_soon")))
        except ScheduleMissing as exc:  # keep the other gauges; say why this one is stale
            log.error("hall_applications_due_soon not refreshed: %s", exc.message)
        self.metrics.suspended.labels(**site).set(count(self._due_filter("suspended")))
        late = sum(1 for c in self.unpublished_changes() if c["overdue"])
        self.metrics.unpublished.labels(**site).set(late)
        for status in ("published", "retired"):
            self.metrics.catalog.labels(**site, status=status).set(
                self.repo.matters.count({"status": status})
            )


def resolve_seed(path: str) -> str:
    """A relative seed path that does not exist from the working directory is looked up in
    this package, so ``seed/catalog.yaml`` names the shipped demo catalog from anywhere."""
    if os.path.isabs(path) or os.path.exists(path):
        return path
    packaged = os.path.join(os.path.dirname(__file__), path)
    return packaged if os.path.exists(packaged) else path


def _draft_state(draft: Mapping[str, Any]) -> str:
    return {"draft": "草稿", "approved": "已审定待发布", "published": "已发布"}[draft["state"]]


def _catalog_record_problem(doc: Any) -> str | None:
    if not isinstance(doc, Mapping):
        return "应为事项版本记录（对象）"
    number = doc.get("matter_version")
    if not isinstance(number, int) or isinstance(number, bool) or number < 1:
        return "缺少有效的 matter_version"
    code = doc.get("code")
    if not isinstance(code, str) or doc.get("id") != version_id(code, number):
        return "id 应为 <实施编码>@<版本号>"
    if doc.get("status") not in ("published", "retired"):
        return "status 应为 published 或 retired"
    if not isinstance(doc.get("matter"), Mapping) or doc["matter"].get("code") != code:
        return "matter 应为该事项的内容"
    if not isinstance(doc.get("version"), int):
        return "缺少记录版本 version"
    return None
