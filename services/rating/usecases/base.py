"""What every use-case mixin shares: the attributes ``RatingApp.__init__`` sets, and the
outbox steps more than one concept takes (docs/architecture.md, "Feeds and outboxes")."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any, cast

from services.common.clock import Clock, iso
from services.common.errors import Conflict
from services.common.runtime import SiteContext
from services.common.store import Doc
from services.rating import domain
from services.rating.domain import Calendar, open_case
from services.rating.domain.records import Case, Evaluation
from services.rating.metrics import RatingMetrics
from services.rating.settings import RatingSettings
from services.rating.store import RatingRepository

PRIVATE_KEYS = ("_seq", "contact_token")


def public(doc: Mapping[str, Any]) -> dict[str, Any]:
    """A stored document as callers see it: no feed position, no contact token."""
    return {k: v for k, v in doc.items() if k not in PRIVATE_KEYS}


class RatingBase:
    """One per container: the site, its settings, clock, repository and metrics."""

    context: SiteContext
    settings: RatingSettings
    clock: Clock
    site: str
    calendar: Calendar
    repo: RatingRepository
    metrics: RatingMetrics
    salt: str
    dirty: bool  # rollups may lag the feeds; the folder loop and stats fold them
    # How a new evaluation is written; the provider swaps in a group commit.
    insert_evaluation: Callable[[Mapping[str, Any]], Doc]

    def _evaluation_ids(self, kind: str, ref_id: str, sequence: int) -> tuple[str, str]:
        """The id this site gives the rating, and the one an earlier version gave."""
        return (
            domain.evaluation_id(self.site, kind, ref_id, sequence),
            domain.legacy_evaluation_id(kind, ref_id, sequence),
        )

    def _stored_evaluation(self, kind: str, ref_id: str, sequence: int) -> Evaluation | None:
        """The stored first or supplementary rating of a service, under either id."""
        for doc_id in self._evaluation_ids(kind, ref_id, sequence):
            if (doc := self.repo.evaluation(doc_id)) is not None:
                return doc
        return None

    def _record(self, doc: Evaluation, now: datetime) -> Evaluation:
        """Store a new evaluation, open its case when it is a counted bad rating, count it."""
        try:
            stored = cast(Evaluation, self.insert_evaluation(doc))
        except Conflict:
            raise Conflict("该服务已评价过，不能重复提交", {"service_ref": ["重复评价"]}) from None
        if stored["case_pending"]:
            stored = self._open_case(stored, now)
        # The invitation is not rewritten here (one commit per rating, not two): the pad's
        # pending_for_window and the sweep see the evaluation and mark it answered.
        outcome = "held" if stored["held"] else "counted"
        self.metrics.evaluations.labels(
            **self.metrics.labels(level=stored["level"], channel=stored["channel"], outcome=outcome)
        ).inc()
        self.dirty = True
        return stored

    def _open_case(self, evaluation: Evaluation, now: datetime) -> Evaluation:
        """Outbox step: the case exists (deterministic id) before the flag is cleared."""
        case = open_case(evaluation, now, self.settings, self.calendar)
        with contextlib.suppress(Conflict):
            self.repo.cases.insert(case)
        updated = self.repo.evaluations.update(
            evaluation["id"],
            {"case_pending": False, "updated_at": iso(now)},
            expect={"case_pending": True},
        )
        self.dirty = True
        return (
            cast(Evaluation | None, updated) or self.repo.evaluation(evaluation["id"]) or evaluation
        )

    def _apply_exclusion(self, case: Case) -> Case:
        """Outbox step: exclude the evaluation, then clear the case's flag."""
        pending = case["pending_exclusion"]
        assert pending is not None, "called for a case with an exclusion to apply"
        exclusion = {**pending, "at": case["updated_at"], "case_id": case["id"]}
        evaluation = self.repo.evaluation(case["evaluation_id"])
        if evaluation is not None and evaluation.get("excluded") is None:
            self.repo.evaluations.update(
                evaluation["id"], {"excluded": exclusion, "updated_at": case["updated_at"]}
            )
        cleared = self.repo.cases.update(
            case["id"],
            {"pending_exclusion": None, "exclusion": exclusion},
            expect={"version": case.get("version")},
        )
        return cast(Case | None, cleared) or self.repo.case(case["id"]) or case
