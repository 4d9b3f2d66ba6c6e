"""The matters boundary (issue 13, item 4): every argument of every use case is validated
before any work. A refusal is ``InvalidInput`` naming the field and its rule in Chinese, and a
refused call changes no store document and no feed (both adapters).

Cases marked "was:" broke the old code: a raw exception (answered as an internal error) or
a call accepted with a value it should have refused."""

from __future__ import annotations

import math
import re
import uuid
from collections.abc import Callable, Sequence
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from services.common.calendar import ScheduleMissing
from services.common.clock import ManualClock
from services.common.errors import HallError, InvalidInput
from services.common.privacy import resident_id_check
from services.matters.app import MattersApp
from services.matters.settings import MattersSettings
from tests.conftest import MakeContext

pytestmark = pytest.mark.unit

SEED = str(Path(__file__).parents[2] / "services" / "matters" / "seed" / "catalog.yaml")
TRANSFER = "0700018002421302001"  # 承诺件, 3 working days, county only
PERSON_ID = "42130219900101123" + resident_id_check("42130219900101123")
SURROGATE = "\ud800"
OPERATOR = {"$ne": None}


class Site:
    """A county (catalog source) and a town on the same adapter, with one application in
    each state the transitions start from."""

    def __init__(self, county: MattersApp, town: MattersApp) -> None:
        self.county, self.town = county, town
        self.pending = self.submit(materials=[])["id"]  # supplement_required
        self.accepted = self.submit()["id"]
        self.in_review = self.submit()["id"]
        county.start_review(self.in_review)
        self.decided = self.submit()["id"]
        county.start_review(self.decided)
        county.decide(self.decided, "approve")
        self.completed = self.submit()["id"]
        county.start_review(self.completed)
        county.decide(self.completed, "approve")
        county.complete(self.completed)

    def submit(self, **extra: Any) -> dict[str, Any]:
        view, _ = self.county.submit(application(self.county, **extra))
        return view

    def matter(self, **changes: Any) -> dict[str, Any]:
        record = self.county.repo.version(TRANSFER, 1)
        assert record is not None
        return {**record["matter"], **changes}

    def record(self, **changes: Any) -> dict[str, Any]:
        """The county's first catalog version as a child receives it, changed."""
        first = self.county.catalog_changes(0, 1)["items"][0]
        return {**{k: v for k, v in first.items() if k != "_seq"}, **changes}


def application(app: MattersApp, **extra: Any) -> dict[str, Any]:
    current = app.repo.current(TRANSFER)
    assert current is not None
    return {
        "matter_code": TRANSFER,
        "applicant": {"kind": "person", "name": "张三丰", "id_number": PERSON_ID},
        "channel": "window",
        "materials": [{"name": m["name"]} for m in current["materials"] if m["required"]],
        "window": "A03",
        "staff_id": "S-017",
        **extra,
    }


@pytest.fixture
def site(make_context: MakeContext, clock: ManualClock, store_uri: str) -> Site:
    clock.set(datetime(2025, 9, 1, 9, tzinfo=ZoneInfo("Asia/Shanghai")))

    def build(code: str, tier: str, uri: str, **section: Any) -> MattersApp:
        ctx = make_context("matters", code=code, tier=tier, section=section, store_uri=uri)
        app = MattersApp(ctx, MattersSettings.from_section(section, ctx.identity.tier), clock)
        app.start()
        return app

    town_uri = (
        f"mongomock://{uuid.uuid4().hex}/hall"
        if store_uri.startswith("mongomock")
        else f"{store_uri}/town"
    )
    return Site(
        build("421302", "county", store_uri, seed_catalog=SEED),
        build("421302101", "town", town_uri),
    )


def snapshot(app: MattersApp) -> dict[str, tuple[int, int]]:
    """Every collection's document count and feed position."""
    repo = app.repo
    collections = (
        repo.drafts, repo.catalog, repo.matters, repo.applications, repo.summaries,
        repo.invitations, repo.settings,
    )  # fmt: skip
    return {c.name: (c.count(), c.last_seq()) for c in collections}


Call = Callable[[Site], Any]
CHINESE = re.compile(r"[\u4e00-\u9fff]")

