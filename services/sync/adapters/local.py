"""RPC to this site's own services, by a name known only at run time (from ``SYNC:``).

Nameko's ``RpcProxy`` is bound to one service name and waits for ever when the target's
queue exists but nothing consumes it; sync must not hang on a stopped local service, so
every call here has a deadline and fails as ``LocalUnavailable``.
"""

from __future__ import annotations

from typing import Any

import eventlet
from nameko.exceptions import RemoteError, UnknownService
from nameko.rpc import ReplyListener

from services.common.callers import SignedMethodProxy, service_token
from services.common.runtime import SiteRuntime
from services.sync import ports
from services.sync.ports import LocalUnavailable


class LocalCaller:
    """What one worker uses: ``call(service, method, *args)`` with a deadline."""

    def __init__(
        self, worker_ctx: Any, listener: ReplyListener, timeout: float, signer: SiteRuntime
    ) -> None:
        self.worker_ctx = worker_ctx
        self.token = service_token(signer)  # calls go out signed as sync (docs/security.md)
        self.listener = listener
        self.timeout = timeout
        self.unavailable: dict[str, LocalUnavailable] = {}

    def call(self, service: str, method: str, *args: Any) -> Any:
        """The result of ``service.method(*args)``; ``LocalUnavailable`` when the service is
        not running or does not answer in time. Within one worker, a service that did not
        answer is not asked again (one stopped service must not stall a whole tick)."""
        if service in self.unavailable:
            raise self.unavailable[service]
        proxy = SignedMethodProxy(self.token, self.worker_ctx, service, method, self.listener)
        try:
            reply = proxy.call_async(*args)
        except UnknownService:
            raise self._down(service, f"本站点的 {service} 服务未运行") from None
        try:
            with eventlet.Timeout(self.timeout):
                return reply.result()
        except eventlet.Timeout:
            raise self._down(
                service, f"本站点的 {service} 服务在 {self.timeout:g} 秒内没有应答（{method}）"
            ) from None
        except RemoteError as exc:
            raise ports.RemoteError(exc.exc_type, str(exc)) from None

    def _down(self, service: str, message: str) -> LocalUnavailable:
        self.unavailable[service] = LocalUnavailable(message)
        return self.unavailable[service]
