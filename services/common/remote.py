"""Typed remote errors: every ``HallError`` subclass registered with Nameko, so a caller
gets ``InvalidInput``, ``NotFound``, … back from an RPC instead of a generic
``RemoteError``. Imported by every service (through ``services.common.service``) and by
every RPC client (``hallctl``, tests, benchmarks) before its first call."""

from __future__ import annotations

from nameko.exceptions import deserialize_to_instance

from services.common import (
    calendar,  # noqa: F401  (defines ScheduleMissing)
    identity,  # noqa: F401  (defines Unauthenticated)
)
from services.common.errors import HallError


def register_errors() -> None:
    """Register ``HallError`` and each of its subclasses (idempotent)."""
    pending: list[type[HallError]] = [HallError]
    while pending:
        kind = pending.pop()
        deserialize_to_instance(kind)
        pending.extend(kind.__subclasses__())


register_errors()
