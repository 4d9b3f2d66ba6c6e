"""The role table (docs/security.md): every RPC of every service called by every kind of
principal, allowed or refused as written here. An RPC missing from a service's table, or
from this test's table, fails; so does any change of who may call what."""

from __future__ import annotations

import inspect
import re
from pathlib import Path
from typing import Any

import pytest

from services.common.access import Rule, Throttle, authorise
from services.common.errors import Forbidden, TooManyRequests
from services.common.identity import Kind, Principal
from services.gateway.service import GatewayService
from services.matters.service import MattersService
from services.queue.service import QueueService
from services.rating.service import RatingService
from services.sync.service import SyncService

pytestmark = pytest.mark.unit

SITE = "421302"
WINDOW = "3"
SERVICES = {
    s.name: s for s in (MattersService, QueueService, RatingService, SyncService, GatewayService)
}


def staff(*roles: str) -> Principal:
    return Principal(Kind.STAFF, "s-1", SITE, frozenset(roles), WINDOW)


# One letter per kind of caller.
CALLERS: dict[str, Principal | None] = {
    "A": None,  # anonymous: no identity at all
    "C": staff("clerk"),
    "M": staff("manager"),
    "S": staff("supervisor"),
    "E": staff("catalog_editor"),
    "D": staff("admin"),
    "K": Principal(Kind.DEVICE, "kiosk-1", SITE, frozenset({"kiosk"})),
    "B": Principal(Kind.DEVICE, "board-1", SITE, frozenset({"board"})),
    "P": Principal(Kind.DEVICE, "pad-3", SITE, frozenset({"pad"}), WINDOW),
    "O": Principal(Kind.OPERATOR, "hallctl", ""),
    "Y": Principal(Kind.SERVICE, "sync", SITE),
    "R": Principal(Kind.SERVICE, "rating", SITE),
    "G": Principal(Kind.SERVICE, "gateway", SITE),
}
ALL = "ACMSEDKBPOYRG"

BASE = {"site_info": ALL, "feed": "SOYRG", "apply_replicated": "OY"}
EXPECTED: dict[str, dict[str, str]] = {
    "matters": {
        **BASE,
        "save_matter_draft": "EO",
        "approve_matter_change": "EO",
        "publish_matter": "EO",
        "retire_matter": "EO",
        "list_unpublished_changes": "EO",
        "get_matter": ALL,
        "search_matters": ALL,
        "catalog_changes": ALL,
        "apply_catalog": "OY",
        "apply_proxy_outcomes": "OY",
        "set_local_availability": "MO",
        "submit_application": "CMO",
        "supplement_application": "CMO",
        "refuse_application": "CMO",
        "start_review": "CMO",
        "decide_application": "CMO",
        "complete_application": "CMO",
        "deliver_application": "CMO",
        "suspend_application": "CMO",
        "resume_application": "CMO",
        "get_application": "CMSO",
        "list_applications": "CMSO",
        "application_progress": "OG",  # a citizen's 办件进度, throttled by the gateway
    },
    "queue": {
        **BASE,
        "configure": "MO",
        "configuration": "CMSKBO",
        "take_ticket": "CMKO",
        "ticket": "CMSKBOG",
        "ticket_history": "CMSO",
        "today_figures": "CMSO",
        "subtree_figures": "MSO",  # the dashboard, as the signed-in person
        "window_today": "CMSO",
        "slots": ALL,
        "book": "CMKO",
        "booking": "CMKO",
        "cancel_booking": "CMKO",
        "check_in": "CMKO",
        **dict.fromkeys(["call_next", "recall", "start_service", "complete", "no_show"], "CMO"),
        **dict.fromkeys(["requeue", "transfer", "hold", "resume", "cancel"], "CMO"),
        **dict.fromkeys(
            ["sign_in", "sign_out", "open_window", "pause_window", "close_window"], "CMO"
        ),
        "close_day": "MO",
        "windows": "CMSKBPO",
        "board": "CMSKBOG",
    },
    "rating": {
        **BASE,
        "submit_evaluation": "CMKPOG",  # G: a citizen's phone (qr_code)
        "pending_for_window": "CMPO",
        "invitation_status": "OG",
        "get_evaluation": "CMSO",
        "review_held": "MSO",
        "list_cases": "CMSO",
        "get_case": "CMSO",
        "assign_case": "MSO",
        "record_callback": "CMSO",
        "classify_case": "CMSO",
        "record_rectification": "CMSO",
        "record_feedback": "CMSO",
        "appeal": "CMSO",
        "review_appeal": "SO",
        "reveal_phone": "CMS",  # a person only: not even the operator
        "reveal_audit": "MSO",
        "stats": "MSO",
        "rankings": "MSO",
        "export": "MSO",
        "public_report": ALL,
    },
    "sync": {
        **BASE,
        **dict.fromkeys(
            ["push_now", "reconcile_now", "check_key", "parked", "retry_parked", "ping_upstream"],
            "O",
        ),
        "status": "MSO",  # the dashboard's sync columns, as the signed-in person
        "ingest": ALL,  # a child: the batch carries the child's own signature
        "verify_key": ALL,
        "reconcile_counts": ALL,
        "proxy_outcomes": ALL,  # signed by the child; only its subtree's outcomes
        "catalog_changes": ALL,
    },
    "gateway": {  # people and devices reach it over HTTP; its RPCs manage accounts
        **BASE,
        **dict.fromkeys(
            [
                "add_staff",
                "disable_staff",
                "reset_password",
                "list_staff",
                "create_pairing",
                "revoke_device",
                "list_devices",
                "audit",
            ],
            "O",
        ),
    },
}


