"""Replication at work: pushing local feeds up, receiving children's batches, pulling the
catalog down, reconciling counts, and reporting status (DESIGN §6).

``Replicator`` is the child's end, ``Receiver`` the upstream's end. Both are built per
worker from the container-scoped ``SyncContext`` (settings, repository, metrics, retry
schedule, lock) and the worker's RPC callers; the rules they apply live in ``domain``.
"""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from typing import Any

import eventlet
from eventlet.greenthread import GreenThread
from eventlet.semaphore import Semaphore
from nameko.exceptions import MethodNotFound, RemoteError, RpcTimeout, UnknownService

from services.common.errors import (
    Conflict,
    Forbidden,
    HallError,
    InvalidInput,
    NotFound,
    UpstreamUnavailable,
)
from services.common.metrics import ServiceMetrics
from services.common.site import SiteIdentity, within_subtree
from services.sync import domain
from services.sync.domain import FeedRef, Span, Task
from services.sync.local import LocalCaller, LocalUnavailable
from services.sync.schemas import (
    MAX_PAGE,
    Settings,
    load_batch,
    load_key_probe,
    load_page,
    load_reconcile,
)
from services.sync.store import SyncRepository
from services.sync.upstream import UpstreamRpc

log = logging.getLogger(__name__)

UP, DOWN, RECONCILE = "up", "down", "reconcile"
# The key check with the upstream (``sync.verify_key``): its own exchange, so a wrong key
# shows (metrics ``direction="key"``, ``status()["key"]``) even when nothing waits to be sent.
KEY = "key"
# Errors after which the rest of an upstream session is pointless: the link is down.
LINK_DOWN = frozenset({"unreachable", "timeout", "unknown_service"})
# Failures after which the upstream connection is still sound (a typed answer came back).
SESSION_SURVIVES = frozenset({"forbidden", "conflict", "invalid_input", "not_found", "local"})
# What a service's apply_replicated raises for a record it will not take (a poison record).
RECORD_ERRORS = ("ValueError", "TypeError", "KeyError", "ValidationError")


class SyncMetrics:
    """The sync series of one site (DESIGN §7), created once per container."""

    def __init__(self, metrics: ServiceMetrics) -> None:
        self.site = metrics.site_labels()
        flow = ["direction", "feed"]
        self.backlog = metrics.gauge(
            "hall_sync_backlog", "Records waiting to be replicated (feed positions)", flow
        )
        self.oldest = metrics.gauge(
            "hall_sync_oldest_unsent_age_seconds",
            "Age of the oldest record not yet replicated",
            flow,
        )
        self.last_success = metrics.gauge(
            "hall_sync_last_success_timestamp", "Unix time of the last successful exchange", flow
        )
        self.parked = metrics.gauge("hall_sync_parked", "Poison records parked, by feed", ["feed"])
        self.records = metrics.counter(
            "hall_sync_records_total", "Records sent up, received from children, applied down", flow
        )
        self.errors = metrics.counter(
            "hall_sync_errors_total",
            "Failed replication attempts, by reason",
            ["direction", "reason"],
        )
        self.refused = metrics.counter(
            "hall_sync_refused_total", "Batches from children refused whole, by reason", ["reason"]
        )
        self.rejected = metrics.counter(
            "hall_sync_rejected_records_total",
            "Records from children rejected as malformed",
            ["feed"],
        )
        self.resent = metrics.counter(
            "hall_sync_resent_total", "Records sent again after reconciliation found gaps", ["feed"]
        )


@dataclass
class SyncContext:
    """Container-scoped state of the sync service."""

    identity: SiteIdentity
    settings: Settings
    repo: SyncRepository
    metrics: SyncMetrics
    tasks: dict[str, Task] = field(default_factory=dict)
    lock: Semaphore = field(default_factory=Semaphore)
    # (ClusterRpcProxy, its proxy) on the upstream broker; used under ``lock`` only.
    session: tuple[Any, Any] | None = None
    # Set when the container begins to stop: a running exchange ends at its next batch or
    # job boundary (the rest goes after the restart, from the checkpoints).
    stopping: bool = False

    def __post_init__(self) -> None:
        s = self.settings
        for ref in s.upward:
            self.tasks[f"{UP}:{ref.key}"] = Task(s.push_interval, s.backoff)
        self.tasks[DOWN] = Task(s.pull_interval, s.backoff)
        # The first reconciliation waits one interval: a fresh start has nothing to compare.
        self.tasks[RECONCILE] = Task(
            s.reconcile_interval, s.backoff, next_due=time.monotonic() + s.reconcile_interval
        )
        self.tasks["status"] = Task(s.status_interval, s.backoff)
        self.tasks[KEY] = Task(s.key_check_interval, s.backoff)

    def close_session(self) -> None:
        session, self.session = self.session, None
        if session is not None:
            UpstreamRpc.close(session[0])

    @property
    def catalog_key(self) -> str:
        return f"{DOWN}:{self.settings.catalog_service}.catalog"


