"""What every sync use case shares: the attributes ``SyncApp`` sets, the container-scoped
state of the exchanges, and how a failure is named (docs/architecture.md, "Replication")."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from services.common.clock import Clock, iso
from services.common.errors import (
    Conflict,
    Forbidden,
    HallError,
    InvalidInput,
    UpstreamUnavailable,
)
from services.common.runtime import SiteContext
from services.sync.domain import FeedRef, Task
from services.sync.metrics import SyncMetrics
from services.sync.ports import (
    LinkFailure,
    Local,
    LocalUnavailable,
    Lock,
    Platform,
    Spawn,
    Upstream,
    UpstreamSession,
)
from services.sync.settings import SyncSettings
from services.sync.store import SyncRepository

log = logging.getLogger("services.sync")

UP, DOWN, RECONCILE = "up", "down", "reconcile"
# 代办 outcomes pulled down (usecases/catalog.py): the feed, and the exchange's name, which
# is also its checkpoint's
OUTCOMES_FEED = "matters.proxy_outcomes"
PROXY_DOWN = f"{DOWN}:{OUTCOMES_FEED}"
# The key check with the upstream (``sync.verify_key``): its own exchange, so a wrong key
# shows (metrics ``direction="key"``, ``status()["key"]``) even when nothing waits to be sent.
KEY = "key"
STATUS = "status"
RETENTION = "retention"
# The platform connector (usecases/platform.py): its task, checkpoint and parked feed, and
# where the records its coding cannot express are kept.
PLATFORM = "platform"
PLATFORM_PARKED = f"{PLATFORM}:rating.evaluations"
PLATFORM_SKIPPED = f"{PLATFORM}-skipped:rating.evaluations"
# Its second source, rating's rectification cases (``SYNC.platform.cases``).
PLATFORM_CASES = f"{PLATFORM}:rating.cases"
PLATFORM_CASES_SKIPPED = f"{PLATFORM}-skipped:rating.cases"
# Errors after which the rest of an upstream session is pointless: the link is down.
LINK_DOWN = frozenset({"unreachable", "timeout", "unknown_service"})
# Failures after which the upstream connection is still sound (a typed answer came back).
SESSION_SURVIVES = frozenset({"forbidden", "conflict", "invalid_input", "not_found", "local"})
# What a service's apply_replicated raises for a record it will not take (a poison record).
RECORD_ERRORS = ("ValueError", "TypeError", "KeyError", "ValidationError")


@dataclass
class SyncState:
    """Container-scoped state of the exchanges, shared by every worker's view of the app."""

    lock: Lock
    tasks: dict[str, Task] = field(default_factory=dict)
    # The upstream session, kept open between ticks; used under ``lock`` only.
    session: UpstreamSession | None = None
    # Set when the container begins to stop: a running exchange ends at its next batch or
    # job boundary (the rest goes after the restart, from the checkpoints).
    stopping: bool = False
    # Who this process is in the store's leases (one active replicator per feed).
    holder: str = field(default_factory=lambda: uuid.uuid4().hex)
    leases: set[str] = field(default_factory=set)
    # The platform connector's records acknowledged beyond its checkpoints (per source:
    # idempotency key → feed position): a page retried after a partial reply sends only
    # the others.
    platform_acked: dict[str, dict[str, int]] = field(default_factory=dict)

    def close_session(self) -> None:
        session, self.session = self.session, None
        if session is not None:
            session.close()


