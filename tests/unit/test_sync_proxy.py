"""代办 through sync, in one process without a broker: village, town and county each run
the real ``SyncApp`` over the real ``MattersApp`` of the site (its RPC replaced by direct
calls), and each child's upstream session calls its parent's ``SyncApp``. Requests go up
with ``sync.ingest`` (signed, masked), outcomes come down with ``sync.proxy_outcomes``
(signed, only the child's subtree); a cut link fails the exchange, which is tried again.
tests/system/test_sync_network.py runs the same over RabbitMQ with real processes."""

from __future__ import annotations

from typing import Any

import pytest

from services.common.clock import ManualClock
from services.common.errors import Forbidden
from services.common.feeds import read_feed
from services.common.store.port import OWNER_FIELDS
from services.matters.app import MattersApp
from services.matters.service import MattersService
from services.sync import domain
from services.sync.app import SyncApp
from services.sync.ports import LinkFailure
from services.sync.settings import SyncSettings
from tests.conftest import MakeContext
from tests.unit.sync_fakes import UpstreamDouble
from tests.unit.test_matters_app import SEED, Make, got, make, submit

pytestmark = pytest.mark.unit
__all__ = ["make"]  # the fixture, shared with test_matters_app

CHRONIC = "0700022003421302001"  # 门诊慢特病待遇认定: 承诺件, county; 代办 below
COUNTY, TOWN, VILLAGE, OTHER = "421302", "421302101", "421302101201", "421302101202"
REQUESTS = [{"service": "matters", "feed": "proxy_requests"}]


class LocalMatters:
    """The site's matters as sync calls it over RPC (``Local``), calling the app directly."""

    def __init__(self, app: MattersApp) -> None:
        self.app = app

    def call(self, service: str, method: str, *args: Any) -> Any:
        assert service == "matters", service
        store = self.app.context.store
        if method == "feed":
            return read_feed(store, MattersService.feeds, *args)
        if method == "apply_replicated":
            name, docs = args
            if name == "proxy_requests":
                return {"applied": self.app.receive_requests(docs)}
            collection = store.collection(name)
            return {"applied": collection.upsert_versioned_many(docs, owner=OWNER_FIELDS)}
        if method == "apply_proxy_outcomes":
            return {"applied": self.app.apply_outcomes(*args)[0]}
        raise AssertionError(f"unexpected matters.{method}")


class Link(UpstreamDouble):
    """The child's session with its parent's sync; ``cut`` fails every call."""

    def __init__(self, parent: SyncApp) -> None:
        self.parent = parent
        self.site_code = parent.code
        self.cut = False
        self.requests: list[dict[str, Any]] = []

    def _up(self) -> None:
        if self.cut:
            raise LinkFailure("unreachable", "与上级站点的连接中断")

    def ingest(self, batch: dict[str, Any]) -> dict[str, Any]:
        self._up()
        return self.parent.ingest(batch)

    def verify_key(self, probe: dict[str, Any]) -> dict[str, Any]:
        self._up()
        return self.parent.verify_key(probe)

    def proxy_outcomes(self, request: dict[str, Any]) -> dict[str, Any]:
        self._up()
        self.requests.append(request)
        return self.parent.proxy_outcomes(request)


class Tier:
    def __init__(self, matters: MattersApp, sync: SyncApp, link: Link | None) -> None:
        self.matters, self.sync, self.link = matters, sync, link


@pytest.fixture
def tiers(make: Make, make_context: MakeContext, clock: ManualClock) -> dict[str, Tier]:
    keys = {TOWN: "town-key-0123456789", VILLAGE: "village-key-0123456789"}
    county_m = make(COUNTY, "county", seed_catalog=SEED)
    town_m = make(TOWN, "town")
    village_m = make(VILLAGE, "village")
    town_m.apply_catalog(county_m.catalog_changes(0, 500)["items"])
    village_m.apply_catalog(town_m.catalog_changes(0, 500)["items"])
    built: dict[str, Tier] = {}
    for code, tier, upstream, children in (
        (COUNTY, "county", None, {TOWN: [keys[TOWN]]}),
        (TOWN, "town", COUNTY, {VILLAGE: [keys[VILLAGE]]}),
        (VILLAGE, "village", TOWN, {}),
    ):
        section: dict[str, Any] = {"upward": REQUESTS, "children": children, "batch_size": 2}
        section.update(pull_catalog=False, key=keys.get(code), backoff_base=0.01)
        context = make_context("sync", code=code, tier=tier, upstream=upstream)
        settings = SyncSettings.from_section(section, context.identity.tier, site_code=code)
        link = Link(built[upstream].sync) if upstream else None
        local = LocalMatters({COUNTY: county_m, TOWN: town_m, VILLAGE: village_m}[code])
        sync = SyncApp(context, settings, clock, upstream=link).for_worker(local)
        built[code] = Tier(local.app, sync, link)
    return built


def exchange(tiers: dict[str, Tier]) -> dict[str, dict[str, Any]]:
    """One round of every site's exchanges, lowest first (as their timers would)."""
    return {code: tiers[code].sync.push_now()["results"] for code in (VILLAGE, TOWN)}