def classify(exc: BaseException) -> tuple[str, str]:
    """(reason label, one-line Chinese message) of a failed exchange. Never a record's data."""
    if isinstance(exc, UnknownService):
        return "unknown_service", f"{exc.args[0] if exc.args else ''} 服务未运行"
    if isinstance(exc, RpcTimeout | eventlet.Timeout | socket.timeout):
        return "timeout", "上级站点在规定时间内没有应答"
    if isinstance(exc, Forbidden):
        return "forbidden", exc.message
    if isinstance(exc, LocalUnavailable):
        return "local", exc.message
    if isinstance(exc, UpstreamUnavailable):
        return "unreachable", exc.message
    if isinstance(exc, HallError):
        return exc.code, exc.message
    if (
        isinstance(exc, OSError | ConnectionError | RuntimeError)
        or "amqp" in type(exc).__module__
        or "kombu" in type(exc).__module__
    ):
        return "unreachable", f"与上级站点的连接中断：{type(exc).__name__}: {exc}".splitlines()[0]
    return "error", f"{type(exc).__name__}: {exc}".splitlines()[0]


class Replicator:
    """The child's end: push local feeds up, pull the catalog down, reconcile."""

    def __init__(self, ctx: SyncContext, local: LocalCaller, upstream: UpstreamRpc) -> None:
        self.ctx = ctx
        self.s = ctx.settings
        self.repo = ctx.repo
        self.m = ctx.metrics
        self.local = local
        self.upstream = upstream
        self.code = ctx.identity.code

    # --- scheduling -----------------------------------------------------------------------

    def tick(self) -> None:
        """One timer tick: run whatever is due, unless an operator's push is running."""
        if not self.ctx.lock.acquire(blocking=False):
            return
        try:
            now = time.monotonic()
            self._run(lambda name: self.ctx.tasks[name].due(now))
            status = self.ctx.tasks["status"]
            if status.due(now):
                self.status()
                status.succeeded(now)
        finally:
            self.ctx.lock.release()

    def push_now(self) -> dict[str, Any]:
        """Run every exchange now, waiting for a running one to finish first."""
        with self.ctx.lock:
            results = self._run(lambda name: name != RECONCILE)
        return {"site_code": self.code, "results": results, "status": self.status()}

    def reconcile_now(self) -> dict[str, Any]:
        with self.ctx.lock:
            return {"site_code": self.code, "results": self._run(lambda name: name == RECONCILE)}

    def _run(self, due: Callable[[str], bool]) -> dict[str, Any]:
        if self.ctx.identity.upstream is None:
            return {}
        jobs: list[tuple[str, Callable[[Any], Any]]] = []
        # First: a refused key explains whatever fails after it. (A site that pushes nothing
        # and has no key, e.g. one that only pulls the catalog, has no key to check.)
        if due(KEY) and (self.s.key or self.s.upward):
            jobs.append((KEY, self.verify_key))
        for ref in self.s.upward:
            name = f"{UP}:{ref.key}"
            if due(name):
                jobs.append((name, partial(self._push_job, ref)))
        if self.s.pull_catalog and due(DOWN):
            jobs.append((DOWN, self.pull_catalog))
        if due(RECONCILE):
            jobs.append((RECONCILE, self.reconcile))
        if not jobs:
            return {}
        results: dict[str, Any] = {}
        try:
            up = self._session()
        except Exception as exc:  # the link could not be opened: every job failed
            for name, _ in jobs:
                results[name] = self._failed(name, exc)
            jobs = []
        for position, (name, job) in enumerate(jobs):
            if self.ctx.stopping:
                break
            results[name] = self._attempt(name, job, up)
            reason = results[name].get("reason")
            if reason is not None and reason not in SESSION_SURVIVES:
                self.ctx.close_session()
            if reason in LINK_DOWN:
                for rest, _ in jobs[position + 1 :]:
                    results[rest] = self._failed(rest, results[name]["error_exc"])
                break
        for result in results.values():
            result.pop("error_exc", None)
        return results

    def _session(self) -> Any:
        """The upstream proxy, kept open between ticks (one connection per site, not one
        per push); dropped after a failure and opened again on the next attempt."""
        if self.ctx.session is None:
            self.ctx.session = self.upstream.open(self.s.rpc_timeout)
        return self.ctx.session[1]

    def _attempt(self, name: str, job: Callable[[Any], Any], up: Any) -> dict[str, Any]:
        try:
            outcome = job(up)
        except Exception as exc:
            return self._failed(name, exc)
        task = self.ctx.tasks[name]
        task.succeeded(time.monotonic())
        if outcome.get("more"):
            task.hurry()
        if outcome.get("verified") is False:
            # The upstream cannot check keys (an older version): neither success nor error.
            self.repo.note(name, {"unverified_at": domain.utc_now_iso(), "note": outcome["note"]})
            return {"ok": True, **outcome}
        direction, feed = _split(name)
        self.repo.succeeded(name, {"key_in_use": outcome.get("key")} if name == KEY else None)
        self.m.last_success.labels(**self.m.site, direction=direction, feed=feed).set(time.time())
        return {"ok": True, **outcome}

    def _failed(self, name: str, exc: BaseException) -> dict[str, Any]:
        reason, message = classify(exc)
        wait = self.ctx.tasks[name].failed(time.monotonic())
        direction, _ = _split(name)
        self.m.errors.labels(**self.m.site, direction=direction, reason=reason).inc()
        self.repo.failed(name, reason, message)
        log.warning("sync %s failed (%s): %s; retry in %.1f s", name, reason, message, wait)
        return {
            "ok": False,
            "reason": reason,
            "error": message,
            "retry_in_s": round(wait, 1),
            "error_exc": exc,
        }

    # --- the key check ----------------------------------------------------------------------

    def verify_key(self, up: Any) -> dict[str, Any]:
        """Send the upstream a signed probe (no records) and let it verify the signature
        with the key it holds for this site: a wrong or unregistered key shows at once,
        not only when there is something to send."""
        upstream = self.ctx.identity.upstream
        key = self._key()
        probe = domain.sign(
            {
                "schema": domain.SCHEMA,
                "child": self.code,
                "upstream": upstream,
                "sent_at": domain.utc_now_iso(),
            },
            key,
        )
        try:
            with eventlet.Timeout(self.s.rpc_timeout * 2):
                answer: dict[str, Any] = up.sync.verify_key(probe)
        except (MethodNotFound, RemoteError) as exc:
            if isinstance(exc, RemoteError) and exc.exc_type != "MethodNotFound":
                raise
            note = f"上级站点 {upstream} 的同步服务版本较旧，不能核验密钥（没有 sync.verify_key）"
            return {"verified": False, "note": note}
        except Forbidden as exc:
            message = f"上级站点 {upstream} 拒绝了本站点 {self.code} 的同步密钥：{exc.message}"
            raise Forbidden(message, exc.fields) from None
        return {"verified": True, "key": answer.get("key"), "upstream": answer.get("site_code")}

    def check_key_now(self) -> dict[str, Any]:
        """The key check on demand (``hallctl check``), on its own connection: it does not
        wait for a push in progress."""
        upstream = self.ctx.identity.upstream
        if upstream is None:
            raise Conflict("本站点没有上级站点，无需核验同步密钥", {"SITE.upstream": ["未配置"]})
        try:
            with self.upstream.proxy(min(self.s.rpc_timeout, 10.0)) as up:
                result = self._attempt(KEY, self.verify_key, up)
        except Exception as exc:  # the upstream broker could not be reached
            result = self._failed(KEY, exc)
        result.pop("error_exc", None)
        return {"site_code": self.code, "upstream": upstream, **result, "status": self.key_status()}

    def key_status(self) -> dict[str, Any]:
        """The last key check: ``ok`` True (accepted), False (refused or failed), None (not
        checked yet, or the upstream cannot check keys)."""
        doc = self.repo.outcome(KEY)
        events = {
            True: doc.get("last_success") or "",
            False: doc.get("last_error_at") or "",
            None: doc.get("unverified_at") or "",
        }
        latest = max(events, key=lambda k: events[k])
        return {
            "ok": latest if events[latest] else None,
            "key_in_use": doc.get("key_in_use"),
            **_outcome(doc),
            "unverified_at": doc.get("unverified_at"),
            "note": doc.get("note") if latest is None and events[None] else None,
        }

    # --- upward ---------------------------------------------------------------------------

    def _key(self) -> str:
        if not self.s.key:
            raise Conflict("未配置本站点的同步密钥", {"SYNC.key": ["向上级推送数据需要密钥"]})
        return self.s.key

    def _prepare(self, ref: FeedRef, item: Mapping[str, Any], park: bool) -> dict[str, Any] | None:
        """The masked record to send, or None (parked as poison when ``park``)."""
        record = domain.mask_record(item, self.s.mask_keys)
        problem = domain.record_problem(record, self.s.max_record_bytes)
        if problem is None and not within_subtree(record["site_code"], self.code):
            problem = f"记录的来源站点 {record['site_code']} 不在本站点 {self.code} 的辖区内"
        if problem is None:
            return record
        if park:
            self.repo.park(ref.key, record, problem, item.get("_seq"))
            log.warning(
                "sync parked a record of %s at seq %s: %s", ref.key, item.get("_seq"), problem
            )
        return None

    def _prefetch(self, ref: FeedRef, since: int) -> GreenThread:
        """``_read`` in a green thread; its failure comes back as a value (so eventlet does
        not print it as an unhandled error) and is raised by ``_page``."""

        def read() -> tuple[int, list[Span], int] | BaseException:
            try:
                return self._read(ref, since)
            except Exception as exc:
                return exc

        return eventlet.spawn(read)

    @staticmethod
    def _page(pending: GreenThread) -> tuple[int, list[Span], int]:
        result = pending.wait()
        if isinstance(result, BaseException):
            raise result
        return result  # type: ignore[no-any-return]

    def _read(self, ref: FeedRef, since: int) -> tuple[int, list[Span], int]:
        """One page of a local feed after ``since``, masked, checked and cut into batches:
        (items read, batches, last position of the page)."""
        page = self.local.call(ref.service, "feed", ref.feed, since, self.s.batch_size)
        items = page["items"]
        if not items:
            return 0, [], since
        last = int(page["last_seq"])
        parts = domain.spans(
            items,
            since,
            last,
            lambda item: self._prepare(ref, item, park=True),
            self.s.batch_size,
            self.s.max_batch_bytes,
        )
        return len(items), parts, last

    def _push_job(self, ref: FeedRef, up: Any) -> dict[str, Any]:
        return self.push_feed(up, ref)

    def push_feed(self, up: Any, ref: FeedRef) -> dict[str, Any]:
        """Send everything after the checkpoint, batch by batch, moving the checkpoint only
        to the high-water mark the upstream replies with. The next page is read and
        prepared while the upstream works on the current batch (batches still go one at a
        time, in order, so the upstream's mark moves contiguously)."""
        key = self._key()
        checkpoint = f"{UP}:{ref.key}"
        sent = 0
        more = False
        deadline = time.monotonic() + self.s.cycle_seconds
        pending: GreenThread | None = self._prefetch(ref, self.repo.checkpoint(checkpoint))
        try:
            while pending is not None:
                if time.monotonic() > deadline or self.ctx.stopping:
                    # Leave the rest to the next tick: the other exchanges get their turn and
                    # a graceful stop never waits for a whole large backlog.
                    more = True
                    break
                count, parts, last = self._page(pending)
                pending = None
                if count == 0:
                    break
                if count >= self.s.batch_size:
                    pending = self._prefetch(ref, last)
                mark = last
                for part in parts:
                    reply = self._send(up, key, ref, part.from_seq, part.to_seq, part.records)
                    mark = int(reply["high_water"])
                    self.repo.set_checkpoint(checkpoint, mark)
                    sent += len(part.records)
                    self.m.records.labels(**self.m.site, direction=UP, feed=ref.key).inc(
                        len(part.records)
                    )
                    if mark != part.to_seq:
                        break
                if mark != last:
                    # The upstream holds less (it lost data) or more (we lost our checkpoint)
                    # than we thought: carry on from its mark, not from our page.
                    log.warning("sync %s: upstream holds up to %s; continuing there", ref.key, mark)
                    if pending is not None:
                        pending.kill()
                    pending = self._prefetch(ref, mark)
        finally:
            if pending is not None:
                pending.kill()
        self._gauge_backlog(ref)
        return {"sent": sent, "checkpoint": self.repo.checkpoint(checkpoint), "more": more}

    def _send(
        self,
        up: Any,
        key: str,
        ref: FeedRef,
        from_seq: int,
        to_seq: int,
        records: list[dict[str, Any]],
        resend: bool = False,
    ) -> dict[str, Any]:
        batch = domain.sign(
            {
                "schema": domain.SCHEMA,
                "child": self.code,
                "service": ref.service,
                "feed": ref.feed,
                "from_seq": from_seq,
                "to_seq": to_seq,
                "resend": resend,
                "sent_at": domain.utc_now_iso(),
                "records": records,
            },
            key,
        )
        with eventlet.Timeout(self.s.rpc_timeout * 2):
            reply: dict[str, Any] = up.sync.ingest(batch)
        rejected = reply.get("rejected") or []
        if rejected:
            by_id = {(r["id"], r["version"]): r for r in records}
            for item in rejected:
                record = by_id.get((item.get("id"), item.get("version")))
                if record is not None:
                    self.repo.park(ref.key, record, f"上级拒收：{item.get('reason')}", None)
        return reply

    def retry_parked(self, feed: str | None) -> dict[str, Any]:
        """Resend parked records that pass this site's own checks now; unpark the ones the
        upstream accepts."""
        key = self._key()
        summary: dict[str, Any] = {}
        with self.ctx.lock:
            try:
                up = self._session()
                for ref in self.s.upward:
                    if feed is None or ref.key == feed:
                        summary[ref.key] = self._retry_feed(up, key, ref)
            except Exception as exc:
                reason, message = classify(exc)
                if reason not in SESSION_SURVIVES:
                    self.ctx.close_session()
                raise UpstreamUnavailable(message) from None
        return {"site_code": self.code, "results": summary}

    def _retry_feed(self, up: Any, key: str, ref: FeedRef) -> dict[str, int]:
        resolved = still = after = 0
        while docs := self.repo.parked_records([ref.key], self.s.batch_size, after):
            after = docs[-1]["_seq"]
            sendable = {}
            for doc in docs:
                record = self._prepare(ref, {**doc["record"], "_seq": 0}, park=False)
                if record is None:
                    still += 1
                else:
                    sendable[doc["id"]] = record
            if sendable:
                reply = self._send(up, key, ref, 0, 0, list(sendable.values()), resend=True)
                refused = {(r.get("id"), r.get("version")) for r in reply.get("rejected") or []}
                for parked_id, record in sendable.items():
                    if (record["id"], record["version"]) in refused:
                        still += 1
                    else:
                        self.repo.unpark(parked_id)
                        resolved += 1
        self.m.parked.labels(**self.m.site, feed=ref.key).set(self.repo.parked_count(ref.key))
        return {"resolved": resolved, "still_parked": still}

    # --- downward -------------------------------------------------------------------------

    def pull_catalog(self, up: Any) -> dict[str, Any]:
        """Apply the upstream's catalog changes after our checkpoint (同源发布)."""
        checkpoint = self.ctx.catalog_key
        service = self.s.catalog_service
        applied = 0
        while True:
            since = self.repo.checkpoint(checkpoint)
            with eventlet.Timeout(self.s.rpc_timeout * 2):
                page = up.sync.catalog_changes(since, self.s.batch_size)
            items = page["items"]
            if items:
                docs = [{k: v for k, v in doc.items() if k != "_seq"} for doc in items]
                self.local.call(service, "apply_catalog", docs)
                self.repo.set_checkpoint(checkpoint, int(page["last_seq"]))
                applied += len(items)
                self.m.records.labels(**self.m.site, direction=DOWN, feed=f"{service}.catalog").inc(
                    len(items)
                )
            self.repo.succeeded(DOWN, {"upstream_high_water": int(page["high_water"])})
            if len(items) < self.s.batch_size or self.ctx.stopping:
                break
        return {"applied": applied, "checkpoint": self.repo.checkpoint(checkpoint)}

    # --- reconciliation ---------------------------------------------------------------------

    def _acknowledged(self, ref: FeedRef) -> Iterator[dict[str, Any]]:
        """Records of a local feed up to the acknowledged checkpoint, masked and sendable."""
        limit = self.repo.checkpoint(f"{UP}:{ref.key}")
        parked = self.repo.parked_versions(ref.key)
        since = 0
        while since < limit:
            page = self.local.call(ref.service, "feed", ref.feed, since, MAX_PAGE)
            for item in page["items"]:
                if int(item["_seq"]) > limit:
                    return
                record = self._prepare(ref, item, park=False)
                if record is not None and (record["id"], record["version"]) not in parked:
                    yield record
            if len(page["items"]) < MAX_PAGE:
                return
            since = int(page["last_seq"])

    def reconcile(self, up: Any) -> dict[str, Any]:
        """Compare counts per origin per day with the upstream; send again what it lacks."""
        key = self._key()
        first = domain.first_day(datetime.now(UTC).date(), self.s.reconcile_days)
        summary: dict[str, Any] = {}
        for ref in self.s.upward:
            mine = domain.tally(self._acknowledged(ref), first)
            request = domain.sign(
                {
                    "schema": domain.SCHEMA,
                    "child": self.code,
                    "service": ref.service,
                    "feed": ref.feed,
                    "counts": mine,
                },
                key,
            )
            with eventlet.Timeout(self.s.rpc_timeout * 2):
                theirs = up.sync.reconcile_counts(request)["counts"]
            gaps = domain.shortfalls(mine, theirs)
            resent = 0
            if gaps:
                batch: list[dict[str, Any]] = []
                for record in self._acknowledged(ref):
                    if (record["site_code"], domain.day_of(record)) in gaps:
                        batch.append(record)
                        if len(batch) >= self.s.batch_size:
                            self._send(up, key, ref, 0, 0, batch, resend=True)
                            resent += len(batch)
                            batch = []
                if batch:
                    self._send(up, key, ref, 0, 0, batch, resend=True)
                    resent += len(batch)
                self.m.resent.labels(**self.m.site, feed=ref.key).inc(resent)
                log.warning(
                    "sync reconcile %s: %d gaps, %d records sent again", ref.key, len(gaps), resent
                )
            summary[ref.key] = {"gaps": len(gaps), "resent": resent}
        return summary

    # --- status ---------------------------------------------------------------------------

    def _gauge_backlog(self, ref: FeedRef) -> dict[str, Any]:
        checkpoint = self.repo.checkpoint(f"{UP}:{ref.key}")
        now = datetime.now(UTC)
        try:
            page = self.local.call(ref.service, "feed", ref.feed, checkpoint, 1)
        except Exception as exc:
            return {
                "backlog": None,
                "oldest_unsent_age_seconds": None,
                "local_error": classify(exc)[1],
            }
        backlog = max(int(page["high_water"]) - checkpoint, 0)
        oldest = 0.0
        if page["items"]:
            first = page["items"][0]
            oldest = (
                domain.age_seconds(first.get("updated_at") or first.get("created_at"), now) or 0.0
            )
        labels = {**self.m.site, "direction": UP, "feed": ref.key}
        self.m.backlog.labels(**labels).set(backlog)
        self.m.oldest.labels(**labels).set(oldest)
        return {"backlog": backlog, "oldest_unsent_age_seconds": round(oldest, 3)}

    def status(self) -> dict[str, Any]:
        now = datetime.now(UTC)
        up: dict[str, Any] = {}
        has_upstream = self.ctx.identity.upstream is not None
        for ref in self.s.upward if has_upstream else ():
            name = f"{UP}:{ref.key}"
            parked = self.repo.parked_count(ref.key)
            self.m.parked.labels(**self.m.site, feed=ref.key).set(parked)
            up[ref.key] = {
                "checkpoint": self.repo.checkpoint(name),
                **self._gauge_backlog(ref),
                **_outcome(self.repo.outcome(name)),
                "parked": parked,
            }
        down: dict[str, Any] = {}
        if has_upstream and self.s.pull_catalog:
            outcome = self.repo.outcome(DOWN)
            checkpoint = self.repo.checkpoint(self.ctx.catalog_key)
            known = int(outcome.get("upstream_high_water", 0))
            backlog = max(known - checkpoint, 0)
            failing = bool(outcome.get("last_error_at", "") > outcome.get("last_success", ""))
            stale = 0.0
            if backlog or failing:
                stale = domain.age_seconds(outcome.get("last_success"), now) or 0.0
            feed = f"{self.s.catalog_service}.catalog"
            labels = {**self.m.site, "direction": DOWN, "feed": feed}
            self.m.backlog.labels(**labels).set(backlog)
            self.m.oldest.labels(**labels).set(stale)
            down[feed] = {
                "checkpoint": checkpoint,
                "upstream_high_water": known,
                "backlog": backlog,
                "oldest_unsent_age_seconds": round(stale, 3),
                **_outcome(outcome),
                "parked": 0,
            }
        children: dict[str, Any] = {}
        for mark in self.repo.received_marks():
            children.setdefault(mark["child"], {})[mark["feed"]] = {
                "high_water": mark["seq"],
                "last_received": mark.get("at"),
            }
        return {
            "site_code": self.code,
            "upstream": self.ctx.identity.upstream,
            "up": up,
            "down": down,
            "children": children,
            "reconcile": _outcome(self.repo.outcome(RECONCILE)) if has_upstream else {},
            "key": self.key_status() if has_upstream else {},
        }


