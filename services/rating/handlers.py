"""The rating service layer: validate, call the domain, persist, count. No Nameko here; the
Nameko class in ``service.py`` hands each call to one ``Rating`` object per container."""

from __future__ import annotations

import contextlib
import logging
import uuid
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, date, datetime, timedelta
from typing import Any, overload

from services.common.errors import Conflict, Forbidden, InvalidInput, NotFound
from services.common.feeds import FeedFollower
from services.common.metrics import ServiceMetrics
from services.common.site import prefix, within_subtree
from services.common.store import Doc, Store
from services.rating import domain, schemas
from services.rating.domain import Channel, Level, RatingRules, RefKind
from services.rating.store import CASES, EVALUATIONS, RatingRepository, subtree_range

log = logging.getLogger(__name__)

INVITATION_FEED = "evaluation_invitations"
SOURCES = ("queue", "matters")


def utcnow() -> datetime:
    """The clock (tests patch it to cross deadlines)."""
    return datetime.now(UTC)


@overload
def _public(doc: Mapping[str, Any]) -> dict[str, Any]: ...
@overload
def _public(doc: Mapping[str, Any] | None) -> dict[str, Any] | None: ...
def _public(doc: Mapping[str, Any] | None) -> dict[str, Any] | None:
    if doc is None:
        return None
    return {k: v for k, v in doc.items() if k not in ("_seq", "contact_token")}


class RatingMetrics:
    """The rating service's own series; labels never name a person, phone or record."""

    def __init__(self, metrics: ServiceMetrics) -> None:
        self.m = metrics
        self.evaluations = metrics.counter(
            "hall_evaluations_total",
            "Evaluations recorded, by level, channel and outcome",
            ["level", "channel", "outcome"],
        )
        self.refusals = metrics.counter(
            "hall_evaluation_refusals_total",
            "Evaluation submissions refused, by error type",
            ["error"],
        )
        self.invitations = metrics.counter(
            "hall_evaluation_invitations_total",
            "Evaluation invitations received, by source",
            ["source"],
        )
        self.pull_errors = metrics.counter(
            "hall_evaluation_invitation_pull_errors_total",
            "Failed pulls of an invitation feed (retried next tick), by source and reason",
            ["source", "reason"],
        )
        self.fold_errors = metrics.counter(
            "hall_rating_fold_errors_total",
            "Failed folds of new records into the statistics rollups (retried; stats lag)",
        )
        self.cases_open = metrics.gauge(
            "hall_rating_cases_open", "Open bad-rating cases, by state", ["state"]
        )
        self.cases_overdue = metrics.gauge(
            "hall_rating_cases_overdue", "Open bad-rating cases past a deadline, by step", ["step"]
        )
        self.reveals = metrics.counter(
            "hall_rating_phone_reveals_total",
            "Audited reveals of a rater's phone to a case handler",
        )

    def labels(self, **labels: str) -> dict[str, str]:
        return {**self.m.site_labels(), **labels}


