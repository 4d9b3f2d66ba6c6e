"""Pulling evaluation invitations from queue and matters over RPC (docs/architecture.md,
"Invitations"): a source that is not running or does not answer in time is counted and
retried on the next tick, never crashing the worker."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import eventlet
from nameko.exceptions import RpcTimeout, UnknownService

from services.rating.app import INVITATION_FEED, SOURCES, RatingApp

log = logging.getLogger(__name__)

FETCH_TIMEOUT_S = 5.0  # a source that does not answer is retried on the next tick


def pull(app: RatingApp, source: str, proxy: Any) -> int:
    """Follow ``source``'s invitation feed through its RPC ``proxy``; how many were added."""

    def fetch(since: int, limit: int) -> dict[str, Any]:
        with eventlet.Timeout(FETCH_TIMEOUT_S, RpcTimeout(f"{source} 未在规定时间内应答")):
            return dict(proxy.feed(INVITATION_FEED, since, limit))

    reason = None
    try:
        return app.pull_invitations(source, fetch)
    except UnknownService:
        reason = "unknown_service"
    except RpcTimeout:
        reason = "timeout"
    except Exception as exc:  # noqa: BLE001  (never crash the worker; retried next tick)
        reason = type(exc).__name__
        log.warning("rating: pulling invitations from %s failed: %s", source, exc)
    metrics = app.metrics
    metrics.pull_errors.labels(**metrics.labels(source=source, reason=reason)).inc()
    return 0


def tick(app: RatingApp, proxies: Mapping[str, Any]) -> None:
    """The timer's work: pull every source, then the sweep when it is due."""
    for source in SOURCES:
        pull(app, source, proxies[source])
    app.sweep_if_due()
