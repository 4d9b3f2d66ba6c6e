"""Sessions (登录会话): an idle limit and an absolute limit, and revocation."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta


@dataclass(frozen=True)
class SessionRules:
    idle_minutes: int = 30
    max_hours: int = 12


def session_state(
    created: datetime, last_seen: datetime, revoked: bool, now: datetime, rules: SessionRules
) -> str | None:
    """Why the session no longer counts (in Chinese, for the sign-in page), or None."""
    if revoked:
        return "会话已注销，请重新登录"
    if now - created > timedelta(hours=rules.max_hours):
        return f"登录已超过 {rules.max_hours} 小时，请重新登录"
    if now - last_seen > timedelta(minutes=rules.idle_minutes):
        return f"超过 {rules.idle_minutes} 分钟未操作，请重新登录"
    return None
