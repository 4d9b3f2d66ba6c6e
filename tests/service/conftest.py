# Service tests run Nameko containers in this process, so eventlet must patch first.
# They run in their own pytest invocation (scripts/test.sh), never mixed with unit tests.
import eventlet

eventlet.monkey_patch()

import pytest  # noqa: E402


@pytest.fixture(autouse=True)
def _service_marker(request):
    request.node.add_marker(pytest.mark.service)


@pytest.fixture
def start():
    """Start Nameko containers in this process; stop them after the test, in start order."""
    from nameko.containers import ServiceContainer

    containers = []

    def run(cls, config):
        container = ServiceContainer(cls, config)
        containers.append(container)
        container.start()
        return container

    yield run
    for container in containers:
        container.stop()


@pytest.fixture
def three_tiers(vhost_factory, tmp_path):
    """Start a county → town → village network (tests/service/helpers.py: ``ThreeTiers``)
    with ``make(label, services, sync)``; every container is stopped after the test, also
    those of a network that failed halfway through starting."""
    from tests.service.helpers import ThreeTiers

    networks = []

    def make(label, services, sync):
        network = ThreeTiers(vhost_factory, tmp_path, label)
        networks.append(network)
        network.start(services, sync)
        return network

    yield make
    for network in networks:
        network.stop()
