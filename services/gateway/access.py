"""Who may call each RPC of ``gateway`` (docs/security.md, "Role table"): managing
accounts and devices is the operator's (``hallctl staff …``, ``hallctl device …``)."""

from __future__ import annotations

from services.common.access import BASE_ACCESS, OPERATOR, Rule, rule

ACCESS: dict[str, Rule] = {
    **BASE_ACCESS,
    **dict.fromkeys(
        [
            "add_staff",
            "disable_staff",
            "reset_password",
            "list_staff",
            "create_pairing",
            "revoke_device",
            "list_devices",
            "audit",
        ],
        rule(OPERATOR),
    ),
}
