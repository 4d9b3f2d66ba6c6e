"""The `matters` service: the 事项 catalog, service guides, and applications (办件).

Each entrypoint is one call into ``MattersApp`` (validation and rules live in the use cases,
``domain`` and ``schemas``; docs/architecture.md, "Service template"). Completion
of an application writes its evaluation invitation durably (outbox) and dispatches the
``evaluation_invited`` event as a wake-up hint only.
"""

from __future__ import annotations

import logging
from typing import Any

from nameko.timer import timer
from werkzeug.wrappers import Request, Response

from services.common import service as base
from services.common.rpc import rpc
from services.matters.access import ACCESS
from services.matters.app import MattersApp
from services.matters.provider import MattersProvider

log = logging.getLogger(__name__)

TICK_SECONDS = 1.0  # the app itself paces its work by MATTERS.sweep_interval_seconds


class MattersService(base.SiteService, base.InvitationSource):
    name = "matters"
    access = ACCESS
    feeds = (
        "catalog",
        "application_summaries",
        "evaluation_invitations",
        "proxy_requests",
        "proxy_outcomes",
    )
    replicated_feeds = ("application_summaries", "proxy_requests")

    app: MattersApp = MattersProvider()

    def store_replicated(self, name: str, docs: list[dict[str, Any]]) -> int:
        if name == "proxy_requests":  # 代办 requests: kept to handle here, or passed on
            return self.app.receive_requests(docs)
        return super().store_replicated(name, docs)

    def _done(self, outcome: tuple[dict[str, Any], list[str]]) -> dict[str, Any]:
        view, invited = outcome
        self.hint_invited(invited)
        return view

    # --- catalog ---------------------------------------------------------------------------
    @rpc
    def save_matter_draft(self, matter: dict[str, Any]) -> dict[str, Any]:
        """Create or replace the draft change of a matter (catalog source only)."""
        return self.app.save_draft(matter)

    @rpc
    def approve_matter_change(self, code: str, approved_by: str | None = None) -> dict[str, Any]:
        return self.app.approve_change(code, approved_by)

    @rpc
    def publish_matter(self, code: str) -> dict[str, Any]:
        return self.app.publish(code)

    @rpc
    def retire_matter(self, code: str, reason: str) -> dict[str, Any]:
        return self.app.retire(code, reason)

    @rpc
    def get_matter(self, code: str, version: int | None = None) -> dict[str, Any]:
        return self.app.get_matter(code, version)

    @rpc
    def search_matters(self, q: str = "", **filters: Any) -> dict[str, Any]:
        return self.app.search({"q": q, **filters})

    @rpc
    def list_unpublished_changes(self) -> list[dict[str, Any]]:
        return self.app.unpublished_changes()

    @rpc
    def catalog_changes(self, since: int = 0, limit: int = 500) -> dict[str, Any]:
        return self.app.catalog_changes(since, limit)

    @rpc
    def apply_catalog(self, docs: list[dict[str, Any]]) -> dict[str, int]:
        return {"applied": self.app.apply_catalog(docs)}

    @rpc
    def set_local_availability(self, code: str, availability: str) -> dict[str, Any]:
        return self.app.set_local_availability(code, availability)

    # --- applications ---------------------------------------------------------------------
    @rpc
    def submit_application(self, application: dict[str, Any]) -> dict[str, Any]:
        return self._done(self.app.submit(application))

    @rpc
    def supplement_application(
        self, application_id: str, materials: list[dict[str, Any]]
    ) -> dict[str, Any]:
        return self._done(self.app.supplement(application_id, materials))

    @rpc
    def refuse_application(self, application_id: str, reason: str, basis: str) -> dict[str, Any]:
        return self._done(self.app.refuse(application_id, reason, basis))

    @rpc
    def start_review(self, application_id: str) -> dict[str, Any]:
        return self._done(self.app.start_review(application_id))

    @rpc
    def decide_application(
        self, application_id: str, decision: str, reason: str | None = None
    ) -> dict[str, Any]:
        return self._done(self.app.decide(application_id, decision, reason))

    @rpc
    def complete_application(
        self, application_id: str, overdue_reason: str | None = None, result: str | None = None
    ) -> dict[str, Any]:
        return self._done(self.app.complete(application_id, overdue_reason, result))

    @rpc
    def deliver_application(
        self, application_id: str, method: str, tracking_number: str | None = None
    ) -> dict[str, Any]:
        return self._done(self.app.deliver(application_id, method, tracking_number))

    @rpc
    def suspend_application(
        self, application_id: str, reason: str, note: str | None = None
    ) -> dict[str, Any]:
        return self._done(self.app.suspend(application_id, reason, note))

    @rpc
    def resume_application(self, application_id: str) -> dict[str, Any]:
        return self._done(self.app.resume(application_id))

    @rpc
    def get_application(self, application_id: str) -> dict[str, Any]:
        return self.app.get_application(application_id)

    @rpc
    def application_progress(self, number: str, id_suffix: str) -> dict[str, Any]:
        return self.app.application_progress(number, id_suffix)

    @rpc
    def list_applications(self, filters: dict[str, Any] | None = None) -> dict[str, Any]:
        return self.app.list_applications(filters)

    @rpc
    def apply_proxy_outcomes(self, docs: list[dict[str, Any]]) -> dict[str, int]:
        """Called by sync: what the handling sites did with this site's (or a site below's)
        代办 applications."""
        applied, invited = self.app.apply_outcomes(docs)
        self.hint_invited(invited)
        return {"applied": applied}

    # --- periodic -------------------------------------------------------------------------
    @timer(interval=TICK_SECONDS)
    def tick(self) -> None:
        """Catalog projection, outbox sweep and deadline gauges (paced by the app)."""
        self.hint_invited(self.app.tick())

    # --- HTTP -----------------------------------------------------------------------------
    @base.api("GET", "/matters")
    def http_search(self, request: Request) -> dict[str, Any]:
        return self.app.search_query(request.args)

    @base.api("GET", "/matters/<string:code>")
    def http_matter(self, request: Request, code: str) -> dict[str, Any]:
        return self.app.get_matter(code)

    @base.api("GET", "/matters/<string:code>/guide")
    def http_guide(self, request: Request, code: str) -> Response:
        return Response(self.app.guide(code), mimetype="text/html; charset=utf-8")

    # No HTTP route lists applications: they hold citizens' data, so they are read only
    # over RPC by an identified clerk, manager or supervisor (docs/security.md).
