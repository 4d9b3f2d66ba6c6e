"""Two matters processes on one store (issue 13, item 3): two ``MattersApp`` instances, each
with its own connection to one SQLite file (or one mongomock server), driven from threads
at the same applications and the same matters. Every read-modify-write is a compare-and-set
(or an insert with a deterministic id), so the results are exact: no lost transition, no
duplicate number, one invitation per completed application, one summary per application at
its last state, catalog versions 1..n without gaps or duplicates."""

from __future__ import annotations

import contextlib
import threading
from collections import Counter
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from services.common.clock import ManualClock
from services.common.errors import Conflict
from services.common.privacy import resident_id_check
from services.matters.app import MattersApp
from services.matters.settings import MattersSettings
from tests.conftest import MakeContext

pytestmark = pytest.mark.unit

SEED = str(Path(__file__).parents[2] / "services" / "matters" / "seed" / "catalog.yaml")
TRANSFER = "0700018002421302001"  # 承诺件, 3 working days
PERSON_ID = "42130219900101123" + resident_id_check("42130219900101123")
PER_THREAD = 6
# action → the state it leaves the application in
CHAIN = (
    ("start_review", "in_review"),
    ("decide", "approved"),
    ("complete", "completed"),
    ("deliver", "delivered"),
)
ORDER = [state for _, state in CHAIN]


Build = Callable[..., MattersApp]


@pytest.fixture
def build(make_context: MakeContext, clock: ManualClock, store_uri: str) -> Build:
    """``build(**section)``: one more process of the county's matters on the shared store."""
    clock.set(datetime(2025, 9, 1, 9, tzinfo=ZoneInfo("Asia/Shanghai")))

    def make(code: str = "421302", tier: str = "county", **section: Any) -> MattersApp:
        uri = store_uri  # another site's processes share another store
        if code != "421302":
            uri = f"{store_uri}/{code}" if uri.startswith("sqlite") else f"{store_uri}-{code}"
        ctx = make_context("matters", code=code, tier=tier, section=section, store_uri=uri)
        return MattersApp(ctx, MattersSettings.from_section(section, ctx.identity.tier), clock)

    return make


def without_seq(doc: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in doc.items() if k != "_seq"}


def run_threads(*targets: Callable[[], object]) -> None:
    """Start every target at once; re-raise the first failure of any."""
    barrier = threading.Barrier(len(targets))
    failures: list[BaseException] = []

    def wrapped(target: Callable[[], object]) -> None:
        try:
            barrier.wait()
            target()
        except BaseException as exc:  # noqa: BLE001  (reported below)
            failures.append(exc)

    threads = [threading.Thread(target=wrapped, args=(t,)) for t in targets]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not any(thread.is_alive() for thread in threads), "a thread hung"
    if failures:
        raise failures[0]


def application(app: MattersApp) -> dict[str, Any]:
    current = app.repo.current(TRANSFER)
    assert current is not None
    return {
        "matter_code": TRANSFER,
        "applicant": {"kind": "person", "name": "张三丰", "id_number": PERSON_ID},
        "channel": "window",
        "materials": [{"name": m["name"]} for m in current["materials"] if m["required"]],
        "window": "A03",
        "staff_id": "S-017",
    }


def test_two_processes_seeding_an_empty_store_at_once(build: Build) -> None:
    """Both see an empty catalog and seed it: one set of versions, both start."""
    first, second = build(seed_catalog=SEED), build(seed_catalog=SEED)
    assert first.repo.catalog_is_empty()
    seeded = first.load_seed(SEED)
    assert second.load_seed(SEED) == seeded  # was: Conflict, the second process died
    assert second.repo.catalog.count() == seeded
    third, fourth = build(seed_catalog=SEED), build(seed_catalog=SEED)
    run_threads(third.start, fourth.start)
    assert fourth.repo.catalog.count() == seeded
    assert fourth.repo.matters.count() == seeded


def test_applications_driven_by_two_processes_end_exact(build: Build) -> None:
    a, b = build(seed_catalog=SEED), build(seed_catalog=SEED)
    a.start()
    b.start()
    ids: list[str] = []
    lock = threading.Lock()

    def submitter(app: MattersApp) -> Callable[[], None]:
        def run() -> None:
            for _ in range(PER_THREAD):
                view, _ = app.submit(application(app))
                with lock:
                    ids.append(view["id"])

        return run

    run_threads(submitter(a), submitter(b), submitter(a), submitter(b))
    total = 4 * PER_THREAD
    numbers = [got["number"] for got in (a.get_application(i) for i in ids)]
    assert len(set(ids)) == len(set(numbers)) == total  # no duplicate number
    assert sorted(numbers) == [f"42130220250901{n:05d}" for n in range(1, total + 1)]

    done: Counter[tuple[str, str]] = Counter()
    invited: list[str] = []

    def driver(app: MattersApp, order: list[str]) -> Callable[[], None]:
        def run() -> None:
            for app_id in order:
                for action, reached in CHAIN:
                    outcome = transition(app, action, app_id, reached)
                    if outcome is not None:
                        with lock:
                            done[(app_id, action)] += 1
                            invited.extend(outcome)

        return run

    run_threads(driver(a, ids), driver(b, ids), driver(a, ids[::-1]), driver(b, ids[::-1]))
    run_threads(lambda: invited.extend(a.sweep_outbox()), lambda: invited.extend(b.sweep_outbox()))

    assert done == Counter({(i, action): 1 for i in ids for action, _ in CHAIN})
    for app_id in ids:
        doc = a.repo.application(app_id)
        assert doc is not None
        assert doc["state"] == "delivered"
        assert [h["action"] for h in doc["history"]] == ["submit", *(x for x, _ in CHAIN)]
        assert not doc["outbox_pending"]
        summary = a.repo.summaries.get(app_id)
        assert summary is not None
        assert summary["state"] == "delivered"
    assert a.repo.invitations.count() == total  # one per completed application
    assert sorted(invited) == sorted(f"application:{i}" for i in ids)  # each hinted once
    assert a.repo.summaries.count() == total
    completed = sum(
        app.context.metrics.registry.get_sample_value(
            "hall_applications_completed_total",
            {"service": "matters", "site": "421302", "channel": "window", "overdue": "false"},
        )
        or 0
        for app in (a, b)
    )
    assert completed == total


