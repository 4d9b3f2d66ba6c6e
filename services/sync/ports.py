"""What the sync use cases need from the world, framework-free: RPC to this site's own
services (``Local``), a session with the upstream's sync (``UpstreamSession``), and the
concurrency primitives (a lock, ``spawn``, a monotonic clock). ``services/sync/adapters``
implements the RPC ports over Nameko and ``provider.py`` hands in eventlet's primitives;
the errors below are what those adapters raise instead of the framework's own."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any, Protocol

from services.common.errors import Conflict, HallError


class LocalUnavailable(HallError):
    """A service of this site did not answer (not running, or too slow). Never crosses an
    RPC: the upstream end turns it into ``UpstreamUnavailable``."""

    code = "local_unavailable"
    http_status = 503


class LinkFailure(Exception):
    """The upstream link failed before an answer came back; ``reason`` is a metrics label
    (``timeout``, ``unknown_service``, ``unreachable``)."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


class MethodMissing(Exception):
    """The upstream's sync has no such RPC (an older version)."""


class RemoteError(Exception):
    """A service answered with an error of a type not shared between services (e.g. its
    own ``ValueError``): ``exc_type`` names it, the text is the framework's."""

    def __init__(self, exc_type: str, text: str) -> None:
        super().__init__(text)
        self.exc_type = exc_type


class Local(Protocol):
    def call(self, service: str, method: str, *args: Any) -> Any:
        """``service.method(*args)`` with a deadline; ``LocalUnavailable`` when the service
        is not running or does not answer in time."""


class UpstreamSession(Protocol):
    """The upstream's ``sync`` RPCs, each with a deadline; failures of the link come back as
    ``LinkFailure``, typed refusals (``Forbidden``…) as themselves."""

    def ingest(self, batch: dict[str, Any]) -> dict[str, Any]: ...
    def verify_key(self, probe: dict[str, Any]) -> dict[str, Any]: ...
    def catalog_changes(self, since: int, limit: int) -> dict[str, Any]: ...
    def proxy_outcomes(self, request: dict[str, Any]) -> dict[str, Any]: ...
    def reconcile_counts(self, request: dict[str, Any]) -> dict[str, Any]: ...
    def site_info(self) -> dict[str, Any]: ...
    def close(self) -> None: ...


class Upstream(Protocol):
    def open(self, timeout: float) -> UpstreamSession:
        """A session on the upstream broker; ``UpstreamUnavailable`` when it cannot be
        reached, ``Conflict`` when this site has no upstream."""

    def session(self, timeout: float) -> AbstractContextManager[UpstreamSession]:
        """``open`` for the length of a ``with`` block."""


class NoUpstream:
    """The upstream of a site at the top of the network (and of tests that need none)."""

    def open(self, timeout: float) -> UpstreamSession:
        raise Conflict("本站点未配置上级站点", {"SITE.upstream": ["未配置"]})

    @contextmanager
    def session(self, timeout: float) -> Iterator[UpstreamSession]:
        yield self.open(timeout)


class PlatformRefusal(Exception):
    """The 好差评 platform answered a request with a 4xx that is about its records (not
    about authentication or throttling, which are ``LinkFailure``s and retried): ``reply``
    is its body (per-record results, when it gives them), ``reason`` its words."""

    def __init__(self, status: int, reason: str, reply: Any) -> None:
        super().__init__(f"HTTP {status}: {reason}")
        self.status = status
        self.reason = reason
        self.reply = reply


class Platform(Protocol):
    def post(self, payload: dict[str, Any]) -> dict[str, Any]:
        """POST one batch, signed; the 2xx reply's body. ``LinkFailure`` for timeouts,
        connection errors, 5xx, 401/403/429 and unreadable replies; ``PlatformRefusal``
        for any other 4xx."""

    def close(self) -> None: ...


class Lock(Protocol):
    def acquire(self, blocking: bool = ...) -> bool: ...
    def release(self) -> None: ...
    def __enter__(self) -> Any: ...
    def __exit__(self, kind: Any, exc: Any, tb: Any) -> Any: ...


class Pending(Protocol):
    """A job started by ``spawn``: ``wait()`` for its result, ``kill()`` to drop it."""

    def wait(self) -> Any: ...
    def kill(self) -> Any: ...


Spawn = Callable[[Callable[[], Any]], Pending]


class _Done:
    def __init__(self, result: Any) -> None:
        self.result = result

    def wait(self) -> Any:
        return self.result

    def kill(self) -> None:
        return None


def run_now(job: Callable[[], Any]) -> Pending:
    """``spawn`` without concurrency: the job runs at once (tests, tools)."""
    return _Done(job())
