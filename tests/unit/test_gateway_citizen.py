"""The citizen's phone pages' use cases (services/gateway/citizen.py) on real apps: a
``GatewayApp``, a ``RatingApp`` and a ``MattersApp``, each on its own SQLite store, the
gateway's calls checked against the services' role tables as ``service:gateway``.

Capability links: a ticket's token never passes as an application's (nor the other way),
an altered one names nothing. Rating from the phone: only once the service has ended, the
service and the ``qr_code`` channel from the link, fields a citizen injects refused, one
evaluation for a retried request, a second rating refused. Progress: the same refusal for
an unknown number and a wrong ID suffix, a lock after repeated wrong guesses from one
address, nothing personal in the answer."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from services.common.access import authorise
from services.common.clock import ManualClock, iso
from services.common.errors import Conflict, Forbidden, InvalidInput, NotFound, TooManyRequests
from services.common.identity import Kind, Principal
from services.common.privacy import resident_id_check
from services.gateway import domain
from services.gateway.app import GatewayApp
from services.gateway.citizen import NO_LINK, NOT_FOUND, NOT_YET, RATED, Citizens
from services.gateway.settings import GatewaySettings
from services.matters.access import ACCESS as MATTERS_ACCESS
from services.matters.app import MattersApp
from services.matters.settings import MattersSettings
from services.rating.access import ACCESS as RATING_ACCESS
from services.rating.app import RatingApp
from services.rating.settings import RatingSettings
from tests.conftest import MakeContext

pytestmark = pytest.mark.unit

SITE = "421302"
SEED = str(Path(__file__).parents[2] / "services" / "matters" / "seed" / "catalog.yaml")
TRANSFER = "0700018002421302001"  # 承诺件, 3 working days
PERSON_ID = "42130219900101123" + resident_id_check("42130219900101123")
ADDRESS = "192.0.2.7"
GATEWAY = Principal(Kind.SERVICE, "gateway", SITE)


class Hall:
    """The three apps, and the gateway's ``call`` reaching the other two as itself."""

    def __init__(self, make_context: MakeContext, clock: ManualClock) -> None:
        self.clock = clock
        self.gateway = GatewayApp(make_context("gateway"), GatewaySettings(), clock)
        self.rating = RatingApp(
            make_context("rating"), RatingSettings(privacy_salt="test-salt-0123456789"), clock
        )
        section = {"seed_catalog": SEED}
        ctx = make_context("matters", section=section)
        self.matters = MattersApp(
            ctx, MattersSettings.from_section(section, ctx.identity.tier), clock
        )
        self.matters.start()
        self.calls: list[tuple[str, str]] = []

    def call(self, service: str, method: str, *args: Any) -> Any:
        self.calls.append((service, method))
        table, app, name = {
            ("rating", "invitation_status"): (RATING_ACCESS, self.rating, "invitation_status"),
            ("rating", "submit_evaluation"): (RATING_ACCESS, self.rating, "submit"),
            ("matters", "application_progress"): (
                MATTERS_ACCESS,
                self.matters,
                "application_progress",
            ),
        }[(service, method)]
        authorise(table, method, GATEWAY, {})
        return getattr(app, name)(*args)

    def citizens(self) -> Citizens:
        return Citizens(self.gateway, self.call)

    def invite_ticket(self, ticket_id: str) -> None:
        ended = iso(self.clock())
        invitation = {
            "id": f"ticket:{ticket_id}",
            "schema": 1,
            "version": 1,
            "_seq": 1,
            "service_ref": {"kind": "ticket", "id": ticket_id},
            "site_code": SITE,
            "window": "3",
            "staff_id": "S3",
            "matter_code": None,
            "department": None,
            "service_channel": "window",
            "service_ended_at": ended,
            "created_at": ended,
        }
        assert self.rating.apply_invitations("queue", [invitation]) == 1

    def application(self, **applicant: Any) -> dict[str, Any]:
        current = self.matters.repo.current(TRANSFER)
        assert current is not None
        view, _ = self.matters.submit(
            {
                "matter_code": TRANSFER,
                "applicant": {
                    "kind": "person",
                    "name": "张三丰",
                    "id_number": PERSON_ID,
                    "phone": "13812345678",
                    **applicant,
                },
                "channel": "window",
                "materials": [{"name": m["name"]} for m in current["materials"] if m["required"]],
                "window": "3",
                "staff_id": "S3",
            }
        )
        return view


@pytest.fixture
def hall(make_context: MakeContext, clock: ManualClock) -> Hall:
    return Hall(make_context, clock)


def choices(**extra: Any) -> dict[str, Any]:
    return {"level": "satisfied", "request_id": "qr-1", **extra}


# --- capability links ----------------------------------------------------------------------


def test_a_ticket_token_never_passes_as_an_application_token_nor_back(hall: Hall) -> None:
    key = hall.gateway.keys().secret
    citizens = hall.citizens()
    ticket, application = domain.ticket_link(key, "T1"), citizens.token("application", "T1")
    assert ticket != application
    assert domain.ref_of_link(key, "application", ticket) is None
    assert domain.ref_of_link(key, "ticket", application) is None
    assert domain.ticket_of_link(key, application) is None
    assert citizens.rated(ticket) == ("ticket", "T1")
    assert citizens.rated(application) == ("application", "T1")
    # the ticket page's token is the ticket link's, as printed on slips before this change
    assert hall.gateway.ticket_of(ticket) == "T1"


