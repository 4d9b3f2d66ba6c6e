"""Who may call each RPC of ``matters`` (docs/security.md, "Role table")."""

from __future__ import annotations

from services.common.access import BASE_ACCESS, OPERATOR, PUBLIC, Rule, rule

EDITOR = ("catalog_editor", OPERATOR)
DESK = ("clerk", "manager", OPERATOR)

ACCESS: dict[str, Rule] = {
    **BASE_ACCESS,
    # the catalog (事项目录): drafted, approved and published at the catalog's source site
    "save_matter_draft": rule(*EDITOR),
    "approve_matter_change": rule(*EDITOR, actor="approved_by"),
    "publish_matter": rule(*EDITOR),
    "retire_matter": rule(*EDITOR),
    "list_unpublished_changes": rule(*EDITOR),
    "get_matter": rule(PUBLIC),  # published guides are public (办事指南)
    "search_matters": rule(PUBLIC),
    "catalog_changes": rule(PUBLIC),
    "apply_catalog": rule("service:sync", OPERATOR),
    "apply_proxy_outcomes": rule("service:sync", OPERATOR),  # 代办 outcomes pulled down
    "set_local_availability": rule("manager", OPERATOR),
    # applications (办件): the window desk
    "submit_application": rule(*DESK, actor="application.staff_id", window="application.window"),
    "supplement_application": rule(*DESK),
    "refuse_application": rule(*DESK),
    "start_review": rule(*DESK),
    "decide_application": rule(*DESK),
    "complete_application": rule(*DESK),
    "deliver_application": rule(*DESK),
    "suspend_application": rule(*DESK),
    "resume_application": rule(*DESK),
    "get_application": rule(*DESK, "supervisor", audit=True),
    # A search by ID number could be used to guess one: audited and throttled per caller.
    "list_applications": rule(*DESK, "supervisor", audit=True, per_minute=30),
    # 办件进度查询 for a citizen: the gateway asks (throttling wrong guesses per address);
    # the cap here bounds a gateway that is itself abused
    "application_progress": rule("service:gateway", OPERATOR, audit=True, per_minute=120),
}
