"""What every service class inherits: site info over RPC, ``/health`` and ``/metrics``,
and the HTTP entrypoint that maps typed errors to JSON (400/404/409/403)."""

from __future__ import annotations

import ipaddress
import json
import logging
from collections.abc import Iterable
from typing import Any, cast

from nameko.events import EventDispatcher
from nameko.web.handlers import HttpRequestHandler
from werkzeug.wrappers import Request, Response

from services.common import remote  # noqa: F401  (typed remote errors)
from services.common.access import BASE_ACCESS, Rule
from services.common.errors import (
    Forbidden,
    HallError,
    InternalError,
    InvalidInput,
    NotFound,
    http_response,
)
from services.common.feeds import read_feed
from services.common.logs import quiet_refusals
from services.common.rpc import rpc
from services.common.runtime import EntrypointMetrics, Runtime, SiteContext, one_line_startup_errors
from services.common.store import Collection
from services.common.store.port import OWNER_FIELDS, owner_conflict, owner_of

one_line_startup_errors()
quiet_refusals()
log = logging.getLogger(__name__)

JSON_TYPE = "application/json; charset=utf-8"


class JsonHttp(HttpRequestHandler):  # type: ignore[misc]
    """HTTP entrypoint: dicts and lists become JSON, ``HallError`` becomes its status.

    A data route answers only callers on this machine (the site's gateway, an operator's
    curl); from anywhere else it is ``Forbidden`` (docs/security.md). ``/health`` and
    ``/metrics`` are ``exposed``: Prometheus and load balancers reach them over the LAN."""

    def __init__(self, method: str, url: str, *, exposed: bool = False, **kwargs: Any) -> None:
        self.exposed = exposed
        super().__init__(method, url, **kwargs)

    def handle_request(self, request: Request) -> Response:
        if not self.exposed and not _on_this_machine(request.remote_addr):
            refusal = Forbidden(
                "此接口只对本机开放，请通过本站点的网关访问", {"address": ["非本机"]}
            )
            status, headers, body = http_response(refusal)
            return Response(body, status=status, headers=headers)
        return cast(Response, super().handle_request(request))

    def response_from_result(self, result: Any) -> Response:
        if isinstance(result, dict | list):
            return json_response(result)
        return cast(Response, super().response_from_result(result))

    def response_from_exception(self, exc: BaseException) -> Response:
        # An unexpected error is logged by Nameko and counted; the client learns nothing of it.
        error = exc if isinstance(exc, HallError) else InternalError()
        status, headers, body = http_response(error)
        return Response(body, status=status, headers=headers)


api = JsonHttp.decorator


def _on_this_machine(address: str | None) -> bool:
    try:
        return address is not None and ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False


def json_response(payload: Any, status: int = 200) -> Response:
    return Response(json.dumps(payload, ensure_ascii=False), status=status, mimetype=JSON_TYPE)


class InvitationSource:
    """A service whose completed work invites an evaluation (queue, matters): after the
    invitation is written to its feed, a hint wakes rating (docs/architecture.md,
    "Invitations")."""

    dispatch = EventDispatcher()

    def hint_invited(self, invitation_ids: Iterable[str]) -> None:
        """Dispatch ``evaluation_invited`` for each id. A hint only: rating's timer reads the
        feed anyway, so a lost hint costs at most one tick and is never an error."""
        for invitation_id in invitation_ids:
            try:
                self.dispatch("evaluation_invited", {"id": invitation_id})
            except Exception:  # noqa: BLE001  (whatever the broker says, the feed has it)
                log.warning("evaluation_invited hint not sent for %s", invitation_id)


def check_owners(collection: Collection, docs: list[dict[str, Any]]) -> None:
    """``Conflict`` when a stored copy of one of ``docs`` belongs to another owner (a child
    overwriting another site's record: docs/architecture.md, "Replication")."""
    ids = [doc["id"] for doc in docs]
    stored = {doc["id"]: doc for doc in collection.find({"id": {"$in": ids}})} if ids else {}
    refused = [
        (doc["id"], owner_of(stored[doc["id"]], OWNER_FIELDS), owner_of(doc, OWNER_FIELDS))
        for doc in docs
        if doc["id"] in stored
        and owner_of(stored[doc["id"]], OWNER_FIELDS) != owner_of(doc, OWNER_FIELDS)
    ]
    if refused:
        raise owner_conflict(collection.name, refused)


class SiteService:
    """Base of the four services; subclasses set ``name`` and add their entrypoints."""

    name = "site"
    # Store collections other services (and sync) may follow with the ``feed`` RPC. Only
    # what may leave the service goes in them: no names, no ID numbers, no phones.
    feeds: tuple[str, ...] = ()
    # Feeds this service accepts from other sites through ``apply_replicated`` (sync only).
    replicated_feeds: tuple[str, ...] = ()
    # Who may call each RPC (services.common.access); the subclass's table lists them all.
    access: dict[str, Rule] = BASE_ACCESS
    runtime: SiteContext = Runtime()
    entrypoint_metrics = EntrypointMetrics()

    @rpc
    def site_info(self) -> dict[str, Any]:
        """The site identity, service name and store kind."""
        return self.runtime.site_info()

    @rpc
    def feed(self, name: str, since: int = 0, limit: int = 500) -> dict[str, Any]:
        """A page of the published change feed ``name`` after position ``since``."""
        return read_feed(self.runtime.store, self.feeds, name, since, limit)

    @rpc
    def apply_replicated(self, name: str, docs: list[dict[str, Any]]) -> dict[str, int]:
        """Store records replicated from another site, by ``(id, version)``: an older or
        equal version is a no-op, so a resent batch changes nothing. Called by ``sync``."""
        if not isinstance(name, str) or name not in self.replicated_feeds:
            raise NotFound(f"本服务不接收 {name} 的复制数据", {"name": [str(name)[:64]]})
        if not isinstance(docs, list) or not all(
            isinstance(doc, dict) and isinstance(doc.get("id"), str) for doc in docs
        ):
            raise InvalidInput.field("docs", "应为记录列表，每条记录有文字 id")
        # Checked again, atomically, by the default ``store_replicated``; this first look
        # also guards services that override it.
        check_owners(self.runtime.store.collection(name), docs)
        return {"applied": self.store_replicated(name, docs)}

    def store_replicated(self, name: str, docs: list[dict[str, Any]]) -> int:
        """Override to keep derived data (e.g. rollups) in step with replicated records;
        an override stores with ``upsert_versioned_many(docs, owner=OWNER_FIELDS)``."""
        collection = self.runtime.store.collection(name)
        return collection.upsert_versioned_many(docs, owner=OWNER_FIELDS)

    @api("GET", "/health", exposed=True)
    def health(self, request: Request) -> Response:
        healthy, checks = self.runtime.health()
        body = {
            "status": "ok" if healthy else "unavailable",
            **self.runtime.site_info(),
            "checks": checks,
        }
        notes = self.health_notes()
        if notes:
            body["notes"] = notes
        return json_response(body, status=200 if healthy else 503)

    def health_notes(self) -> dict[str, Any]:
        """What an operator should know but that does not make the service unhealthy
        (e.g. the gateway's board without a voice)."""
        return {}

    @api("GET", "/metrics", exposed=True)
    def metrics(self, request: Request) -> Response:
        return Response(
            self.runtime.metrics.exposition(), mimetype="text/plain; version=0.0.4; charset=utf-8"
        )
