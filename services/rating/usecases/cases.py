"""Bad-rating rectification cases (差评整改) through their steps, appeals, and the audited
reveal of a real-name rater's phone to the case's handler."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping
from typing import Any, cast

from services.common.clock import iso
from services.common.errors import Conflict, Forbidden, NotFound
from services.common.privacy import scrub_text
from services.common.validation import load
from services.rating import domain, schemas
from services.rating.domain import CaseState, Classification
from services.rating.domain.records import Case, RevealAudit
from services.rating.usecases.base import RatingBase, public

log = logging.getLogger(__name__)


class Cases(RatingBase):
    def _case(self, case_id: str, local: bool = True) -> Case:
        case = self.repo.case(case_id)
        if case is None:
            raise NotFound("没有这个差评整改案件", {"case_id": [case_id]})
        if local:
            domain.check_local(case, self.site)
        return case

    def _transition(self, case: Case, changes: dict[str, Any]) -> dict[str, Any]:
        changes["updated_at"] = iso(self.clock())
        updated = cast(
            Case | None,
            self.repo.cases.update(case["id"], changes, expect={"version": case.get("version")}),
        )
        if updated is None:
            raise Conflict("案件已被他人更新，请刷新后重试", {"case_id": ["并发修改"]})
        if updated.get("pending_exclusion"):
            updated = self._apply_exclusion(updated)
        self.dirty = True
        return self._case_view(updated)

    def _scrubbed(self, case: Case, data: dict[str, Any], *keys: str) -> dict[str, Any]:
        """Free text a handler typed, fit for the published ``cases`` feed: phones, ID
        numbers and the rater's name masked (``privacy.scrub_text``)."""
        contact = self.repo.contact(case["evaluation_id"])
        names = [contact.get("name")] if contact is not None else []
        for key in keys:
            if data.get(key) is not None:
                data[key] = scrub_text(data[key], names)
        return data

    def _case_view(self, case: Case) -> dict[str, Any]:
        view = public(case)
        view["state_zh"] = domain.STATE_ZH[CaseState(case["state"])]
        if classification := case.get("classification"):
            view["classification_zh"] = domain.CLASSIFICATION_ZH[Classification(classification)]
        return view

    def list_cases(self, filters: Mapping[str, Any] | None) -> list[dict[str, Any]]:
        data = load(schemas.CaseListSchema, {} if filters is None else filters)
        query: dict[str, Any] = {}
        if data.get("unit"):
            query["unit"] = data["unit"]
        else:
            query["recorded_at_site"] = self.site
        if data.get("state"):
            query["state"] = data["state"]
        cases = self.repo.find_cases(query, sort=[("_seq", -1)], limit=data["limit"] * 4)
        if data.get("overdue") is not None:
            cases = [c for c in cases if bool(c.get("overdue")) == data["overdue"]]
        return [self._case_view(c) for c in cases[: data["limit"]]]

    def get_case(self, case_id: str) -> dict[str, Any]:
        case_id = load(schemas.CaseArgs, {"case_id": case_id})["case_id"]
        case = self._case(case_id, local=False)
        view = self._case_view(case)
        # a case replicated from a child may arrive before its evaluation
        evaluation = self.repo.evaluation(case["evaluation_id"])
        view["evaluation"] = public(evaluation) if evaluation is not None else None
        return view

    def assign_case(self, payload: Mapping[str, Any]) -> dict[str, Any]:
        data = load(schemas.AssignSchema, payload)
        case = self._case(data["case_id"])
        changes = domain.assign(case, data["handler"], data["by"], self.clock())
        return self._transition(case, changes)

    def record_callback(self, payload: Mapping[str, Any]) -> dict[str, Any]:
        data = load(schemas.CallbackSchema, payload)
        case = self._case(data["case_id"])
        self._scrubbed(case, data, "note")
        changes = domain.record_callback(
            case, data["by"], data["contacted"], data["note"], self.clock(), self.settings
        )
        return self._transition(case, changes)

    def classify_case(self, payload: Mapping[str, Any]) -> dict[str, Any]:
        data = load(schemas.ClassifySchema, payload)
        case = self._case(data["case_id"])
        self._scrubbed(case, data, "note")
        changes = domain.classify(
            case,
            by=data["by"],
            classification=Classification(data["classification"]),
            note=data["note"],
            approver=data.get("approver"),
            deadline=data.get("deadline"),
            now=self.clock(),
            rules=self.settings,
            calendar=self.calendar,
        )
        return self._transition(case, changes)

    def record_rectification(self, payload: Mapping[str, Any]) -> dict[str, Any]:
        data = load(schemas.RectificationSchema, payload)
        case = self._case(data["case_id"])
        self._scrubbed(case, data, "measures")
        changes = domain.record_rectification(case, data["by"], data["measures"], self.clock())
        return self._transition(case, changes)

    def record_feedback(self, payload: Mapping[str, Any]) -> dict[str, Any]:
        data = load(schemas.FeedbackSchema, payload)
        case = self._case(data["case_id"])
        self._scrubbed(case, data, "content")
        changes = domain.record_feedback(
            case, data["by"], data["method"], data["content"], self.clock(), self.settings
        )
        return self._transition(case, changes)

    def appeal(self, payload: Mapping[str, Any]) -> dict[str, Any]:
        data = load(schemas.AppealSchema, payload)
        case = self._case(data["case_id"])
        self._scrubbed(case, data, "reason")
        changes = domain.file_appeal(
            case, data["by"], data["unit"], data["reason"], self.clock(), self.settings
        )
        return self._transition(case, changes)

    def review_appeal(self, payload: Mapping[str, Any]) -> dict[str, Any]:
        data = load(schemas.ReviewAppealSchema, payload)
        case = self._case(data["case_id"])
        self._scrubbed(case, data, "reason")
        changes = domain.review_appeal(
            case, data["reviewer"], data["upheld"], data["reason"], self.clock()
        )
        return self._transition(case, changes)

    def reveal_phone(self, case_id: str, by: str | None) -> dict[str, Any]:
        """The rater's phone, for the case's handler to call back; every reveal is audited."""
        args = load(schemas.RevealArgs, {"case_id": case_id, "by": by})
        case_id, by = args["case_id"], args["by"]
        case = self._case(case_id)
        if not case.get("handler"):
            raise Forbidden("案件尚未安排经办人，不能查看手机号", {"case_id": ["未安排经办人"]})
        if by != case["handler"]:
            raise Forbidden("只有本案件的经办人可以查看评价人手机号", {"by": ["不是本案件经办人"]})
        if case["state"] == CaseState.CLOSED:
            raise Forbidden("案件已办结，不能再查看评价人手机号", {"case_id": ["已办结"]})
        evaluation = self.repo.evaluation(case["evaluation_id"])
        contact = self.repo.contact(case["evaluation_id"])
        if (
            not evaluation
            or not evaluation["rater"]["real_name"]
            or contact is None
            or not contact.get("phone")  # purged
            or contact.get("token") != evaluation.get("contact_token")
        ):
            raise NotFound("该评价为匿名评价或没有留存手机号", {"case_id": ["无手机号"]})
        now = iso(self.clock())
        audit: RevealAudit = {
            "id": f"{self.site}-{uuid.uuid4().hex}",
            "schema": 1,
            "case_id": case["id"],
            "evaluation_id": case["evaluation_id"],
            "by": by,
            "site_code": self.site,
            "at": now,
            "created_at": now,
        }
        self.repo.audit.insert(audit)
        self.metrics.reveals.labels(**self.metrics.labels()).inc()
        log.info(
            "rating: phone of case %s revealed to its handler (audit %s)", case["id"], audit["id"]
        )
        return {"case_id": case["id"], "phone": contact["phone"], "audit_id": audit["id"]}

    def reveal_audit(self, case_id: str) -> list[dict[str, Any]]:
        case_id = load(schemas.CaseArgs, {"case_id": case_id})["case_id"]
        self._case(case_id, local=False)
        return [public(d) for d in self.repo.audit.find({"case_id": case_id})]
