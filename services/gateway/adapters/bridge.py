"""The bridge (网关转发): one call to a service of this site, carrying a token signed for
the person or device the gateway authenticated, with a deadline."""

from __future__ import annotations

from typing import Any

import eventlet
from nameko.exceptions import UnknownService
from nameko.extensions import DependencyProvider
from nameko.rpc import ReplyListener

from services.common.callers import SignedMethodProxy
from services.common.errors import UpstreamUnavailable
from services.common.identity import Principal, sign
from services.common.runtime import SiteRuntime

BRIDGED = ("matters", "queue", "rating")  # never sync (the network's) nor gateway itself


def call(
    runtime: SiteRuntime,
    listener: ReplyListener,
    worker_ctx: Any,
    principal: Principal,
    target: tuple[str, str],
    arguments: tuple[list[Any], dict[str, Any]],
    timeout: float,
) -> Any:
    """``service.method(*args, **kwargs)`` as ``principal``; its typed error as raised by the
    service, or ``UpstreamUnavailable`` when it does not answer in time."""
    service, method = target
    ring = runtime.ready().config.access.ring()
    proxy = SignedMethodProxy(lambda: sign(principal, ring), worker_ctx, service, method, listener)
    try:
        reply = proxy.call_async(*arguments[0], **arguments[1])
    except UnknownService:
        raise UpstreamUnavailable(f"本站点的 {service} 服务未运行") from None
    try:
        with eventlet.Timeout(timeout):
            return reply.result()
    except eventlet.Timeout:
        raise UpstreamUnavailable(f"{service} 服务在 {timeout:g} 秒内没有应答") from None


class Bridge(DependencyProvider):  # type: ignore[misc]
    """Injects ``bridge(principal, (service, method), (args, kwargs))`` into each worker."""

    site_runtime = SiteRuntime()
    listener = ReplyListener()

    def __init__(self, timeout: float = 10.0) -> None:
        self.timeout = timeout

    def setup(self) -> None:
        section = self.site_runtime.ready().config.section
        self.timeout = float(section.get("bridge_timeout_seconds") or self.timeout)

    def get_dependency(self, worker_ctx: Any) -> Any:
        def bridge(
            principal: Principal,
            target: tuple[str, str],
            arguments: tuple[list[Any], dict[str, Any]],
        ) -> Any:
            return call(
                self.site_runtime,
                self.listener,
                worker_ctx,
                principal,
                target,
                arguments,
                self.timeout,
            )

        return bridge