CASES: dict[str, tuple[Call, str]] = {
    # --- catalog -----------------------------------------------------------------------------
    "retire an operator object (was: retired a matter)": (
        lambda s: s.county.retire(OPERATOR, "合并事项"), "code"),
    "retire without a reason": (lambda s: s.county.retire(TRANSFER, " "), "reason"),
    "publish an operator object (was: ValueError)": (
        lambda s: s.county.publish(OPERATOR), "code"),
    "publish a lone surrogate (was: UnicodeEncodeError)": (
        lambda s: s.county.publish("A" + SURROGATE), "code"),
    "publish an over-long code (was: looked up)": (
        lambda s: s.county.publish("A" * 10_000), "code"),
    "approve a code with a control character": (
        lambda s: s.county.approve_change("A\x00", "李四"), "code"),
    "approve by a number": (lambda s: s.county.approve_change(TRANSFER, 7), "approved_by"),
    "draft that is a list": (lambda s: s.county.save_draft([]), "matter"),
    "draft with a limit of 10^30 days (was: accepted)": (
        lambda s: s.county.save_draft(s.matter(legal_limit_days=10**30)), "legal_limit_days"),
    "draft with NaN days": (
        lambda s: s.county.save_draft(s.matter(promised_limit_days=math.nan)),
        "promised_limit_days"),
    "draft with visits as a boolean": (
        lambda s: s.county.save_draft(s.matter(visits=True)), "visits"),
    "draft with online as the string false": (
        lambda s: s.county.save_draft(s.matter(online="false")), "online"),
    "draft with 21 aliases (was: accepted)": (
        lambda s: s.county.save_draft(s.matter(aliases=[f"别名{i}" for i in range(21)])),
        "aliases"),
    "draft with a material named by a number": (
        lambda s: s.county.save_draft(s.matter(materials=[{"name": 1}])), "materials[0].name"),
    "draft with a nested unknown field": (
        lambda s: s.county.save_draft(s.matter(agency={"name": "局", "nature": "1", "x": 1})),
        "agency.x"),
    "draft with an over-long phone (was: accepted by the schema)": (
        lambda s: s.county.save_draft(s.matter(consultation_phone="1" * 21)),
        "consultation_phone"),
    "version as text (was: looked up as version '1')": (
        lambda s: s.county.get_matter(TRANSFER, "1"), "version"),
    "version 10^30 (was: looked up)": (
        lambda s: s.county.get_matter(TRANSFER, 10**30), "version"),
    "version as an operator object (was: NotFound)": (
        lambda s: s.county.get_matter(TRANSFER, OPERATOR), "version"),
    "matter code with a lone surrogate (was: UnicodeEncodeError)": (
        lambda s: s.county.get_matter("A" + SURROGATE), "code"),
    "guide of an operator object": (lambda s: s.county.guide(OPERATOR), "code"),
    "availability of a list": (
        lambda s: s.county.set_local_availability([], "offered"), "code"),
    "availability missing": (
        lambda s: s.county.set_local_availability(TRANSFER, None), "availability"),
    "catalog changes since 10^30": (lambda s: s.county.catalog_changes(10**30, 500), "since"),
    "catalog changes since true": (lambda s: s.county.catalog_changes(True, 500), "since"),
    "catalog changes of 10^6": (lambda s: s.county.catalog_changes(0, 10**6), "limit"),
    "search with a control character": (lambda s: s.county.search({"q": "登记\x00"}), "q"),
    "search limit NaN": (lambda s: s.county.search({"limit": math.nan}), "limit"),
    "search online as the string false": (
        lambda s: s.county.search({"online": "false"}), "online"),
    "search with an unknown filter": (lambda s: s.county.search({"sort": "name"}), "sort"),
    "HTTP search limit ² (was: ValueError)": (
        lambda s: s.county.search_query({"limit": "²"}), "limit"),
    "HTTP search offset of 5000 digits (was: ValueError)": (
        lambda s: s.county.search_query({"offset": "9" * 5000}), "offset"),
    "HTTP search online=maybe (was: taken as false)": (
        lambda s: s.county.search_query({"online": "maybe"}), "online"),
    # --- replication of the catalog ----------------------------------------------------------
    "catalog batch that is an object": (lambda s: s.town.apply_catalog({"a": 1}), "docs"),
    "catalog batch of numbers": (lambda s: s.town.apply_catalog([1]), "docs[0]"),
    "catalog batch over a page": (
        lambda s: s.town.apply_catalog([s.record()] * 5001), "docs"),
    "replicated version 2^63 (was: ValueError)": (
        lambda s: s.town.apply_catalog([s.record(version=2**63)]), "docs[0].version"),
    "replicated matter version 2^63": (
        lambda s: s.town.apply_catalog([s.record(matter_version=2**63)]),
        "docs[0].matter_version"),
    "replicated matter with junk tiers (was: TypeError)": (
        lambda s: s.town.apply_catalog(
            [s.record(version=5, matter={**s.record()["matter"], "handled_at": 7})]),
        "docs[0].matter.handled_at"),
    "replicated matter with a NaN limit": (
        lambda s: s.town.apply_catalog(
            [s.record(version=5, matter={**s.record()["matter"], "legal_limit_days": math.nan})]
        ),
        "docs[0].matter.legal_limit_days"),
    "replicated site code with a control character": (
        lambda s: s.town.apply_catalog([s.record(site_code="4213\x0002")]), "docs[0].site_code"),
    # --- applications ------------------------------------------------------------------------
    "application that is a list": (lambda s: s.county.submit([]), "application"),
    "application for an operator object": (
        lambda s: s.county.submit(application(s.county, matter_code=OPERATOR)), "matter_code"),
    "application with 101 materials (was: accepted)": (
        lambda s: s.county.submit(
            application(s.county, materials=[{"name": f"材料{i}"} for i in range(101)])),
        "materials"),
    "application with a material that is text": (
        lambda s: s.county.submit(application(s.county, materials=["身份证"])), "materials[0]"),
    "application with a blank staff id (was: accepted)": (
        lambda s: s.county.submit(application(s.county, staff_id="   ")), "staff_id"),
    "application with a window holding a control character": (
        lambda s: s.county.submit(application(s.county, window="A\x01")), "window"),
    "application with an ID number as a number": (
        lambda s: s.county.submit(application(
            s.county, applicant={"kind": "person", "name": "张三", "id_number": 4213})),
        "applicant.id_number"),
    "application with valid as the string true": (
        lambda s: s.county.submit(
            application(s.county, materials=[{"name": "a", "valid": "true"}])),
        "materials[0].valid"),
    "get an application by an operator object (was: NotFound)": (
        lambda s: s.county.get_application(OPERATOR), "application_id"),
    "get an application by a lone surrogate (was: UnicodeEncodeError)": (
        lambda s: s.county.get_application("421302-" + SURROGATE), "application_id"),
    "review an application by a lone surrogate (was: UnicodeEncodeError)": (
        lambda s: s.county.start_review("421302-" + SURROGATE), "application_id"),
    "review an over-long id (was: looked up)": (
        lambda s: s.county.start_review("4" * 10_000), "application_id"),
    "resume an operator object": (lambda s: s.county.resume(OPERATOR), "application_id"),
    "supplement nothing (was: accepted)": (
        lambda s: s.county.supplement(s.pending, []), "materials"),
    "supplement a material named by a number": (
        lambda s: s.county.supplement(s.pending, [{"name": 5}]), "materials[0].name"),
    "supplement materials that are an object": (
        lambda s: s.county.supplement(s.pending, {"name": "a"}), "materials"),
    "refuse with a blank reason": (lambda s: s.county.refuse(s.pending, "", "《法》"), "reason"),
    "refuse an operator object": (
        lambda s: s.county.refuse(OPERATOR, "逾期未补正", "《法》"), "application_id"),
    "deny without a reason": (lambda s: s.county.decide(s.in_review, "deny"), "reason"),
    "decide true": (lambda s: s.county.decide(s.in_review, True), "decision"),
    "complete with a numeric reason": (
        lambda s: s.county.complete(s.decided, 5), "overdue_reason"),
    "complete with an over-long result": (
        lambda s: s.county.complete(s.decided, None, "结" * 501), "result"),
    "mail without a tracking number": (
        lambda s: s.county.deliver(s.completed, "mail"), "tracking_number"),
    "suspend for a holiday": (lambda s: s.county.suspend(s.accepted, "holiday"), "reason"),
    "suspend with a control character in the note": (
        lambda s: s.county.suspend(s.accepted, "hearing", "听证\x07"), "note"),
    "list with filters 0 (was: accepted)": (lambda s: s.county.list_applications(0), "filters"),
    "list with filters [] (was: accepted)": (
        lambda s: s.county.list_applications([]), "filters"),
    "list 10^30": (lambda s: s.county.list_applications({"limit": 10**30}), "limit"),
    "list by an operator object": (
        lambda s: s.county.list_applications({"matter_code": OPERATOR}), "matter_code"),
    "list by an ID number with a lone surrogate": (
        lambda s: s.county.list_applications({"applicant_id_number": SURROGATE}),
        "applicant_id_number"),
}  # fmt: skip


