"""Privacy and ownership of what matters publishes (issue 13, items 5 and 1): phones and ID
numbers normalised wherever they are hashed, masked or looked up; free text scrubbed before
it enters ``application_summaries``; every replicated record's id carries its origin site."""

from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from services.common.clock import ManualClock
from services.common.privacy import resident_id_check
from services.matters.app import MattersApp
from services.matters.service import MattersService
from services.matters.settings import MattersSettings
from tests.conftest import MakeContext

pytestmark = pytest.mark.unit

SEED = str(Path(__file__).parents[2] / "services" / "matters" / "seed" / "catalog.yaml")
TRANSFER = "0700018002421302001"  # 承诺件, 3 working days
RELEASE = "0700018004421302001"  # 即办件
SHANGHAI = ZoneInfo("Asia/Shanghai")
PERSON_ID = "42130219900101123" + resident_id_check("42130219900101123")
X_ID = "11010519491231002X"  # check character X


@pytest.fixture
def app(make_context: MakeContext, clock: ManualClock, store_uri: str) -> MattersApp:
    clock.set(datetime(2025, 9, 1, 9, tzinfo=SHANGHAI))
    section = {"seed_catalog": SEED}
    ctx = make_context("matters", section=section, store_uri=store_uri)
    built = MattersApp(ctx, MattersSettings.from_section(section, ctx.identity.tier), clock)
    built.start()
    return built


def submit(app: MattersApp, code: str = TRANSFER, **applicant: Any) -> dict[str, Any]:
    current = app.repo.current(code)
    assert current is not None
    view, _ = app.submit(
        {
            "matter_code": code,
            "applicant": {"kind": "person", "name": "张三丰", "id_number": PERSON_ID, **applicant},
            "channel": "window",
            "materials": [{"name": m["name"]} for m in current["materials"] if m["required"]],
        }
    )
    return view


def test_overdue_reason_is_scrubbed_before_it_is_published(
    app: MattersApp, clock: ManualClock
) -> None:
    view = submit(app)
    app.start_review(view["id"])
    app.decide(view["id"], "approve")
    clock.set(datetime(2025, 9, 10, 9, tzinfo=SHANGHAI))  # past the due date 2025-09-04
    reason = "申请人（+86 138-1234-5678，身份证 110105 19491231 002x）逾期补正"
    done, _ = app.complete(view["id"], reason, "准予登记")
    assert done["overdue_reason"] == reason  # kept in clear at the site itself
    summary = app.repo.summaries.get(view["id"])
    assert summary is not None
    published = summary["overdue_reason"]
    assert "5678" in published
    assert "1234" not in published
    assert "19491231" not in published
    assert published.startswith("申请人（")
    assert "逾期补正" in published
    # the feed other services and sites read carries the same scrubbed text
    page = app.context.store.collection("application_summaries").changes_since(0, 500)
    assert all("19491231" not in str(doc) and "1234-5678" not in str(doc) for doc in page)


def test_phones_and_id_numbers_normalised_before_hashing_and_masking(app: MattersApp) -> None:
    plain = submit(app, RELEASE, phone="13812345678")
    for typed in ("+86 138-1234-5678", "１３８１２３４５６７８", "0086 138 1234 5678"):
        other = submit(app, RELEASE, phone=typed)
        assert other["applicant"]["phone_masked"] == "138****5678"
        stored, first = app.repo.application(other["id"]), app.repo.application(plain["id"])
        assert stored is not None
        assert first is not None
        assert stored["applicant"]["phone_hash"] == first["applicant"]["phone_hash"]
    lower = submit(app, RELEASE, id_number=X_ID.lower())
    spaced = submit(app, RELEASE, id_number="110105 19491231 002X")
    assert (
        lower["applicant"]["id_masked"] == spaced["applicant"]["id_masked"] == "1101**********002X"
    )
    found = app.list_applications({"applicant_id_number": "１１０１０５１９４９１２３１００２ｘ"})
    assert {a["id"] for a in found["items"]} == {lower["id"], spaced["id"]}


def test_every_replicated_record_id_carries_its_origin_site(app: MattersApp) -> None:
    """Application ids are ``<site>-<uuid>``; the summary (replicated up) keeps that id and
    the invitation is ``application:<id>``: the site code is one ``-``/``:`` segment of
    each, so two sites can never write the same id. The catalog only flows down from the
    one catalog source (``apply_catalog``), never through ``replicated_feeds``. A 代办
    request keeps its application's id (tests/unit/test_matters_proxy.py)."""
    assert MattersService.replicated_feeds == ("application_summaries", "proxy_requests")
    submit(app, RELEASE)  # completed at once: summary and invitation
    submit(app)
    code = app.identity.code
    summaries = app.repo.summaries.find({})
    invitations = app.repo.invitations.find({})
    assert len(summaries) == 2
    assert len(invitations) == 1
    for record in [*summaries, *invitations]:
        assert record["site_code"] == code
        assert code in re.split(r"[-:]", record["id"])
    assert all(re.fullmatch(rf"{code}-[0-9a-f]{{32}}", s["id"]) for s in summaries)