def rpc_methods(service: type) -> list[str]:
    """The methods of ``service`` that are RPC entrypoints (inherited ones included)."""
    return sorted(
        name
        for name, member in inspect.getmembers(service, inspect.isfunction)
        if any(type(e).__name__ == "Rpc" for e in getattr(member, "nameko_entrypoints", ()))
    )


def arguments(service: type, method: str) -> dict[str, Any]:
    """A call's arguments: the caller's own window, mappings empty, the rest unset."""
    parameters = list(inspect.signature(getattr(service, method)).parameters.values())[1:]
    return {
        p.name: WINDOW if p.name == "window" else {} if "dict" in str(p.annotation) else None
        for p in parameters
    }


def allowed(
    table: dict[str, Rule], method: str, caller: Principal | None, args: dict[str, Any]
) -> bool:
    try:
        authorise(table, method, caller, args)
    except Forbidden:  # Unauthenticated is one
        return False
    return True


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_every_rpc_is_in_the_service_table_and_in_this_one(name: str) -> None:
    methods = rpc_methods(SERVICES[name])
    assert len(methods) > 5
    assert sorted(SERVICES[name].access) == methods
    assert sorted(EXPECTED[name]) == methods


DOC = Path(__file__).resolve().parents[2] / "docs" / "security.md"
DOC_ROW = re.compile(r"^\| (\w+) \| (`[^|]+) \|", re.MULTILINE)


def documented() -> dict[str, set[str]]:
    """The RPCs each row of docs/security.md's role table names, by service ("all": every
    service)."""
    named: dict[str, set[str]] = {}
    for service, cell in DOC_ROW.findall(DOC.read_text(encoding="utf-8")):
        named.setdefault(service, set()).update(re.findall(r"`(\w+)`", cell))
    return named


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_the_documented_role_table_names_every_rpc_and_no_other(name: str) -> None:
    named = documented()
    assert set(named) <= {*SERVICES, "all"}, "a row of the role table names no service"
    mine = named.get(name, set()) | named.get("all", set())
    methods = set(rpc_methods(SERVICES[name]))
    assert sorted(methods - mine) == [], "RPCs docs/security.md's role table does not name"
    assert sorted(mine - methods) == [], "names in docs/security.md's role table that are no RPC"


@pytest.mark.parametrize(
    ("name", "method"), [(n, m) for n in sorted(SERVICES) for m in rpc_methods(SERVICES[n])]
)
def test_each_kind_of_caller_is_allowed_or_refused_as_the_table_says(
    name: str, method: str
) -> None:
    service = SERVICES[name]
    got = "".join(
        letter
        for letter, caller in CALLERS.items()
        if allowed(service.access, method, caller, arguments(service, method))
    )
    assert got == "".join(c for c in ALL if c in EXPECTED[name][method])


def test_a_method_missing_from_the_table_is_refused_to_everyone() -> None:
    for caller in CALLERS.values():
        assert not allowed(QueueService.access, "drop_all_tickets", caller, {})


# --- the actor comes from the principal ----------------------------------------------------


def test_staff_act_as_themselves_and_cannot_name_someone_else() -> None:
    clerk = CALLERS["C"]
    args: dict[str, Any] = {"ticket_id": "t1", "window": None, "by": None}
    authorise(QueueService.access, "recall", clerk, args)
    assert args == {"ticket_id": "t1", "window": WINDOW, "by": "s-1"}  # filled in
    with pytest.raises(Forbidden) as caught:
        authorise(QueueService.access, "recall", clerk, {"ticket_id": "t1", "by": "s-2"})
    assert "by" in caught.value.fields
    nested = {"assignment": {"case_id": "c1", "handler": "s-1", "by": "s-9"}}
    with pytest.raises(Forbidden):
        authorise(RatingService.access, "assign_case", CALLERS["M"], nested)


