"""Broker reachability: checked at start (refuse to run) and by ``/health``."""

from __future__ import annotations

from kombu import Connection

from services.common.config import ConfigError, mask_uri


def broker_problem(uri: str, timeout: float = 3.0) -> str | None:
    """None when an AMQP connection to ``uri`` opens, else a one-line reason."""
    try:
        with Connection(uri, connect_timeout=timeout) as conn:
            conn.ensure_connection(max_retries=1, timeout=timeout)
    except Exception as exc:  # any failure means "not reachable"; the reason is reported
        return f"{type(exc).__name__}: {exc}".splitlines()[0]
    return None


def require_broker(uri: str, key: str = "AMQP_URI") -> None:
    problem = broker_problem(uri)
    if problem is not None:
        raise ConfigError.field(key, f"无法连接消息代理 {mask_uri(uri)}（{problem}）")
