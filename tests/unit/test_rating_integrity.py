"""Issue 13 for rating, over a real store (SQLite and mongomock): owned evaluation ids,
ratings bound to their invitation, idempotent submissions, one clear contact per bad
real-name rating, and the boundary (every argument checked before any work)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest

from services.common.clock import ManualClock, parse_iso
from services.common.errors import Conflict, InvalidInput, NotFound
from services.rating.app import RatingApp
from services.rating.settings import RatingSettings
from tests.conftest import MakeContext

pytestmark = pytest.mark.unit

PHONE, OTHER_PHONE, NAME = "13912345678", "13800001111", "王小明"


@pytest.fixture
def app(make_context: MakeContext, store_uri: str) -> RatingApp:
    return build(make_context, store_uri)


def build(make_context: MakeContext, store_uri: str, site: str = "421302") -> RatingApp:
    clock = ManualClock(parse_iso("2024-09-13T02:00:00Z"))
    uri = f"{store_uri}/shared.db" if store_uri.startswith("sqlite") else store_uri
    tier = {6: "county", 9: "town", 12: "village"}[len(site)]
    context = make_context("rating", code=site, tier=tier, store_uri=uri)
    return RatingApp(context, RatingSettings(privacy_salt="test-salt-0123456789"), clock)


def invitation(n: int, site: str = "421302", window: str = "3") -> dict[str, Any]:
    return {
        "id": f"ticket:{site}-t{n}",
        "schema": 1,
        "service_ref": {"kind": "ticket", "id": f"{site}-t{n}"},
        "site_code": site,
        "window": window,
        "staff_id": f"staff-{window}",
        "matter_code": "M1",
        "department": "人社局",
        "service_channel": "window",
        "service_ended_at": "2024-09-13T01:30:00Z",
    }


def rating(n: int = 1, level: str = "satisfied", **extra: Any) -> dict[str, Any]:
    payload = {
        "service_ref": {"kind": "ticket", "id": f"421302-t{n}"},
        "channel": "pad",
        "level": level,
        **extra,
    }
    if level in ("dissatisfied", "very_dissatisfied"):
        payload.setdefault("reasons", {"tags": ["等候过长"]})
    return payload


def counts(app: RatingApp) -> tuple[int, int, int]:
    return (
        app.repo.evaluations.count(),
        app.repo.cases.count(),
        app.repo.contacts.count(),
    )


# --- ownership ------------------------------------------------------------------------------


def test_evaluation_and_case_ids_carry_the_recording_site(app: RatingApp) -> None:
    app.apply_invitations("queue", [invitation(1)])
    ev = app.submit(rating(1, "dissatisfied"))
    assert ev["id"] == "ev:421302:ticket:421302-t1:1"
    assert ev["case_id"] == "case:ev:421302:ticket:421302-t1:1"
    online = app.submit(
        {"service_ref": {"kind": "online", "id": "w1"}, "channel": "pc", "level": "satisfied"}
    )
    assert online["id"] == "ev:421302:online:w1:1"


def test_two_sites_never_produce_the_same_id(make_context: MakeContext, store_uri: str) -> None:
    town = build(
        make_context,
        store_uri + "t" if not store_uri.startswith("sqlite") else store_uri + "/t",
        "421302101",
    )
    village = build(
        make_context,
        store_uri + "v" if not store_uri.startswith("sqlite") else store_uri + "/v",
        "421302101201",
    )
    same = {"service_ref": {"kind": "online", "id": "web-1"}, "channel": "pc", "level": "satisfied"}
    assert town.submit(same)["id"] != village.submit(same)["id"]


def test_an_evaluation_stored_under_an_earlier_id_still_counts(app: RatingApp) -> None:
    app.apply_invitations("queue", [invitation(1), invitation(2, window="4")])
    first = app.submit(rating(1))
    legacy = {k: v for k, v in first.items() if k not in ("_seq", "version")}
    legacy |= {
        "id": "ev:ticket:421302-t2:1",  # as an earlier version named it
        "service_ref": {"kind": "ticket", "id": "421302-t2"},
        "invitation_id": "ticket:421302-t2",
    }
    app.repo.evaluations.insert(legacy)
    assert app.get_evaluation("ev:ticket:421302-t2:1")["sequence"] == 1
    assert app.pending_for_window("4") is None  # answered, under its earlier id
    assert app.submit(rating(2))["sequence"] == 2  # so the next one is supplementary


# --- invitations ----------------------------------------------------------------------------


def test_a_ticket_rating_without_its_invitation_is_refused_and_takes_no_id(
    app: RatingApp,
) -> None:
    attack = rating(7, "very_dissatisfied", window="99", staff_id="victim", matter_code="X")
    with pytest.raises(NotFound) as caught:
        app.submit(attack)
    assert "service_ref.id" in caught.value.fields
    assert counts(app) == (0, 0, 0)
    # the real invitation arrives; the citizen at the window rates, and is counted
    app.apply_invitations("queue", [invitation(7, window="5")])
    pad = app.pending_for_window("5")
    assert pad is not None
    ev = app.submit(
        {
            "invitation_id": pad["id"],
            "service_ref": {"kind": "ticket"},
            "channel": "pad",
            "level": "satisfied",
        }
    )
    assert (ev["window"], ev["staff_id"], ev["sequence"]) == ("5", "staff-5", 1)
    application = {
        "service_ref": {"kind": "application", "id": "a-1"},
        "channel": "pc",
        "level": "satisfied",
    }
    with pytest.raises(NotFound):
        app.submit(application)


# --- idempotency ----------------------------------------------------------------------------


def test_a_retry_with_the_same_request_id_returns_the_first_result(app: RatingApp) -> None:
    app.apply_invitations("queue", [invitation(1)])
    first = app.submit(rating(1, "dissatisfied", request_id="pad-3-0001"))
    again = app.submit(rating(1, "dissatisfied", request_id="pad-3-0001"))
    assert again == first
    assert counts(app)[:2] == (1, 1)
    # another request for the same service is a supplementary rating, as before
    assert app.submit(rating(1, "satisfied", request_id="pad-3-0002"))["sequence"] == 2
    # without a service id (online), the key makes the retry land on the same record
    online = {
        "service_ref": {"kind": "online"},
        "channel": "pc",
        "level": "satisfied",
        "request_id": "web-9",
    }
    assert app.submit(online) == app.submit(online)
    assert app.repo.evaluations.count() == 3


def pause_before(app: RatingApp, reached: threading.Event, go: threading.Event) -> None:
    real: Callable[..., Any] = app.insert_evaluation

    def insert(doc: Any) -> Any:
        reached.set()
        assert go.wait(10)
        return real(doc)

    app.insert_evaluation = insert


def run(target: Callable[[], Any]) -> tuple[threading.Thread, list[Any]]:
    out: list[Any] = []

    def body() -> None:
        try:
            out.append(target())
        except Exception as exc:  # noqa: BLE001  (examined by the test)
            out.append(exc)

    thread = threading.Thread(target=body)
    thread.start()
    return thread, out


def test_the_same_request_twice_at_once_stores_one_evaluation(
    make_context: MakeContext, store_uri: str
) -> None:
    a, b = build(make_context, store_uri), build(make_context, store_uri)
    a.apply_invitations("queue", [invitation(1)])
    reached, go = threading.Event(), threading.Event()
    pause_before(a, reached, go)
    thread, out = run(lambda: a.submit(rating(1, request_id="pad-3-0001")))
    assert reached.wait(10)
    second = b.submit(rating(1, request_id="pad-3-0001"))
    go.set()
    thread.join(10)
    assert out == [second]
    assert a.repo.evaluations.count() == 1


# --- privacy --------------------------------------------------------------------------------


def test_contacts_are_kept_for_bad_real_name_ratings_only(app: RatingApp) -> None:
    app.apply_invitations("queue", [invitation(1), invitation(2)])
    real = {"real_name": True, "name": NAME, "phone": PHONE}
    good = app.submit(rating(1, "satisfied", rater=real))
    bad = app.submit(rating(2, "dissatisfied", rater=real))
    assert app.repo.contact(good["id"]) is None
    assert good["rater"]["phone_masked"] == "139****5678"
    contact = app.repo.contact(bad["id"])
    assert contact is not None
    assert (contact["phone"], contact["case_id"]) == (PHONE, bad["case_id"])


def test_two_first_ratings_racing_keep_one_contact_matching_the_stored_one(
    make_context: MakeContext, store_uri: str
) -> None:
    a, b = build(make_context, store_uri), build(make_context, store_uri)
    a.apply_invitations("queue", [invitation(1)])
    a_at, a_go, b_at, b_go = (threading.Event() for _ in range(4))
    pause_before(a, a_at, a_go)
    pause_before(b, b_at, b_go)
    rater_a = {"real_name": True, "name": NAME, "phone": PHONE}
    rater_b = {"real_name": True, "name": "李四", "phone": OTHER_PHONE}
    thread_a, out_a = run(lambda: a.submit(rating(1, "dissatisfied", rater=rater_a)))
    assert a_at.wait(10)
    thread_b, out_b = run(lambda: b.submit(rating(1, "dissatisfied", rater=rater_b)))
    assert b_at.wait(10)
    a_go.set()
    thread_a.join(10)
    b_go.set()
    thread_b.join(10)
    assert isinstance(out_b[0], Conflict)
    stored = a.get_evaluation(out_a[0]["id"])
    contact = a.repo.contact(stored["id"])
    assert contact is not None
    assert contact["phone"] == PHONE
    assert contact["token"] == a.repo.evaluation(stored["id"])["contact_token"]  # type: ignore[index]
    assert a.repo.contacts.count() == 1


# --- the boundary ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("call", "field"),
    [
        (lambda app: app.public_report(7), "period"),
        (lambda app: app.public_report("0000"), "period"),
        (lambda app: app.public_report("２０２４"), "period"),
        (lambda app: app.get_evaluation({"$ne": None}), "evaluation_id"),
        (lambda app: app.get_evaluation("ev\ud800"), "evaluation_id"),
        (lambda app: app.get_case(["x"]), "case_id"),
        (lambda app: app.reveal_audit(None), "case_id"),
        (lambda app: app.reveal_phone("case:x", {"$ne": None}), "by"),
        (lambda app: app.pending_for_window(3), "window"),
        (lambda app: app.stats(None, 7), "group_by"),
        (lambda app: app.stats([], None), "输入"),
        (lambda app: app.list_cases("open"), "输入"),
        (lambda app: app.rankings("2024-13", "window", 20), "period"),
        (lambda app: app.rankings("２０２４-09", "window", 20), "month"),
        (lambda app: app.submit({**rating(1), "request_id": "a\x00"}), "request_id"),
        (lambda app: app.submit({**rating(1), "staff_id": {"$gt": ""}}), "staff_id"),
        (lambda app: app.assign_case({"case_id": "c", "handler": "h\nx", "by": "b"}), "handler"),
    ],
)
def test_every_argument_is_checked_before_any_work(
    app: RatingApp, call: Callable[[RatingApp], Any], field: str
) -> None:
    app.apply_invitations("queue", [invitation(1)])
    before = (counts(app), app.repo.evaluations.last_seq(), app.repo.cases.last_seq())
    with pytest.raises(InvalidInput) as caught:
        call(app)
    assert field in caught.value.fields, caught.value.fields
    assert (counts(app), app.repo.evaluations.last_seq(), app.repo.cases.last_seq()) == before


# --- retention and scrubbing ----------------------------------------------------------------


def close_case(app: RatingApp, case_id: str, note: str = "已回访") -> dict[str, Any]:
    app.assign_case({"case_id": case_id, "handler": "h1", "by": "lead"})
    app.record_callback({"case_id": case_id, "by": "h1", "contacted": True, "note": note})
    app.classify_case({"case_id": case_id, "by": "h1", "classification": "fix_now", "note": note})
    app.record_rectification({"case_id": case_id, "by": "h1", "measures": note})
    return app.record_feedback({"case_id": case_id, "by": "h1", "method": "phone", "content": note})


def metric(counter: Any, app: RatingApp) -> float:
    return float(counter.labels(**app.metrics.labels())._value.get())


def test_a_contact_is_purged_the_configured_time_after_its_case_closes(
    make_context: MakeContext, store_uri: str
) -> None:
    app = build(make_context, store_uri)
    app.settings = RatingSettings(privacy_salt="test-salt-0123456789", contact_retention_days=30)
    clock = app.clock
    assert isinstance(clock, ManualClock)
    app.apply_invitations("queue", [invitation(1)])
    real = {"real_name": True, "name": NAME, "phone": PHONE}
    ev = app.submit(rating(1, "dissatisfied", rater=real))
    app.assign_case({"case_id": ev["case_id"], "handler": "h1", "by": "lead"})
    assert app.reveal_phone(ev["case_id"], "h1")["phone"] == PHONE
    clock.advance(days=400)
    assert app.sweep()["contacts_purged"] == 0  # the case is open: kept however long
    closed = close_case(app, ev["case_id"])
    assert closed["state"] == "closed"
    clock.advance(days=29)
    assert app.sweep()["contacts_purged"] == 0
    assert app.repo.contact(ev["id"])["phone"] == PHONE  # type: ignore[index]
    clock.advance(days=2)
    before = metric(app.metrics.contacts_purged, app)
    assert app.sweep()["contacts_purged"] == 1
    contact = app.repo.contact(ev["id"])
    assert contact is not None
    assert (contact["phone"], contact["name"], contact["state"]) == (None, None, "purged")
    assert metric(app.metrics.contacts_purged, app) == before + 1
    assert app.sweep()["contacts_purged"] == 0


def test_contacts_kept_by_an_earlier_version_for_good_ratings_are_purged(app: RatingApp) -> None:
    app.apply_invitations("queue", [invitation(1)])
    good = app.submit(rating(1, "satisfied", rater={"real_name": True, "phone": PHONE}))
    app.repo.contacts.insert({"id": good["id"], "phone": PHONE, "name": None, "token": "t"})
    assert app.sweep()["contacts_purged"] == 1
    assert app.repo.contact(good["id"])["phone"] is None  # type: ignore[index]


def test_daily_counters_are_pruned_after_their_retention(app: RatingApp) -> None:
    clock = app.clock
    assert isinstance(clock, ManualClock)
    store = app.context.store
    app.apply_invitations("queue", [invitation(n) for n in (1, 2)])
    app.submit(rating(1, rater={"real_name": True, "phone": PHONE, "device_id": "pad-1"}))
    store.next_value("rating.phonebook")  # another counter sharing the prefix's start
    assert app.sweep()["counters_pruned"] == 0
    clock.advance(days=8)
    before = metric(app.metrics.counters_pruned, app)
    assert app.sweep()["counters_pruned"] == 2  # the phone's and the device's
    assert metric(app.metrics.counters_pruned, app) == before + 2
    assert store.next_value("rating.phonebook") == 2


def test_case_notes_feedback_and_reasons_are_scrubbed_before_the_feeds(app: RatingApp) -> None:
    app.apply_invitations("queue", [invitation(1)])
    real = {"real_name": True, "name": NAME, "phone": PHONE}
    spaced = "139 1234 5678"
    ev = app.submit(rating(1, "dissatisfied", rater=real, reasons={"tags": [f"打{spaced}"]}))
    close_case(app, ev["case_id"], note=f"{NAME}说请回电 {spaced}，身份证 42130219900101123X")
    published = str(app.repo.cases.changes_since(0)) + str(app.repo.evaluations.changes_since(0))
    for secret in (NAME, spaced, PHONE, "42130219900101123X"):
        assert secret not in published
