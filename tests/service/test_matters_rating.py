"""一事一评 across services: an application completed while rating is down (so its hint is
lost) still reaches rating when rating comes back, and again across a rating restart —
the invitation travels on matters' durable feed, not on the event."""

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from nameko.containers import ServiceContainer

from services.matters.service import MattersService
from services.rating.service import RatingService
from tests.conftest import amqp_uri, operator_rpc, site_config
from tests.service.helpers import SEED, wait_for

pytestmark = pytest.mark.service

RELEASE = "0700018004421302001"  # 抵押权注销登记, 即办件: completed on acceptance
APPLICANT = {
    "kind": "organisation",
    "name": "随州市曾都区示范农村商业银行",
    "id_number": "91421302MA4C1234XK",
}


def complete_at_window(cluster: Any, window: str) -> dict[str, Any]:
    materials = [
        {"name": m["name"]}
        for m in cluster.matters.get_matter(RELEASE)["materials"]
        if m["required"]
    ]
    done: dict[str, Any] = cluster.matters.submit_application(
        {
            "matter_code": RELEASE,
            "applicant": APPLICANT,
            "channel": "window",
            "materials": materials,
            "window": window,
            "staff_id": "S-101",
        }
    )
    assert done["state"] == "completed"
    return done


def test_invitation_reaches_rating_after_rating_was_down_and_restarted(
    vhost_factory: Callable[[str], str], tmp_path: Path
) -> None:
    vhost = vhost_factory("yishiyiping")
    config = site_config(vhost, tmp_path, "421302", "county", MATTERS={"seed_catalog": SEED})
    matters = ServiceContainer(MattersService, config)
    matters.start()
    rating = None
    try:
        with operator_rpc(amqp_uri(vhost), timeout=20) as cluster:
            first = complete_at_window(cluster, "B07")  # rating is not running: hint lost
            rating = ServiceContainer(RatingService, config)
            rating.start()
            pending = wait_for(lambda: cluster.rating.pending_for_window("B07"), timeout=20)
            assert pending["service_ref"] == {"kind": "application", "id": first["id"]}
            assert pending["matter_code"] == RELEASE

            rating.stop()  # rating restarts; meanwhile another application is completed
            second = complete_at_window(cluster, "B08")
            rating = ServiceContainer(RatingService, config)
            rating.start()
            pending = wait_for(lambda: cluster.rating.pending_for_window("B08"), timeout=20)
            assert pending["service_ref"]["id"] == second["id"]
            # the first one was kept across the restart, and not duplicated
            assert cluster.rating.pending_for_window("B07")["id"] == f"application:{first['id']}"
    finally:
        if rating is not None:
            rating.stop()
        matters.stop()
