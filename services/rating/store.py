"""The rating repository over the storage port: collections, indexes, typed reads, the
invitations inbox and the site's privacy salt. The rollups are folded by ``rollups.py``.

Collections (namespace ``rating``), documents typed in ``domain/records.py``:

- ``evaluations`` (feed, replicated): one ``Evaluation`` per rating; no phone, no name.
- ``cases`` (feed, replicated): bad-rating rectification ``Case``s with their steps.
- ``invitations``: ``Invitation``s pulled from queue and matters.
- ``rollups``: counters, one document per period (a day and its month) × site ×
  dimension, with ``values: {dimension value: {counter: n}}``.
- ``rollup_marks``: what each evaluation/case currently contributes to the rollups.
- ``rater_contacts``: the clear phone and name of real-name raters (never published).
- ``reveal_audit``: every reveal of a phone number.
- ``settings``: per-site generated values (the privacy salt when config gives none).
- ``checkpoints``: FeedFollower checkpoints (invitations, and the rollup folders).
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from typing import Any, cast

from services.common import site
from services.common.errors import Conflict
from services.common.privacy import SALT_ID, site_salt
from services.common.store import Collection, Doc, Index, Store
from services.common.store.port import Filter, Sort
from services.rating.domain.records import Case, Evaluation, Invitation, RaterContact
from services.rating.rollups import RollupFolder

EVALUATIONS = "evaluations"
CASES = "cases"
INVITATIONS = "invitations"
ROLLUPS = "rollups"
REPLICATED = (EVALUATIONS, CASES)

INDEXES: dict[str, tuple[Index, ...]] = {
    EVALUATIONS: (
        Index(("day", "site_code")),
        Index(("case_pending",)),
        Index(("held", "recorded_at_site")),
    ),
    CASES: (
        Index(("recorded_at_site", "state")),
        Index(("unit", "state")),
        Index(("site_code",)),
        Index(("pending_exclusion",)),
    ),
    INVITATIONS: (
        Index(("site_code", "window", "state", "service_ended_at")),
        Index(("state", "service_ended_at")),
    ),
    ROLLUPS: (Index(("dim", "grain", "period", "site_code")),),
    "rollup_marks": (),
    "rater_contacts": (Index(("state", "purge_after")),),
    "reveal_audit": (Index(("case_id",)),),
    "settings": (),
}


def subtree_range(root: str, prefix: str) -> dict[str, str] | None:
    """A ``site_code`` range filter for every code starting with ``prefix`` (``root``'s)."""
    del prefix
    return site.subtree_range(root)


class RatingRepository:
    """Per-container handles on the rating collections."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.c: dict[str, Collection] = {
            name: store.collection(name, indexes) for name, indexes in INDEXES.items()
        }
        self.evaluations = self.c[EVALUATIONS]
        self.cases = self.c[CASES]
        self.invitations = self.c[INVITATIONS]
        self.rollups = self.c[ROLLUPS]
        self.contacts = self.c["rater_contacts"]
        self.audit = self.c["reveal_audit"]
        lock = threading.RLock()
        marks = self.c["rollup_marks"]
        self.folders = {
            EVALUATIONS: RollupFolder(store, self.rollups, marks, EVALUATIONS, lock),
            CASES: RollupFolder(store, self.rollups, marks, CASES, lock),
        }

    # --- typed reads ---
    def evaluation(self, evaluation_id: str) -> Evaluation | None:
        return cast(Evaluation | None, self.evaluations.get(evaluation_id))

    def case(self, case_id: str) -> Case | None:
        return cast(Case | None, self.cases.get(case_id))

    def invitation(self, invitation_id: str) -> Invitation | None:
        return cast(Invitation | None, self.invitations.get(invitation_id))

    def contact(self, evaluation_id: str) -> RaterContact | None:
        return cast(RaterContact | None, self.contacts.get(evaluation_id))

    def find_evaluations(
        self, filter: Filter, sort: Sort | None = None, limit: int | None = None
    ) -> list[Evaluation]:
        return cast(list[Evaluation], self.evaluations.find(filter, sort, limit))

    def find_cases(
        self, filter: Filter, sort: Sort | None = None, limit: int | None = None
    ) -> list[Case]:
        return cast(list[Case], self.cases.find(filter, sort, limit))

    def find_invitations(
        self, filter: Filter, sort: Sort | None = None, limit: int | None = None
    ) -> list[Invitation]:
        return cast(list[Invitation], self.invitations.find(filter, sort, limit))

    # --- settings ---
    def privacy_salt(self, configured: str | None) -> str:
        """The configured salt, else one generated once for this site and kept in the store
        (``privacy.site_salt``). A salt stored by an earlier version under ``value`` is kept
        (moved to ``salt``), so the per-day counters keep their keys across the upgrade."""
        settings = self.c["settings"]
        legacy = settings.get(SALT_ID)
        if not configured and legacy is not None and "salt" not in legacy:
            settings.update(SALT_ID, {"salt": legacy["value"]})
        return site_salt(configured, settings)

    # --- invitations ---
    def add_invitations(self, items: Iterable[Mapping[str, Any]], source: str, now: str) -> int:
        """Insert invitations not seen before; replays and resends change nothing."""
        added = 0
        for item in items:
            if self.invitations.get(item["id"]) is not None:
                continue
            doc = {k: v for k, v in item.items() if k not in ("_seq", "version")}
            doc.update(source=source, state="open", received_at=now)
            try:
                self.invitations.insert(doc)
                added += 1
            except Conflict:
                pass
        return added

    # --- rollups ---
    def fold(self, feed: str | None = None, limit: int = 2000) -> int:
        folded = 0
        for name, folder in self.folders.items():
            if feed in (None, name):
                folded += folder.fold(limit)
        return folded

    def buckets(self, filter: Mapping[str, Any]) -> list[Doc]:
        return self.rollups.find(filter)
