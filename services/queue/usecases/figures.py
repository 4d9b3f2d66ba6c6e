"""Daily figures (每日数据): counts kept in memory and flushed into day stats, published to
the ``daily_figures`` feed, recounted from the tickets at day close; gauges rebuilt from
the store after a restart."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date
from typing import Any

from services.common import site
from services.common.clock import iso
from services.common.store import Doc
from services.common.validation import load
from services.queue import domain, schemas
from services.queue.usecases.base import QueueBase


class Figures(QueueBase):
    def flush_stats(self) -> None:
        """Add the counts kept in memory to the stored day stats."""
        with self._pending_lock:
            pending, self._pending = self._pending, {}
        for (day, prefix), delta in pending.items():

            def change(doc: Doc | None, delta: dict[str, Any] = delta) -> dict[str, Any]:
                assert doc is not None
                return {**domain.merge_stats(doc, delta), "dirty": True}

            def create(day: str = day, prefix: str = prefix) -> Doc:
                return dict(domain.empty_stats(self.site_code, date.fromisoformat(day), prefix))

            stats_id = domain.stats_id(self.site_code, date.fromisoformat(day), prefix)
            try:
                self.repo.modify(self.repo.day_stats, stats_id, change, create)
            except Exception:
                with self._pending_lock:  # keep it for the next flush
                    again = self._pending.setdefault((day, prefix), {})
                    self._pending[(day, prefix)] = {**again, **domain.merge_stats(again, delta)}
                raise

    def publish_figures(self) -> int:
        """Copy changed day stats into the ``daily_figures`` feed; returns how many."""
        self.flush_stats()
        published = 0
        now = iso(self.clock())
        today = self._today()
        for stats in self.repo.day_stats.find({"dirty": True}):
            figure = domain.figures(stats)

            def change(doc: Doc | None, figure: Mapping[str, Any] = figure) -> dict[str, Any]:
                assert doc is not None
                fresh = {k: v for k, v in figure.items() if doc.get(k) != v}
                return {**fresh, "updated_at": now} if fresh else {}

            def create(figure: Mapping[str, Any] = figure) -> Doc:
                return {**figure, "created_at": now, "updated_at": now}

            self.repo.modify(self.repo.figures, figure["id"], change, create)
            self.repo.day_stats.update(
                stats["id"], {"dirty": False}, expect={"version": stats["version"]}
            )
            published += 1
            share = figure["within_target_share"]
            if stats["date"] == today and share is not None:
                self.metrics.within_target.labels(
                    **self.metrics.by_category(stats["category"])
                ).set(share)
        return published

    def today_figures(self) -> list[dict[str, Any]]:
        """Today's figures per category as they stand now (the counts in memory flushed
        first), for the hall's manager: issued, served, no-shows, waits, the share called
        within the waiting target."""
        self.flush_stats()
        found = self.repo.day_stats.find({"date": self._today()})
        return [dict(domain.figures(s)) for s in sorted(found, key=lambda s: s["category"])]

    def subtree_figures(self, date_from: str, date_to: str) -> dict[str, Any]:
        """Per site and day, this site's figures and those replicated from its subtree
        (every category added up), for the supervisor's dashboard. Today's own figures are
        current to the last action; a child's are as fresh as its last sync. ``waiting``
        is known live only here (a child's queue is not replicated live)."""
        span = load(schemas.DateRangeArgs, {"date_from": date_from, "date_to": date_to})
        first, last = span["date_from"].isoformat(), span["date_to"].isoformat()
        query: dict[str, Any] = {"date": {"$gte": first, "$lte": last}}
        sites = site.subtree_range(self.site_code)
        if sites is not None:
            query["site_code"] = sites
        today = self._today()
        found: list[Mapping[str, Any]] = [
            f
            for f in self.repo.figures.find(query)
            if not (f["site_code"] == self.site_code and f["date"] == today)
        ]
        if first <= today <= last:
            self.flush_stats()
            found += [domain.figures(s) for s in self.repo.day_stats.find({"date": today})]
        setup, _ = self.setup()
        waiting = sum(len(self.repo.waiting(today, prefix)) for prefix in setup.categories)
        return {
            "site_code": self.site_code,
            "date_from": first,
            "date_to": last,
            "today": today,
            "waiting_now": {self.site_code: waiting},
            "rows": domain.site_days(found),
        }

    def window_today(self, window: str) -> dict[str, Any]:
        """Today's tickets of one window (本窗口今日), counted from the tickets themselves:
        called there (whatever became of them), completed, no-shows."""
        found = self.repo.tickets.find({"date": self._today(), "window": str(window)[:20]})
        states = [t["state"] for t in found]
        return {
            "window": str(window)[:20],
            "date": self._today(),
            "called": len(states),
            "completed": states.count("completed"),
            "no_show": states.count("no_show"),
        }

    def recount(self, day: date) -> None:
        """The day's stats recounted from its tickets (day close repairs any drift)."""
        setup, _ = self.setup()
        tickets: Sequence[Mapping[str, Any]] = self.repo.tickets.find({"date": day.isoformat()})
        prefixes: set[str] = {t["category"] for t in tickets} | {
            t.get("issued_category", t["category"]) for t in tickets
        }
        target = setup.policy.waiting_target_minutes * 60
        for prefix in sorted(prefixes):
            fresh = dict(domain.stats_from_tickets(self.site_code, day, prefix, tickets, target))
            fields = {k: v for k, v in fresh.items() if k != "id"}

            def change(_doc: Doc | None, fields: dict[str, Any] = fields) -> dict[str, Any]:
                return {**fields, "dirty": True}

            def create(fresh: Doc = fresh) -> Doc:
                return fresh

            self.repo.modify(self.repo.day_stats, str(fresh["id"]), change, create)

    def refresh_gauges(self) -> None:
        """Gauges from the store, so they are right after a restart."""
        setup, _ = self.setup()
        today = self._today()
        now = self.clock()
        target_s = setup.policy.waiting_target_minutes * 60
        for prefix in setup.categories:
            labels = self.metrics.by_category(prefix)
            waiting = self.repo.waiting(today, prefix)
            self.metrics.waiting.labels(**labels).set(len(waiting))
            self.metrics.over_target.labels(**labels).set(
                domain.waiting_over_target(waiting, now, target_s)
            )
            stats = self.repo.day_stats.get(
                domain.stats_id(self.site_code, date.fromisoformat(today), prefix)
            )
            if stats and stats.get("called"):
                self.metrics.within_target.labels(**labels).set(
                    round(stats.get("within_target", 0) / stats["called"], 4)
                )
        self._refresh_window_gauge()
        self.metrics.invitations_pending.labels(**self.metrics.labels).set(
            self.repo.tickets.count({"invited": False})
        )
