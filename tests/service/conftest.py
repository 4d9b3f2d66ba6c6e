# Service tests run Nameko containers in this process, so eventlet must patch first.
# They run in their own pytest invocation (scripts/test.sh), never mixed with unit tests.
from __future__ import annotations

import eventlet

eventlet.monkey_patch()

import gc  # noqa: E402
import warnings  # noqa: E402
from collections.abc import Iterator, Mapping  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import TYPE_CHECKING, Any  # noqa: E402

import pytest  # noqa: E402

if TYPE_CHECKING:
    from tests.conftest import VhostFactory
    from tests.service.helpers import Start, ThreeTiers, ThreeTiersFactory


@pytest.fixture(autouse=True)
def _collect_what_the_test_left() -> Iterator[None]:
    """eventlet's WSGI server leaves the client sockets of finished board streams to the
    garbage collector. Collect them when their test ends, so that their ResourceWarning is
    not raised (warnings are errors here) inside the next test's unrelated code."""
    yield
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        gc.collect()


@pytest.fixture(autouse=True)
def _service_marker(request: pytest.FixtureRequest) -> None:
    request.node.add_marker(pytest.mark.service)


@pytest.fixture
def start() -> Iterator[Start]:
    """Start Nameko containers in this process; stop them after the test, the last started
    first (a child site stops before the parent it talks to)."""
    from nameko.containers import ServiceContainer

    containers: list[ServiceContainer] = []

    def run(cls: type, config: Mapping[str, Any]) -> ServiceContainer:
        container = ServiceContainer(cls, config)
        containers.append(container)
        container.start()
        return container

    yield run
    for container in reversed(containers):
        container.stop()


@pytest.fixture
def three_tiers(vhost_factory: VhostFactory, tmp_path: Path) -> Iterator[ThreeTiersFactory]:
    """Start a county → town → village network (tests/service/helpers.py: ``ThreeTiers``)
    with ``make(label, services, sync)``; every container is stopped after the test, also
    those of a network that failed halfway through starting."""
    from tests.service.helpers import ThreeTiers

    networks: list[ThreeTiers] = []

    def make(
        label: str, services: Mapping[type, Mapping[str, Any]], sync: Mapping[str, Any]
    ) -> ThreeTiers:
        network = ThreeTiers(vhost_factory, tmp_path, label)
        networks.append(network)
        network.start(services, sync)
        return network

    yield make
    for network in networks:
        network.stop()
