"""Sign-in throttling (登录失败锁定): after ``failures`` failed attempts within ``minutes``
for one account, or from one address, further attempts are refused for ``minutes``, even
with the right password."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta


@dataclass(frozen=True)
class LockoutRules:
    failures: int = 5
    minutes: int = 15


@dataclass(frozen=True)
class Lockout:
    rules: LockoutRules

    def recent(self, failures: Sequence[datetime], now: datetime) -> list[datetime]:
        """The failures that still count at ``now``."""
        since = now - timedelta(minutes=self.rules.minutes)
        return [f for f in failures if f > since]

    def locked_until(self, failures: Sequence[datetime], now: datetime) -> datetime | None:
        """When attempts are allowed again, or None when they are allowed now."""
        recent = sorted(self.recent(failures, now))
        if len(recent) < self.rules.failures:
            return None
        return recent[-self.rules.failures] + timedelta(minutes=self.rules.minutes)
