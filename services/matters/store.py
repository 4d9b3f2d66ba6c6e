"""The matters repository over the storage port: collections, indexes, and document shapes.

Collections (namespace ``matters``):
- ``drafts``: one working copy per matter code (状态 draft / approved), never replicated;
- ``catalog``: every published or retired matter version, immutable, id ``<code>@<n>``
  (the ``catalog`` feed; replicated downward, read-only copies below the catalog source);
- ``matters``: the current version of each code with this site's availability (search,
  detail and guide read this);
- ``applications``: 办件, with protected applicant data (hash + masked form only);
- ``application_summaries``: what may leave the site (no names, no ID numbers), feed;
- ``evaluation_invitations``: one per completed application (一事一评), feed, outbox;
- ``proxy_requests``: 代办 requests on their way up to the site that handles them (feed,
  replicated up: this site's forwarded applications and those passing through);
- ``proxy_intake``: the requests for this site to handle (followed from a checkpoint);
- ``proxy_outcomes``: what handling sites did, on their way down to the proxy site (feed,
  pulled by the sync of the sites below);
- ``settings``: site-local settings: the generated privacy salt (``privacy.site_salt``)
  and the projection checkpoint.

One ``TypedDict`` per stored document, in ``domain/records.py`` (domain functions take them).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, cast

from services.common.errors import Conflict
from services.common.store import Collection, Doc, Index, Sort, Store
from services.matters.domain.records import (
    ApplicationRecord,
    ApplicationSummary,
    CatalogVersion,
    Draft,
)

__all__ = [
    "ApplicationRecord",
    "ApplicationSummary",
    "CatalogVersion",
    "Draft",
    "MattersRepository",
    "version_id",
]


class MattersRepository:
    def __init__(self, store: Store) -> None:
        self.store = store
        self.drafts = store.collection("drafts", [Index(("state",))])
        self.catalog = store.collection(
            "catalog", [Index(("code", "matter_version"), unique=True), Index(("status",))]
        )
        self.matters = store.collection("matters", [Index(("basic_code",)), Index(("status",))])
        self.applications = store.collection(
            "applications",
            [
                Index(("number",), unique=True),
                Index(("clock", "due_date")),
                Index(("outbox_pending",)),
                Index(("state",)),
                Index(("matter_code",)),
                Index(("applicant_hash",)),
            ],
        )
        self.summaries = store.collection("application_summaries", [Index(("site_code",))])
        self.invitations = store.collection("evaluation_invitations")
        self.requests = store.collection("proxy_requests")
        self.intake = store.collection("proxy_intake")
        self.outcomes = store.collection("proxy_outcomes")
        self.settings = store.collection("settings")

    # --- catalog ------------------------------------------------------------------------
    def current(self, code: str) -> Doc | None:
        return self.matters.get(code)

    def version(self, code: str, matter_version: int) -> CatalogVersion | None:
        return cast("CatalogVersion | None", self.catalog.get(version_id(code, matter_version)))

    def draft(self, code: str) -> Draft | None:
        return cast("Draft | None", self.drafts.get(code))

    def approved_drafts(self) -> list[Draft]:
        return cast("list[Draft]", self.drafts.find({"state": "approved"}))

    def same_basic_code(self, basic_code: str) -> list[Doc]:
        return self.matters.find({"basic_code": basic_code})

    def latest_catalog_version(self, code: str) -> CatalogVersion | None:
        found = self.catalog.find({"code": code}, sort=[("matter_version", -1)], limit=1)
        return cast(CatalogVersion, found[0]) if found else None

    def catalog_is_empty(self) -> bool:
        return self.catalog.last_seq() == 0

    # --- applications -----------------------------------------------------------------
    def application(self, app_id: str) -> ApplicationRecord | None:
        return cast("ApplicationRecord | None", self.applications.get(app_id))

    def application_numbered(self, number: str) -> ApplicationRecord | None:
        found = self.applications.find({"number": number}, limit=1)
        return cast(ApplicationRecord, found[0]) if found else None

    def find_applications(
        self, query: Mapping[str, Any], sort: Sort, limit: int
    ) -> list[ApplicationRecord]:
        found = self.applications.find(query, sort=sort, limit=limit)
        return cast("list[ApplicationRecord]", found)

    def update_application(
        self, app_id: str, changes: Mapping[str, Any], version: int
    ) -> ApplicationRecord | None:
        """Compare-and-set on the version read; None when another writer came first."""
        updated = self.applications.update(app_id, changes, expect={"version": version})
        return cast("ApplicationRecord | None", updated)

    def insert_once(self, collection: Collection, doc: Mapping[str, Any]) -> bool:
        """Insert with a deterministic id; an existing record is fine (outbox replay)."""
        try:
            collection.insert(doc)
        except Conflict:
            return False
        return True

    def flagged(self, limit: int = 500) -> list[ApplicationRecord]:
        found = self.applications.find({"outbox_pending": True}, limit=limit)
        return cast("list[ApplicationRecord]", found)


def version_id(code: str, matter_version: int) -> str:
    return f"{code}@{matter_version}"
