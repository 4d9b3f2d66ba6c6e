"""Who may call each RPC of ``queue`` (docs/security.md, "Role table")."""

from __future__ import annotations

from services.common.access import BASE_ACCESS, OPERATOR, PUBLIC, Rule, rule

STAFF = ("clerk", "manager", OPERATOR)
READERS = (*STAFF, "supervisor", "kiosk", "board")


def at_window(actor: str = "by") -> Rule:
    """Work on the ticket at the window the clerk is signed in at."""
    return rule("clerk", "manager", OPERATOR, actor=actor, window="window")


ACCESS: dict[str, Rule] = {
    **BASE_ACCESS,
    "configure": rule("manager", OPERATOR, actor="by"),
    "configuration": rule(*READERS),
    # the kiosk (取号机)
    "take_ticket": rule("kiosk", *STAFF),
    "ticket": rule(*READERS, "service:gateway"),  # the ticket's mobile page
    "ticket_history": rule(*STAFF, "supervisor"),
    "today_figures": rule(*STAFF, "supervisor"),
    "subtree_figures": rule("manager", "supervisor", OPERATOR),  # the dashboard
    "window_today": rule(*STAFF, "supervisor", window="window"),
    "slots": rule(PUBLIC),
    "book": rule("kiosk", *STAFF),
    "booking": rule("kiosk", *STAFF),
    "cancel_booking": rule("kiosk", *STAFF),
    "check_in": rule("kiosk", *STAFF),
    # the window (窗口叫号)
    "call_next": at_window("staff_id"),
    "recall": at_window(),
    "start_service": at_window(),
    "complete": at_window(),
    "no_show": at_window(),
    "requeue": rule(*STAFF, actor="by"),
    "transfer": rule(*STAFF, actor="by"),
    "hold": rule(*STAFF, actor="by"),
    "resume": rule(*STAFF, actor="by"),
    "cancel": rule(*STAFF, actor="by"),
    "sign_in": at_window("staff_id"),
    "sign_out": at_window("staff_id"),
    "open_window": at_window("staff_id"),
    "pause_window": at_window(),
    "close_window": at_window(),
    "close_day": rule("manager", OPERATOR, actor="by"),
    # the call board (叫号屏) and the hall's state
    # the rating pad (评价器) shows who serves at its window (staff ids, no citizen data)
    "windows": rule(*READERS, "pad"),
    "board": rule(*READERS, "service:gateway"),  # the gateway relays it to boards
}
