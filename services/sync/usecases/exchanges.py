"""Running the exchanges with the upstream: what is due on each tick, the operator's
``push_now`` / ``reconcile_now``, one upstream session for all, backoff on failure."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from functools import partial
from typing import Any

from services.common.clock import iso
from services.sync import domain
from services.sync.domain import Task
from services.sync.ports import UpstreamSession
from services.sync.usecases.base import (
    DOWN,
    KEY,
    LINK_DOWN,
    PROXY_DOWN,
    RECONCILE,
    RETENTION,
    SESSION_SURVIVES,
    STATUS,
    UP,
    SyncBase,
    classify,
    log,
    split,
)
from services.sync.usecases.platform import sources

Job = Callable[[UpstreamSession], dict[str, Any]]


class Exchanges(SyncBase):
    def _schedule(self) -> None:
        """One task per exchange; the first reconciliation waits one interval (a fresh
        start has nothing to compare)."""
        s, tasks = self.settings, self.state.tasks
        for ref in s.upward:
            tasks[f"{UP}:{ref.key}"] = Task(s.push_interval, s.backoff)
        tasks[DOWN] = Task(s.pull_interval, s.backoff)
        if s.pull_outcomes:
            # a citizen waits at the village for these: as often as the pushes
            tasks[PROXY_DOWN] = Task(s.push_interval, s.backoff)
        tasks[RECONCILE] = Task(
            s.reconcile_interval, s.backoff, next_due=self.monotonic() + s.reconcile_interval
        )
        tasks[STATUS] = Task(s.status_interval, s.backoff)
        tasks[RETENTION] = Task(s.retention_interval, s.backoff)
        tasks[KEY] = Task(s.key_check_interval, s.backoff)
        if s.platform is not None:
            for source in sources(s.platform):
                tasks[source.name] = Task(s.platform.interval, s.platform.backoff)

    def tick(self) -> None:
        """One timer tick: run whatever is due, unless an operator's push is running."""
        if not self.state.lock.acquire(blocking=False):
            return
        try:
            now = self.monotonic()
            self._run(lambda name: self.state.tasks[name].due(now))
            self._platform_run(lambda name: self.state.tasks[name].due(self.monotonic()))
            status = self.state.tasks[STATUS]
            if status.due(now):
                self.status()
                status.succeeded(now)
            retention = self.state.tasks[RETENTION]
            if retention.due(now):
                self.prune()
                retention.succeeded(now)
        finally:
            self.state.lock.release()

    def push_now(self) -> dict[str, Any]:
        """Run every exchange now, waiting for a running one to finish first."""
        with self.state.lock:
            results = self._run(lambda name: name != RECONCILE)
            results.update(self._platform_run(lambda _name: True))
        return {"site_code": self.code, "results": results, "status": self.status()}

    def reconcile_now(self) -> dict[str, Any]:
        with self.state.lock:
            return {"site_code": self.code, "results": self._run(lambda name: name == RECONCILE)}

    def prune(self) -> dict[str, int]:
        """Retention: the ledger beyond ``reconcile_days``, parked records resolved more than
        ``parked_retention_days`` ago; each counted in its metric."""
        today = self.clock()
        ledger = self.repo.prune_ledger(
            domain.first_day(today.date(), self.settings.reconcile_days)
        )
        cutoff = today - timedelta(days=self.settings.parked_retention_days)
        parked = self.repo.prune_parked(iso(cutoff))
        self.metrics.ledger_pruned.labels(**self.metrics.site).inc(ledger)
        self.metrics.parked_pruned.labels(**self.metrics.site).inc(parked)
        if ledger or parked:
            log.info("sync retention: %d ledger entries, %d parked records pruned", ledger, parked)
        return {"ledger": ledger, "parked": parked}

    def stop(self) -> None:
        """The container is stopping: end a running exchange at its next batch or job."""
        self.state.stopping = True

    def close(self) -> None:
        self.state.close_session()
        if self.platform is not None:
            self.platform.close()
        for name in sorted(self.state.leases):
            self.repo.release(name, self.state.holder)
        self.state.leases.clear()

    def _leased(self, name: str, job: Job) -> Job:
        """``job`` run only while this process holds the store's lease on ``name``: another
        sync process of the same site (a replica on the same store) stands by meanwhile."""

        def run(up: UpstreamSession) -> dict[str, Any]:
            holder = self.repo.lease(name, self.state.holder, self.settings.lease_seconds)
            if holder is not None:
                self.state.leases.discard(name)
                return {"standby": True, "held_by": holder}
            self.state.leases.add(name)
            return job(up)

        return run

    def _jobs(self, due: Callable[[str], bool]) -> list[tuple[str, Job]]:
        jobs: list[tuple[str, Job]] = []
        # First: a refused key explains whatever fails after it. (A site that pushes nothing
        # and has no key, e.g. one that only pulls the catalog, has no key to check.)
        if due(KEY) and (self.settings.key or self.settings.upward):
            jobs.append((KEY, self._probe_key))
        for ref in self.settings.upward:
            name = f"{UP}:{ref.key}"
            if due(name):
                jobs.append((name, self._leased(name, partial(self.push_feed, ref=ref))))
        if self.settings.pull_catalog and due(DOWN):
            jobs.append((DOWN, self.pull_catalog))
        if self.settings.pull_outcomes and due(PROXY_DOWN):
            jobs.append((PROXY_DOWN, self._leased(PROXY_DOWN, self.pull_outcomes)))
        if due(RECONCILE):
            jobs.append((RECONCILE, self._leased(RECONCILE, self.reconcile)))
        return jobs

    def _run(self, due: Callable[[str], bool]) -> dict[str, Any]:
        if self.context.identity.upstream is None:
            return {}
        jobs = self._jobs(due)
        if not jobs:
            return {}
        results: dict[str, Any] = {}
        try:
            up = self._session()
        except Exception as exc:  # noqa: BLE001  (no link: every job failed, retried later)
            for name, _ in jobs:
                results[name] = self._failed(name, exc)
            jobs = []
        for position, (name, job) in enumerate(jobs):
            if self.state.stopping:
                break
            results[name] = self._attempt(name, job, up)
            reason = results[name].get("reason")
            if reason is not None and reason not in SESSION_SURVIVES:
                self.state.close_session()
            if reason in LINK_DOWN:
                for rest, _ in jobs[position + 1 :]:
                    results[rest] = self._failed(rest, results[name]["error_exc"])
                break
        for result in results.values():
            result.pop("error_exc", None)
        return results

    def _session(self) -> UpstreamSession:
        """The upstream session, kept open between ticks (one connection per site, not one
        per push); dropped after a failure and opened again on the next attempt."""
        if self.state.session is None:
            self.state.session = self.upstream.open(self.settings.rpc_timeout)
        return self.state.session

    def _attempt(self, name: str, job: Job, up: UpstreamSession) -> dict[str, Any]:
        try:
            result = job(up)
        except Exception as exc:  # noqa: BLE001  (any failure is counted, backed off, retried)
            return self._failed(name, exc)
        task = self.state.tasks[name]
        task.succeeded(self.monotonic())
        if result.get("more"):
            task.hurry()
        if result.get("verified") is False:
            # The upstream cannot check keys (an older version): neither success nor error.
            self.repo.note(name, {"unverified_at": self._now_iso(), "note": result["note"]})
            return {"ok": True, **result}
        direction, feed = split(name)
        self.repo.succeeded(name, {"key_in_use": result.get("key")} if name == KEY else None)
        labels = {**self.metrics.site, "direction": direction, "feed": feed}
        self.metrics.last_success.labels(**labels).set(self.clock().timestamp())
        return {"ok": True, **result}

    def _failed(self, name: str, exc: BaseException) -> dict[str, Any]:
        reason, message = classify(exc)
        wait = self.state.tasks[name].failed(self.monotonic())
        direction, _ = split(name)
        self.metrics.errors.labels(**self.metrics.site, direction=direction, reason=reason).inc()
        self.repo.failed(name, reason, message)
        log.warning("sync %s failed (%s): %s; retry in %.1f s", name, reason, message, wait)
        return {
            "ok": False,
            "reason": reason,
            "error": message,
            "retry_in_s": round(wait, 1),
            "error_exc": exc,
        }
