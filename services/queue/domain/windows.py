"""Windows and staff (窗口与AB岗): who may sign in where, a window's record and audit."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from services.common.errors import Forbidden
from services.queue.domain.categories import Setup
from services.queue.domain.records import WindowRecord
from services.queue.domain.vocabulary import HISTORY_LIMIT, WINDOW_STATES


def window_id(site_code: str, number: str) -> str:
    return f"{site_code}:window:{number}"


def check_sign_in(setup: Setup, staff_id: str, number: str) -> bool:
    """Whether ``staff_id`` may sign in at window ``number``; returns True for a backup
    (AB岗) sign-in, raises ``Forbidden`` when neither."""
    member = setup.staff_member(staff_id)
    if number in member.windows:
        return False
    if number in member.backup_windows:
        return True
    rule = f"{member.name}（{staff_id}）未被安排在 {number} 号窗口，也不是该窗口的B岗"
    raise Forbidden(rule, {"staff_id": [rule]})


def new_window(site_code: str, number: str, now: str) -> WindowRecord:
    """A window as first stored: closed, nobody signed in."""
    return {
        "id": window_id(site_code, number),
        "site_code": site_code,
        "number": number,
        "state": "closed",
        "staff_id": None,
        "backup": False,
        "last_ticket": None,
        "last_number": None,
        "last_call_at": None,
        "announcement": None,
        "pause_reason": None,
        "history": [],
        "created_at": now,
        "updated_at": now,
    }


def with_window_history(
    doc: Mapping[str, Any], changes: Mapping[str, Any], action: str, by: str, now: str
) -> dict[str, Any]:
    """``changes`` to a window with its audit entry (from and to state) appended."""
    entry = {
        "at": now,
        "by": by,
        "action": action,
        "from": doc["state"],
        "to": changes.get("state", doc["state"]),
    }
    history = [*doc.get("history", []), entry][-HISTORY_LIMIT:]
    return {**changes, "history": history, "updated_at": now}


def window_view(doc: Mapping[str, Any]) -> dict[str, Any]:
    shown = {k: v for k, v in doc.items() if k not in ("history", "_seq")}
    shown["state_name"] = WINDOW_STATES[doc["state"]]
    return shown
