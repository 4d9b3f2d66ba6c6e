"""The `rating` service: 好差评 evaluations, bad-rating rectification (差评整改), appeals,
statistics from rollups, exports, and the rater's privacy. The Nameko class only: each
entrypoint is one call into ``RatingApp`` (docs/architecture.md, "Service template")."""

from __future__ import annotations

from typing import Any

from nameko.events import event_handler
from nameko.timer import timer

from services.common import service as base
from services.common.callers import SignedRpcProxy
from services.common.rpc import rpc
from services.rating.access import ACCESS
from services.rating.adapters import sources
from services.rating.app import RatingApp
from services.rating.provider import RatingProvider


class RatingService(base.SiteService):
    """好差评 at one site: evaluations, cases, statistics; follows queue and matters."""

    name = "rating"
    access = ACCESS
    feeds = ("evaluations", "cases")
    replicated_feeds = ("evaluations", "cases")

    app: RatingApp = RatingProvider()
    queue_rpc = SignedRpcProxy("queue")
    matters_rpc = SignedRpcProxy("matters")

    # --- evaluations ---
    @rpc
    def submit_evaluation(self, evaluation: dict[str, Any]) -> dict[str, Any]:
        return self.app.submit(evaluation)

    @rpc
    def get_evaluation(self, evaluation_id: str) -> dict[str, Any]:
        return self.app.get_evaluation(evaluation_id)

    @rpc
    def pending_for_window(self, window: str) -> dict[str, Any] | None:
        return self.app.pending_for_window(window)

    @rpc
    def invitation_status(
        self, kind: str, ref_id: str, request_id: str | None = None
    ) -> dict[str, Any]:
        return self.app.invitation_status(kind, ref_id, request_id)

    @rpc
    def review_held(self, review: dict[str, Any]) -> dict[str, Any]:
        return self.app.review_held(review)

    # --- cases ---
    @rpc
    def list_cases(self, filters: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        return self.app.list_cases(filters)

    @rpc
    def get_case(self, case_id: str) -> dict[str, Any]:
        return self.app.get_case(case_id)

    @rpc
    def assign_case(self, assignment: dict[str, Any]) -> dict[str, Any]:
        return self.app.assign_case(assignment)

    @rpc
    def record_callback(self, callback: dict[str, Any]) -> dict[str, Any]:
        return self.app.record_callback(callback)

    @rpc
    def classify_case(self, classification: dict[str, Any]) -> dict[str, Any]:
        return self.app.classify_case(classification)

    @rpc
    def record_rectification(self, rectification: dict[str, Any]) -> dict[str, Any]:
        return self.app.record_rectification(rectification)

    @rpc
    def record_feedback(self, feedback: dict[str, Any]) -> dict[str, Any]:
        return self.app.record_feedback(feedback)

    @rpc
    def appeal(self, appeal: dict[str, Any]) -> dict[str, Any]:
        return self.app.appeal(appeal)

    @rpc
    def review_appeal(self, review: dict[str, Any]) -> dict[str, Any]:
        return self.app.review_appeal(review)

    @rpc
    def reveal_phone(self, case_id: str, by: str | None = None) -> dict[str, Any]:
        return self.app.reveal_phone(case_id, by)

    @rpc
    def reveal_audit(self, case_id: str) -> list[dict[str, Any]]:
        return self.app.reveal_audit(case_id)

    # --- statistics and disclosure ---
    @rpc
    def stats(
        self, filters: dict[str, Any] | None = None, group_by: str | None = None
    ) -> dict[str, Any]:
        return self.app.stats(filters, group_by)

    @rpc
    def rankings(self, month: str, dimension: str = "window", limit: int = 20) -> dict[str, Any]:
        return self.app.rankings(month, dimension, limit)

    @rpc
    def public_report(self, period: str) -> dict[str, Any]:
        return self.app.public_report(period)

    @rpc
    def export(self, request: dict[str, Any]) -> dict[str, Any]:
        return self.app.export(request)

    # --- replication (sync) ---
    def store_replicated(self, name: str, docs: list[dict[str, Any]]) -> int:
        return self.app.store_replicated(name, docs)

    # --- invitations from queue and matters, and the periodic sweep ---
    @timer(interval=2)
    def tick(self) -> None:
        sources.tick(self.app, {"queue": self.queue_rpc, "matters": self.matters_rpc})

    @event_handler("queue", "evaluation_invited")
    def on_ticket_completed(self, payload: Any) -> None:
        sources.pull(self.app, "queue", self.queue_rpc)

    @event_handler("matters", "evaluation_invited")
    def on_application_completed(self, payload: Any) -> None:
        sources.pull(self.app, "matters", self.matters_rpc)