def proxied(village: MattersApp, missing: int = 0) -> dict[str, Any]:
    current = got(village.repo.current(CHRONIC))
    required = [{"name": m["name"]} for m in current["materials"] if m["required"]]
    view, _ = submit(village, CHRONIC, required[missing:], channel="proxy", window="1")
    return view


def test_a_request_and_its_outcomes_cross_two_hops_through_cut_links(
    tiers: dict[str, Tier],
) -> None:
    village, town, county = tiers[VILLAGE], tiers[TOWN], tiers[COUNTY]
    assert village.link is not None
    assert town.link is not None
    view = proxied(village.matters, missing=1)
    app_id = view["id"]
    village.link.cut = True
    results = exchange(tiers)
    assert results[VILLAGE]["up:matters.proxy_requests"]["reason"] == "unreachable"
    assert county.matters.repo.application(app_id) is None
    # up the second hop: the town's link is cut, so the request waits at the town
    village.link.cut, town.link.cut = False, True
    results = exchange(tiers)
    assert results[TOWN]["up:matters.proxy_requests"]["reason"] == "unreachable"
    assert town.matters.repo.requests.get(app_id) is not None
    assert county.matters.repo.application(app_id) is None
    town.link.cut = False
    village.link.cut = True  # the notice comes down to the town, not yet to the village
    results = exchange(tiers)
    assert results[VILLAGE]["down:matters.proxy_outcomes"]["reason"] == "unreachable"
    assert county.matters.get_application(app_id)["state"] == "supplement_required"
    assert town.matters.repo.outcomes.get(app_id) is not None
    assert village.matters.get_application(app_id)["state"] == "forwarded"
    village.link.cut = False
    exchange(tiers)
    back = village.matters.get_application(app_id)
    assert back["state"] == "supplement_required"
    # supplemented at the village; decided and completed at the county
    village.matters.supplement(app_id, [{"name": "参保人居民身份证"}])
    exchange(tiers)
    assert county.matters.get_application(app_id)["state"] == "accepted"
    county.matters.start_review(app_id)
    county.matters.decide(app_id, "deny", "不符合认定标准")
    county.matters.complete(app_id)
    exchange(tiers)
    exchange(tiers)
    final = village.matters.get_application(app_id)
    assert (final["state"], final["decision"], final["decision_reason"]) == (
        "completed",
        "denied",
        "不符合认定标准",
    )
    assert village.matters.repo.invitations.get(f"application:{app_id}") is not None
    assert county.matters.repo.invitations.changes_since(0, 10) == []
    status = village.sync.status()["down"]["matters.proxy_outcomes"]
    assert status["last_success"] is not None
    assert status["parked"] == 0
    # every request of the village was signed with its key (the town checks it)
    assert all(domain.verify(r, ["village-key-0123456789"]) for r in village.link.requests)


def test_the_upstream_gives_a_child_only_its_subtree_and_checks_its_key(
    tiers: dict[str, Tier],
) -> None:
    town, county = tiers[TOWN], tiers[COUNTY]
    mine = proxied(tiers[VILLAGE].matters)
    exchange(tiers)
    # an outcome for the town's other village sits in the town's feed too
    other = {**county.matters.repo.outcomes.get(mine["id"]), "id": f"{OTHER}-x"}  # type: ignore[dict-item]
    town.matters.repo.outcomes.upsert_versioned({**other, "proxy_site": OTHER})
    request = {"schema": domain.SCHEMA, "child": VILLAGE, "since": 0, "limit": 100}
    page = town.sync.proxy_outcomes(domain.sign(request, "village-key-0123456789"))
    assert [item["id"] for item in page["items"]] == [mine["id"]]
    assert (page["last_seq"], page["more"]) == (page["high_water"], False)
    with pytest.raises(Forbidden, match="签名无效"):
        town.sync.proxy_outcomes(domain.sign(request, "a-guessed-key-000000"))
    with pytest.raises(Forbidden, match="不是本站点登记的下级站点"):
        town.sync.proxy_outcomes(domain.sign({**request, "child": OTHER}, "any-key-00000000"))


def test_an_outcome_the_village_refuses_is_parked_and_the_rest_arrive(
    tiers: dict[str, Tier],
) -> None:
    village, town = tiers[VILLAGE], tiers[TOWN]
    first = proxied(village.matters)
    exchange(tiers)
    exchange(tiers)
    assert village.matters.get_application(first["id"])["state"] == "accepted"
    # the town's feed now also carries an outcome naming an application the village
    # never had (e.g. its store was restored from an older backup)
    stray = {**town.matters.repo.outcomes.get(first["id"]), "id": f"{VILLAGE}-lost"}  # type: ignore[dict-item]
    town.matters.repo.outcomes.upsert_versioned(stray)
    second = proxied(village.matters)
    exchange(tiers)
    exchange(tiers)
    assert village.matters.get_application(second["id"])["state"] == "accepted"
    [parked] = village.sync.parked("matters.proxy_outcomes")
    assert parked["record_id"] == f"{VILLAGE}-lost"
    assert "本站没有办件" in parked["reason"]