@pytest.mark.parametrize(
    "forge",
    [
        lambda t: t[:-1] + ("0" if t[-1] != "0" else "1"),  # the MAC altered
        lambda t: domain.capability_link(b"another-site-key-0123456789", "ticket", "T1"),
        lambda t: "VDI." + t.partition(".")[2],  # another id under the same MAC
        lambda t: "%%%." + t.partition(".")[2],
        lambda t: t + "." * 600,
    ],
)
def test_a_forged_token_names_nothing(hall: Hall, forge: Callable[[str], str]) -> None:
    citizens = hall.citizens()
    forged = forge(domain.ticket_link(hall.gateway.keys().secret, "T1"))
    with pytest.raises(NotFound) as caught:
        citizens.rated(forged)
    assert caught.value.message == NO_LINK
    with pytest.raises(NotFound):
        citizens.rate(forged, choices())
    assert hall.calls == []  # nothing asked of rating for a forged link


# --- rating from the phone -----------------------------------------------------------------


def test_a_ticket_is_rated_once_from_its_link_with_the_qr_code_channel(hall: Hall) -> None:
    citizens = hall.citizens()
    token = domain.ticket_link(hall.gateway.keys().secret, f"{SITE}-t1")
    assert citizens.rating_state(token) == "none"
    with pytest.raises(Conflict) as caught:
        citizens.rate(token, choices())
    assert caught.value.message == NOT_YET

    hall.invite_ticket(f"{SITE}-t1")
    assert citizens.rating_state(token) == "open"
    bad = choices(level="very_dissatisfied", tags=["服务态度"], text="等太久", phone="13812345678")
    assert citizens.rate(token, bad) == {"level": "very_dissatisfied", "level_zh": "非常不满意"}
    stored = hall.rating.get_evaluation(f"ev:{SITE}:ticket:{SITE}-t1:1")
    assert stored["channel"] == "qr_code"
    assert stored["service_ref"] == {"kind": "ticket", "id": f"{SITE}-t1"}
    assert (stored["window"], stored["staff_id"]) == ("3", "S3")  # from the invitation
    assert stored["reasons"]["tags"] == ["服务态度"]
    assert stored["rater"]["phone_masked"] == "138****5678"
    assert citizens.rating_state(token) == "answered"

    # a lost reply re-sent: the first result, nothing more stored
    assert citizens.rate(token, bad)["level"] == "very_dissatisfied"
    with pytest.raises(Conflict) as caught:  # a second rating: calm words, none stored
        citizens.rate(token, choices(request_id="qr-2"))
    assert caught.value.message == RATED
    with pytest.raises(NotFound):
        hall.rating.get_evaluation(f"ev:{SITE}:ticket:{SITE}-t1:2")


@pytest.mark.parametrize(
    "injected",
    [
        {"window": "9"},
        {"staff_id": "S9"},
        {"channel": "pad"},
        {"service_ref": {"kind": "ticket", "id": "other"}},
        {"invitation_id": "ticket:other"},
        {"entered_by": "S9"},
    ],
)
def test_fields_a_citizen_injects_are_refused(hall: Hall, injected: dict[str, Any]) -> None:
    hall.invite_ticket(f"{SITE}-t2")
    token = domain.ticket_link(hall.gateway.keys().secret, f"{SITE}-t2")
    with pytest.raises(InvalidInput) as caught:
        hall.citizens().rate(token, choices(**injected))
    assert set(injected) <= set(caught.value.fields)
    assert hall.rating.invitation_status("ticket", f"{SITE}-t2")["state"] == "open"


def test_nobody_but_the_gateway_claims_the_qr_code_channel() -> None:
    evaluation = {"service_ref": {"kind": "ticket", "id": "t"}, "channel": "qr_code"}
    for roles in ({"clerk"}, {"manager"}):
        clerk = Principal(Kind.STAFF, "S1", SITE, frozenset(roles), "3")
        with pytest.raises(Forbidden):
            authorise(RATING_ACCESS, "submit_evaluation", clerk, {"evaluation": dict(evaluation)})
    kiosk = Principal(Kind.DEVICE, "kiosk-1", SITE, frozenset({"kiosk"}))
    with pytest.raises(Forbidden):
        authorise(RATING_ACCESS, "submit_evaluation", kiosk, {"evaluation": dict(evaluation)})
    authorise(RATING_ACCESS, "submit_evaluation", GATEWAY, {"evaluation": dict(evaluation)})
    sync = Principal(Kind.SERVICE, "sync", SITE)
    with pytest.raises(Forbidden):
        authorise(RATING_ACCESS, "submit_evaluation", sync, {"evaluation": dict(evaluation)})


