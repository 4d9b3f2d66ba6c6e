"""Helpers shared by the service tests: the seeded catalog, valid resident ids, polling, and
a county → town → village network of real containers, each site on its own vhost and store
with a real sync service beside the services under test."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import eventlet
from nameko.containers import ServiceContainer

from services.common.privacy import resident_id_check
from services.sync.service import SyncService
from tests.conftest import VhostFactory, amqp_uri, free_port, operator_rpc, site_config

T = TypeVar("T")
# The ``start`` fixture (tests/service/conftest.py): ``start(cls, config)`` starts a Nameko
# container in this process (stopped after the test) and returns it.
Start = Callable[[type, Mapping[str, Any]], ServiceContainer]

SEED = str(Path(__file__).parents[2] / "services" / "matters" / "seed" / "catalog.yaml")

COUNTY, TOWN, VILLAGE = "421302", "421302101", "421302101201"
TOWN_KEY, VILLAGE_KEY = "t" * 32, "v" * 32
# code, tier, upstream, and the sync links of each site (the keys its children sign with)
TIERS = (
    (COUNTY, "county", None, {"children": {TOWN: [TOWN_KEY]}}),
    (TOWN, "town", COUNTY, {"key": TOWN_KEY, "children": {VILLAGE: [VILLAGE_KEY]}}),
    (VILLAGE, "village", TOWN, {"key": VILLAGE_KEY}),
)


def resident_id(seventeen: str) -> str:
    return seventeen + resident_id_check(seventeen)


def wait_for(predicate: Callable[[], T | None], timeout: float = 10.0) -> T:
    """Poll ``predicate`` until it returns something truthy; that value."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)  # eventlet-patched: yields to the containers
    raise AssertionError("condition not met in time")


class ThreeTiers:
    """County, town and village, each running ``services`` (class → extra config sections)
    and a real sync service whose section is ``sync`` plus that site's links."""

    def __init__(self, vhost_factory: VhostFactory, data: Path, label: str) -> None:
        self.vhosts = {code: vhost_factory(f"{label}-{code}") for code, *_ in TIERS}
        self.data = data
        self.containers: list[ServiceContainer] = []

    def start(self, services: Mapping[type, Mapping[str, Any]], sync: Mapping[str, Any]) -> None:
        for code, tier, upstream, links in TIERS:
            up_vhost = self.vhosts[upstream] if upstream else None
            for cls, sections in {**services, SyncService: {"SYNC": {**sync, **links}}}.items():
                config = site_config(
                    self.vhosts[code],
                    self.data,
                    code,
                    tier,
                    upstream,
                    up_vhost,
                    port=free_port(),
                    **sections,
                )
                container = ServiceContainer(cls, config)
                container.start()
                self.containers.append(container)

    def stop(self) -> None:
        """All at once: each container takes a second or two to wind down its consumers."""
        for thread in [eventlet.spawn(c.stop) for c in self.containers]:
            thread.wait()

    @contextmanager
    def rpc(self, code: str) -> Iterator[Any]:
        with operator_rpc(amqp_uri(self.vhosts[code]), timeout=30) as proxy:
            yield proxy

    def push(self, *codes: str) -> None:
        """``sync.push_now`` at each site in turn (a push also pulls the catalog down)."""
        for code in codes:
            with self.rpc(code) as site:
                site.sync.push_now()


# The ``three_tiers`` fixture (tests/service/conftest.py): ``make(label, services, sync)``.
ThreeTiersFactory = Callable[[str, Mapping[type, Mapping[str, Any]], Mapping[str, Any]], ThreeTiers]
