"""What matters publishes to other services and sites (docs/architecture.md, "Feeds and
outboxes", "Invitations"): the application summary (feed ``application_summaries``,
replicated up) and, once an application is completed, its one evaluation invitation (feed
``evaluation_invitations``, followed by rating); for 代办, the request of a forwarded
application (``proxy_requests``, replicated up) and the outcome of a handling copy
(``proxy_outcomes``, pulled down).

Every application write sets ``outbox_pending`` in the same document write; the summary and
invitation are then written with deterministic ids and the flag cleared. ``sweep_outbox``
repairs documents left flagged by a crash: never lost, never twice.
"""

from __future__ import annotations

from services.matters.domain import DONE_STATES
from services.matters.domain.applications import invitation_for, summary_of
from services.matters.domain.proxy import outcome_of, request_of
from services.matters.domain.records import ApplicationRecord
from services.matters.usecases.base import MattersBase


class Outbox(MattersBase):
    def flush_outbox(self, doc: ApplicationRecord) -> list[str]:
        """Write the summary (and invitation once done) for a flagged application, then clear
        the flag. Idempotent; returns the invitation ids newly written (for hints)."""
        if not doc.get("outbox_pending"):
            return []
        invited = []
        if doc.get("proxy"):
            # a handling copy (代办): its outcome goes back; the application counts (and is
            # rated) once, at the proxy site
            self.repo.outcomes.upsert_versioned(outcome_of(doc))
        else:
            if doc["state"] in DONE_STATES:
                invitation = invitation_for(doc, self.stamp())
                if self.repo.insert_once(self.repo.invitations, invitation):
                    invited.append(invitation["id"])
            self.repo.summaries.upsert_versioned(summary_of(doc, self.today()))
            if doc.get("handled_by"):
                self.repo.requests.upsert_versioned(request_of(doc))
        self.repo.update_application(doc["id"], {"outbox_pending": False}, doc["version"])
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
