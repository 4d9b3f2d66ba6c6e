"""Evaluations: submitting a rating (bound to its invitation when there is one), reading
one, and reviewing a held (suspicious) rating."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, cast

from services.common.clock import iso
from services.common.errors import Conflict, Forbidden, InvalidInput, NotFound
from services.common.privacy import keyed_hash, mask_name, mask_phone, phone_hash, scrub_text
from services.common.site import within_subtree
from services.common.validation import load
from services.rating import domain, schemas
from services.rating.domain import Channel, Level, RefKind, ServiceFacts
from services.rating.domain.records import Evaluation, Rater, RaterContact
from services.rating.usecases.base import RatingBase, public
from services.rating.usecases.retention import DEVICE_COUNTERS, PHONE_COUNTERS

log = logging.getLogger(__name__)


def scrubbed(text: str | None, names: list[str | None]) -> str | None:
    """Free text a citizen typed, with phones, ID numbers and the rater's name masked."""
    return None if text is None else scrub_text(text, names)


class Submission(RatingBase):
    def submit(self, payload: Mapping[str, Any]) -> dict[str, Any]:
        try:
            return self._submit(load(schemas.SubmissionSchema, payload))
        except (InvalidInput, Conflict, Forbidden, NotFound) as exc:
            self.metrics.refusals.labels(**self.metrics.labels(error=type(exc).__name__)).inc()
            raise

    def _facts(self, data: Mapping[str, Any]) -> ServiceFacts:
        ref = data["service_ref"]
        kind = RefKind(ref["kind"])
        invitation = None
        if data.get("invitation_id"):
            invitation = self.repo.invitation(data["invitation_id"])
            if invitation is None:
                raise NotFound("没有这条评价邀请", {"invitation_id": [data["invitation_id"]]})
            ref_kind, ref_id = invitation["service_ref"]["kind"], invitation["service_ref"]["id"]
            if ref.get("id") not in (None, ref_id) or kind != ref_kind:
                raise InvalidInput.field("service_ref", "与评价邀请对应的服务不一致")
        elif kind in (RefKind.TICKET, RefKind.APPLICATION):
            # 一次一评 / 一事一评: a ticket or an application is rated through its invitation,
            # which supplies window, staff and matter. Without it the rating is refused, so
            # nobody can take the service's evaluation id with facts of their choosing.
            if not ref.get("id"):
                raise InvalidInput.field("service_ref.id", "取号和办件评价须给出号票或办件编号")
            invitation = self.repo.invitation(f"{kind.value}:{ref['id']}")
            if invitation is None:
                raise NotFound(
                    "该服务还没有评价邀请：办结后才能评价，请稍后再试",
                    {"service_ref.id": ["没有对应的评价邀请"]},
                )
        if invitation is not None:
            window = data.get("window")
            if window is not None and invitation.get("window") not in (None, window):
                # A pad rates only for its own window (the window comes from its identity).
                raise Forbidden(
                    f"这是 {invitation['window']} 号窗口的服务，不能在 {window} 号窗口评价",
                    {"window": ["与评价邀请的窗口不一致"]},
                )
            return domain.facts_from_invitation(invitation)
        site_code = data.get("site_code") or self.site
        if not within_subtree(site_code, self.site):
            raise InvalidInput.field("site_code", f"不在本站点 {self.site} 的辖区内")
        ended = data.get("service_ended_at")
        if ref.get("id"):
            ref_id = ref["id"]
        elif data.get("request_id"):  # a retry of the same request takes the same id
            ref_id = f"{site_code}-req-{data['request_id']}"
        else:
            ref_id = f"{site_code}-{uuid.uuid4().hex}"
        return ServiceFacts(
            kind=kind,
            ref_id=ref_id,
            site_code=site_code,
            window=data.get("window"),
            staff_id=data.get("staff_id"),
            matter_code=data.get("matter_code"),
            department=data.get("department"),
            service_channel=None,
            service_ended_at=ended.astimezone(UTC) if ended else None,
            invitation_id=None,
        )

    def _submit(self, data: Mapping[str, Any]) -> dict[str, Any]:
        now = self.clock()
        request_id = data.get("request_id")
        facts = self._facts(data)
        channel, level = Channel(data["channel"]), Level(data["level"])
        existing = [
            doc
            for n in (domain.FIRST, domain.SUPPLEMENTARY)
            if (doc := self._stored_evaluation(facts.kind, facts.ref_id, n)) is not None
        ]
        if request_id is not None:  # a retry (the reply was lost): the first result
            for doc in existing:
                if doc.get("request_id") == request_id:
                    return public(doc)
        sequence = domain.check_submission(
            facts=facts,
            channel=channel,
            level=level,
            reasons=data.get("reasons"),
            entered_by=data.get("entered_by"),
            existing=existing,
            now=now,
            rules=self.settings,
            calendar=self.calendar,
        )
        rater = data["rater"]
        day = domain.local_day(now, self.settings.zone)
        phone_count = device_count = None
        if rater.get("phone"):  # normalised: "138 1234 5678" and "+86…" are one phone
            key = phone_hash(self.salt, rater["phone"])
            phone_count = self.context.store.next_value(f"{PHONE_COUNTERS}{day}.{key}")
        if rater.get("device_id"):
            key = keyed_hash(self.salt, "device", rater["device_id"])
            device_count = self.context.store.next_value(f"{DEVICE_COUNTERS}{day}.{key}")
        hold = domain.suspicion_reasons(
            facts=facts,
            now=now,
            rater_staff_id=rater.get("staff_id"),
            entered_by=data.get("entered_by"),
            phone_count_today=phone_count,
            device_count_today=device_count,
            rules=self.settings,
        )
        doc_id = self._evaluation_ids(facts.kind, facts.ref_id, sequence)[0]
        # The clear contact is kept for a bad real-name rating only (the handler calls back).
        keep_contact = bool(rater.get("real_name")) and level.bad
        token = uuid.uuid4().hex if keep_contact else None
        names = [rater.get("name")]
        reasons = data.get("reasons") or {}
        details = data.get("details") or {}
        masked: Rater = {
            "real_name": bool(rater.get("real_name")),
            "phone_masked": mask_phone(rater["phone"]) if rater.get("phone") else None,
            "name_masked": mask_name(rater["name"]) if rater.get("name") else None,
        }
        doc = domain.evaluation_record(
            doc_id=doc_id,
            own_site=self.site,
            facts=facts,
            sequence=sequence,
            channel=channel,
            level=level,
            details={
                **details,
                domain.SUGGESTION: scrubbed(details.get(domain.SUGGESTION), names),
            },
            comment=scrubbed(data.get("comment"), names),
            reasons={
                "tags": [scrub_text(tag, names) for tag in reasons.get("tags") or []],
                "text": scrubbed(reasons.get("text"), names),
            },
            rater=masked,
            entered_by=data.get("entered_by"),
            hold=hold,
            now=now,
            day=day,
            token=token,
        )
        if request_id is not None:
            doc["request_id"] = request_id
        try:
            stored = self._record(doc, now)
        except Conflict:
            # A concurrent call took the id first: the same request sent twice at once
            # gets the one result; anybody else is told the service was rated.
            raced = self.repo.evaluation(doc_id)
            if request_id is not None and raced and raced.get("request_id") == request_id:
                return public(raced)
            raise
        if token is not None:
            self._save_contact(stored, rater, token, now)
        return public(stored)

    def _save_contact(
        self, evaluation: Evaluation, rater: Mapping[str, Any], token: str, now: datetime
    ) -> None:
        """Insert-once by evaluation id, written only by the call that stored the
        evaluation: never overwritten, so it always matches the evaluation's token."""
        contact: RaterContact = {
            "id": evaluation["id"],
            "phone": rater.get("phone"),
            "name": rater.get("name"),
            "token": token,
            "case_id": evaluation["case_id"],
            "created_at": iso(now),
            "state": "kept",
            "purge_after": None,
            "purged_at": None,
        }
        try:
            self.repo.contacts.insert(contact)
        except Conflict:
            log.warning("rating: a contact for evaluation %s exists; kept", evaluation["id"])

    def get_evaluation(self, evaluation_id: str) -> dict[str, Any]:
        args = load(schemas.EvaluationArgs, {"evaluation_id": evaluation_id})
        doc = self.repo.evaluation(args["evaluation_id"])
        if doc is None:
            raise NotFound("没有这条评价", {"evaluation_id": [args["evaluation_id"]]})
        return public(doc)

    def review_held(self, payload: Mapping[str, Any]) -> dict[str, Any]:
        """A held (suspicious) rating: accept it into the statistics or exclude it."""
        data = load(schemas.ReviewHeldSchema, payload)
        now = self.clock()
        doc = self.repo.evaluation(data["evaluation_id"])
        if doc is None:
            raise NotFound("没有这条评价", {"evaluation_id": [data["evaluation_id"]]})
        if doc.get("recorded_at_site") != self.site:
            raise Forbidden("该评价由下级站点管理，本站只读", {"evaluation_id": ["非本站记录"]})
        if not doc["held"]:
            raise Conflict("该评价未被暂挂，无需复核", {"evaluation_id": ["未暂挂"]})
        contact = self.repo.contact(doc["id"])
        note = scrub_text(data["note"], [contact.get("name")] if contact else [])
        review = {"by": data["reviewer"], "accept": data["accept"], "note": note}
        changes: dict[str, Any] = {
            "held": False,
            "hold_review": {**review, "at": iso(now)},
            "updated_at": iso(now),
        }
        if data["accept"]:
            changes["case_pending"] = bool(doc["bad"])
        else:
            changes["excluded"] = {
                "kind": "suspicious",
                "reason": f"可疑评价经复核不予计入：{note}",
                "at": iso(now),
            }
        updated = cast(
            Evaluation | None,
            self.repo.evaluations.update(
                doc["id"], changes, expect={"version": doc.get("version")}
            ),
        )
        if updated is None:
            raise Conflict("评价已被他人修改，请刷新后重试", {"evaluation_id": ["并发修改"]})
        if updated["case_pending"]:
            updated = self._open_case(updated, now)
        self.dirty = True
        return public(updated)