class SyncBase:
    """The attributes the use case mixins share (set by ``SyncApp.__init__``)."""

    context: SiteContext
    settings: SyncSettings
    clock: Clock
    monotonic: Callable[[], float]
    spawn: Spawn
    repo: SyncRepository
    metrics: SyncMetrics
    state: SyncState
    local: Local
    upstream: Upstream
    platform: Platform | None
    code: str

    @property
    def catalog_key(self) -> str:
        return f"{DOWN}:{self.catalog_feed}"

    @property
    def catalog_feed(self) -> str:
        return f"{self.settings.catalog_service}.catalog"

    def _parked_feeds(self) -> list[str]:
        """The feeds whose records may be parked here: the upward feeds, the catalog when
        this site pulls it, the platform connector's refused and skipped records."""
        keys = [ref.key for ref in self.settings.upward]
        if self.settings.pull_catalog:
            keys.append(self.catalog_feed)
        if self.settings.pull_outcomes:
            keys.append(OUTCOMES_FEED)
        if self.settings.platform is not None:
            keys += [PLATFORM_PARKED, PLATFORM_SKIPPED]
            if self.settings.platform.cases:
                keys += [PLATFORM_CASES, PLATFORM_CASES_SKIPPED]
        return keys

    def _check_feed(self, feed: str | None) -> None:
        """``feed`` names one of the parked feeds (or is None: all of them)."""
        keys = self._parked_feeds()
        if feed is not None and feed not in keys:
            raise InvalidInput.field("feed", f"可用：{', '.join(keys)}")

    def _now_iso(self) -> str:
        return iso(self.clock())

    def _key(self) -> str:
        if not self.settings.key:
            raise Conflict("未配置本站点的同步密钥", {"SYNC.key": ["向上级推送数据需要密钥"]})
        return self.settings.key

    # Implemented by the mixins; declared here for the others (and for mypy).
    def status(self) -> dict[str, Any]:
        raise NotImplementedError

    def push_feed(self, up: UpstreamSession, ref: FeedRef) -> dict[str, Any]:
        raise NotImplementedError

    def pull_catalog(self, up: UpstreamSession) -> dict[str, Any]:
        raise NotImplementedError

    def pull_outcomes(self, up: UpstreamSession) -> dict[str, Any]:
        raise NotImplementedError

    def reconcile(self, up: UpstreamSession) -> dict[str, Any]:
        raise NotImplementedError

    def _retry_catalog(self) -> dict[str, int]:
        raise NotImplementedError

    def _retry_outcomes(self) -> dict[str, int]:
        raise NotImplementedError

    def _gauge_catalog_parked(self) -> int:
        raise NotImplementedError

    def _probe_key(self, up: UpstreamSession) -> dict[str, Any]:
        raise NotImplementedError

    def _gauge_backlog(self, ref: FeedRef, direction: str = UP) -> dict[str, Any]:
        raise NotImplementedError

    def _leased(
        self, name: str, job: Callable[[UpstreamSession], dict[str, Any]]
    ) -> Callable[[UpstreamSession], dict[str, Any]]:
        raise NotImplementedError

    def _platform_run(self, due: Callable[[str], bool]) -> dict[str, Any]:
        raise NotImplementedError

    def _retry_platform(self, feed: str | None = None) -> dict[str, Any]:
        raise NotImplementedError

    def platform_status(self) -> dict[str, Any]:
        raise NotImplementedError

    def _attempt(
        self, name: str, job: Callable[[UpstreamSession], dict[str, Any]], up: UpstreamSession
    ) -> dict[str, Any]:
        raise NotImplementedError

    def _failed(self, name: str, exc: BaseException) -> dict[str, Any]:
        raise NotImplementedError

    def _session(self) -> UpstreamSession:
        raise NotImplementedError

    def key_status(self) -> dict[str, Any]:
        raise NotImplementedError


def classify(exc: BaseException) -> tuple[str, str]:
    """(reason label, one-line Chinese message) of a failed exchange. Never a record's data."""
    if isinstance(exc, LinkFailure):
        return exc.reason, exc.message
    if isinstance(exc, TimeoutError):
        return "timeout", "上级站点在规定时间内没有应答"
    if isinstance(exc, Forbidden):
        return "forbidden", exc.message
    if isinstance(exc, LocalUnavailable):
        return "local", exc.message
    if isinstance(exc, UpstreamUnavailable):
        return "unreachable", exc.message
    if isinstance(exc, HallError):
        return exc.code, exc.message
    if (
        isinstance(exc, OSError | ConnectionError | RuntimeError)
        or "amqp" in type(exc).__module__
        or "kombu" in type(exc).__module__
    ):
        return "unreachable", f"与上级站点的连接中断：{type(exc).__name__}: {exc}".splitlines()[0]
    return "error", f"{type(exc).__name__}: {exc}".splitlines()[0]


def split(name: str) -> tuple[str, str]:
    """``up:rating.evaluations`` → (``up``, ``rating.evaluations``); ``key`` → (key, key)."""
    direction, _, feed = name.partition(":")
    return direction, feed or direction


def outcome(doc: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "last_success": doc.get("last_success"),
        "last_error": doc.get("last_error"),
        "last_error_reason": doc.get("last_error_reason"),
        "last_error_at": doc.get("last_error_at"),
    }
