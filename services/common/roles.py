"""The roles a principal may hold (docs/security.md, "Principals"): plain names, so domain
code can check them without the identity machinery."""

from __future__ import annotations

STAFF_ROLES = frozenset({"clerk", "manager", "supervisor", "catalog_editor", "admin"})
DEVICE_ROLES = frozenset({"kiosk", "board", "pad"})
