"""Retention (issue 13, bounds): the per-day counters (numbers, walk-in counts, booked
seats), past bookings (the only per-phone records the limits read) and private day stats
are removed after ``QUEUE.counter_retention_days`` by the timer, counted in
``hall_queue_pruned_total``. Tickets (the audit) and the published figures stay."""

from __future__ import annotations

from datetime import timedelta

from services.queue.usecases.base import QueueBase

PRUNE_BATCH = 500  # documents removed per collection and run; the next run goes on


class Retention(QueueBase):
    def prune(self) -> dict[str, int]:
        """Remove what is older than the retention; returns how many of each kind."""
        setup, _ = self.setup()
        today = self.local(setup, self.clock()).date()
        keep = self.settings.counter_retention_days
        cutoff = (today - timedelta(days=keep)).isoformat()
        # Missed bookings block new ones: kept at least as long as the block can look back.
        policy = setup.policy
        look_back = policy.booking_no_show_days + policy.booking_block_days
        booking_cutoff = (today - timedelta(days=max(keep, look_back))).isoformat()
        store = self.context.store
        counters = store.drop_counters("0", cutoff)  # "<date>:<prefix>": the numbers
        for kind in ("walkin:", "slot:"):
            counters += store.drop_counters(kind, f"{kind}{cutoff}")
        bookings = 0
        old = self.repo.bookings.find({"date": {"$lt": booking_cutoff}}, limit=PRUNE_BATCH)
        for doc in old:
            if doc["state"] != "booked":  # a booked one is swept to no-show first
                bookings += self.repo.bookings.delete(doc["id"], {"version": doc["version"]})
        stats = 0
        for doc in self.repo.day_stats.find({"date": {"$lt": cutoff}}, limit=PRUNE_BATCH):
            if not doc.get("dirty"):  # published already
                stats += self.repo.day_stats.delete(doc["id"], {"version": doc["version"]})
        pruned = {"counters": counters, "bookings": bookings, "day_stats": stats}
        for kind, count in pruned.items():
            self.metrics.pruned.labels(**self.metrics.labels, kind=kind).inc(count)
        return pruned
