"""The periodic sweep: repair outbox steps, fill deadlines once a holiday schedule is
loaded, escalate overdue steps (督办), mark answered invitations, give system default
ratings where the site enables them, and set the case gauges."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import cast

from services.common.clock import iso
from services.common.errors import Conflict
from services.rating import domain
from services.rating.domain import CaseState, Channel, Level
from services.rating.domain.records import Case
from services.rating.usecases.retention import Retention

log = logging.getLogger(__name__)


class Sweeps(Retention):
    last_sweep: datetime | None = None

    def sweep_if_due(self) -> dict[str, int] | None:
        """``sweep()`` when ``sweep_interval_seconds`` have passed since the last one; a
        failed sweep is logged and retried next time (never kills the timer)."""
        now = self.clock()
        interval = timedelta(seconds=self.settings.sweep_interval_seconds)
        if self.last_sweep is not None and now - self.last_sweep < interval:
            return None
        self.last_sweep = now
        try:
            return self.sweep()
        except Exception:
            log.exception("rating: sweep failed")
            return None

    def sweep(self) -> dict[str, int]:
        """Repair outbox steps, escalate overdue steps, give default ratings, set gauges."""
        now = self.clock()
        repaired = 0
        for evaluation in self.repo.find_evaluations({"case_pending": True}, limit=500):
            if evaluation.get("recorded_at_site") == self.site:
                self._open_case(evaluation, now)
                repaired += 1
        for case in self.repo.find_cases({"pending_exclusion": {"$ne": None}}, limit=500):
            if case.get("recorded_at_site") == self.site and case.get("pending_exclusion"):
                self._apply_exclusion(case)
                repaired += 1
        escalated = self._watch_cases(now)
        self._close_answered_invitations()
        defaults = self._default_ratings(now)
        purged = self.purge_contacts(now)
        pruned = self.prune_counters(now)
        self.dirty = True
        return {
            "repaired": repaired,
            "escalated": escalated,
            "defaults": defaults,
            "contacts_purged": purged,
            "counters_pruned": pruned,
        }

    def _watch_cases(self, now: datetime) -> int:
        """Fill known deadlines, flag and escalate overdue steps, set the gauges."""
        today = domain.local_day(now, self.settings.zone)
        escalated = 0
        open_by_state = {s.value: 0 for s in CaseState if s != CaseState.CLOSED}
        overdue_by_step = {"callback": 0, "close": 0}
        for state in open_by_state:
            for case in self.repo.find_cases({"recorded_at_site": self.site, "state": state}):
                open_by_state[state] += 1
                case = self._fill_deadlines(case, now)
                changes = domain.escalate(case, today, now)
                if changes is not None:
                    if changes["escalations"] != case.get("escalations"):
                        escalated += 1
                        log.warning(
                            "rating: case %s overdue at %s, escalated",
                            case["id"],
                            ", ".join(changes["overdue"]),
                        )
                    changes["updated_at"] = iso(now)
                    self.repo.cases.update(
                        case["id"], changes, expect={"version": case.get("version")}
                    )
                    case = cast(Case, {**case, **changes})
                for step in case.get("overdue") or []:
                    overdue_by_step[step] += 1
        for state, n in open_by_state.items():
            self.metrics.cases_open.labels(**self.metrics.labels(state=state)).set(n)
        for step, n in overdue_by_step.items():
            self.metrics.cases_overdue.labels(**self.metrics.labels(step=step)).set(n)
        return escalated

    def _fill_deadlines(self, case: Case, now: datetime) -> Case:
        filled = domain.fill_deadlines(case, self.settings, self.calendar)
        if filled is None:
            return case
        filled["updated_at"] = iso(now)
        version = case.get("version")
        if not self.repo.cases.update(case["id"], filled, {"version": version}):
            return case
        return cast(Case, {**case, **filled, "version": (version or 0) + 1})

    def _close_answered_invitations(self, limit: int = 2000) -> int:
        """Mark open invitations that already have their first evaluation as answered."""
        closed = 0
        for invitation in self.repo.find_invitations({"state": "open"}, limit=limit):
            ref = invitation["service_ref"]
            first = self._stored_evaluation(ref["kind"], ref["id"], domain.FIRST)
            if first is not None:
                self.repo.invitations.update(
                    invitation["id"],
                    {"state": "answered", "evaluation_id": first["id"]},
                    expect={"state": "open"},
                )
                closed += 1
        return closed

    def _default_ratings(self, now: datetime) -> int:
        """系统默认评价 (when enabled): 基本满意 for an invitation left unrated that long."""
        days = self.settings.default_rating_after_days
        if days is None:
            return 0
        cutoff = iso(now - timedelta(days=days))
        made = 0
        for invitation in self.repo.find_invitations(
            {"state": "open", "service_ended_at": {"$lte": cutoff}}, limit=500
        ):
            facts = domain.facts_from_invitation(invitation)
            doc_id = self._evaluation_ids(facts.kind, facts.ref_id, domain.FIRST)[0]
            if self._stored_evaluation(facts.kind, facts.ref_id, domain.FIRST) is None:
                doc = domain.evaluation_record(
                    doc_id=doc_id,
                    own_site=self.site,
                    facts=facts,
                    sequence=domain.FIRST,
                    channel=Channel.SYSTEM_DEFAULT,
                    level=Level.BASICALLY_SATISFIED,
                    details={},
                    comment=None,
                    reasons={"tags": [], "text": None},
                    rater={"real_name": False, "phone_masked": None, "name_masked": None},
                    entered_by=None,
                    hold=[],
                    now=now,
                    day=domain.local_day(now, self.settings.zone),
                    token=None,
                )
                try:
                    self._record(doc, now)
                    made += 1
                    continue
                except Conflict:
                    pass
            self.repo.invitations.update(invitation["id"], {"state": "answered"})
        return made
