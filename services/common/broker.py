"""Broker reachability: checked at start (refuse to run) and by ``/health``."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from contextlib import suppress
from typing import Any

from kombu import Connection

from services.common.config import ConfigError, mask_uri


def broker_problem(uri: str, timeout: float = 3.0) -> str | None:
    """None when an AMQP connection to ``uri`` opens, else a one-line reason."""
    try:
        with Connection(uri, connect_timeout=timeout) as conn:
            conn.ensure_connection(max_retries=1, timeout=timeout)
    except Exception as exc:  # noqa: BLE001  (any failure means "not reachable"; reported)
        return _reason(exc)
    return None


def require_broker(uri: str, key: str = "AMQP_URI") -> None:
    problem = broker_problem(uri)
    if problem is not None:
        raise ConfigError.field(key, f"无法连接消息代理 {mask_uri(uri)}（{problem}）")


class BrokerProbe:
    """The broker check behind ``/health``: one connection kept open and reused, and one
    answer per ``ttl`` seconds however often Prometheus, load balancers and people ask
    (a new AMQP connection per request costs the broker a login and a socket)."""

    def __init__(
        self,
        uri: str,
        timeout: float = 2.0,
        ttl: float = 1.0,
        connect: Callable[..., Any] = Connection,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.uri, self.timeout, self.ttl = uri, timeout, ttl
        self._connect, self._monotonic = connect, monotonic
        self._conn: Any = None
        self._answer: tuple[float, str | None] | None = None
        self._lock = threading.Lock()

    def problem(self) -> str | None:
        """None when the broker answers, else a one-line reason (cached for ``ttl``)."""
        with self._lock:
            now = self._monotonic()
            if self._answer is None or now - self._answer[0] >= self.ttl:
                self._answer = (now, self._probe())
            return self._answer[1]

    def _probe(self) -> str | None:
        try:
            if self._conn is None:
                self._conn = self._connect(self.uri, connect_timeout=self.timeout)
                self._conn.ensure_connection(max_retries=1, timeout=self.timeout)
            # A passive declare of a built-in exchange: one round trip the broker must answer.
            self._conn.default_channel.exchange_declare("amq.direct", "direct", passive=True)
        except Exception as exc:  # noqa: BLE001  (any failure means "not reachable"; reported)
            self.close()
            return _reason(exc)
        return None

    def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with suppress(Exception):  # a broken connection may fail to close; it is gone
                conn.release()


def _reason(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}".splitlines()[0]
