"""What every service class inherits: site info over RPC, ``/health`` and ``/metrics``,
and the HTTP entrypoint that maps typed errors to JSON (400/404/409/403)."""

from __future__ import annotations

import json
from typing import Any, cast

from nameko.web.handlers import HttpRequestHandler
from werkzeug.wrappers import Request, Response

from services.common.errors import HallError, NotFound, http_response
from services.common.feeds import read_feed
from services.common.rpc import rpc
from services.common.runtime import EntrypointMetrics, Runtime, SiteContext, one_line_startup_errors

one_line_startup_errors()

JSON_TYPE = "application/json; charset=utf-8"


class JsonHttp(HttpRequestHandler):  # type: ignore[misc]
    """HTTP entrypoint: dicts and lists become JSON, ``HallError`` becomes its status."""

    def response_from_result(self, result: Any) -> Response:
        if isinstance(result, dict | list):
            return json_response(result)
        return cast(Response, super().response_from_result(result))

    def response_from_exception(self, exc: BaseException) -> Response:
        if isinstance(exc, HallError):
            status, headers, body = http_response(exc)
            return Response(body, status=status, headers=headers)
        return cast(Response, super().response_from_exception(exc))


api = JsonHttp.decorator


def json_response(payload: Any, status: int = 200) -> Response:
    return Response(json.dumps(payload, ensure_ascii=False), status=status, mimetype=JSON_TYPE)


class SiteService:
    """Base of the four services; subclasses set ``name`` and add their entrypoints."""

    name = "site"
    # Store collections other services (and sync) may follow with the ``feed`` RPC. Only
    # what may leave the service goes in them: no names, no ID numbers, no phones.
    feeds: tuple[str, ...] = ()
    # Feeds this service accepts from other sites through ``apply_replicated`` (sync only).
    replicated_feeds: tuple[str, ...] = ()
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
        if name not in self.replicated_feeds:
            raise NotFound(f"本服务不接收 {name} 的复制数据", {"name": [name]})
        return {"applied": self.store_replicated(name, docs)}

    def store_replicated(self, name: str, docs: list[dict[str, Any]]) -> int:
        """Override to keep derived data (e.g. rollups) in step with replicated records."""
        return self.runtime.store.collection(name).upsert_versioned_many(docs)

    @api("GET", "/health")
    def health(self, request: Request) -> Response:
        healthy, checks = self.runtime.health()
        body = {
            "status": "ok" if healthy else "unavailable",
            **self.runtime.site_info(),
            "checks": checks,
        }
        return json_response(body, status=200 if healthy else 503)

    @api("GET", "/metrics")
    def metrics(self, request: Request) -> Response:
        return Response(
            self.runtime.metrics.exposition(), mimetype="text/plain; version=0.0.4; charset=utf-8"
        )
