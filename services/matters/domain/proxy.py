"""代办 across tiers: an application a station only proxies travels to the site that
handles it, and what that site does comes back (docs/architecture.md, "代办 across tiers").

Three documents, each written by one site only:

- the application at the **proxy site** (the village that took it in): state ``forwarded``
  until the handling site has looked at it, then a mirror of the handling site's state;
  ``handled_by`` names that site. Its summary is the one that counts in the statistics.
- the **request** (``proxy_requests``, feed, replicated up hop by hop): what the handling
  site needs to see, field by field in ``request_of``. Version = ``request_version`` (a
  new one only when the village sends materials again).
- the **handling copy** at the handling site (in ``applications``, ``proxy`` set): handled
  there like any application, under the village's acceptance day; no summary and no
  invitation of its own (the application counts once, at the village).
- the **outcome** (``proxy_outcomes``, feed, pulled down hop by hop): the handling copy's
  state and notices as the village shows them, field by field in ``outcome_of``.

Standard library only.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from services.common.errors import Conflict
from services.common.privacy import scrub_text
from services.common.site import Tier, ancestor_at, tier_of
from services.matters.domain.applications import SCHEMA, TRANSITIONS
from services.matters.domain.records import ApplicationRecord

FORWARDED = "forwarded"
# The proxy site's clock while the handling site counts the time limit: its gauges leave
# the application to the site that handles it (each overdue application counted once).
CLOCK_ELSEWHERE = "elsewhere"
# What a clerk at the proxy site may still do; everything else is the handling site's.
PROXY_SITE_ACTIONS = frozenset({"supplement", "deliver"})
# What the handling site leaves to the proxy site (the citizen and the papers are there).
HANDLING_SITE_REFUSES = {
    "supplement": "补正材料由代办站点 {site} 收取后转报",
    "deliver": "办理结果由代办站点 {site} 送达申请人",
}
# The handling copy's fields the proxy site mirrors (free text scrubbed on the way).
MIRRORED = (
    "state",
    "due_date",
    "accepted_on",
    "accepted_at",
    "suspended_days",
    "decision",
    "decided_at",
    "completed_at",
    "completed_on",
    "overdue",
)
FREE_TEXT = ("decision_reason", "overdue_reason", "result")


def handling_site(origin: str, handled_at: Iterable[str]) -> str | None:
    """The nearest site above ``origin`` at a tier that handles the matter, or None."""
    tiers = set(handled_at)
    for tier in reversed(Tier):  # nearest first: town before county before city
        if tier.value in tiers and tier.rank < tier_of(origin).rank:
            found = ancestor_at(origin, tier)
            if found is not None:
                return found
    return None


def require_at_desk(doc: Mapping[str, Any], action: str) -> None:
    """Refuse a clerk's ``action`` that belongs to the other end of a 代办 application."""
    verb = TRANSITIONS[action][1]
    handled_by = doc.get("handled_by")
    if handled_by and action not in PROXY_SITE_ACTIONS:
        message = f"该办件已转报站点 {handled_by} 办理，本站不能{verb}"
        raise Conflict(message, {"state": [message]})
    proxy = doc.get("proxy")
    if proxy and action in HANDLING_SITE_REFUSES:
        message = HANDLING_SITE_REFUSES[action].format(site=proxy["site_code"])
        raise Conflict(message, {"state": [message]})


def request_of(doc: ApplicationRecord) -> dict[str, Any]:
    """The request the handling site receives: no ID number, no phone, no hash keyed by
    the village's salt; the applicant only by kind and masked name."""
    return {
        "id": doc["id"],
        "version": doc["request_version"],
        "schema": SCHEMA,
        "site_code": doc["site_code"],
        "handling_site": doc["handled_by"],
        "number": doc["number"],
        "matter_code": doc["matter_code"],
        "matter_version": doc["matter_version"],
        "matter_name": doc["matter_name"],
        "received_on": doc["received_on"],
        "applicant_kind": doc["applicant"]["kind"],
        "applicant_name_masked": doc["applicant"]["name"],
        "materials": [_material(m) for m in doc["materials"]],
        "created_at": doc["created_at"],
        "updated_at": doc["updated_at"],
    }


def _material(item: Mapping[str, Any]) -> dict[str, Any]:
    # ``material``, not ``name``: sync drops every ``name`` key on the way up (a person's)
    kept = {"material": item["name"], "valid": item.get("valid", True)}
    if item.get("problem"):
        kept["problem"] = scrub_text(str(item["problem"]))
    return kept


def presented(request: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The materials of a request as the desk check reads them."""
    found = []
    for item in request["materials"]:
        material = {"name": item["material"], "valid": item.get("valid", True)}
        if item.get("problem"):
            material["problem"] = item["problem"]
        found.append(material)
    return found


def outcome_of(doc: ApplicationRecord) -> dict[str, Any]:
    """What goes back to the proxy site from the handling copy ``doc``."""
    outcome: dict[str, Any] = {
        "id": doc["id"],
        "version": doc["version"],
        "schema": SCHEMA,
        "site_code": doc["site_code"],
        "proxy_site": doc["proxy"]["site_code"],
        "number": doc["number"],
        "request_version": doc["proxy"]["request_version"],
        "clock": doc["clock"],
        "notices": doc["notices"],
        "supplement_notice": doc.get("supplement_notice"),
        "receipt": doc.get("receipt"),
        "refusal": doc.get("refusal"),
        "suspensions": [_suspension(p) for p in doc["suspensions"]],
        # every step taken there (the feed keeps only the newest outcome of each
        # application: a village offline for a week still learns each change and when)
        "history": doc["history"],
        "updated_at": doc["updated_at"],
    }
    for key in MIRRORED:
        outcome[key] = doc.get(key)
    for key in FREE_TEXT:
        value = doc.get(key)
        outcome[key] = scrub_text(str(value)) if value else value
    return outcome


def _suspension(period: Mapping[str, Any]) -> dict[str, Any]:
    note = period.get("note")
    return {**period, "note": scrub_text(note) if note else note}


def mirrored(doc: ApplicationRecord, outcome: Mapping[str, Any]) -> dict[str, Any]:
    """The proxy site's changes from a newer ``outcome`` of its application ``doc``."""
    changes = {key: outcome.get(key) for key in (*MIRRORED, *FREE_TEXT)}
    changes.update(
        notices=outcome.get("notices") or [],
        supplement_notice=outcome.get("supplement_notice"),
        suspensions=outcome.get("suspensions") or [],
        handling_version=outcome["version"],
        handling_history=outcome.get("history") or [],
        handling_clock=outcome.get("clock"),
        clock=CLOCK_ELSEWHERE,
    )
    for key in ("receipt", "refusal"):
        if outcome.get(key) is not None:
            changes[key] = outcome[key]
    if outcome.get("state") == "supplement_required" and (
        int(outcome.get("request_version") or 0) < int(doc["request_version"])
    ):
        # materials sent again since: the handling site has not looked at them yet
        changes["state"] = FORWARDED
    return changes


def outcome_problem(doc: ApplicationRecord | None, outcome: Mapping[str, Any]) -> str | None:
    """Why the proxy site cannot take ``outcome``, or None."""
    if doc is None:
        return f"本站没有办件 {outcome['id']}"
    if doc.get("handled_by") != outcome["site_code"]:
        sent_to, came_from = doc.get("handled_by"), outcome["site_code"]
        return f"办件 {doc['number']} 转报给了站点 {sent_to}，不是 {came_from}"
    return None
