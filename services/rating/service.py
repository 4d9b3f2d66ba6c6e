"""The `rating` service: 好差评 evaluations, bad-rating rectification (差评整改), appeals,
statistics from rollups, exports, and the rater's privacy. Thin Nameko glue over
``handlers.Rating``."""

from __future__ import annotations

import logging
import time
from typing import Any

import eventlet
import eventlet.event
from nameko.events import event_handler
from nameko.exceptions import RpcTimeout, UnknownService
from nameko.extensions import DependencyProvider
from nameko.rpc import RpcProxy
from nameko.timer import timer

from services.common import service as base
from services.common.config import ConfigError
from services.common.errors import Conflict, InvalidInput, StoreUnavailable
from services.common.rpc import rpc
from services.common.runtime import SiteRuntime
from services.rating import domain
from services.rating.handlers import INVITATION_FEED, SOURCES, Rating, check_replicated_name

log = logging.getLogger(__name__)

FETCH_TIMEOUT_S = 5.0  # a source that does not answer is retried on the next tick
# How often the background folder folds new records into the rollups. Under load a longer
# pause folds bigger batches (fewer commits); ``stats`` folds whatever is left before reading.
FOLD_IDLE_S = 0.5
FOLD_BUSY_S = 0.25
FOLD_RETRY_S = 5.0


class GroupCommit:
    """Writes the evaluations of concurrent workers in one transaction (one fsync).

    The first worker to arrive yields once so that the others already handed a message can
    queue theirs, then inserts the batch with ``insert_many`` and wakes each worker with its
    own stored document. If the batch is refused (one duplicate rolls the whole SQLite batch
    back), each document is written alone so every worker gets its own answer. A worker is
    answered only after its document is durable.
    """

    def __init__(self, collection: Any) -> None:
        self.collection = collection
        self.pending: list[tuple[dict[str, Any], eventlet.event.Event]] = []
        self.leader = False
        self.flushed = eventlet.event.Event()

    def insert(self, doc: dict[str, Any]) -> dict[str, Any]:
        done = eventlet.event.Event()
        self.pending.append((doc, done))
        while not done.ready():
            if self.leader:  # a batch is being written; ours is in it or in the next one
                self.flushed.wait()
                continue
            self.leader = True
            try:
                eventlet.sleep(0)  # let the workers already running queue their documents
                batch, self.pending = self.pending, []
                self._write(batch)
            finally:
                self.leader = False
                flushed, self.flushed = self.flushed, eventlet.event.Event()
                flushed.send(True)
        result: dict[str, Any] = done.wait()
        return result

    def _write(self, batch: list[tuple[dict[str, Any], eventlet.event.Event]]) -> None:
        try:
            stored = self.collection.insert_many([doc for doc, _ in batch])
        except Exception:  # each one alone, so each worker gets its own answer
            for doc, done in batch:
                try:
                    done.send(self.collection.insert(doc))
                except Conflict as exc:
                    # Mongo stops an ordered batch at a duplicate: the documents before it
                    # were stored, and are this worker's own if every field matches.
                    stored = self.collection.get(doc["id"])
                    if stored is not None and all(stored.get(k) == v for k, v in doc.items()):
                        done.send(stored)
                    else:
                        done.send_exception(exc)
                except Exception as exc:
                    done.send_exception(exc)
            return
        for (_, done), doc in zip(batch, stored, strict=True):
            done.send(doc)


class RatingDependency(DependencyProvider):  # type: ignore[misc]
    """One ``Rating`` per container, and the background loop that folds the rollups."""

    site_runtime = SiteRuntime()

    def bind(self, container: Any, attr_name: str) -> RatingDependency:
        instance: RatingDependency = super().bind(container, attr_name)
        try:  # refuse to start on a bad RATING section, before anything touches disk
            instance.rules = domain.parse_rules(container.config.get("RATING") or {})
        except InvalidInput as exc:
            raise ConfigError(exc.message, exc.fields) from None
        return instance

    def setup(self) -> None:
        context = self.site_runtime.ready()
        self.rating = Rating(
            context.store, context.identity.code, context.calendar, self.rules, context.metrics
        )
        self.rating.insert_evaluation = GroupCommit(self.rating.repo.evaluations).insert
        self.running = False
        self.last_sweep = 0.0

    def start(self) -> None:
        self.running = True
        self.loop = self.container.spawn_managed_thread(self._fold_loop)

    def _fold_loop(self) -> None:
        while self.running:
            try:
                busy = self.rating.dirty and self.rating.fold() > 0
            except StoreUnavailable as exc:
                log.warning("rating: rollup fold postponed: %s", exc)
                busy = False
            except Exception:
                # A record the fold cannot handle must not kill the container (it would die
                # again after every restart): evaluations and cases keep working, the stats
                # lag, and the error shows in the log and in hall_rating_fold_errors_total.
                log.exception("rating: rollup fold failed; retrying in %s s", FOLD_RETRY_S)
                self.rating.metrics.fold_errors.labels(**self.rating.metrics.labels()).inc()
                eventlet.sleep(FOLD_RETRY_S)
                continue
            eventlet.sleep(FOLD_BUSY_S if busy else FOLD_IDLE_S)

    def stop(self) -> None:
        self.running = False
        # wait for a fold in progress so the store is not closed under it
        for folder in self.rating.repo.folders.values():
            with folder.lock:
                pass

    def kill(self) -> None:
        self.running = False

    def sweep_due(self) -> bool:
        now = time.monotonic()
        if now - self.last_sweep >= self.rules.sweep_interval_seconds:
            self.last_sweep = now
            return True
        return False

    def get_dependency(self, worker_ctx: Any) -> Any:
        return self


