"""A stand-in for the upstream site's sync in SyncApp unit tests: the session protocol
(``open``, ``session``, ``close``, ``site_info``), and every call a test does not expect
failing it. A test subclasses it and serves the calls it is about."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Self


class UpstreamDouble:
    site_code = "421302101"

    def ingest(self, batch: dict[str, Any]) -> dict[str, Any]:
        raise AssertionError("this test pushes nothing")

    def verify_key(self, probe: dict[str, Any]) -> dict[str, Any]:
        raise AssertionError("this test checks no key")

    def catalog_changes(self, since: int, limit: int) -> dict[str, Any]:
        raise AssertionError("this test pulls no catalog")

    def proxy_outcomes(self, request: dict[str, Any]) -> dict[str, Any]:
        """No 代办 outcome waits for this subtree (the pull runs at every town and village)."""
        since = int(request["since"])
        return {"items": [], "last_seq": since, "high_water": since, "more": False}

    def reconcile_counts(self, request: dict[str, Any]) -> dict[str, Any]:
        raise AssertionError("no reconciliation is due in this test")

    def site_info(self) -> dict[str, Any]:
        return {"site_code": self.site_code}

    def close(self) -> None:
        return None

    def open(self, timeout: float) -> Self:
        return self

    @contextmanager
    def session(self, timeout: float) -> Iterator[Self]:
        yield self
