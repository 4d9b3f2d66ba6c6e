"""The catalog as a site sees it: the ``matters`` current view projected from the ``catalog``
versions (with this site's own availability), reading, keyword search and the service guide.

The projection follows the ``catalog`` collection from a checkpoint (after every catalog
write and on the timer), so a crash between writing a version and updating the view is
repaired by the next run.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from typing import Any

from services.common.errors import Conflict, InvalidInput, NotFound
from services.common.store import Doc
from services.common.validation import load
from services.matters import schemas
from services.matters.domain import (
    AVAILABILITY,
    CASE_TYPES,
    MATERIAL_FORMS,
    MATTER_TYPES,
    Matter,
)
from services.matters.domain.records import CatalogVersion
from services.matters.guide import render_guide
from services.matters.usecases.base import CAS_ATTEMPTS, MattersBase

# Fields of a catalog version that are bookkeeping, not matter content.
_VERSION_META = ("published_at", "retired_at", "retire_reason", "approved_at", "approved_by")
# Query-string parameters of GET /matters that are numbers or yes/no.
_NUMBERS = ("limit", "offset")
_FLAGS = ("online", "include_retired")
_YES_NO = {
    **dict.fromkeys(("1", "true", "yes", "是"), True),
    **dict.fromkeys(("0", "false", "no", "否"), False),
}


class CatalogView(MattersBase):
    # --- projection ------------------------------------------------------------------------
    def project_catalog(self) -> int:
        """Bring the ``matters`` current view up to date with the ``catalog`` collection."""

        def project(records: list[Doc]) -> None:
            self._project_new(records)
            for record in records:
                self._project(record)

        return self.follow(self.repo.catalog, "catalog_projection", project)

    def _project_new(self, records: list[Doc]) -> None:
        """Matters seen for the first time are inserted in one batch (one commit)."""
        latest: dict[str, Doc] = {}
        for record in records:
            known = latest.get(record["code"])
            if known is None or record["matter_version"] > known["matter_version"]:
                latest[record["code"]] = record
        new = [
            {"id": code, **self._current_fields(record, None), "created_at": self.stamp()}
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
            "updated_at": self.stamp(),
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

    # --- this site's availability ------------------------------------------------------------
    def set_local_availability(self, code: Any, availability: Any) -> dict[str, Any]:
        args = load(schemas.AVAILABILITY_CHOICE, {"code": code, "availability": availability})
        for _ in range(CAS_ATTEMPTS):
            current = self._current(args["code"])
            changes = {
                "availability": args["availability"],
                "availability_local": True,
                "updated_at": self.stamp(),
            }
            updated = self.repo.matters.update(
                args["code"], changes, expect={"version": current["version"]}
            )
            if updated is not None:
                return self.matter_view(updated)
        raise Conflict(f"事项 {code} 正被同时更新，请稍后重试")

    # --- reading ------------------------------------------------------------------------------
    def _current(self, code: Any) -> Doc:
        if not isinstance(code, str) or not code:
            raise InvalidInput.field("code", "应为事项实施编码")
        current = self.repo.current(code)
        if current is None:
            raise NotFound(f"事项 {code} 不存在", {"code": [code]})
        return current

    def get_matter(self, code: Any, version: Any = None) -> dict[str, Any]:
        args = load(schemas.MATTER_VERSION, {"code": code, "version": version})
        code, version = args["code"], args["version"]
        current = self._current(code)
        if version is None:
            return self.matter_view(current)
        record = self.repo.version(code, version)
        if record is None:
            raise NotFound(f"事项 {code} 没有第 {version} 版", {"version": [str(version)]})
        return self.version_view(record)

    def guide(self, code: Any) -> str:
        """The printable service guide (办事指南) of the current version, as HTML."""
        matter = self.get_matter(code)
        return render_guide(matter, self.identity.name, self.settings.timezone)

    def matter_view(self, doc: Mapping[str, Any]) -> dict[str, Any]:
        view = {k: v for k, v in doc.items() if k not in ("id", "_seq", "version")}
        view["type_name"] = MATTER_TYPES.get(doc.get("type", ""), "")
        view["case_type_name"] = CASE_TYPES.get(doc.get("case_type", ""), "")
        view["availability_name"] = AVAILABILITY.get(doc.get("availability", ""), "")
        # Each material's form by name too, so a page renders the guide from data alone.
        view["materials"] = [
            {**m, "form_name": MATERIAL_FORMS.get(m.get("form", ""), "")}
            for m in doc.get("materials", [])
        ]
        return view

    def version_view(self, record: CatalogVersion) -> dict[str, Any]:
        view: dict[str, Any] = {**record["matter"], "matter_version": record["matter_version"]}
        view["status"] = record["status"]
        for key in _VERSION_META:
            view[key] = record.get(key)
        view["type_name"] = MATTER_TYPES.get(view.get("type", ""), "")
        view["case_type_name"] = CASE_TYPES.get(view.get("case_type", ""), "")
        return view

    # --- search -------------------------------------------------------------------------------
    @staticmethod
    def search_summary(doc: Mapping[str, Any]) -> dict[str, Any]:
        return {
            "code": doc["id"],
            "basic_code": doc.get("basic_code"),
            "name": doc.get("name"),
            "aliases": doc.get("aliases", []),
            "type": doc.get("type"),
            "type_name": MATTER_TYPES.get(doc.get("type", ""), ""),
            "department": (doc.get("agency") or {}).get("name"),
            "case_type": doc.get("case_type"),
            "promised_limit_days": doc.get("promised_limit_days"),
            "online": doc.get("online"),
            "visits": doc.get("visits"),
            "status": doc.get("status"),
            "matter_version": doc.get("matter_version"),
            "availability": doc.get("availability"),
            "availability_name": AVAILABILITY.get(doc.get("availability", ""), ""),
        }

    def refresh_index(self) -> None:
        if self.repo.matters.last_seq() <= self.index.seq:
            return
        while True:
            docs = self.repo.matters.changes_since(self.index.seq, 2000)
            if not docs:
                return
            self.index.apply(docs, self.search_summary)

    def search(self, params: Any) -> dict[str, Any]:
        query = load(schemas.SEARCH, params)
        self.refresh_index()
        total, items = self.index.search(
            query["q"],
            type=query["type"],
            department=query["department"],
            tier=query["tier"],
            online=query["online"],
            availability=query["availability"],
            include_retired=query["include_retired"],
            codes=query["codes"],
            limit=query["limit"],
            offset=query["offset"],
        )
        return {"total": total, "items": items, "limit": query["limit"], "offset": query["offset"]}

    def search_query(self, args: Mapping[str, str]) -> dict[str, Any]:
        """``search`` from an HTTP query string, whose values are all text."""
        params: dict[str, Any] = dict(args)
        for key in _NUMBERS:
            if key in params:
                params[key] = query_number(params[key])
        for key in _FLAGS:
            if key in params:
                params[key] = _YES_NO.get(params[key].lower(), params[key])
        return self.search(params)


def query_number(value: str) -> int | str:
    """A query-string number as an int; anything else (``²``, ``１２``, 5000 digits) is
    left as text, which the schema then refuses as not a whole number."""
    if value.isascii() and value.isdigit() and len(value) <= 9:
        return int(value)
    return value
