import pytest


@pytest.fixture(autouse=True)
def _system_marker(request: pytest.FixtureRequest) -> None:
    request.node.add_marker(pytest.mark.system)
