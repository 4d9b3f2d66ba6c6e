"""Reading applications: one application's view with its due state, lists by state, matter,
applicant or due state, and the deadline gauges (docs/architecture.md, "Observability")."""

from __future__ import annotations

import logging
from datetime import date
from typing import Any

from services.common.calendar import ScheduleMissing
from services.common.errors import NotFound
from services.common.validation import load
from services.matters import schemas
from services.matters.domain import (
    CLOCK_RUNNING,
    CLOCK_SUSPENDED,
    STATES,
    due_soon_until,
    due_state,
)
from services.matters.domain.identity import applicant_lookup_hash
from services.matters.domain.records import ApplicationRecord
from services.matters.usecases.base import MattersBase, argument

log = logging.getLogger(__name__)

_HIDDEN = ("_seq", "applicant_hash", "applicant_suffix_hash", "outbox_pending")


class Listing(MattersBase):
    def application_view(self, doc: ApplicationRecord) -> dict[str, Any]:
        view: dict[str, Any] = {k: v for k, v in doc.items() if k not in _HIDDEN}
        view["applicant"] = {
            k: v for k, v in doc["applicant"].items() if k not in ("id_hash", "phone_hash")
        }
        view["state_name"] = STATES[doc["state"]]
        due_text = doc.get("due_date")
        due = date.fromisoformat(due_text) if due_text else None
        clock = doc.get("handling_clock") or doc["clock"]  # 代办: the handling site's clock
        try:
            view["due_state"] = due_state(
                self.calendar, self.today(), due, clock, self.settings.due_soon_working_days
            )
        except ScheduleMissing as exc:  # reading an application never fails on this
            view["due_state"] = "overdue" if due and self.today() > due else None
            view["due_state_problem"] = exc.message
        return view

    def get_application(self, app_id: Any) -> dict[str, Any]:
        app_id = load(schemas.APPLICATION_REF, {"application_id": app_id})["application_id"]
        doc = self.repo.application(app_id)
        if doc is None:
            raise NotFound(f"办件 {app_id} 不存在", {"application_id": [app_id]})
        return self.application_view(doc)

    def _due_filter(self, wanted: str) -> dict[str, Any]:
        today = self.today()
        if wanted == "suspended":
            return {"clock": CLOCK_SUSPENDED}
        if wanted == "overdue":
            return {"clock": CLOCK_RUNNING, "due_date": {"$lt": today.isoformat()}}
        # "due soon" needs the calendar ahead of today: ScheduleMissing propagates
        edge = due_soon_until(self.calendar, today, self.settings.due_soon_working_days)
        if wanted == "due_soon":
            return {
                "clock": CLOCK_RUNNING,
                "due_date": {"$gte": today.isoformat(), "$lte": edge.isoformat()},
            }
        return {"clock": CLOCK_RUNNING, "due_date": {"$gt": edge.isoformat()}}

    def list_applications(self, filters: Any) -> dict[str, Any]:
        f = argument(schemas.LIST, {} if filters is None else filters, "filters")
        query: dict[str, Any] = {}
        if f["due_state"]:
            query.update(self._due_filter(f["due_state"]))
        if f["state"]:
            query["state"] = f["state"]
        if f["matter_code"]:
            query["matter_code"] = f["matter_code"]
        if f["applicant_id_number"]:
            query["applicant_hash"] = applicant_lookup_hash(f["applicant_id_number"], self.salt)
        sort = [("due_date", 1)] if f["due_state"] else [("_seq", -1)]
        docs = self.repo.find_applications(query, sort, f["limit"])
        return {
            "items": [self.application_view(d) for d in docs],
            "count": self.repo.applications.count(query),
            "today": self.today().isoformat(),
        }

    def refresh_gauges(self) -> None:
        count = self.repo.applications.count
        site = self.metrics.site
        self.metrics.overdue.labels(**site).set(count(self._due_filter("overdue")))
        try:
            self.metrics.due_soon.labels(**site).set(count(self._due_filter("due_soon")))
        except ScheduleMissing as exc:  # keep the other gauges; say why this one is stale
            log.error("hall_applications_due_soon not refreshed: %s", exc.message)
        self.metrics.suspended.labels(**site).set(count(self._due_filter("suspended")))
        late = sum(1 for c in self.unpublished_changes() if c["overdue"])
        self.metrics.unpublished.labels(**site).set(late)
        for status in ("published", "retired"):
            self.metrics.catalog.labels(**site, status=status).set(
                self.repo.matters.count({"status": status})
            )