def _split(name: str) -> tuple[str, str]:
    direction, _, feed = name.partition(":")
    return direction, feed or direction


def _outcome(doc: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "last_success": doc.get("last_success"),
        "last_error": doc.get("last_error"),
        "last_error_reason": doc.get("last_error_reason"),
        "last_error_at": doc.get("last_error_at"),
    }


class Receiver:
    """The upstream's end: verify, check the subtree, apply durably, then acknowledge."""

    def __init__(self, ctx: SyncContext, local: LocalCaller) -> None:
        self.ctx = ctx
        self.s = ctx.settings
        self.repo = ctx.repo
        self.m = ctx.metrics
        self.local = local
        self.code = ctx.identity.code

    def _refuse(self, reason: str, message: str, child: object) -> Forbidden:
        self.m.refused.labels(**self.m.site, reason=reason).inc()
        log.warning("sync refused a batch from %s (%s): %s", child, reason, message)
        return Forbidden(message, {"batch": [message]})

    def _parsed(self, load: Callable[[Any], dict[str, Any]], raw: Any) -> dict[str, Any]:
        """``load(raw)``; a malformed message is counted before its refusal is raised."""
        try:
            return load(raw)
        except InvalidInput:
            self.m.refused.labels(**self.m.site, reason="malformed").inc()
            raise

    def _authenticate(self, raw: Mapping[str, Any], child: str, service: str, feed: str) -> FeedRef:
        keys = self.s.children.get(child)
        if not keys:
            raise self._refuse("unknown_child", f"站点 {child} 不是本站点登记的下级站点", child)
        if not domain.verify(raw, keys):
            raise self._refuse("bad_signature", "签名无效：不是用该下级站点的密钥签名的", child)
        ref = FeedRef(service, feed)
        if ref not in self.s.accept:
            raise self._refuse("feed_not_accepted", f"本站点不接收数据源 {ref.key}", child)
        return ref

    def verify_key(self, raw: Any) -> dict[str, Any]:
        """A child's key check: is its probe signed with a key registered for it here?"""
        probe = self._parsed(load_key_probe, raw)
        child = probe["child"]
        if probe["upstream"] != self.code:
            raise Conflict(
                f"站点 {child} 把 {probe['upstream']} 当作上级，应答的却是站点 {self.code}",
                {"UPSTREAM_AMQP_URI": ["指向了错误的站点"]},
            )
        keys = self.s.children.get(child)
        if not keys:
            raise self._refuse(
                "unknown_child",
                f"站点 {child} 未在上级站点 {self.code} 登记（上级 SYNC.children 中没有它的密钥）",
                child,
            )
        index = domain.matching_key(raw, keys)
        if index is None:
            raise self._refuse(
                "bad_signature",
                f"站点 {child} 的 SYNC.key 与上级站点 {self.code} 为它登记的密钥"
                f"（SYNC.children.{child}）不一致",
                child,
            )
        return {
            "ok": True,
            "site_code": self.code,
            "child": child,
            "key": "current" if index == len(keys) - 1 else "previous",
            "keys_registered": len(keys),
        }

    def ingest(self, raw: Any) -> dict[str, Any]:
        batch = self._parsed(load_batch, raw)
        child = batch["child"]
        ref = self._authenticate(raw, child, batch["service"], batch["feed"])
        valid: list[dict[str, Any]] = []
        rejected: list[dict[str, Any]] = []
        foreign: set[str] = set()
        for record in batch["records"]:
            problem = domain.record_problem(record, self.s.max_record_bytes)
            if problem is None and (personal := domain.personal_keys(record, self.s.mask_keys)):
                problem = f"含有个人信息字段 {', '.join(personal)}"
            if problem is not None:
                rejected.append(_rejection(record, problem))
            elif not within_subtree(record["site_code"], child):
                foreign.add(record["site_code"])
            else:
                valid.append(record)
        if foreign:
            raise self._refuse(
                "foreign_origin",
                f"批次含有不属于站点 {child} 辖区的记录（来源 {', '.join(sorted(foreign))}）",
                child,
            )
        stored, applied = self._apply(ref, valid, rejected) if valid else ([], 0)
        self.repo.record_ledger(ref.key, stored, child)
        if batch["resend"]:
            mark = self.repo.high_water(child, ref.key)
        else:
            mark = self.repo.acknowledge(child, ref.key, batch["from_seq"], batch["to_seq"])
        self.m.records.labels(**self.m.site, direction="in", feed=ref.key).inc(len(stored))
        if rejected:
            self.m.rejected.labels(**self.m.site, feed=ref.key).inc(len(rejected))
        return {
            "high_water": mark,
            "received": len(batch["records"]),
            "stored": len(stored),
            "applied": applied,
            "rejected": rejected,
        }

    def _apply(
        self, ref: FeedRef, records: list[dict[str, Any]], rejected: list[dict[str, Any]]
    ) -> tuple[list[dict[str, Any]], int]:
        """Upsert through the local service; on a record it refuses, find it one by one.
        Returns the records stored (or already held) and how many changed anything."""
        try:
            return records, self._apply_call(ref, records)
        except (InvalidInput, Conflict, RemoteError) as exc:
            if not _record_error(exc):
                raise
        stored, applied = [], 0
        for record in records:
            try:
                applied += self._apply_call(ref, [record])
                stored.append(record)
            except (InvalidInput, Conflict, RemoteError) as exc:
                if not _record_error(exc):
                    raise
                rejected.append(_rejection(record, str(exc)[:300]))
        return stored, applied

    def _apply_call(self, ref: FeedRef, records: list[dict[str, Any]]) -> int:
        try:
            answer = self.local.call(ref.service, "apply_replicated", ref.feed, records)
        except LocalUnavailable as exc:
            raise UpstreamUnavailable(f"上级站点：{exc.message}") from None
        except NotFound:
            raise Conflict(
                f"上级站点的 {ref.service} 服务不接收 {ref.feed}",
                {"feed": [f"{ref.key} 未列入 replicated_feeds"]},
            ) from None
        return int(answer.get("applied", 0))

    def catalog_changes(self, since: Any, limit: Any) -> dict[str, Any]:
        since_, limit_ = load_page(since, limit)
        try:
            page: dict[str, Any] = self.local.call(
                self.s.catalog_service, "catalog_changes", since_, limit_
            )
        except LocalUnavailable as exc:
            raise UpstreamUnavailable(f"上级站点：{exc.message}") from None
        return page

    def reconcile_counts(self, raw: Any) -> dict[str, Any]:
        request = load_reconcile(raw)
        child = request["child"]
        ref = self._authenticate(raw, child, request["service"], request["feed"])
        counts: dict[str, dict[str, int]] = {}
        for origin, days in request["counts"].items():
            if not within_subtree(origin, child):
                raise self._refuse(
                    "foreign_origin", f"站点 {child} 无权查询 {origin} 的数据", child
                )
            counts[origin] = {day: self.repo.ledger_count(ref.key, origin, day) for day in days}
        return {"counts": counts, "high_water": self.repo.high_water(child, ref.key)}


def _rejection(record: Any, reason: str) -> dict[str, Any]:
    if isinstance(record, Mapping):
        return {"id": record.get("id"), "version": record.get("version"), "reason": reason}
    return {"id": None, "version": None, "reason": reason}


def _record_error(exc: BaseException) -> bool:
    if isinstance(exc, RemoteError):
        return exc.exc_type in RECORD_ERRORS
    return True