def test_a_clerk_works_only_at_the_window_signed_in_at_a_manager_at_any() -> None:
    with pytest.raises(Forbidden) as caught:
        authorise(QueueService.access, "call_next", CALLERS["C"], {"window": "7"})
    assert "window" in caught.value.fields
    unsigned = Principal(Kind.STAFF, "s-1", SITE, frozenset({"clerk"}))
    with pytest.raises(Forbidden, match="签到"):
        authorise(QueueService.access, "call_next", unsigned, {"window": WINDOW})
    args: dict[str, Any] = {"window": "7", "by": None}
    authorise(QueueService.access, "close_window", CALLERS["M"], args)
    assert args == {"window": "7", "by": "s-1"}


def test_a_pad_rates_only_for_its_own_window() -> None:
    pad = CALLERS["P"]
    with pytest.raises(Forbidden):
        authorise(RatingService.access, "pending_for_window", pad, {"window": "4"})
    evaluation: dict[str, Any] = {"evaluation": {"level": "5"}}
    authorise(RatingService.access, "submit_evaluation", pad, evaluation)
    assert evaluation["evaluation"]["window"] == WINDOW
    other = {"evaluation": {"level": "5", "window": "4"}}
    with pytest.raises(Forbidden):
        authorise(RatingService.access, "submit_evaluation", pad, other)
    entered = {"evaluation": {"level": "5", "entered_by": "s-1"}}
    with pytest.raises(Forbidden):  # a device names no person as the one who entered it
        authorise(RatingService.access, "submit_evaluation", pad, entered)


def test_a_rating_channel_is_the_devices_own_and_nobody_claims_a_devices_channel() -> None:
    as_pad: dict[str, Any] = {"evaluation": {"level": "5"}}
    authorise(RatingService.access, "submit_evaluation", CALLERS["P"], as_pad)
    assert as_pad["evaluation"]["channel"] == "pad"  # filled in from the device
    as_kiosk: dict[str, Any] = {"evaluation": {"level": "5"}}
    authorise(RatingService.access, "submit_evaluation", CALLERS["K"], as_kiosk)
    assert as_kiosk["evaluation"]["channel"] == "self_service"
    for caller in ("K", "C"):  # a kiosk or a clerk passing a rating off as the pad's
        forged = {"evaluation": {"level": "5", "channel": "pad"}}
        with pytest.raises(Forbidden) as caught:
            authorise(RatingService.access, "submit_evaluation", CALLERS[caller], forged)
        assert "evaluation.channel" in caught.value.fields
    paper: dict[str, Any] = {"evaluation": {"level": "5", "channel": "paper"}}
    authorise(RatingService.access, "submit_evaluation", CALLERS["C"], paper)
    assert paper["evaluation"]["channel"] == "paper"
    for caller in ("C", "M"):  # a person passing a rating off as a citizen's phone
        phone = {"evaluation": {"level": "5", "channel": "qr_code"}}
        with pytest.raises(Forbidden):
            authorise(RatingService.access, "submit_evaluation", CALLERS[caller], phone)
    as_gateway: dict[str, Any] = {"evaluation": {"level": "5", "channel": "qr_code"}}
    authorise(RatingService.access, "submit_evaluation", CALLERS["G"], as_gateway)


def test_an_approver_must_be_the_manager_making_the_call() -> None:
    by_handler = {"classification": {"case_id": "c1", "approver": "chief"}}
    with pytest.raises(Forbidden) as caught:
        authorise(RatingService.access, "classify_case", CALLERS["C"], by_handler)
    assert "classification.approver" in caught.value.fields
    chief = Principal(Kind.STAFF, "chief", SITE, frozenset({"manager"}))
    own = {"classification": {"case_id": "c1", "approver": "chief"}}
    authorise(RatingService.access, "classify_case", chief, own)
    assert own["classification"]["by"] == "chief"


def test_the_operator_names_the_staff_member_it_acts_for() -> None:
    args: dict[str, Any] = {"window": "7", "staff_id": "s-5"}
    authorise(QueueService.access, "call_next", CALLERS["O"], args)
    assert args == {"window": "7", "staff_id": "s-5"}


def test_a_throttled_lookup_is_refused_past_its_limit_and_allowed_again_later() -> None:
    throttle = Throttle(3)
    for second in (0.0, 1.0, 2.0):
        throttle.admit("staff:s-1", second)
    with pytest.raises(TooManyRequests) as caught:
        throttle.admit("staff:s-1", 30.0)
    assert "31 秒后" in caught.value.message
    throttle.admit("staff:s-2", 30.0)  # another caller has its own count
    throttle.admit("staff:s-1", 60.5)  # the first call left the window
    assert MattersService.access["list_applications"].per_minute == 30
