from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser

from tests.system.screens_support import chromium


@pytest.fixture(autouse=True)
def _system_marker(request: pytest.FixtureRequest) -> None:
    request.node.add_marker(pytest.mark.system)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Debian's Chromium for one module's browser tests (never a downloaded browser)."""
    with chromium() as browser:
        yield browser
