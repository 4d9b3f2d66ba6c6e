"""Staff accounts (工作人员账号): roles, the windows a clerk may sign in at, passwords."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from services.common.errors import Forbidden, InvalidInput
from services.common.roles import STAFF_ROLES

PASSWORD_MIN = 10
WINDOW_ROLES = frozenset({"clerk", "manager"})  # who may sign in at a window


def check_roles(roles: Iterable[str]) -> list[str]:
    """The roles, sorted; ``InvalidInput`` when empty or one is unknown."""
    given = sorted(set(roles))
    unknown = [r for r in given if r not in STAFF_ROLES]
    if not given or unknown:
        rule = f"应为 {'、'.join(sorted(STAFF_ROLES))} 中的一个或多个"
        raise InvalidInput.field("roles", rule if not unknown else f"未知角色 {unknown}；{rule}")
    return given


def check_password_strength(password: str, staff_id: str) -> None:
    """At least ``PASSWORD_MIN`` characters, two kinds of character, not the account id."""
    kinds = sum(
        any(test(c) for c in password)
        for test in (str.isdigit, str.islower, str.isupper, lambda c: not c.isalnum())
    )
    if len(password) < PASSWORD_MIN:
        raise InvalidInput.field("password", f"密码至少 {PASSWORD_MIN} 个字符")
    if kinds < 2:
        raise InvalidInput.field("password", "密码须含数字、字母或符号中的至少两类")
    if staff_id.lower() in password.lower():
        raise InvalidInput.field("password", "密码不能包含账号")


def may_sign_in_at(roles: Sequence[str], windows: Sequence[str], window: str | None) -> None:
    """``Forbidden`` unless the account may work at ``window`` (None: no window)."""
    if window is None:
        return
    if not WINDOW_ROLES & set(roles):
        raise Forbidden("该账号不是窗口人员，不能在窗口签到", {"window": ["无窗口角色"]})
    if windows and window not in windows:
        raise Forbidden(f"该账号不能在 {window} 号窗口签到", {"window": ["不在允许的窗口中"]})