@pytest.mark.parametrize("case", list(CASES))
def test_refused_with_the_field_named_and_nothing_written(site: Site, case: str) -> None:
    call, field = CASES[case]
    before = snapshot(site.county), snapshot(site.town)
    with pytest.raises(InvalidInput) as caught:
        call(site)
    assert field in caught.value.fields, caught.value.fields
    assert all(CHINESE.search(rule) for rule in caught.value.fields[field])
    assert (snapshot(site.county), snapshot(site.town)) == before


def test_an_operator_object_retires_nothing(site: Site) -> None:
    with pytest.raises(InvalidInput):
        site.county.retire(OPERATOR, "合并事项")
    assert site.county.repo.catalog.count({"status": "retired"}) == 0
    assert site.county.get_matter(TRANSFER)["status"] == "published"


def test_a_refused_deadline_takes_no_application_number(site: Site, clock: ManualClock) -> None:
    """ScheduleMissing (an InvalidInput on ``calendar``) is raised before the day's number is
    taken, so a refused submission leaves no gap in the numbering (was: a number burnt)."""
    clock.set(datetime(2026, 12, 30, 10, tzinfo=ZoneInfo("Asia/Shanghai")))
    with pytest.raises(ScheduleMissing):
        site.submit()  # 3 working days run into 2027, which has no schedule
    immediate = site.submit(matter_code="0700018004421302001")  # a 即办件 needs none
    assert immediate["number"] == "4213022026123000001"


