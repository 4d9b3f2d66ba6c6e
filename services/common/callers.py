"""Calls that carry a signed identity (docs/security.md): the site's services calling each
other, and ``hallctl`` (or a test or benchmark acting as the operator) calling a service.

Nameko copies a worker's context data into each outgoing call's headers. Here the identity
header is replaced with a token signed afresh for every call, so a long-running worker
(sync's tick) never sends an expired token, and a service never passes on the identity of
whoever called it: its own calls go out as itself.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from nameko.rpc import MethodProxy, RpcProxy, ServiceProxy
from nameko.standalone.rpc import ClusterRpcProxy

from services.common.identity import IDENTITY_KEY, KeyRing, Kind, Principal, read_keys, sign
from services.common.runtime import SiteRuntime

OPERATOR = "hallctl"


class SignedContext(dict[str, Any]):
    """Context data for a standalone proxy: Nameko copies it for every call, and each copy
    holds a freshly signed token for ``principal``."""

    def __init__(self, principal: Principal, ring: KeyRing) -> None:
        super().__init__()
        self.principal = principal
        self.ring = ring

    def copy(self) -> dict[str, Any]:
        return {**self, IDENTITY_KEY: sign(self.principal, self.ring)}


def operator(ring: KeyRing, site: str = "") -> SignedContext:
    """The operator's context: ``hallctl`` on the site's own machine (it can read the key)."""
    return SignedContext(Principal(Kind.OPERATOR, OPERATOR, site), ring)


def operator_proxy(config: Mapping[str, Any], timeout: float | None = None) -> ClusterRpcProxy:
    """A ``ClusterRpcProxy`` on ``config["AMQP_URI"]`` acting as the operator, signing with
    the key file ``config["ACCESS_KEY_FILE"]``."""
    ring = read_keys(Path(str(config["ACCESS_KEY_FILE"])))
    return ClusterRpcProxy(
        {"AMQP_URI": config["AMQP_URI"]}, context_data=operator(ring), timeout=timeout
    )


Token = Callable[[], str]  # a fresh token, for each call


class SignedMethodProxy(MethodProxy):  # type: ignore[misc]
    """One call from inside a service, carrying the token ``token()`` gives: the service's
    own (``service_token``), or the gateway's for the person or device it authenticated."""

    def __init__(self, token: Token, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.token = token

    def get_message_headers(self, worker_ctx: Any) -> dict[str, Any]:
        headers: dict[str, Any] = super().get_message_headers(worker_ctx)
        headers[self._get_header_name(IDENTITY_KEY)] = self.token()
        return headers


def service_token(runtime: SiteRuntime) -> Token:
    """Tokens for the container's own service at its site."""

    def token() -> str:
        context = runtime.ready()
        me = Principal(Kind.SERVICE, context.service, context.config.identity.code)
        return sign(me, context.config.access.ring())

    return token


class SignedServiceProxy(ServiceProxy):  # type: ignore[misc]
    def __init__(self, token: Token, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.token = token

    def __getattr__(self, name: str) -> SignedMethodProxy:
        return SignedMethodProxy(
            self.token,
            self.worker_ctx,
            self.service_name,
            name,
            self.reply_listener,
            **self.options,
        )


class SignedRpcProxy(RpcProxy):  # type: ignore[misc]
    """``RpcProxy`` whose calls are signed as the calling service."""

    site_runtime = SiteRuntime()

    def get_dependency(self, worker_ctx: Any) -> SignedServiceProxy:
        return SignedServiceProxy(
            service_token(self.site_runtime),
            worker_ctx,
            self.target_service,
            self.rpc_reply_listener,
            **self.options,
        )
