"""Catalog use cases: drafts, approval, publication and retirement at the catalog source,
the seed catalog, catalog versions replicated from upstream, and the change feed going
down (docs/architecture.md, "Replication").

Every published or retired version is a new immutable record of ``catalog``; the ``matters``
current view is projected from it (``usecases/catalog_view.py``).
"""

from __future__ import annotations

import os
import uuid
from typing import Any, cast

import yaml

from services.common.config import ConfigError
from services.common.errors import Conflict, Forbidden, InvalidInput, NotFound
from services.common.feeds import read_feed
from services.common.validation import load
from services.matters import schemas
from services.matters.domain import Matter, check_same_matter, publish_due
from services.matters.domain.applications import SCHEMA
from services.matters.domain.records import CatalogVersion, Draft, MatterData
from services.matters.settings import SECTION
from services.matters.store import version_id
from services.matters.usecases.base import MattersBase, argument

_DRAFT_STATES = {"draft": "草稿", "approved": "已审定待发布", "published": "已发布"}


class Catalog(MattersBase):
    def _require_source(self) -> None:
        if not self.settings.catalog_source:
            raise Forbidden(
                "本站不是事项目录发布源：事项由县级及以上站点统一发布，本站只能设置本站办理方式",
                {"catalog_source": ["false"]},
            )

    def validate_matter(self, data: Any) -> MatterData:
        return self._catalog_rules(argument(schemas.MATTER, data, "matter"))

    def _catalog_rules(self, matter: MatterData) -> MatterData:
        Matter(matter).validate()
        check_same_matter(matter, self.repo.same_basic_code(matter["basic_code"]))
        return matter

    def save_draft(self, data: Any) -> dict[str, Any]:
        return _draft_view(self._save_draft(data))

    def _save_draft(self, data: Any) -> Draft:
        matter = argument(schemas.MATTER, data, "matter")
        self._require_source()
        matter = self._catalog_rules(matter)
        code, now = matter["code"], self.stamp()
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
        existing = self.repo.draft(code)
        if existing is None:
            try:
                return cast(
                    Draft, self.repo.drafts.insert({"id": code, **fields, "created_at": now})
                )
            except Conflict:
                existing = self.repo.draft(code)
        assert existing is not None
        updated = self.repo.drafts.update(code, fields, expect={"version": existing["version"]})
        if updated is None:
            raise Conflict("草稿正被他人同时修改，请刷新后重试")
        return cast(Draft, updated)

    def approve_change(self, code: Any, approved_by: Any) -> dict[str, Any]:
        return _draft_view(self._approve_change(code, approved_by))

    def _approve_change(self, code: Any, approved_by: Any) -> Draft:
        args = load(schemas.APPROVAL, {"code": code, "approved_by": approved_by})
        self._require_source()
        code = args["code"]
        draft = self._draft(code)
        if draft["state"] != "draft":
            raise Conflict(f"事项 {code} 的变更当前为“{_DRAFT_STATES[draft['state']]}”，不能审定")
        due = publish_due(self.calendar, self.today(), self.settings.publish_within_working_days)
        changes = {
            "state": "approved",
            "approved_at": self.stamp(),
            "approved_by": args["approved_by"].strip(),
            "publish_due": due.isoformat(),
            "updated_at": self.stamp(),
        }
        updated = self.repo.drafts.update(code, changes, expect={"version": draft["version"]})
        if updated is None:
            raise Conflict("草稿正被他人同时修改，请刷新后重试")
        return cast(Draft, updated)

    def publish(self, code: Any) -> dict[str, Any]:
        """Publish the approved draft as a new immutable version."""
        code = load(schemas.CODE, {"code": code})["code"]
        self._require_source()
        draft = self._draft(code)
        if draft["state"] != "approved":
            state = _DRAFT_STATES[draft["state"]]
            raise Conflict(f"事项 {code} 的变更当前为“{state}”，审定后才能发布")
        latest = self.repo.latest_catalog_version(code)
        if latest is not None and latest.get("change_id") == draft["change_id"]:
            # Already published, by a process that crashed before it marked the draft or by
            # another one a moment ago: mark the draft, and leave reporting the publication
            # to whoever wrote the version (exactly one caller is told "published").
            self._mark_published(code, draft, latest["matter_version"])
            raise Conflict(
                f"事项 {code} 的这次变更已发布为第 {latest['matter_version']} 版",
                {"code": [code]},
            )
        matter = draft["matter"]
        check_same_matter(matter, self.repo.same_basic_code(matter["basic_code"]))
        record = self._new_version(
            matter,
            "published",
            latest,
            approved_at=draft["approved_at"],
            approved_by=draft["approved_by"],
            change_id=draft["change_id"],
        )
        self._mark_published(code, draft, record["matter_version"])
        self.project_catalog()
        return self.version_view(record)

    def _mark_published(self, code: str, draft: Draft, version: int) -> None:
        """The draft shows its change published; a draft changed meanwhile stays as it is."""
        self.repo.drafts.update(
            code,
            {"state": "published", "published_version": version},
            expect={"version": draft["version"]},
        )

    def retire(self, code: Any, reason: Any) -> dict[str, Any]:
        args = load(schemas.RETIREMENT, {"code": code, "reason": reason})
        self._require_source()
        code = args["code"]
        latest = self.repo.latest_catalog_version(code)
        if latest is None:
            raise NotFound(f"事项 {code} 不存在", {"code": [code]})
        if latest["status"] != "published":
            raise Conflict(f"事项 {code} 已废止", {"state": ["retired"]})
        record = self._new_version(
            latest["matter"], "retired", latest, retire_reason=args["reason"]
        )
        self.project_catalog()
        return self.version_view(record)

    def _new_version(
        self, matter: MatterData, status: str, latest: CatalogVersion | None, **meta: Any
    ) -> CatalogVersion:
        record = self._version_record(matter, status, latest, **meta)
        try:
            return cast(CatalogVersion, self.repo.catalog.insert(record))
        except Conflict:
            raise Conflict(f"事项 {matter['code']} 刚被他人发布了新版本，请刷新后重试") from None

    def _version_record(
        self, matter: MatterData, status: str, latest: CatalogVersion | None, **meta: Any
    ) -> CatalogVersion:
        number = (latest["matter_version"] if latest else 0) + 1
        now = self.stamp()
        record = {
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
        return cast(CatalogVersion, record)

    def _draft(self, code: str) -> Draft:
        draft = self.repo.draft(code)
        if draft is None:
            raise NotFound(f"事项 {code} 没有待发布的变更", {"code": [code]})
        return draft

    def unpublished_changes(self) -> list[dict[str, Any]]:
        """Approved changes not yet published, each with whether it is late."""
        today = self.today().isoformat()
        items = [
            {
                "code": draft["code"],
                "name": draft["matter"]["name"],
                "approved_at": draft["approved_at"],
                "approved_by": draft["approved_by"],
                "publish_due": draft["publish_due"],
                "overdue": today > (draft["publish_due"] or today),
            }
            for draft in self.repo.approved_drafts()
        ]
        return sorted(items, key=lambda d: str(d["publish_due"]))

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
        seen: dict[str, MatterData] = {}
        for i, item in enumerate(items):
            try:
                matter = self.validate_matter(item)
                check_same_matter(matter, seen.values())
            except InvalidInput as exc:
                where = f"{path} 第 {i + 1} 项（{(item or {}).get('code', '?')}）"
                raise ConfigError(f"{field}：{where}：{exc}", exc.fields) from None
            if matter["code"] in seen:
                raise ConfigError(f"{field}：{path} 中实施编码 {matter['code']} 重复", {field: []})
            seen[matter["code"]] = matter
        now = self.stamp()
        records = [
            self._version_record(matter, "published", None, approved_at=now, approved_by="seed")
            for matter in seen.values()
        ]
        try:
            self.repo.catalog.insert_many(records)
        except Conflict:  # another process of this site is seeding the same catalog
            for record in records:
                self.repo.insert_once(self.repo.catalog, record)
        self.project_catalog()
        return len(seen)

    def apply_catalog(self, docs: Any) -> int:
        """Store catalog versions replicated from upstream (read-only copies)."""
        clean = load(schemas.CATALOG_BATCH, {"docs": docs})["docs"]
        if self.settings.catalog_source:
            raise Forbidden(
                "本站是事项目录发布源，不接收其他站点复制的事项目录",
                {"catalog_source": ["true"]},
            )
        applied = self.repo.catalog.upsert_versioned_many(clean)
        self.project_catalog()
        return applied

    def catalog_changes(self, since: int, limit: int) -> dict[str, Any]:
        return read_feed(self.context.store, ("catalog",), "catalog", since, limit)


def resolve_seed(path: str) -> str:
    """A relative seed path that does not exist from the working directory is looked up in
    this package, so ``seed/catalog.yaml`` names the shipped demo catalog from anywhere."""
    if os.path.isabs(path) or os.path.exists(path):
        return path
    packaged = os.path.join(os.path.dirname(os.path.dirname(__file__)), path)
    return packaged if os.path.exists(packaged) else path


def _draft_view(draft: Draft) -> dict[str, Any]:
    return {k: v for k, v in draft.items() if k != "_seq"}
