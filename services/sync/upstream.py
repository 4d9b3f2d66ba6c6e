"""RPC to the upstream site's services over the upstream broker (``UPSTREAM_AMQP_URI``)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import Any

from nameko.extensions import DependencyProvider
from nameko.standalone.rpc import ClusterRpcProxy

from services.common.config import mask_uri
from services.common.errors import Conflict, UpstreamUnavailable
from services.common.runtime import SiteRuntime


class UpstreamRpc(DependencyProvider):  # type: ignore[misc]
    """Gives workers ``proxy()``: a cluster proxy on the upstream broker, with a timeout."""

    site_runtime = SiteRuntime()

    def __init__(self, timeout: float = 10.0) -> None:
        self.timeout = timeout

    def get_dependency(self, worker_ctx: Any) -> UpstreamRpc:
        return self

    def open(self, timeout: float | None = None) -> tuple[ClusterRpcProxy, Any]:
        """A started cluster proxy on the upstream broker and its handle; the caller stops
        the first when done (``close``). Calls time out after ``timeout`` seconds (default:
        the one given at construction)."""
        config = self.site_runtime.ready().config
        if config.upstream_amqp_uri is None:
            raise Conflict("本站点未配置上级站点", {"SITE.upstream": ["未配置"]})
        try:
            cluster = ClusterRpcProxy(
                {"AMQP_URI": config.upstream_amqp_uri}, timeout=timeout or self.timeout
            )
            proxy = cluster.start()
        except (OSError, ConnectionError) as exc:
            raise UpstreamUnavailable(
                f"无法连接上级站点消息代理 {mask_uri(config.upstream_amqp_uri)}：{exc}"
            ) from None
        return cluster, proxy

    @staticmethod
    def close(cluster: ClusterRpcProxy) -> None:
        with suppress(Exception):  # a broken link must not hide the error that broke it
            cluster.stop()

    @contextmanager
    def proxy(self, timeout: float | None = None) -> Iterator[Any]:
        """``open`` for the length of a ``with`` block."""
        cluster, proxy = self.open(timeout)
        try:
            yield proxy
        finally:
            self.close(cluster)
