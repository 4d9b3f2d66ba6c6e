"""The matters boundary over real RPC and HTTP (issue 13, item 4): the arguments the issue
names, and their kind, come back as ``InvalidInput`` naming the argument (never an internal
error), change nothing, and ``hall_entrypoint_errors_total`` only ever counts typed errors."""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import requests
from nameko.standalone.rpc import ServiceRpcProxy

from services.common.errors import InvalidInput
from services.matters.service import MattersService
from tests.conftest import amqp_uri, free_port, operator_context, site_config
from tests.service.helpers import SEED

pytestmark = pytest.mark.service

Start = Callable[[type, dict[str, object]], Any]
VhostFactory = Callable[[str], str]

TRANSFER = "0700018002421302001"
OPERATOR = {"$ne": None}
TYPED = {"InvalidInput", "NotFound", "Conflict", "Forbidden", "ScheduleMissing"}

CASES: list[tuple[str, Callable[[Any], Any], str]] = [
    ("set_local_availability([]) (was: TypeError)",
     lambda m: m.set_local_availability([]), "availability"),
    ("set_local_availability of a list",
     lambda m: m.set_local_availability([], "offered"), "code"),
    ("retire_matter of an operator object",
     lambda m: m.retire_matter(OPERATOR, "合并事项"), "code"),
    ("catalog_changes(since=10**30) (was: OverflowError)",
     lambda m: m.catalog_changes(since=10**30), "since"),
    ("publish_matter of an operator object (was: internal error)",
     lambda m: m.publish_matter(OPERATOR), "code"),
    ("get_matter of a lone surrogate (was: internal error)",
     lambda m: m.get_matter("0700\ud800"), "code"),
    ("get_matter version as text (was: accepted)",
     lambda m: m.get_matter(TRANSFER, "1"), "version"),
    ("get_application of a lone surrogate (was: internal error)",
     lambda m: m.get_application("421302-\ud800"), "application_id"),
    ("start_review of an operator object",
     lambda m: m.start_review(OPERATOR), "application_id"),
    ("search_matters limit NaN", lambda m: m.search_matters(limit=math.nan), "limit"),
    ("search_matters online as text", lambda m: m.search_matters(online="false"), "online"),
    ("list_applications of a list (was: accepted)",
     lambda m: m.list_applications([]), "filters"),
    ("apply_catalog version 2^63 at a source: refused before the source check",
     lambda m: m.apply_catalog([{"id": "x", "version": 2**63}]), "docs[0].version"),
]  # fmt: skip


def test_refusals_over_rpc_and_http_are_typed_and_change_nothing(
    start: Start, vhost_factory: VhostFactory, tmp_path: Path
) -> None:
    vhost, port = vhost_factory("matters-boundary"), free_port()
    section = {"seed_catalog": SEED, "sweep_interval_seconds": 60}
    start(MattersService, site_config(vhost, tmp_path, "421302", "county", port=port,
                                      MATTERS=section))  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    with ServiceRpcProxy(
        "matters", {"AMQP_URI": amqp_uri(vhost)}, timeout=15, context_data=operator_context()
    ) as matters:
        before = matters.catalog_changes(0, 5000)
        for name, call, field in CASES:
            with pytest.raises(InvalidInput) as caught:
                call(matters)
            assert field in caught.value.fields, (name, caught.value.fields)
        after = matters.catalog_changes(0, 5000)
        assert after["high_water"] == before["high_water"]
        assert matters.get_matter(TRANSFER)["status"] == "published"
        assert matters.list_applications()["count"] == 0
    for path, params, field in (
        ("/matters", {"limit": "²"}, "limit"),
        ("/matters", {"offset": "9" * 5000}, "offset"),
        ("/matters", {"online": "maybe"}, "online"),
    ):
        answer = requests.get(f"{base}{path}", params=params, timeout=5)
        assert answer.status_code == 400, (path, params, answer.text)
        assert field in answer.json()["fields"]
    exposition = requests.get(f"{base}/metrics", timeout=5).text
    errors = set(re.findall(r'hall_entrypoint_errors_total\{[^}]*error="(\w+)"', exposition))
    assert "InvalidInput" in errors
    assert errors <= TYPED, errors
