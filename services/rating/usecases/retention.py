"""Bounds on what the site keeps (docs/api.md, rating, "Privacy"): a bad real-name rater's
clear contact is purged ``RATING.contact_retention_days`` after its case closes, and the
per-phone and per-device daily counters after ``RATING.counter_retention_days``. Both run
in the sweep, each with its metric."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import cast

from services.common.clock import iso, parse_iso
from services.rating import domain
from services.rating.domain import CaseState
from services.rating.domain.records import RaterContact
from services.rating.usecases.base import RatingBase

log = logging.getLogger(__name__)

PHONE_COUNTERS = "rating.phone."
DEVICE_COUNTERS = "rating.device."
BATCH = 500


class Retention(RatingBase):
    def purge_contacts(self, now: datetime) -> int:
        """Schedule the purge of contacts whose case has closed, then purge those due."""
        keep = timedelta(days=self.settings.contact_retention_days)
        # ``None``: contacts stored by an earlier version (no state), good ratings included
        for state in ("kept", None):
            for contact in self._contacts({"state": state}):
                self._schedule(contact, keep, now)
        purged = 0
        for contact in self._contacts({"state": "scheduled", "purge_after": {"$lte": iso(now)}}):
            changes = {"phone": None, "name": None, "state": "purged", "purged_at": iso(now)}
            if self.repo.contacts.update(contact["id"], changes, expect={"state": "scheduled"}):
                purged += 1
        if purged:
            self.metrics.contacts_purged.labels(**self.metrics.labels()).inc(purged)
            log.info("rating: %d rater contacts purged after their retention", purged)
        return purged

    def _contacts(self, filter: dict[str, object]) -> list[RaterContact]:
        return cast(list[RaterContact], self.repo.contacts.find(filter, limit=BATCH))

    def _schedule(self, contact: RaterContact, keep: timedelta, now: datetime) -> None:
        """Set ``purge_after`` once the contact's case is closed (or there will be none)."""
        evaluation = self.repo.evaluation(contact["id"])
        case = self.repo.case(contact.get("case_id") or domain.case_id(contact["id"]))
        ended: str | None = None
        if evaluation is None or not evaluation["bad"]:
            ended = iso(now - keep)  # nothing to call back about: purge now
        elif case is not None and case["state"] == CaseState.CLOSED:
            ended = case["closed_at"] or case["updated_at"]
        elif case is None and (excluded := evaluation.get("excluded")) is not None:
            ended = excluded.get("at") or evaluation["updated_at"]  # held, then excluded
        if ended is None:
            return
        purge_after = iso(parse_iso(ended) + keep)
        expect = {"state": contact.get("state")}
        changes = {"state": "scheduled", "purge_after": purge_after}
        self.repo.contacts.update(contact["id"], changes, expect=expect)

    def prune_counters(self, now: datetime) -> int:
        """Delete the daily counters older than ``counter_retention_days``."""
        today = domain.local_day(now, self.settings.zone)
        first_kept = (today - timedelta(days=self.settings.counter_retention_days)).isoformat()
        store = self.context.store
        pruned = sum(
            store.drop_counters(prefix, f"{prefix}{first_kept}")
            for prefix in (PHONE_COUNTERS, DEVICE_COUNTERS)
        )
        if pruned:
            self.metrics.counters_pruned.labels(**self.metrics.labels()).inc(pruned)
        return pruned
