"""Who may call each RPC of ``sync`` (docs/security.md, "Role table"). A child site's
broker login reaches only this service on its parent; it holds no identity of the parent,
so it may call only the ``uplink`` RPCs, whose messages sync verifies with the child's own
sync key, and the public ones."""

from __future__ import annotations

from services.common.access import BASE_ACCESS, OPERATOR, PUBLIC, UPLINK, Rule, rule

ACCESS: dict[str, Rule] = {
    **BASE_ACCESS,
    "push_now": rule(OPERATOR),
    "reconcile_now": rule(OPERATOR),
    "status": rule(OPERATOR, "supervisor", "manager"),  # the dashboard's sync columns
    "check_key": rule(OPERATOR),
    "parked": rule(OPERATOR),
    "retry_parked": rule(OPERATOR),
    "ping_upstream": rule(OPERATOR),
    "ingest": rule(UPLINK),
    "verify_key": rule(UPLINK),
    "reconcile_counts": rule(UPLINK),
    "proxy_outcomes": rule(UPLINK),  # 代办 outcomes of the child's subtree only
    "catalog_changes": rule(PUBLIC),
}