def test_an_application_is_rated_from_its_receipt_link_once_completed(hall: Hall) -> None:
    application = hall.application()
    citizens = hall.citizens()
    token = citizens.token("application", application["id"])
    assert citizens.rating_state(token) == "none"  # accepted, not completed
    hall.matters.start_review(application["id"])
    hall.matters.decide(application["id"], "approve")
    hall.matters.complete(application["id"])
    invitations = hall.matters.repo.invitations.find({})
    assert hall.rating.apply_invitations("matters", invitations) == 1
    citizens.rate(token, choices(level="very_satisfied"))
    stored = hall.rating.get_evaluation(f"ev:{SITE}:application:{application['id']}:1")
    assert (stored["channel"], stored["level"]) == ("qr_code", "very_satisfied")
    assert stored["matter_code"] == TRANSFER
    # the same id through a ticket link is another service, never this one
    as_ticket = domain.ticket_link(hall.gateway.keys().secret, application["id"])
    assert citizens.rating_state(as_ticket) == "none"


# --- an application's progress -------------------------------------------------------------


def test_progress_shows_the_state_and_dates_and_nothing_personal(hall: Hall) -> None:
    application = hall.application()
    suffix = PERSON_ID[-6:]
    found = hall.citizens().progress(
        {"number": application["number"], "id_suffix": suffix}, ADDRESS
    )
    assert found["matter_name"] == application["matter_name"]
    assert (found["state"], found["state_name"]) == ("accepted", "已受理")
    assert found["accepted_on"] == application["accepted_on"]
    assert found["due_date"] == application["due_date"]
    assert found["due_state_name"] in ("正常", "即将到期")
    text = repr(found)
    for personal in ("张", PERSON_ID[-4:], "19900101", "****", "1381", "5678", "S3", "applicant"):
        assert personal not in text
    # the stored record keeps a keyed hash of the suffix, never the suffix in clear
    doc = hall.matters.repo.application(application["id"])
    assert doc is not None
    assert suffix not in repr({k: v for k, v in doc.items() if k != "applicant"})
    assert "applicant_suffix_hash" not in hall.matters.get_application(application["id"])


def test_a_lower_case_x_matches_and_the_one_time_notice_is_shown(hall: Hall) -> None:
    ends_in_x = next(
        body + "X"
        for body in (f"4213021990010{n:04d}" for n in range(10_000))
        if resident_id_check(body) == "X"
    )
    view, _ = hall.matters.submit(
        {
            "matter_code": TRANSFER,
            "applicant": {"kind": "person", "name": "李四", "id_number": ends_in_x},
            "channel": "window",
            "materials": [],  # every required material missing: the one-time notice
            "window": "3",
            "staff_id": "S3",
        }
    )
    found = hall.citizens().progress(
        {"number": view["number"], "id_suffix": ends_in_x[-6:].lower()}, ADDRESS
    )
    assert found["state"] == "supplement_required"
    assert found["notices"][0]["title"] == "一次性告知单"
    assert found["notices"][0]["items"]
    assert found["due_state"] is None


def test_an_unknown_number_and_a_wrong_suffix_fail_alike_and_lock_the_address(
    hall: Hall,
) -> None:
    application = hall.application()
    citizens, right = (
        hall.citizens(),
        {"number": application["number"], "id_suffix": PERSON_ID[-6:]},
    )
    wrong_suffix = {**right, "id_suffix": "000000" if PERSON_ID[-6:] != "000000" else "111111"}
    unknown = {**right, "number": right["number"][:-5] + "99999"}
    refusals = []
    for guess in (wrong_suffix, unknown):
        with pytest.raises(NotFound) as caught:
            citizens.progress(guess, ADDRESS)
        refusals.append((caught.value.message, caught.value.fields))
    assert refusals[0] == refusals[1] == (NOT_FOUND, {"number": ["未找到"]})

    for _ in range(hall.gateway.settings.lockout_failures - 2):
        with pytest.raises(NotFound):
            citizens.progress(unknown, ADDRESS)
    with pytest.raises(TooManyRequests, match="分钟后再试"):
        citizens.progress(right, ADDRESS)  # locked: even the right pair
    assert citizens.progress(right, "192.0.2.8")["state"] == "accepted"  # another address
    hall.clock.advance(minutes=hall.gateway.settings.lockout_minutes + 1)
    assert citizens.progress(right, ADDRESS)["state"] == "accepted"


def test_an_application_stored_without_the_suffix_hash_is_never_found(hall: Hall) -> None:
    application = hall.application()
    doc = hall.matters.repo.application(application["id"])
    assert doc is not None
    hall.matters.repo.update_application(
        application["id"], {"applicant_suffix_hash": None}, doc["version"]
    )
    with pytest.raises(NotFound):
        hall.matters.application_progress(application["number"], PERSON_ID[-6:])


def test_a_malformed_query_is_refused_by_its_rule(hall: Hall) -> None:
    with pytest.raises(InvalidInput) as caught:
        hall.matters.application_progress("12ab", "12345")
    assert {"number", "id_suffix"} <= set(caught.value.fields)
    with pytest.raises(InvalidInput):
        hall.citizens().progress({"number": "1", "id_suffix": "123456", "name": "x"}, ADDRESS)
