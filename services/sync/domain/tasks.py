"""The retry schedule of the periodic exchanges: exponential backoff with jitter, and when
each job (push one feed, pull the catalog, reconcile, check the key) runs next."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Backoff:
    """Exponential backoff with jitter, capped, never giving up (重试退避)."""

    base: float = 1.0
    cap: float = 300.0

    def delay(self, failures: int, rand: Callable[[], float] = random.random) -> float:
        """Seconds to wait after the ``failures``-th failure in a row: "equal jitter",
        between half and all of ``min(cap, base * 2**(failures-1))``."""
        exponent = min(max(failures, 1) - 1, 60)
        ceiling = min(self.cap, self.base * 2.0**exponent)
        return ceiling / 2 + rand() * ceiling / 2


@dataclass
class Task:
    """A periodic job and when it runs next (times from a monotonic clock)."""

    interval: float
    backoff: Backoff
    next_due: float = 0.0
    failures: int = 0
    rand: Callable[[], float] = field(default=random.random, repr=False)

    def due(self, now: float) -> bool:
        return now >= self.next_due

    def succeeded(self, now: float) -> None:
        self.failures = 0
        self.next_due = now + self.interval

    def failed(self, now: float) -> float:
        self.failures += 1
        wait = self.backoff.delay(self.failures, self.rand)
        self.next_due = now + wait
        return wait

    def hurry(self) -> None:
        """Run at the next tick (an operator asked, or a page was full)."""
        self.next_due = 0.0