def test_http_query_numbers_and_flags_still_read(site: Site) -> None:
    found = site.county.search_query({"q": "登记", "limit": "2", "online": "否"})
    assert found["limit"] == 2


# --- the sweep: junk at every argument and field of every use case --------------------------

JUNK: tuple[Any, ...] = (
    None, True, "false", 10**30, -1, 2**63, math.nan, math.inf, "", " ", "x" * 10_001,
    "A" + SURROGATE, "a\x00b", "\u202eabc", OPERATOR, {"$gt": ""}, [], [None], [OPERATOR], {},
)  # fmt: skip


def at_each(args: list[Any]) -> list[tuple[str, list[Any]]]:
    """``args`` with one argument replaced by each junk value in turn."""
    return [
        (f"arg{i}={junk!r:.30}", [*args[:i], junk, *args[i + 1 :]])
        for i in range(len(args))
        for junk in JUNK
    ]


def in_each(name: str, data: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """``data`` with one field replaced by each junk value in turn, and one unknown field."""
    variants = [
        (f"{name}.{key}={junk!r:.30}", {**data, key: junk}) for key in data for junk in JUNK
    ]
    return [*variants, (f"{name}+unknown", {**data, "$where": "1"})]


Sweep = Callable[[Site], Sequence[tuple[str, Callable[[], object]]]]


SWEEPS: dict[str, Sweep] = {
    "save_matter_draft": lambda s: [
        (label, partial(s.county.save_draft, d)) for label, d in in_each("matter", s.matter())
    ],
    "approve_matter_change": lambda s: [
        (label, partial(s.county.approve_change, *a)) for label, a in at_each([TRANSFER, "李四"])
    ],
    "publish_matter": lambda s: [
        (label, partial(s.county.publish, *a)) for label, a in at_each([TRANSFER])
    ],
    "retire_matter": lambda s: [
        (label, partial(s.county.retire, *a)) for label, a in at_each([TRANSFER, "合并"])
    ],
    "get_matter": lambda s: [
        (label, partial(s.county.get_matter, *a)) for label, a in at_each([TRANSFER, 1])
    ],
    "search_matters": lambda s: [
        (label, partial(s.county.search, d))
        for label, d in in_each(
            "search",
            {
                "q": "登记",
                "type": "07",
                "department": "不动产",
                "tier": "county",
                "online": True,
                "availability": "offered",
                "include_retired": False,
                "limit": 5,
                "offset": 0,
            },
        )
    ],
    "catalog_changes": lambda s: [
        (label, partial(s.county.catalog_changes, *a)) for label, a in at_each([0, 10])
    ],
    "apply_catalog": lambda s: (
        [(label, partial(s.town.apply_catalog, [d])) for label, d in in_each("docs[0]", s.record())]
        + [(label, partial(s.town.apply_catalog, *a)) for label, a in at_each([[s.record()]])]
    ),
    "set_local_availability": lambda s: [
        (label, partial(s.county.set_local_availability, *a))
        for label, a in at_each([TRANSFER, "offered"])
    ],
    "submit_application": lambda s: (
        [
            (label, partial(s.county.submit, d))
            for label, d in in_each("application", application(s.county))
        ]
        + [
            (label, partial(s.county.submit, application(s.county, applicant=d)))
            for label, d in in_each(
                "applicant",
                {"kind": "person", "name": "张三", "id_number": PERSON_ID, "phone": "13812345678"},
            )
        ]
        + [
            (label, partial(s.county.submit, application(s.county, materials=[d])))
            for label, d in in_each(
                "materials[0]", {"name": "申请书", "valid": False, "problem": "x"}
            )
        ]
    ),
    "supplement_application": lambda s: [
        (label, partial(s.county.supplement, *a))
        for label, a in at_each([s.pending, [{"name": "不动产登记申请书"}]])
    ],
    "refuse_application": lambda s: [
        (label, partial(s.county.refuse, *a))
        for label, a in at_each([s.pending, "逾期未补正", "《行政许可法》"])
    ],
    "start_review": lambda s: [
        (label, partial(s.county.start_review, *a)) for label, a in at_each([s.accepted])
    ],
    "decide_application": lambda s: [
        (label, partial(s.county.decide, *a))
        for label, a in at_each([s.in_review, "deny", "不符合条件"])
    ],
    "complete_application": lambda s: [
        (label, partial(s.county.complete, *a))
        for label, a in at_each([s.decided, "系统故障", "准予登记"])
    ],
    "deliver_application": lambda s: [
        (label, partial(s.county.deliver, *a))
        for label, a in at_each([s.completed, "mail", "SF123"])
    ],
    "suspend_application": lambda s: [
        (label, partial(s.county.suspend, *a))
        for label, a in at_each([s.accepted, "hearing", "听证"])
    ],
    "resume_application": lambda s: [
        (label, partial(s.county.resume, *a)) for label, a in at_each([s.accepted])
    ],
    "get_application": lambda s: [
        (label, partial(s.county.get_application, *a)) for label, a in at_each([s.accepted])
    ],
    "list_applications": lambda s: [
        (label, partial(s.county.list_applications, d))
        for label, d in in_each(
            "filters",
            {
                "state": "accepted",
                "due_state": "on_time",
                "matter_code": TRANSFER,
                "applicant_id_number": PERSON_ID,
                "limit": 5,
            },
        )
    ],
}


@pytest.mark.parametrize("rpc", list(SWEEPS))
def test_junk_anywhere_gets_a_typed_error_and_changes_nothing(site: Site, rpc: str) -> None:
    """Every argument and field of ``rpc`` in turn holds each junk value (the others valid):
    the call succeeds or raises a ``HallError``; when it raises, nothing changed."""
    for label, call in SWEEPS[rpc](site):
        before = snapshot(site.county), snapshot(site.town)
        try:
            call()
        except HallError:
            assert (snapshot(site.county), snapshot(site.town)) == before, label
        except Exception as exc:  # noqa: BLE001  (the failure this test looks for)
            pytest.fail(f"{rpc} {label}: {type(exc).__name__}: {exc!s:.200}")
