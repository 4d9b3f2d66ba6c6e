"""Site provisioning on the real broker copes with any generated password.

``secrets.token_urlsafe`` may start a password with "-", which rabbitmqctl once took for an
option: provisioning then failed only now and then (it broke CI once).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from urllib.parse import quote

import pytest
from kombu import Connection

from services.hallctl.broker import ensure_site
from tests.conftest import rabbitmqctl


def _connects(vhost: str, user: str, password: str) -> bool:
    user, password, vhost = (quote(part, safe="") for part in (user, password, vhost))
    uri = f"amqp://{user}:{password}@127.0.0.1:5672/{vhost}"
    with Connection(uri, connect_timeout=5) as conn:
        try:
            conn.ensure_connection(max_retries=1)
        except Exception:  # noqa: BLE001  (any refusal counts as "cannot connect")
            return False
        return True


@pytest.fixture
def site_names() -> Iterator[tuple[str, str]]:
    """A fresh vhost and user name, both deleted after the test."""
    tag = uuid.uuid4().hex[:8]
    vhost, user = f"test-prov-{tag}", f"test-prov-{tag}-user"
    yield vhost, user
    rabbitmqctl("delete_vhost", vhost)
    rabbitmqctl("delete_user", user)


def test_passwords_starting_with_dash_are_set_and_changed(site_names: tuple[str, str]) -> None:
    vhost, user = site_names
    ensure_site(vhost, user, "-first-Pw_1", upstream_vhost=None)
    assert _connects(vhost, user, "-first-Pw_1")

    ensure_site(vhost, user, "--second", upstream_vhost=None)
    assert _connects(vhost, user, "--second")
    assert not _connects(vhost, user, "-first-Pw_1")