class Rating:
    """One per container: the rules, the repository and the metrics of this site."""

    def __init__(
        self,
        store: Store,
        site_code: str,
        calendar: Any,
        rules: RatingRules,
        metrics: ServiceMetrics,
    ) -> None:
        self.store = store
        self.site = site_code
        self.calendar = calendar
        self.rules = rules
        self.repo = RatingRepository(store)
        self.salt = self.repo.privacy_salt(rules.privacy_salt)
        self.metrics = RatingMetrics(metrics)
        self.dirty = True  # rollups may lag the feeds; the folder loop and stats fold them
        # How a new evaluation is written; the Nameko glue swaps in a group commit.
        self.insert_evaluation: Callable[[Doc], Doc] = self.repo.evaluations.insert

    # --- evaluations ---------------------------------------------------------------------

    def submit(self, payload: Mapping[str, Any]) -> dict[str, Any]:
        try:
            return self._submit(schemas.load(schemas.SubmissionSchema(), payload))
        except (InvalidInput, Conflict, Forbidden, NotFound) as exc:
            self.metrics.refusals.labels(**self.metrics.labels(error=type(exc).__name__)).inc()
            raise

    def _facts(self, data: Mapping[str, Any]) -> domain.ServiceFacts:
        ref = data["service_ref"]
        kind = RefKind(ref["kind"])
        invitation = None
        if data.get("invitation_id"):
            invitation = self.repo.invitations.get(data["invitation_id"])
            if invitation is None:
                raise NotFound("没有这条评价邀请", {"invitation_id": [data["invitation_id"]]})
            ref_kind, ref_id = invitation["service_ref"]["kind"], invitation["service_ref"]["id"]
            if ref.get("id") not in (None, ref_id) or kind != ref_kind:
                raise InvalidInput.field("service_ref", "与评价邀请对应的服务不一致")
        elif kind in (RefKind.TICKET, RefKind.APPLICATION):
            if not ref.get("id"):
                raise InvalidInput.field("service_ref.id", "取号和办件评价须给出号票或办件编号")
            invitation = self.repo.invitations.get(f"{kind.value}:{ref['id']}")
        if invitation is not None:
            return domain.ServiceFacts(
                kind=RefKind(invitation["service_ref"]["kind"]),
                ref_id=invitation["service_ref"]["id"],
                site_code=invitation["site_code"],
                window=invitation.get("window"),
                staff_id=invitation.get("staff_id"),
                matter_code=invitation.get("matter_code"),
                department=invitation.get("department"),
                service_channel=invitation.get("service_channel"),
                service_ended_at=domain.parse_time(invitation["service_ended_at"]),
                invitation_id=invitation["id"],
            )
        site_code = data.get("site_code") or self.site
        if not within_subtree(site_code, self.site):
            raise InvalidInput.field("site_code", f"不在本站点 {self.site} 的辖区内")
        ended = data.get("service_ended_at")
        return domain.ServiceFacts(
            kind=kind,
            ref_id=ref.get("id") or f"{site_code}-{uuid.uuid4().hex}",
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
        now = utcnow()
        facts = self._facts(data)
        channel, level = Channel(data["channel"]), Level(data["level"])
        ids = [domain.evaluation_id(facts.kind, facts.ref_id, n) for n in (1, 2)]
        existing = [doc for doc in (self.repo.evaluations.get(i) for i in ids) if doc]
        sequence = domain.check_submission(
            facts=facts,
            channel=channel,
            level=level,
            reasons=data.get("reasons"),
            entered_by=data.get("entered_by"),
            existing=existing,
            now=now,
            rules=self.rules,
            calendar=self.calendar,
        )
        rater = data["rater"]
        day = domain.local_day(now, self.rules.zone)
        phone_count = device_count = None
        if rater.get("phone"):
            key = domain.protect_hash(self.salt, "phone", rater["phone"])
            phone_count = self.store.next_value(f"rating.phone.{day}.{key}")
        if rater.get("device_id"):
            key = domain.protect_hash(self.salt, "device", rater["device_id"])
            device_count = self.store.next_value(f"rating.device.{day}.{key}")
        hold = domain.suspicion_reasons(
            facts=facts,
            now=now,
            rater_staff_id=rater.get("staff_id"),
            entered_by=data.get("entered_by"),
            phone_count_today=phone_count,
            device_count_today=device_count,
            rules=self.rules,
        )
        doc_id = ids[sequence - 1]
        token = None
        if rater.get("real_name"):
            token = uuid.uuid4().hex
            self._save_contact(doc_id, rater, token)
        reasons = data.get("reasons") or {}
        doc = self._evaluation_doc(
            doc_id=doc_id,
            facts=facts,
            sequence=sequence,
            channel=channel,
            level=level,
            details={
                **(data.get("details") or {}),
                domain.SUGGESTION: domain.scrub_text(
                    (data.get("details") or {}).get(domain.SUGGESTION), [rater.get("name")]
                ),
            },
            comment=domain.scrub_text(data.get("comment"), [rater.get("name")]),
            reasons={
                "tags": reasons.get("tags") or [],
                "text": domain.scrub_text(reasons.get("text"), [rater.get("name")]),
            },
            rater={
                "real_name": bool(rater.get("real_name")),
                "phone_masked": domain.mask_phone(rater["phone"]) if rater.get("phone") else None,
                "name_masked": domain.mask_name(rater["name"]) if rater.get("name") else None,
            },
            entered_by=data.get("entered_by"),
            hold=hold,
            now=now,
            day=day,
            token=token,
        )
        return _public(self._record(doc, facts, now))

    def _save_contact(self, doc_id: str, rater: Mapping[str, Any], token: str) -> None:
        contact = {"phone": rater.get("phone"), "name": rater.get("name"), "token": token}
        try:
            self.repo.contacts.insert({"id": doc_id, **contact})
        except Conflict:
            self.repo.contacts.update(doc_id, contact)

    def _evaluation_doc(
        self,
        *,
        doc_id: str,
        facts: domain.ServiceFacts,
        sequence: int,
        channel: Channel,
        level: Level,
        details: Mapping[str, Any],
        comment: str | None,
        reasons: Mapping[str, Any],
        rater: Mapping[str, Any],
        entered_by: str | None,
        hold: list[str],
        now: datetime,
        day: date,
        token: str | None,
    ) -> Doc:
        bad_case = level.bad and not hold
        return {
            "id": doc_id,
            "schema": 1,
            "site_code": facts.site_code,
            "recorded_at_site": self.site,
            "service_ref": {"kind": facts.kind.value, "id": facts.ref_id},
            "invitation_id": facts.invitation_id,
            "sequence": sequence,
            "window": facts.window,
            "staff_id": facts.staff_id,
            "matter_code": facts.matter_code,
            "department": facts.department,
            "service_channel": facts.service_channel,
            "service_ended_at": domain.iso(facts.service_ended_at)
            if facts.service_ended_at
            else None,
            "channel": channel.value,
            "level": level.value,
            "level_zh": level.zh,
            "bad": level.bad,
            "details": {
                **dict.fromkeys(domain.DETAIL_QUESTIONS),
                **details,
                domain.SUGGESTION: domain.scrub_text(details.get(domain.SUGGESTION)),
            },
            "reasons": reasons,
            "comment": domain.scrub_text(comment),
            "rater": dict(rater),
            "entered_by": entered_by,
            "submitted_at": domain.iso(now),
            "day": day.isoformat(),
            "held": bool(hold),
            "hold_reasons": [{"code": c, "text": domain.HOLD_ZH[c]} for c in hold],
            "excluded": None,
            "case_id": domain.case_id(doc_id) if level.bad else None,
            "case_pending": bad_case,
            "contact_token": token,
            "created_at": domain.iso(now),
            "updated_at": domain.iso(now),
        }

    def _record(self, doc: Doc, facts: domain.ServiceFacts, now: datetime) -> Doc:
        try:
            stored = self.insert_evaluation(doc)
        except Conflict:
            raise Conflict("该服务已评价过，不能重复提交", {"service_ref": ["重复评价"]}) from None
        if stored["case_pending"]:
            stored = self._open_case(stored, now)
        # The invitation is not rewritten here (one commit per rating, not two): the pad's
        # pending_for_window and the sweep see the evaluation and mark it answered.
        outcome = "held" if stored["held"] else "counted"
        self.metrics.evaluations.labels(
            **self.metrics.labels(level=stored["level"], channel=stored["channel"], outcome=outcome)
        ).inc()
        self.dirty = True
        return stored

    def _open_case(self, evaluation: Doc, now: datetime) -> Doc:
        """Outbox step: the case exists (deterministic id) before the flag is cleared."""
        case = domain.open_case(evaluation, now, self.rules, self.calendar)
        with contextlib.suppress(Conflict):
            self.repo.cases.insert(case)
        updated = self.repo.evaluations.update(
            evaluation["id"],
            {"case_pending": False, "updated_at": domain.iso(now)},
            expect={"case_pending": True},
        )
        self.dirty = True
        return updated or self.repo.evaluations.get(evaluation["id"]) or evaluation

    def get_evaluation(self, evaluation_id: str) -> dict[str, Any]:
        doc = self.repo.evaluations.get(str(evaluation_id))
        if doc is None:
            raise NotFound("没有这条评价", {"evaluation_id": [str(evaluation_id)]})
        return _public(doc)

    def review_held(self, payload: Mapping[str, Any]) -> dict[str, Any]:
        """A held (suspicious) rating: accept it into the statistics or exclude it."""
        data = schemas.load(schemas.ReviewHeldSchema(), payload)
        now = utcnow()
        doc = self.repo.evaluations.get(data["evaluation_id"])
        if doc is None:
            raise NotFound("没有这条评价", {"evaluation_id": [data["evaluation_id"]]})
        if doc.get("recorded_at_site") != self.site:
            raise Forbidden("该评价由下级站点管理，本站只读", {"evaluation_id": ["非本站记录"]})
        if not doc["held"]:
            raise Conflict("该评价未被暂挂，无需复核", {"evaluation_id": ["未暂挂"]})
        review = {
            "by": data["reviewer"],
            "accept": data["accept"],
            "note": data["note"],
            "at": domain.iso(now),
        }
        changes: dict[str, Any] = {
            "held": False,
            "hold_review": review,
            "updated_at": domain.iso(now),
        }
        if data["accept"]:
            changes["case_pending"] = bool(doc["bad"])
        else:
            changes["excluded"] = {
                "kind": "suspicious",
                "reason": f"可疑评价经复核不予计入：{data['note']}",
                "at": domain.iso(now),
            }
        updated = self.repo.evaluations.update(
            doc["id"], changes, expect={"version": doc["version"]}
        )
        if updated is None:
            raise Conflict("评价已被他人修改，请刷新后重试", {"evaluation_id": ["并发修改"]})
        if updated["case_pending"]:
            updated = self._open_case(updated, now)
        self.dirty = True
        return _public(updated)

    def pending_for_window(self, window: str) -> dict[str, Any] | None:
        """The most recent open invitation at this site's window, for its evaluator pad."""
        if not isinstance(window, str) or not window.strip():
            raise InvalidInput.field("window", "应为窗口编号")
        while True:
            found = self.repo.invitations.find(
                {"site_code": self.site, "window": window, "state": "open"},
                sort=[("service_ended_at", -1)],
                limit=1,
            )
            if not found:
                return None
            invitation = found[0]
            kind, ref = invitation["service_ref"]["kind"], invitation["service_ref"]["id"]
            first = self.repo.evaluations.get(domain.evaluation_id(kind, ref, 1))
            if first is None:
                return _public(invitation)
            # answered but the flag was not cleared (crash between steps): repair and go on
            self.repo.invitations.update(
                invitation["id"], {"state": "answered", "evaluation_id": first["id"]}
            )

    # --- invitations -------------------------------------------------------------------

    def pull_invitations(self, source: str, fetch: Callable[[int, int], dict[str, Any]]) -> int:
        follower = FeedFollower(self.store, source, INVITATION_FEED)

        def apply(items: list[Doc]) -> None:
            self.apply_invitations(source, items)

        return follower.pull(fetch, apply)

    def apply_invitations(self, source: str, items: Iterable[Mapping[str, Any]]) -> int:
        good = []
        for item in items:
            try:
                data = schemas.load(schemas.InvitationSchema(), item)
                data["service_ended_at"] = domain.iso(domain.parse_time(data["service_ended_at"]))
            except (InvalidInput, ValueError) as exc:
                log.warning(
                    "rating: skipped a malformed invitation %s from %s: %s",
                    item.get("id"),
                    source,
                    exc,
                )
                continue
            good.append(data)
        added = self.repo.add_invitations(good, source, domain.iso(utcnow()))
        if added:
            self.metrics.invitations.labels(**self.metrics.labels(source=source)).inc(added)
        return added

    # --- cases -------------------------------------------------------------------------

    def _case(self, case_id: str, local: bool = True) -> Doc:
        case = self.repo.cases.get(case_id)
        if case is None:
            raise NotFound("没有这个差评整改案件", {"case_id": [case_id]})
        if local:
            domain._check_local(case, self.site)
        return case

    def _transition(self, case: Doc, changes: dict[str, Any]) -> dict[str, Any]:
        now = utcnow()
        changes["updated_at"] = domain.iso(now)
        updated = self.repo.cases.update(case["id"], changes, expect={"version": case["version"]})
        if updated is None:
            raise Conflict("案件已被他人更新，请刷新后重试", {"case_id": ["并发修改"]})
        if updated.get("pending_exclusion"):
            updated = self._apply_exclusion(updated)
        self.dirty = True
        return self._case_view(updated)

    def _apply_exclusion(self, case: Doc) -> Doc:
        """Outbox step: exclude the evaluation, then clear the case's flag."""
        exclusion = {**case["pending_exclusion"], "at": case["updated_at"], "case_id": case["id"]}
        evaluation = self.repo.evaluations.get(case["evaluation_id"])
        if evaluation is not None and evaluation.get("excluded") is None:
            self.repo.evaluations.update(
                evaluation["id"], {"excluded": exclusion, "updated_at": case["updated_at"]}
            )
        cleared = self.repo.cases.update(
            case["id"],
            {"pending_exclusion": None, "exclusion": exclusion},
            expect={"version": case["version"]},
        )
        return cleared or self.repo.cases.get(case["id"]) or case

    def _case_view(self, case: Mapping[str, Any]) -> dict[str, Any]:
        view = _public(case) or {}
        view["state_zh"] = domain.STATE_ZH[domain.CaseState(case["state"])]
        if case.get("classification"):
            view["classification_zh"] = domain.CLASSIFICATION_ZH[
                domain.Classification(case["classification"])
            ]
        return view

    def list_cases(self, filters: Mapping[str, Any] | None) -> list[dict[str, Any]]:
        data = schemas.load(schemas.CaseListSchema(), filters or {})
        query: dict[str, Any] = {}
        if data.get("unit"):
            query["unit"] = data["unit"]
        else:
            query["recorded_at_site"] = self.site
        if data.get("state"):
            query["state"] = data["state"]
        cases = self.repo.cases.find(query, sort=[("_seq", -1)], limit=data["limit"] * 4)
        if data.get("overdue") is not None:
            cases = [c for c in cases if bool(c.get("overdue")) == data["overdue"]]
        return [self._case_view(c) for c in cases[: data["limit"]]]

    def get_case(self, case_id: str) -> dict[str, Any]:
        case = self._case(str(case_id), local=False)
        view = self._case_view(case)
        # a case replicated from a child may arrive before its evaluation
        view["evaluation"] = _public(self.repo.evaluations.get(case["evaluation_id"]))
        return view

    def assign_case(self, payload: Mapping[str, Any]) -> dict[str, Any]:
        data = schemas.load(schemas.AssignSchema(), payload)
        case = self._case(data["case_id"])
        return self._transition(case, domain.assign(case, data["handler"], data["by"], utcnow()))

    def record_callback(self, payload: Mapping[str, Any]) -> dict[str, Any]:
        data = schemas.load(schemas.CallbackSchema(), payload)
        case = self._case(data["case_id"])
        return self._transition(
            case,
            domain.record_callback(
                case, data["by"], data["contacted"], data["note"], utcnow(), self.rules
            ),
        )

    def classify_case(self, payload: Mapping[str, Any]) -> dict[str, Any]:
        data = schemas.load(schemas.ClassifySchema(), payload)
        case = self._case(data["case_id"])
        return self._transition(
            case,
            domain.classify(
                case,
                by=data["by"],
                classification=domain.Classification(data["classification"]),
                note=data["note"],
                approver=data.get("approver"),
                deadline=data.get("deadline"),
                now=utcnow(),
                rules=self.rules,
                calendar=self.calendar,
            ),
        )

    def record_rectification(self, payload: Mapping[str, Any]) -> dict[str, Any]:
        data = schemas.load(schemas.RectificationSchema(), payload)
        case = self._case(data["case_id"])
        return self._transition(
            case, domain.record_rectification(case, data["by"], data["measures"], utcnow())
        )

    def record_feedback(self, payload: Mapping[str, Any]) -> dict[str, Any]:
        data = schemas.load(schemas.FeedbackSchema(), payload)
        case = self._case(data["case_id"])
        return self._transition(
            case,
            domain.record_feedback(
                case, data["by"], data["method"], data["content"], utcnow(), self.rules
            ),
        )

    def appeal(self, payload: Mapping[str, Any]) -> dict[str, Any]:
        data = schemas.load(schemas.AppealSchema(), payload)
        case = self._case(data["case_id"])
        return self._transition(
            case,
            domain.file_appeal(
                case, data["by"], data["unit"], data["reason"], utcnow(), self.rules
            ),
        )

    def review_appeal(self, payload: Mapping[str, Any]) -> dict[str, Any]:
        data = schemas.load(schemas.ReviewAppealSchema(), payload)
        case = self._case(data["case_id"])
        return self._transition(
            case,
            domain.review_appeal(case, data["reviewer"], data["upheld"], data["reason"], utcnow()),
        )

    def reveal_phone(self, case_id: str, by: str) -> dict[str, Any]:
        """The rater's phone, for the case's handler to call back; every reveal is audited."""
        if not isinstance(by, str) or not by:
            raise InvalidInput.field("by", "应为经办人工号")
        case = self._case(str(case_id))
        if not case.get("handler"):
            raise Forbidden("案件尚未安排经办人，不能查看手机号", {"case_id": ["未安排经办人"]})
        if by != case["handler"]:
            raise Forbidden("只有本案件的经办人可以查看评价人手机号", {"by": ["不是本案件经办人"]})
        if case["state"] == domain.CaseState.CLOSED:
            raise Forbidden("案件已办结，不能再查看评价人手机号", {"case_id": ["已办结"]})
        evaluation = self.repo.evaluations.get(case["evaluation_id"])
        contact = self.repo.contacts.get(case["evaluation_id"])
        if (
            not evaluation
            or not evaluation["rater"]["real_name"]
            or contact is None
            or contact.get("token") != evaluation.get("contact_token")
        ):
            raise NotFound("该评价为匿名评价或没有留存手机号", {"case_id": ["无手机号"]})
        now = utcnow()
        audit = {
            "id": f"{self.site}-{uuid.uuid4().hex}",
            "schema": 1,
            "case_id": case["id"],
            "evaluation_id": case["evaluation_id"],
            "by": by,
            "site_code": self.site,
            "at": domain.iso(now),
            "created_at": domain.iso(now),
        }
        self.repo.audit.insert(audit)
        self.metrics.reveals.labels(**self.metrics.labels()).inc()
        log.info(
            "rating: phone of case %s revealed to its handler (audit %s)", case["id"], audit["id"]
        )
        return {"case_id": case["id"], "phone": contact["phone"], "audit_id": audit["id"]}

    def reveal_audit(self, case_id: str) -> list[dict[str, Any]]:
        self._case(str(case_id), local=False)
        return [_public(d) or {} for d in self.repo.audit.find({"case_id": str(case_id)})]

    # --- sweeps ------------------------------------------------------------------------

    def sweep(self) -> dict[str, int]:
        """Repair outbox steps, escalate overdue steps, give default ratings, set gauges."""
        now = utcnow()
        today = domain.local_day(now, self.rules.zone)
        repaired = 0
        for evaluation in self.repo.evaluations.find({"case_pending": True}, limit=500):
            if evaluation.get("recorded_at_site") == self.site:
                self._open_case(evaluation, now)
                repaired += 1
        for case in self.repo.cases.find({"pending_exclusion": {"$ne": None}}, limit=500):
            if case.get("recorded_at_site") == self.site and case.get("pending_exclusion"):
                self._apply_exclusion(case)
                repaired += 1
        escalated = 0
        open_by_state: dict[str, int] = {s.value: 0 for s in domain.CaseState if s != "closed"}
        overdue_by_step = {"callback": 0, "close": 0}
        for state in open_by_state:
            for case in self.repo.cases.find({"recorded_at_site": self.site, "state": state}):
                open_by_state[state] += 1
                filled = domain.fill_deadlines(case, self.rules, self.calendar)
                if filled is not None:
                    filled["updated_at"] = domain.iso(now)
                    if self.repo.cases.update(case["id"], filled, {"version": case["version"]}):
                        case = {**case, **filled, "version": case["version"] + 1}
                changes = domain.escalate(case, today, now)
                if changes is not None:
                    if changes["escalations"] != case.get("escalations"):
                        escalated += 1
                        log.warning(
                            "rating: case %s overdue at %s, escalated",
                            case["id"],
                            ", ".join(changes["overdue"]),
                        )
                    changes["updated_at"] = domain.iso(now)
                    self.repo.cases.update(case["id"], changes, expect={"version": case["version"]})
                    case = {**case, **changes}
                for step in case.get("overdue") or []:
                    overdue_by_step[step] += 1
        for state, n in open_by_state.items():
            self.metrics.cases_open.labels(**self.metrics.labels(state=state)).set(n)
        for step, n in overdue_by_step.items():
            self.metrics.cases_overdue.labels(**self.metrics.labels(step=step)).set(n)
        self._close_answered_invitations()
        defaults = self._default_ratings(now)
        self.dirty = True
        return {"repaired": repaired, "escalated": escalated, "defaults": defaults}

    def _close_answered_invitations(self, limit: int = 2000) -> int:
        """Mark open invitations that already have their first evaluation as answered."""
        closed = 0
        for invitation in self.repo.invitations.find({"state": "open"}, limit=limit):
            ref = invitation["service_ref"]
            first = domain.evaluation_id(ref["kind"], ref["id"], domain.FIRST)
            if self.repo.evaluations.get(first) is not None:
                self.repo.invitations.update(
                    invitation["id"],
                    {"state": "answered", "evaluation_id": first},
                    expect={"state": "open"},
                )
                closed += 1
        return closed

    def _default_ratings(self, now: datetime) -> int:
        days = self.rules.default_rating_after_days
        if days is None:
            return 0
        cutoff = domain.iso(now - timedelta(days=days))
        made = 0
        for invitation in self.repo.invitations.find(
            {"state": "open", "service_ended_at": {"$lte": cutoff}}, limit=500
        ):
            kind, ref = invitation["service_ref"]["kind"], invitation["service_ref"]["id"]
            facts = self._facts(
                {"service_ref": {"kind": kind, "id": ref}, "invitation_id": invitation["id"]}
            )
            doc_id = domain.evaluation_id(facts.kind, facts.ref_id, domain.FIRST)
            if self.repo.evaluations.get(doc_id) is None:
                doc = self._evaluation_doc(
                    doc_id=doc_id,
                    facts=facts,
                    sequence=domain.FIRST,
                    channel=Channel.SYSTEM_DEFAULT,
                    level=Level.BASICALLY_SATISFIED,
                    details={},
                    comment=None,
                    reasons={"tags": [], "text": None},
                    rater={"real_name": False, "phone_masked": None, "name_masked": None},
                    entered_by=None,
                    hold=[],
                    now=now,
                    day=domain.local_day(now, self.rules.zone),
                    token=None,
                )
                try:
                    self._record(doc, facts, now)
                    made += 1
                    continue
                except Conflict:
                    pass
            self.repo.invitations.update(invitation["id"], {"state": "answered"})
        return made

    # --- replication and rollups -------------------------------------------------------

    def store_replicated(self, name: str, docs: list[dict[str, Any]]) -> int:
        # A record the rollups cannot count (e.g. a level this version does not know) is
        # refused before anything is stored: once stored, the folder would stop at it for
        # good (stats failing, the fold loop killing the container). sync parks it at the
        # child and the rest of the batch is stored.
        contribution = domain.CONTRIBUTIONS[name]
        for doc in docs:
            try:
                date.fromisoformat(doc["day"])
                domain.expand(contribution(doc))
            except (KeyError, TypeError, ValueError, AttributeError) as exc:
                doc_id = doc.get("id") if isinstance(doc, Mapping) else None
                raise InvalidInput.field(
                    name, f"记录 {doc_id} 无法计入统计：{type(exc).__name__}: {exc}"
                ) from None
        applied = self.repo.c[name].upsert_versioned_many(docs)
        self.repo.fold(name)
        return applied

    def fold(self) -> int:
        self.dirty = False
        return self.repo.fold()

    # --- statistics --------------------------------------------------------------------

    def _root(self, site_code: str | None) -> str:
        root = site_code or self.site
        if not within_subtree(root, self.site):
            raise Forbidden(f"站点 {root} 不在本站 {self.site} 的辖区内", {"site_code": [root]})
        return root

    def stats(
        self, filters: Mapping[str, Any] | None, group_by: str | None = None
    ) -> dict[str, Any]:
        data = schemas.load(schemas.StatsFilterSchema(), filters or {})
        if group_by is not None and group_by not in schemas.GROUP_BY:
            raise InvalidInput.field("group_by", f"应为以下之一：{', '.join(schemas.GROUP_BY)}")
        root = self._root(data.get("site_code"))
        today = domain.local_day(utcnow(), self.rules.zone)
        date_from = data.get("date_from") or today.replace(day=1)
        date_to = data.get("date_to") or today
        return self._stats(root, date_from, date_to, data, group_by)

    def _stats(
        self,
        root: str,
        date_from: date,
        date_to: date,
        data: Mapping[str, Any],
        group_by: str | None,
    ) -> dict[str, Any]:
        self.fold()
        filter_dim = next((d for d in domain.DIMENSIONS if data.get(d) is not None), None)
        if filter_dim and group_by in domain.DIMENSIONS and group_by != filter_dim:
            raise InvalidInput.field(
                "group_by", f"按 {filter_dim} 筛选时只能按该维度、站点或时间分组"
            )
        dim = filter_dim or (group_by if group_by in domain.DIMENSIONS else "all")
        wanted = str(data[filter_dim]) if filter_dim else None
        sites = subtree_range(root, prefix(root))
        months, day_ranges = domain.plan_periods(date_from, date_to, group_by in ("day", "week"))
        queries: list[dict[str, Any]] = []
        if months:
            queries.append({"dim": dim, "grain": "month", "period": {"$in": months}})
        for first, last in day_ranges:
            queries.append({"dim": dim, "grain": "day", "period": {"$gte": first, "$lte": last}})
        groups: dict[str, dict[str, int]] = {}
        total: dict[str, int] = {}
        for query in queries:
            if sites is not None:
                query["site_code"] = sites
            for bucket in self.repo.buckets(query):
                values = bucket.get("values") or {}
                if wanted is not None:
                    values = {wanted: values[wanted]} if wanted in values else {}
                for value, counts in values.items():
                    if group_by is not None:
                        key = domain.group_key(bucket, value, group_by)
                        domain.add_counts(groups.setdefault(key, {}), counts)
                    domain.add_counts(total, counts)
        return {
            "site_code": root,
            "date_from": date_from.isoformat(),
            "date_to": date_to.isoformat(),
            "filter": {filter_dim: data[filter_dim]} if filter_dim else {},
            "group_by": group_by,
            "total": domain.figures(total),
            "groups": [{"key": k, **domain.figures(v)} for k, v in sorted(groups.items())]
            if group_by
            else [],
        }

    def rankings(self, month: str, dimension: str = "window", limit: int = 20) -> dict[str, Any]:
        """Monthly ranking of windows or staff (for assessment and awards)."""
        if dimension not in ("window", "staff"):
            raise InvalidInput.field("dimension", "应为 window 或 staff")
        if not isinstance(limit, int) or not 1 <= limit <= 1000:
            raise InvalidInput.field("limit", "应为 1 到 1000 之间的整数")
        if not isinstance(month, str) or len(month) != 7:
            raise InvalidInput.field("month", "应为 YYYY-MM")
        first, last = domain.parse_period(month)
        result = self._stats(self.site, first, last, {}, dimension)
        ranked = domain.rank(
            ((g["key"], g) for g in result["groups"]), self.rules.ranking_min_evaluations
        )
        return {
            "month": month,
            "dimension": dimension,
            "site_code": self.site,
            "min_evaluations": self.rules.ranking_min_evaluations,
            "rows": ranked[:limit],
        }

    def public_report(self, period: str) -> dict[str, Any]:
        """公开为常态: figures for publication; no staff, no rater, no record ids."""
        first, last = domain.parse_period(period)
        total = self._stats(self.site, first, last, {}, None)["total"]
        by = {
            dim: self._stats(self.site, first, last, {}, dim)["groups"]
            for dim in ("department", "matter", "channel", "site")
        }
        windows = domain.rank(
            ((g["key"], g) for g in self._stats(self.site, first, last, {}, "window")["groups"]),
            self.rules.ranking_min_evaluations,
        )
        return {
            "site_code": self.site,
            "period": period,
            "date_from": first.isoformat(),
            "date_to": last.isoformat(),
            "total": total,
            "by_department": by["department"],
            "by_matter": by["matter"],
            "by_channel": by["channel"],
            "by_site": by["site"],
            "windows": windows,
            "note": "差评均按“谁办理、谁负责”回访整改；不予采纳及申诉成立的评价保留但不计入统计。",
        }

    def export(self, payload: Mapping[str, Any]) -> dict[str, Any]:
        """Evaluations in an upstream target's coding, page by page (``after`` a position)."""
        data = schemas.load(schemas.ExportSchema(), payload)
        after = data["after"]
        profile = domain.EXPORT_PROFILES[data["profile"]]
        query: dict[str, Any] = {
            "day": {"$gte": data["date_from"].isoformat(), "$lte": data["date_to"].isoformat()},
            "_seq": {"$gt": after},
        }
        if (sites := subtree_range(self.site, prefix(self.site))) is not None:
            query["site_code"] = sites
        docs = self.repo.evaluations.find(query, sort=[("_seq", 1)], limit=data["limit"])
        records, unmapped = [], []
        for doc in docs:
            record = domain.export_record(doc, profile, self.rules.zone)
            if record is None:
                unmapped.append(
                    {
                        "id": doc["id"],
                        "channel": doc["channel"],
                        "reason": f"{profile.title} 没有该评价渠道的代码",
                    }
                )
            else:
                records.append(record)
        return {
            "profile": profile.name,
            "title": profile.title,
            "records": records,
            "unmapped": unmapped,
            "next_after": docs[-1]["_seq"] if len(docs) == data["limit"] else None,
        }


def check_replicated_name(name: str) -> None:
    if name not in (EVALUATIONS, CASES):
        raise NotFound(f"本服务不接收 {name} 的复制数据", {"name": [name]})
