"""代办 across tiers (docs/architecture.md, "代办 across tiers"; rules in domain/proxy.py).

At the proxy site, ``forward`` turns a new application into a forwarded one, and
``apply_outcomes`` mirrors what the handling site did. At every site, ``receive_requests``
keeps the requests sync brings up: those for another site above pass on in the
``proxy_requests`` feed, those for this site go to ``proxy_intake``, which ``take_in``
follows from a checkpoint (also on every tick: a crash between storing a request and
handling it only delays it). Outcomes for a site below pass on in ``proxy_outcomes``.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from typing import Any

from services.common.errors import Conflict, InvalidInput
from services.common.site import is_proper_ancestor
from services.common.store import Doc
from services.common.store.port import OWNER_FIELDS
from services.matters.domain import CLOCK_NONE, Matter, proxy
from services.matters.domain import applications as rules
from services.matters.domain.records import ApplicationRecord
from services.matters.usecases.base import CAS_ATTEMPTS, MattersBase

INTAKE_CHECKPOINT = "proxy_intake"


class Proxy(MattersBase):
    # --- at the proxy site ------------------------------------------------------------------
    def forward(self, doc: dict[str, Any], current: Mapping[str, Any], refusal: Any) -> None:
        """Make the new application ``doc`` a forwarded one (state ``forwarded``)."""
        if refusal is not None:
            raise InvalidInput.field(
                "refusal", "代办事项是否受理由办理站点决定，本站不能作出不予受理决定"
            )
        site = proxy.handling_site(self.identity.code, current.get("handled_at") or [])
        if site is None:
            message = f"事项“{current['name']}”在本站点之上没有可办理的层级，无法代办转报"
            raise Conflict(message, {"matter_code": [message]})
        doc.update(
            state=proxy.FORWARDED,
            handled_by=site,
            request_version=1,
            received_on=self.today().isoformat(),
            clock=proxy.CLOCK_ELSEWHERE,
        )

    def resent(self, doc: ApplicationRecord, merged: list[dict[str, Any]]) -> dict[str, Any]:
        """The proxy site's supplement: the materials go to the handling site again."""
        return {
            "materials": merged,
            "state": proxy.FORWARDED,
            "request_version": int(doc["request_version"]) + 1,
            "received_on": self.today().isoformat(),
            "supplement_notice": None,
        }

    def apply_outcomes(self, docs: Any) -> tuple[int, list[str]]:
        """Outcomes pulled from upstream (by sync): this site's applications mirror theirs,
        those for a site below pass on. Every record is checked before any is applied; the
        refusal names each bad one (``docs[i]…``), so sync parks it and sends the rest again.
        Returns how many changed anything, and the invitation ids newly written."""
        if not isinstance(docs, list):
            raise InvalidInput.field("docs", "应为记录列表")
        problems: dict[str, list[str]] = {}
        mine: list[Mapping[str, Any]] = []
        passing: list[Mapping[str, Any]] = []
        for i, doc in enumerate(docs):
            problem = self._outcome_problem(doc)
            if problem is not None:
                problems[f"docs[{i}]"] = [problem]
            elif doc["proxy_site"] == self.identity.code:
                mine.append(doc)
            else:
                passing.append(doc)
        if problems:
            raise InvalidInput("代办办理结果有误，未写入", problems)
        applied = self.repo.outcomes.upsert_versioned_many(passing, owner=OWNER_FIELDS)
        invited: list[str] = []
        for doc in mine:
            written = self._mirror(doc)
            if written is not None:
                applied += 1
                invited.extend(written)
        return applied, invited

    def _outcome_problem(self, doc: Any) -> str | None:
        if not isinstance(doc, Mapping) or not all(
            isinstance(doc.get(key), str) for key in ("id", "proxy_site", "site_code")
        ):
            return "应有文字 id、proxy_site、site_code"
        if not isinstance(doc.get("version"), int):
            return "version 应为整数"
        site = doc["proxy_site"]
        if site == self.identity.code:
            return proxy.outcome_problem(self.repo.application(doc["id"]), doc)
        if not is_proper_ancestor(self.identity.code, site):
            return f"代办站点 {site} 不在本站点 {self.identity.code} 的辖区内"
        return None

    def _mirror(self, outcome: Mapping[str, Any]) -> list[str] | None:
        """Mirror a newer outcome (None: not newer); the invitation ids written."""
        for _ in range(CAS_ATTEMPTS):
            doc = self.repo.application(outcome["id"])
            assert doc is not None  # checked by _outcome_problem; applications are never deleted
            if int(doc.get("handling_version") or 0) >= outcome["version"]:
                return None
            changes = proxy.mirrored(doc, outcome)
            now = self.stamp()
            changes.update(updated_at=now, outbox_pending=True)
            entry = {"action": "handled", "state": changes["state"], "at": now}
            changes["history"] = [*doc["history"], entry]
            updated = self.repo.update_application(doc["id"], changes, doc["version"])
            if updated is not None:
                self.metrics.proxied.labels(**self.metrics.site, step="outcome_applied").inc()
                return self.flush_outbox(updated)
        raise Conflict("办件正被他人同时处理，请稍后重试")

    # --- at every site above ----------------------------------------------------------------
    def receive_requests(self, docs: list[dict[str, Any]]) -> int:
        """Requests replicated from below (``apply_replicated("proxy_requests")``)."""
        code = self.identity.code
        problems: dict[str, list[str]] = {}
        mine: list[dict[str, Any]] = []
        passing: list[dict[str, Any]] = []
        for i, doc in enumerate(docs):
            site = doc.get("handling_site")
            if site == code:
                mine.append(doc)
            elif isinstance(site, str) and is_proper_ancestor(site, code):
                passing.append(doc)
            else:
                problems[f"docs[{i}].handling_site"] = [
                    f"站点 {site} 不在本站点 {code} 之上，代办请求无法送达"
                ]
        if problems:
            raise InvalidInput("代办请求的办理站点有误", problems)
        applied = self.repo.requests.upsert_versioned_many(passing, owner=OWNER_FIELDS)
        applied += self.repo.intake.upsert_versioned_many(mine, owner=OWNER_FIELDS)
        if mine:
            self.take_in()
        return applied

    def take_in(self) -> int:
        """Handle every request for this site received since the checkpoint."""
        return self.follow(self.repo.intake, INTAKE_CHECKPOINT, self._take_in_page)

    def _take_in_page(self, requests: list[Doc]) -> None:
        for request in requests:
            self._take_in_one(request["id"])

    def _take_in_one(self, app_id: str) -> None:
        request = self.repo.intake.get(app_id)
        if request is None:
            return
        copy = self.repo.application(app_id)
        if copy is None:
            self._open_copy(request)
        elif int(request["version"]) > int(copy["proxy"]["request_version"]):
            self._take_materials(copy, request)

    def _open_copy(self, request: Doc) -> None:
        """The handling copy of a new request: the desk check here, the time limit counted
        from the proxy site's acceptance day."""
        now = self.stamp()
        doc: dict[str, Any] = {
            "id": request["id"],
            "schema": rules.SCHEMA,
            "number": request["number"],
            "site_code": self.identity.code,
            "matter_code": request["matter_code"],
            "matter_version": request["matter_version"],
            "matter_name": request["matter_name"],
            "channel": "proxy",
            "window": None,
            "staff_id": None,
            "applicant": {
                "kind": request["applicant_kind"],
                "name": request["applicant_name_masked"],
                "id_hash": "",
                "id_masked": "",
                "phone_hash": None,
                "phone_masked": None,
            },
            "applicant_hash": None,
            "materials": proxy.presented(request),
            "notices": [],
            "clock": CLOCK_NONE,
            "due_date": None,
            "suspensions": [],
            "suspended_days": 0,
            "proxy": _proxy_of(request),
            "created_at": now,
            "updated_at": now,
            "outbox_pending": True,
        }
        record = self.repo.version(request["matter_code"], request["matter_version"])
        current = self.repo.current(request["matter_code"])
        if record is None or current is None or current.get("availability") != "offered":
            doc.update(
                matter_type="",
                department=None,
                case_type="",
                promised_limit_days=0,
                legal_limit_days=0,
                **rules.refusal(
                    f"本站不办理事项“{request['matter_name']}”"
                    f"（第 {request['matter_version']} 版）",
                    "本站事项目录",
                    now,
                ),
            )
        else:
            matter = Matter(record["matter"])
            doc.update(
                matter_type=matter.data["type"],
                department=(matter.data.get("agency") or {}).get("name"),
                case_type=matter.data["case_type"],
                promised_limit_days=matter.data["promised_limit_days"],
                legal_limit_days=matter.data["legal_limit_days"],
            )
            doc.update(self._desk_check(doc, matter, doc["materials"], [], _received(request)))
        doc["history"] = [{"action": "received", "state": doc["state"], "at": now}]
        if not self.repo.insert_once(self.repo.applications, doc):
            return  # another process of this site took it in first
        self.metrics.proxied.labels(**self.metrics.site, step="received").inc()
        stored = self.repo.application(doc["id"])
        assert stored is not None
        if stored["state"] == "completed":
            self._count_completed(stored)
        self.flush_outbox(stored)

    def _take_materials(self, copy: ApplicationRecord, request: Doc) -> None:
        """Materials sent again by the proxy site: checked once more if this site asked for
        them; otherwise only noted (its decision stands)."""

        def make(doc: ApplicationRecord) -> dict[str, Any]:
            changes: dict[str, Any] = {"proxy": _proxy_of(request)}
            if doc["state"] == "supplement_required":
                merged = proxy.presented(request)
                matter = self._version_matter(doc)
                changes.update(materials=merged)
                notices = doc["notices"]
                changes.update(self._desk_check(doc, matter, merged, notices, _received(request)))
            return changes

        self._transition(copy["id"], "take_materials", make, at_desk=False)


def _received(request: Mapping[str, Any]) -> date:
    """The proxy site's day: the time limit counts from it."""
    return date.fromisoformat(request["received_on"])


def _proxy_of(request: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "site_code": request["site_code"],
        "request_version": request["version"],
        "received_on": request["received_on"],
    }
