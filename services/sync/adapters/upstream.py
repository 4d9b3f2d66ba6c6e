"""RPC to the upstream site's ``sync`` over the upstream broker (``UPSTREAM_AMQP_URI``).

A session keeps one cluster proxy open between exchanges (one connection per site, not
one per push). Each call has a deadline, and the framework's failures come back as the
framework-free errors of ``services.sync.ports``.

The proxy is Nameko's standalone ``ClusterRpcProxy`` with one change, its reply queue
(``services/common/uplink.py``): named ``rpc.reply-uplink-<code>-<uuid>`` and bound with the
key ``uplink-<code>-<uuid>`` instead of a bare uuid, and the ``nameko-rpc`` exchange declared
passively. The parent's broker lets a child's user do exactly that and nothing more
(``services/hallctl/broker.py``).
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import Any

import eventlet
from amqp.exceptions import AccessRefused, ChannelError
from amqp.exceptions import NotFound as AmqpNotFound
from kombu import Exchange, Queue
from nameko.exceptions import MethodNotFound, RemoteError, RpcTimeout, UnknownService
from nameko.rpc import RPC_REPLY_QUEUE_TTL, get_rpc_exchange
from nameko.standalone.rpc import ClusterRpcProxy, SingleThreadedReplyListener

from services.common import uplink
from services.common.config import mask_uri
from services.common.errors import Conflict, HallError, UpstreamUnavailable
from services.sync import ports
from services.sync.ports import LinkFailure, MethodMissing


def translated(exc: BaseException, method: str = "") -> BaseException:
    """The framework-free error the use cases see for ``exc`` (``exc`` itself when it is
    one already, or when it has no better name)."""
    if isinstance(exc, HallError):
        return exc
    if isinstance(exc, UnknownService):
        return LinkFailure("unknown_service", f"{exc.args[0] if exc.args else ''} 服务未运行")
    if isinstance(exc, RpcTimeout | eventlet.Timeout | socket.timeout):
        return LinkFailure("timeout", "上级站点在规定时间内没有应答")
    if isinstance(exc, MethodNotFound):
        return MethodMissing(method)
    if isinstance(exc, RemoteError):
        if exc.exc_type == "MethodNotFound":
            return MethodMissing(method)
        return ports.RemoteError(exc.exc_type, str(exc))
    return exc


class UplinkReplyListener(SingleThreadedReplyListener):  # type: ignore[misc]
    """Nameko's standalone reply listener with the child's own reply queue and key."""

    def __init__(self, timeout: float | None = None, code: str = "") -> None:
        super().__init__(timeout=timeout)
        self.code = code

    def setup(self) -> None:
        self.routing_key = uplink.reply_key(self.code)
        rpc = get_rpc_exchange(self.container.config)
        exchange = Exchange(rpc.name, type=rpc.type, durable=rpc.durable, passive=True)
        self.queue = Queue(
            uplink.reply_queue(self.routing_key),
            exchange=exchange,
            routing_key=self.routing_key,
            queue_arguments={"x-expires": RPC_REPLY_QUEUE_TTL},
        )
        self.queue_consumer.register_provider(self)


class UplinkRpcProxy(ClusterRpcProxy):  # type: ignore[misc]
    """``ClusterRpcProxy`` whose replies come back on ``code``'s own reply queue."""

    def __init__(self, uri: str, code: str, timeout: float) -> None:
        def listener(timeout: float | None = None) -> UplinkReplyListener:
            return UplinkReplyListener(timeout=timeout, code=code)

        super().__init__({"AMQP_URI": uri}, timeout=timeout, reply_listener_cls=listener)


class ClusterSession:
    """A started cluster proxy on the upstream broker: ``ports.UpstreamSession``."""

    def __init__(self, cluster: ClusterRpcProxy, proxy: Any, deadline: float | None) -> None:
        self.cluster = cluster
        self.proxy = proxy
        self.deadline = deadline

    def _call(self, method: str, *args: Any, deadline: float | None = None) -> Any:
        try:
            with eventlet.Timeout(deadline):
                return getattr(self.proxy.sync, method)(*args)
        except (Exception, eventlet.Timeout) as exc:
            found = translated(exc, method)
            if found is exc:
                raise
            raise found from None

    def ingest(self, batch: dict[str, Any]) -> dict[str, Any]:
        reply: dict[str, Any] = self._call("ingest", batch, deadline=self.deadline)
        return reply

    def verify_key(self, probe: dict[str, Any]) -> dict[str, Any]:
        reply: dict[str, Any] = self._call("verify_key", probe, deadline=self.deadline)
        return reply

    def catalog_changes(self, since: int, limit: int) -> dict[str, Any]:
        reply: dict[str, Any] = self._call("catalog_changes", since, limit, deadline=self.deadline)
        return reply

    def proxy_outcomes(self, request: dict[str, Any]) -> dict[str, Any]:
        reply: dict[str, Any] = self._call("proxy_outcomes", request, deadline=self.deadline)
        return reply

    def reconcile_counts(self, request: dict[str, Any]) -> dict[str, Any]:
        reply: dict[str, Any] = self._call("reconcile_counts", request, deadline=self.deadline)
        return reply

    def site_info(self) -> dict[str, Any]:
        """Bounded by the proxy's own timeout only (``sync.ping_upstream``)."""
        reply: dict[str, Any] = self._call("site_info")
        return reply

    def close(self) -> None:
        with suppress(Exception):  # a broken link must not hide the error that broke it
            self.cluster.stop()


class UpstreamLink:
    """Opens sessions on the upstream broker for the site ``code``: ``ports.Upstream``.
    Calls of a session wait at most ``deadline`` seconds (None: the proxy's timeout only)."""

    def __init__(self, uri: str | None, code: str, deadline: float | None = None) -> None:
        self.uri = uri
        self.code = code
        self.deadline = deadline

    def open(self, timeout: float) -> ClusterSession:
        if self.uri is None:
            raise Conflict("本站点未配置上级站点", {"SITE.upstream": ["未配置"]})
        where = mask_uri(self.uri)
        try:
            cluster = UplinkRpcProxy(self.uri, self.code, timeout)
            proxy = cluster.start()
        except (OSError, ConnectionError) as exc:
            raise UpstreamUnavailable(f"无法连接上级站点消息代理 {where}：{exc}") from None
        except AmqpNotFound:
            raise UpstreamUnavailable(
                f"上级站点消息代理 {where} 上还没有 nameko-rpc 交换机：上级站点的服务尚未启动过"
            ) from None
        except AccessRefused as exc:
            raise UpstreamUnavailable(
                f"上级站点消息代理 {where} 拒绝了本站点的应答队列（{exc}）：请在上级"
                f"重新导入 child-{self.code}.json（hallctl definitions）"
            ) from None
        except ChannelError as exc:
            raise UpstreamUnavailable(f"上级站点消息代理 {where} 出错：{exc}") from None
        return ClusterSession(cluster, proxy, self.deadline)

    @contextmanager
    def session(self, timeout: float) -> Iterator[ClusterSession]:
        """``open`` for the length of a ``with`` block."""
        session = self.open(timeout)
        try:
            yield session
        finally:
            session.close()