def transition(app: MattersApp, action: str, app_id: str, reached: str) -> list[str] | None:
    """Try ``action``; the invitations it wrote when this call made it, None when the other
    process made it first. A busy document (compare-and-set lost 8 times) is retried."""
    while True:
        doc = app.repo.application(app_id)
        assert doc is not None
        if doc["state"] in ORDER and ORDER.index(doc["state"]) >= ORDER.index(reached):
            return None
        try:
            if action == "decide":
                _, invited = app.decide(app_id, "approve")
            elif action == "deliver":
                _, invited = app.deliver(app_id, "window_pickup")
            else:
                _, invited = getattr(app, action)(app_id)
            return invited
        except Conflict as exc:
            if not exc.fields:  # busy: try again
                continue
            now = app.repo.application(app_id)
            assert now is not None
            assert now["state"] in ORDER[ORDER.index(reached) :], (action, now["state"])
            return None


def test_catalog_versions_strictly_increase_under_two_publishers(build: Build) -> None:
    a, b = build(seed_catalog=SEED), build(seed_catalog=SEED)
    a.start()
    b.start()
    base = a.repo.version(TRANSFER, 1)
    assert base is not None
    published: list[tuple[int, str]] = []
    lock = threading.Lock()

    def editor(app: MattersApp, tag: str) -> Callable[[], None]:
        def run() -> None:
            for n in range(5):
                try:
                    app.save_draft({**base["matter"], "limit_note": f"{tag}{n}"})
                    app.approve_change(TRANSFER, f"审定人{tag}")
                    record = app.publish(TRANSFER)
                except Conflict:
                    continue  # the other process changed the draft or published first
                with lock:
                    published.append((record["matter_version"], record["limit_note"]))

        return run

    def retirer() -> None:
        with contextlib.suppress(Conflict):
            b.retire(TRANSFER, "合并事项")

    run_threads(editor(a, "甲"), editor(b, "乙"), editor(a, "丙"), editor(b, "丁"))
    versions = a.repo.catalog.find({"code": TRANSFER}, sort=[("matter_version", 1)])
    numbers = [v["matter_version"] for v in versions]
    assert numbers == list(range(1, len(numbers) + 1))  # strictly increasing, no gap
    assert len(numbers) > 1
    changes = [v.get("change_id") for v in versions[1:]]
    assert len(set(changes)) == len(changes)  # one version per approved change
    for number, note in published:  # every publish answered with its own version
        assert versions[number - 1]["matter"]["limit_note"] == note
    run_threads(retirer, retirer)
    a.project_catalog()
    b.project_catalog()
    statuses = [v["status"] for v in a.repo.catalog.find({"code": TRANSFER})]
    assert statuses.count("retired") == 1  # retired once, by one of them
    current = a.get_matter(TRANSFER)
    assert (current["matter_version"], current["status"]) == (len(numbers) + 1, "retired")


def test_local_availability_survives_a_concurrent_projection(build: Build) -> None:
    county = build(seed_catalog=SEED)
    county.start()
    one, two = build("421302101", "town"), build("421302101", "town")
    page = county.catalog_changes(0, 5000)
    one.apply_catalog([without_seq(doc) for doc in page["items"]])
    two.start()
    base = county.repo.version(TRANSFER, 1)
    assert base is not None
    for n in range(6):
        county.save_draft({**base["matter"], "limit_note": f"第{n}次修订"})
        county.approve_change(TRANSFER, "李四")
        county.publish(TRANSFER)
    later = county.catalog_changes(page["last_seq"], 5000)["items"]
    choices = ["proxy_only", "not_offered", "offered"] * 3

    def apply_one_by_one() -> None:
        for doc in later:
            one.apply_catalog([without_seq(doc)])

    def set_availability() -> None:
        for choice in choices:
            two.set_local_availability(TRANSFER, choice)

    run_threads(apply_one_by_one, set_availability, two.project_catalog)
    one.project_catalog()
    current = two.get_matter(TRANSFER)
    assert current["matter_version"] == 7
    assert current["availability"] == choices[-1]
    assert current["availability_local"] is True


def test_one_change_published_by_two_processes_at_once_is_reported_to_one(
    build: Build, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two processes publish the same approved change: the version is written once and
    only one caller is told it published it; the other learns who was first."""
    a, b = build(seed_catalog=SEED), build(seed_catalog=SEED)
    a.start()
    base = a.repo.version(TRANSFER, 1)
    assert base is not None
    a.save_draft({**base["matter"], "limit_note": "同一变更"})
    a.approve_change(TRANSFER, "审定人")
    stale = b._draft(TRANSFER)  # what b read just before a's publication landed
    record = a.publish(TRANSFER)
    monkeypatch.setattr(b, "_draft", lambda code: stale)
    with pytest.raises(Conflict, match=f"变更已发布为第 {record['matter_version']} 版"):
        b.publish(TRANSFER)
    versions = a.repo.catalog.find({"code": TRANSFER})
    assert [v["matter_version"] for v in versions] == [1, 2]