class RatingService(base.SiteService):
    """好差评 at one site: evaluations, cases, statistics; follows queue and matters."""

    name = "rating"
    feeds = ("evaluations", "cases")
    replicated_feeds = ("evaluations", "cases")

    app = RatingDependency()
    queue_rpc = RpcProxy("queue")
    matters_rpc = RpcProxy("matters")

    # --- evaluations ---
    @rpc
    def submit_evaluation(self, evaluation: dict[str, Any]) -> dict[str, Any]:
        return self.app.rating.submit(evaluation)

    @rpc
    def get_evaluation(self, evaluation_id: str) -> dict[str, Any]:
        return self.app.rating.get_evaluation(evaluation_id)

    @rpc
    def pending_for_window(self, window: str) -> dict[str, Any] | None:
        return self.app.rating.pending_for_window(window)

    @rpc
    def review_held(self, review: dict[str, Any]) -> dict[str, Any]:
        return self.app.rating.review_held(review)

    # --- cases ---
    @rpc
    def list_cases(self, filters: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        return self.app.rating.list_cases(filters)

    @rpc
    def get_case(self, case_id: str) -> dict[str, Any]:
        return self.app.rating.get_case(case_id)

    @rpc
    def assign_case(self, assignment: dict[str, Any]) -> dict[str, Any]:
        return self.app.rating.assign_case(assignment)

    @rpc
    def record_callback(self, callback: dict[str, Any]) -> dict[str, Any]:
        return self.app.rating.record_callback(callback)

    @rpc
    def classify_case(self, classification: dict[str, Any]) -> dict[str, Any]:
        return self.app.rating.classify_case(classification)

    @rpc
    def record_rectification(self, rectification: dict[str, Any]) -> dict[str, Any]:
        return self.app.rating.record_rectification(rectification)

    @rpc
    def record_feedback(self, feedback: dict[str, Any]) -> dict[str, Any]:
        return self.app.rating.record_feedback(feedback)

    @rpc
    def appeal(self, appeal: dict[str, Any]) -> dict[str, Any]:
        return self.app.rating.appeal(appeal)

    @rpc
    def review_appeal(self, review: dict[str, Any]) -> dict[str, Any]:
        return self.app.rating.review_appeal(review)

    @rpc
    def reveal_phone(self, case_id: str, by: str) -> dict[str, Any]:
        return self.app.rating.reveal_phone(case_id, by)

    @rpc
    def reveal_audit(self, case_id: str) -> list[dict[str, Any]]:
        return self.app.rating.reveal_audit(case_id)

    # --- statistics and disclosure ---
    @rpc
    def stats(
        self, filters: dict[str, Any] | None = None, group_by: str | None = None
    ) -> dict[str, Any]:
        return self.app.rating.stats(filters, group_by)

    @rpc
    def rankings(self, month: str, dimension: str = "window", limit: int = 20) -> dict[str, Any]:
        return self.app.rating.rankings(month, dimension, limit)

    @rpc
    def public_report(self, period: str) -> dict[str, Any]:
        return self.app.rating.public_report(period)

    @rpc
    def export(self, request: dict[str, Any]) -> dict[str, Any]:
        return self.app.rating.export(request)

    # --- replication (sync) ---
    def store_replicated(self, name: str, docs: list[dict[str, Any]]) -> int:
        check_replicated_name(name)
        return self.app.rating.store_replicated(name, docs)

    # --- invitations from queue and matters, and the periodic sweep ---
    @timer(interval=2)
    def tick(self) -> None:
        for source in SOURCES:
            self._pull(source)
        if self.app.sweep_due():
            try:
                self.app.rating.sweep()
            except Exception:  # a failed sweep is retried next time; never kill the timer
                log.exception("rating: sweep failed")

    @event_handler("queue", "evaluation_invited")
    def on_ticket_completed(self, payload: Any) -> None:
        self._pull("queue")

    @event_handler("matters", "evaluation_invited")
    def on_application_completed(self, payload: Any) -> None:
        self._pull("matters")

    def _pull(self, source: str) -> int:
        proxy = self.queue_rpc if source == "queue" else self.matters_rpc

        def fetch(since: int, limit: int) -> dict[str, Any]:
            with eventlet.Timeout(FETCH_TIMEOUT_S, RpcTimeout(f"{source} 未在规定时间内应答")):
                return dict(proxy.feed(INVITATION_FEED, since, limit))

        reason = None
        try:
            return self.app.rating.pull_invitations(source, fetch)
        except UnknownService:
            reason = "unknown_service"
        except RpcTimeout:
            reason = "timeout"
        except Exception as exc:  # never crash the worker; retried next tick
            reason = type(exc).__name__
            log.warning("rating: pulling invitations from %s failed: %s", source, exc)
        metrics = self.app.rating.metrics
        metrics.pull_errors.labels(**metrics.labels(source=source, reason=reason)).inc()
        return 0
