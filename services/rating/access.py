"""Who may call each RPC of ``rating`` (docs/security.md, "Role table")."""

from __future__ import annotations

from services.common.access import BASE_ACCESS, OPERATOR, PUBLIC, Rule, rule

MANAGERS = ("manager", "supervisor", OPERATOR)
HANDLERS = ("clerk", *MANAGERS)  # a bad rating's case is handled by whoever it is assigned


def case_step(payload: str) -> Rule:
    return rule(*HANDLERS, actor=f"{payload}.by")


ACCESS: dict[str, Rule] = {
    **BASE_ACCESS,
    # the rating pad (评价器), the kiosk's self-service channel, paper forms keyed in, and
    # the gateway for a citizen's phone (qr_code: the ticket or application of its link)
    "submit_evaluation": rule(
        "pad",
        "kiosk",
        "clerk",
        "manager",
        "service:gateway",
        OPERATOR,
        actor="evaluation.entered_by",
        window="evaluation.window",
        channel="evaluation.channel",
    ),
    "pending_for_window": rule("pad", "clerk", "manager", OPERATOR, window="window"),
    "invitation_status": rule("service:gateway", OPERATOR),  # the rating page of a QR link
    "get_evaluation": rule(*HANDLERS),
    "review_held": rule(*MANAGERS, actor="review.reviewer"),
    # bad ratings' cases (差评整改)
    "list_cases": rule(*HANDLERS),
    "get_case": rule(*HANDLERS),
    "assign_case": rule(*MANAGERS, actor="assignment.by"),
    "record_callback": case_step("callback"),
    "classify_case": rule(*HANDLERS, actor="classification.by", approver="classification.approver"),
    "record_rectification": case_step("rectification"),
    "record_feedback": case_step("feedback"),
    "appeal": case_step("appeal"),
    "review_appeal": rule("supervisor", OPERATOR, actor="review.reviewer"),
    # the rater's phone: only a person (the case's handler, checked by rating), audited
    "reveal_phone": rule("clerk", "manager", "supervisor", actor="by", audit=True, per_minute=10),
    "reveal_audit": rule(*MANAGERS),
    # figures
    "stats": rule(*MANAGERS),
    "rankings": rule(*MANAGERS),
    "export": rule(*MANAGERS),
    "public_report": rule(PUBLIC),  # 公开: no personal data
}
