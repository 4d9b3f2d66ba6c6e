"""What a hall manager may do to staff accounts from the manager's console (大厅管理):
only accounts of the hall's own desk roles. A manager must not create or switch off an
oversight account (a supervisor reviews the manager's appeals, an admin or catalog editor
answers to others), nor disable their own account and lock the hall out of its console;
the operator (``hallctl staff``) keeps every other account change."""

from __future__ import annotations

from collections.abc import Iterable

from services.common.errors import Forbidden

GRANTABLE = frozenset({"clerk", "manager"})


def may_grant(roles: Iterable[str]) -> None:
    """``Forbidden`` when an account with ``roles`` is beyond a manager's reach."""
    beyond = sorted(set(roles) - GRANTABLE)
    if beyond:
        raise Forbidden(
            f"大厅管理员只能管理窗口人员和管理员账号，{'、'.join(beyond)} 账号请由运维人员办理",
            {"roles": [f"不可授予 {'、'.join(beyond)}"]},
        )


def may_disable(manager_id: str, staff_id: str, roles: Iterable[str]) -> None:
    """``Forbidden`` for the manager's own account or an account beyond their reach."""
    if staff_id == manager_id:
        raise Forbidden("不能停用自己的账号", {"staff_id": ["本人账号"]})
    may_grant(roles)
