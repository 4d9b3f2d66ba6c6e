"""Application use cases (办件): submission with the desk check, supplement, refusal, review,
decision, completion, delivery, and suspension of the time limit.

Every write is a compare-and-set on the version read, and sets ``outbox_pending`` in the
same write; ``flush_outbox`` then writes the summary and invitation (usecases/outbox.py).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from datetime import date
from typing import Any, cast

from services.common.errors import Conflict, InvalidInput, NotFound
from services.common.validation import load
from services.matters import schemas
from services.matters.domain import (
    CLOCK_NONE,
    CLOCK_RUNNING,
    CLOCK_STOPPED,
    CLOCK_SUSPENDED,
    SUSPENSION_REASONS,
    Application,
    Matter,
    check_materials,
    due_date,
    merge_materials,
    protect_applicant,
    suspended_working_days,
)
from services.matters.domain import applications as rules
from services.matters.domain.identity import id_suffix_hash
from services.matters.domain.proxy import require_at_desk
from services.matters.domain.records import ApplicationRecord
from services.matters.usecases.base import CAS_ATTEMPTS, MattersBase, argument

Outcome = tuple[dict[str, Any], list[str]]  # the view, and invitation ids newly written


class Applications(MattersBase):
    def submit(self, data: Any) -> Outcome:
        d = argument(schemas.SUBMIT, data, "application")
        current = self._current(d["matter_code"])
        if current["status"] != "published":
            raise Conflict(f"事项 {d['matter_code']} 已废止，不能受理", {"matter_code": ["已废止"]})
        availability = current["availability"]
        if availability == "not_offered":
            raise Conflict(
                f"本站不办理事项“{current['name']}”，请到上级站点办理",
                {"matter_code": ["本站不办"]},
            )
        if availability == "proxy_only" and d["channel"] != "proxy":
            raise InvalidInput.field("channel", "本站只代办该事项，办理渠道应为 proxy（代办）")
        applicant = protect_applicant(d["applicant"], self.salt)
        matter = Matter(current)
        proxied = availability == "proxy_only"
        if not proxied and d["refusal"] is None and not check_materials(matter, d["materials"]):
            # a deadline the calendar cannot give refuses the call before a number is taken
            due_date(self.calendar, self.today(), int(current["promised_limit_days"]), 0)
        now = self.stamp()
        doc: dict[str, Any] = {
            "id": f"{self.identity.code}-{uuid.uuid4().hex}",
            "schema": rules.SCHEMA,
            "number": self._next_number(self.today()),
            "site_code": self.identity.code,
            "matter_code": current["id"],
            "matter_version": current["matter_version"],
            "matter_name": current["name"],
            "matter_type": current["type"],
            "department": (current.get("agency") or {}).get("name"),
            "case_type": current["case_type"],
            "promised_limit_days": current["promised_limit_days"],
            "legal_limit_days": current["legal_limit_days"],
            "channel": d["channel"],
            "window": d["window"],
            "staff_id": d["staff_id"],
            "applicant": applicant,
            "applicant_hash": applicant["id_hash"],
            "materials": [dict(m) for m in d["materials"]],
            "notices": [],
            "clock": CLOCK_NONE,
            "due_date": None,
            "suspensions": [],
            "suspended_days": 0,
            "history": [],
            "created_at": now,
            "updated_at": now,
            "outbox_pending": True,
        }
        doc["applicant_suffix_hash"] = id_suffix_hash(
            self.salt, doc["number"], d["applicant"]["id_number"]
        )
        if proxied:  # 代办: the handling site checks and decides (usecases/proxy.py)
            self.forward(doc, current, d["refusal"])
            outcome = doc["state"]
        elif d["refusal"] is not None:
            doc.update(rules.refusal(d["refusal"]["reason"], d["refusal"]["basis"], now))
            outcome = "not_accepted"
        else:
            doc.update(self._desk_check(doc, matter, doc["materials"], []))
            outcome = doc["state"]
        doc["history"] = [{"action": "submit", "state": doc["state"], "at": now}]
        stored = cast(ApplicationRecord, self.repo.applications.insert(doc))
        self.metrics.submitted.labels(
            **self.metrics.site, channel=d["channel"], outcome=outcome
        ).inc()
        if stored["state"] == "completed":
            self._count_completed(stored)
        if proxied:
            self.metrics.proxied.labels(**self.metrics.site, step="forwarded").inc()
        invited = self.flush_outbox(stored)
        return self.application_view(stored), invited

    def _next_number(self, today: date) -> str:
        day = today.strftime("%Y%m%d")
        seq = self.context.store.next_value(f"application-number-{day}")
        return f"{self.identity.code}{day}{seq:05d}"

    def _desk_check(
        self,
        doc: Mapping[str, Any],
        matter: Matter,
        presented: list[dict[str, Any]],
        notices: list[dict[str, Any]],
        on: date | None = None,
    ) -> dict[str, Any]:
        """Accepted (即办件: completed at once) or one notice listing everything missing;
        accepted ``on`` that day (代办: the proxy site's), else today."""
        problems = check_materials(matter, presented)
        if problems:
            return rules.supplement_required(doc["number"], notices, problems, self.stamp())
        today = on or self.today()
        due = due_date(self.calendar, today, int(matter.data["promised_limit_days"]), 0)
        return rules.accepted(
            matter,
            doc["number"],
            doc["matter_version"],
            presented,
            today=today,
            due=due,
            at=self.stamp(),
            site_name=self.identity.name,
        )

    def _version_matter(self, doc: ApplicationRecord) -> Matter:
        record = self.repo.version(doc["matter_code"], doc["matter_version"])
        if record is None:  # the version an application was accepted under is always kept
            raise NotFound(f"事项 {doc['matter_code']} 第 {doc['matter_version']} 版不存在")
        return Matter(record["matter"])

    def _transition(
        self,
        app_id: str,
        action: str,
        make: Callable[[ApplicationRecord], dict[str, Any]],
        at_desk: bool = True,
    ) -> Outcome:
        """``make``'s changes written by compare-and-set on the version read (``app_id``
        validated by the caller's schema). ``at_desk``: a clerk's action, refused when the
        other end of a 代办 application owns it."""
        for _ in range(CAS_ATTEMPTS):
            doc = self.repo.application(app_id)
            if doc is None:
                raise NotFound(f"办件 {app_id} 不存在", {"application_id": [app_id]})
            if at_desk:  # first: whose action it is explains more than the state
                require_at_desk(doc, action)
            Application(doc).require(action)
            changes = make(doc)
            now = self.stamp()
            changes["updated_at"] = now
            changes["outbox_pending"] = True
            state = changes.get("state", doc["state"])
            changes["history"] = [*doc["history"], {"action": action, "state": state, "at": now}]
            updated = self.repo.update_application(app_id, changes, doc["version"])
            if updated is not None:
                if updated["state"] == "completed" and doc["state"] != "completed":
                    self._count_completed(updated)
                return self.application_view(updated), self.flush_outbox(updated)
        raise Conflict("办件正被他人同时处理，请稍后重试")

    @staticmethod
    def _application_id(app_id: Any) -> str:
        application_id: str = load(schemas.APPLICATION_REF, {"application_id": app_id})[
            "application_id"
        ]
        return application_id

    def _count_completed(self, doc: ApplicationRecord) -> None:
        self.metrics.completed.labels(
            **self.metrics.site,
            channel=doc["channel"],
            overdue=str(bool(doc.get("overdue"))).lower(),
        ).inc()

    def supplement(self, app_id: Any, materials: Any) -> Outcome:
        args = load(schemas.SUPPLEMENT, {"application_id": app_id, "materials": materials})
        presented = args["materials"]

        def make(doc: ApplicationRecord) -> dict[str, Any]:
            merged = merge_materials(doc["materials"], presented)
            if doc.get("handled_by"):
                return self.resent(doc, merged)
            outcome = self._desk_check(doc, self._version_matter(doc), merged, doc["notices"])
            return {"materials": merged, **outcome}

        return self._transition(args["application_id"], "supplement", make)

    def refuse(self, app_id: Any, reason: Any, basis: Any) -> Outcome:
        refusal = load(schemas.REFUSE, {"application_id": app_id, "reason": reason, "basis": basis})
        return self._transition(
            refusal["application_id"],
            "refuse",
            lambda _doc: rules.refusal(refusal["reason"], refusal["basis"], self.stamp()),
        )

    def start_review(self, app_id: Any) -> Outcome:
        return self._transition(
            self._application_id(app_id),
            "start_review",
            lambda _doc: {"state": "in_review", "review_started_at": self.stamp()},
        )

    def decide(self, app_id: Any, decision: Any, reason: Any = None) -> Outcome:
        args = load(
            schemas.DECISION, {"application_id": app_id, "decision": decision, "reason": reason}
        )
        approve = args["decision"] == "approve"
        reason = (args["reason"] or "").strip()
        return self._transition(
            args["application_id"],
            "decide",
            lambda _doc: {
                "state": "approved" if approve else "denied",
                "decision": "approved" if approve else "denied",
                "decision_reason": reason or None,
                "decided_at": self.stamp(),
            },
        )

    def complete(self, app_id: Any, overdue_reason: Any = None, result: Any = None) -> Outcome:
        args = load(
            schemas.COMPLETION,
            {"application_id": app_id, "overdue_reason": overdue_reason, "result": result},
        )

        def make(doc: ApplicationRecord) -> dict[str, Any]:
            today = self.today()
            late = Application(doc).is_overdue_on(today)
            reason = (args["overdue_reason"] or "").strip()
            if late and not reason:
                raise InvalidInput.field(
                    "overdue_reason",
                    f"已超过办理时限（{doc['due_date']}），办结时应书面说明超期理由（将公开）",
                )
            return {
                "state": "completed",
                "completed_at": self.stamp(),
                "completed_on": today.isoformat(),
                "clock": CLOCK_STOPPED,
                "overdue": late,
                "overdue_reason": reason if late else None,
                "result": args["result"],
            }

        return self._transition(args["application_id"], "complete", make)

    def deliver(self, app_id: Any, method: Any, tracking_number: Any = None) -> Outcome:
        args = load(
            schemas.DELIVERY,
            {"application_id": app_id, "method": method, "tracking_number": tracking_number},
        )
        mail = args["method"] == "mail"
        return self._transition(
            args["application_id"],
            "deliver",
            lambda _doc: {
                "state": "delivered",
                "delivery": {
                    "method": args["method"],
                    "tracking_number": args["tracking_number"] if mail else None,
                    "delivered_at": self.stamp(),
                },
                "delivered_on": self.today().isoformat(),
            },
        )

    def suspend(self, app_id: Any, reason: Any, note: Any = None) -> Outcome:
        args = load(schemas.SUSPENSION, {"application_id": app_id, "reason": reason, "note": note})

        def make(doc: ApplicationRecord) -> dict[str, Any]:
            period = {
                "reason": args["reason"],
                "reason_name": SUSPENSION_REASONS[args["reason"]],
                "note": args["note"],
                "since_on": self.today().isoformat(),
                "until_on": None,
                "working_days": None,
            }
            return {"clock": CLOCK_SUSPENDED, "suspensions": [*doc["suspensions"], period]}

        return self._transition(args["application_id"], "suspend", make)

    def resume(self, app_id: Any) -> Outcome:
        def make(doc: ApplicationRecord) -> dict[str, Any]:
            today = self.today()
            periods = [dict(p) for p in doc["suspensions"]]
            last = periods[-1]
            days = suspended_working_days(
                self.calendar, date.fromisoformat(last["since_on"]), today
            )
            last.update(until_on=today.isoformat(), working_days=days)
            total = int(doc["suspended_days"]) + days
            due = due_date(
                self.calendar,
                date.fromisoformat(doc.get("accepted_on") or today.isoformat()),
                int(doc["promised_limit_days"]),
                total,
            )
            return {
                "clock": CLOCK_RUNNING,
                "suspensions": periods,
                "suspended_days": total,
                "due_date": due.isoformat(),
            }

        return self._transition(self._application_id(app_id), "resume", make)
