"""The `matters` service: the 事项 catalog, service guides, and applications (办件).

Thin entrypoints: validation and rules live in ``app``/``domain``/``schemas``. Completion
of an application writes its evaluation invitation durably (outbox) and dispatches the
``evaluation_invited`` event as a wake-up hint only.
"""

from __future__ import annotations

import logging
from typing import Any

from nameko.events import EventDispatcher
from nameko.timer import timer
from werkzeug.wrappers import Request, Response

from services.common import service as base
from services.common.rpc import rpc
from services.matters.app import MattersApp
from services.matters.guide import render_guide
from services.matters.provider import MattersProvider

log = logging.getLogger(__name__)

TICK_SECONDS = 1.0  # the app itself paces its work by MATTERS.sweep_interval_seconds


class MattersService(base.SiteService):
    name = "matters"
    feeds = ("catalog", "application_summaries", "evaluation_invitations")
    replicated_feeds = ("application_summaries",)

    app: MattersApp = MattersProvider()
    dispatch = EventDispatcher()

    def _hint(self, invitation_ids: list[str]) -> None:
        for invitation_id in invitation_ids:
            try:
                self.dispatch("evaluation_invited", {"id": invitation_id})
            except Exception:  # a hint may be lost: rating also polls the feed
                log.warning("evaluation_invited hint for %s not sent", invitation_id)

    def _done(self, outcome: tuple[dict[str, Any], list[str]]) -> dict[str, Any]:
        view, invited = outcome
        self._hint(invited)
        return view

    # --- catalog ---------------------------------------------------------------------------
    @rpc
    def save_matter_draft(self, matter: dict[str, Any]) -> dict[str, Any]:
        """Create or replace the draft change of a matter (catalog source only)."""
        draft = self.app.save_draft(matter)
        return {k: v for k, v in draft.items() if k != "_seq"}

    @rpc
    def approve_matter_change(self, code: str, approved_by: str) -> dict[str, Any]:
        draft = self.app.approve_change(code, approved_by)
        return {k: v for k, v in draft.items() if k != "_seq"}

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
    def list_applications(self, filters: dict[str, Any] | None = None) -> dict[str, Any]:
        return self.app.list_applications(filters)

    # --- periodic -------------------------------------------------------------------------
    @timer(interval=TICK_SECONDS)
    def tick(self) -> None:
        """Catalog projection, outbox sweep and deadline gauges (paced by the app)."""
        self._hint(self.app.tick())

    # --- HTTP -----------------------------------------------------------------------------
    @base.api("GET", "/matters")
    def http_search(self, request: Request) -> dict[str, Any]:
        args = request.args
        params: dict[str, Any] = {k: args[k] for k in args}
        for key in ("limit", "offset"):
            if key in params and params[key].isdigit():
                params[key] = int(params[key])
        for key in ("online", "include_retired"):
            if key in params:
                params[key] = params[key].lower() in ("1", "true", "yes", "是")
        return self.app.search(params)

    @base.api("GET", "/matters/<string:code>")
    def http_matter(self, request: Request, code: str) -> dict[str, Any]:
        return self.app.get_matter(code)

    @base.api("GET", "/matters/<string:code>/guide")
    def http_guide(self, request: Request, code: str) -> Response:
        app = self.app
        page = render_guide(app.get_matter(code), app.identity.name, app.settings.timezone)
        return Response(page, mimetype="text/html; charset=utf-8")

    @base.api("GET", "/applications")
    def http_applications(self, request: Request) -> dict[str, Any]:
        params: dict[str, Any] = {k: request.args[k] for k in request.args}
        if "limit" in params and params["limit"].isdigit():
            params["limit"] = int(params["limit"])
        return self.app.list_applications(params)
