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
- ``settings``: site-local settings such as the generated privacy salt.
"""

from __future__ import annotations

from typing import Any

from services.common.errors import Conflict
from services.common.store import Doc, Index, Store


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
        self.settings = store.collection("settings")

    # --- catalog ------------------------------------------------------------------------
    def current(self, code: str) -> Doc | None:
        return self.matters.get(code)

    def version(self, code: str, matter_version: int) -> Doc | None:
        return self.catalog.get(version_id(code, matter_version))

    def same_basic_code(self, basic_code: str) -> list[Doc]:
        return self.matters.find({"basic_code": basic_code})

    def latest_catalog_version(self, code: str) -> Doc | None:
        found = self.catalog.find({"code": code}, sort=[("matter_version", -1)], limit=1)
        return found[0] if found else None

    def catalog_is_empty(self) -> bool:
        return self.catalog.last_seq() == 0

    # --- applications -----------------------------------------------------------------
    def insert_once(self, collection: Any, doc: Doc) -> bool:
        """Insert with a deterministic id; an existing record is fine (outbox replay)."""
        try:
            collection.insert(doc)
        except Conflict:
            return False
        return True

    def flagged(self, limit: int = 500) -> list[Doc]:
        return self.applications.find({"outbox_pending": True}, limit=limit)


def version_id(code: str, matter_version: int) -> str:
    return f"{code}@{matter_version}"
