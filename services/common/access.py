"""Who may call what (docs/security.md, "Role table"): one rule per RPC, checked in one
place, the RPC entrypoint (``services.common.rpc``), before a worker starts.

A service lists its rules in ``<svc>/access.py`` as ``ACCESS``; a method missing from it is
refused to everyone (fail closed, and ``tests/unit/test_access_table.py`` fails). A rule
names who may call (``allow``: staff roles, device roles, ``operator``, ``service`` or
``service:<name>``, ``public``, ``uplink``) and where in the arguments the actor stands:

- ``actor``: the acting person's id (``by``, ``staff_id``, ``assignment.by``). For staff it
  comes from the principal: an argument naming someone else is refused, a missing one is
  filled in. A device names no actor. The operator (root on the site's machine, who holds
  the key and the database anyway) names the staff member it acts for; the audit line
  records both.
- ``window``: the window acted on. A clerk acts only at the window signed in at, a pad only
  for the window it is bound to; a manager at any window of the hall.
- ``channel``: the device a rating says it was given on (``evaluation.channel``). A paired
  device gives only its own channel (a pad ``pad``, a kiosk ``self_service``), filled in
  when missing; nobody else may claim a device's channel, so a kiosk cannot pass off a
  rating as given at a window's pad. ``qr_code`` (a citizen's phone) is the gateway's:
  no person or device may claim it.
- ``approver``: a second person the call names (a ``not_adopted`` classification's
  approver). Only that person may make the call, and only as a manager.
- ``audit``: every admitted call is written to the ``hall.audit`` log (who, what; never
  the arguments); ``per_minute``: at most that many calls a minute per caller (lookups that
  could be used to guess personal data, e.g. applications by ID number).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from services.common.errors import Forbidden, TooManyRequests
from services.common.identity import DEVICE_ROLES, STAFF_ROLES, Kind, Principal, Unauthenticated

PUBLIC = "public"  # anyone, identified or not: published guides, the site's identity
UPLINK = "uplink"  # a child site's sync; the message carries its own signature (sync checks)
OPERATOR = "operator"
SERVICE = "service"
TOKENS = STAFF_ROLES | DEVICE_ROLES | {PUBLIC, UPLINK, OPERATOR, SERVICE}
DEVICE_CHANNELS = {"pad": "pad", "kiosk": "self_service"}  # a device's own rating channel
# Channels only their device, or the gateway for a citizen's phone (qr_code), may claim.
RESERVED_CHANNELS = frozenset({*DEVICE_CHANNELS.values(), "qr_code"})


@dataclass(frozen=True)
class Rule:
    allow: frozenset[str]
    actor: tuple[str, ...] = ()
    window: str | None = None
    approver: str | None = None
    audit: bool = False
    per_minute: int | None = None
    channel: str | None = None

    @property
    def open(self) -> bool:
        return bool(self.allow & {PUBLIC, UPLINK})


def rule(
    *allow: str,
    actor: str | None = None,
    window: str | None = None,
    approver: str | None = None,
    audit: bool = False,
    per_minute: int | None = None,
    channel: str | None = None,
) -> Rule:
    unknown = [a for a in allow if a not in TOKENS and not a.startswith(f"{SERVICE}:")]
    if unknown or not allow:
        raise ValueError(f"unknown access tokens {unknown}")
    actors = (actor,) if actor else ()
    return Rule(frozenset(allow), actors, window, approver, audit, per_minute, channel)


class Throttle:
    """At most ``limit`` calls per caller in any 60 s (a sliding window, per process)."""

    WINDOW_S = 60.0

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.calls: dict[str, deque[float]] = {}

    def admit(self, caller: str, now: float) -> None:
        """Count the call, or ``TooManyRequests`` saying when the next one is allowed."""
        recent = self.calls.setdefault(caller, deque())
        while recent and recent[0] <= now - self.WINDOW_S:
            recent.popleft()
        if len(recent) >= self.limit:
            wait = int(recent[0] + self.WINDOW_S - now) + 1
            raise TooManyRequests(
                f"查询过于频繁，请 {wait} 秒后再试", {"method": [f"每分钟最多 {self.limit} 次"]}
            )
        recent.append(now)
        if len(self.calls) > 10_000:  # forget idle callers, never grow without bound
            self.calls = {k: v for k, v in self.calls.items() if v and v[-1] > now - self.WINDOW_S}


# Every service's inherited RPCs (services.common.service.SiteService).
BASE_ACCESS: dict[str, Rule] = {
    "site_info": rule(PUBLIC),
    "feed": rule(SERVICE, OPERATOR, "supervisor"),
    "apply_replicated": rule("service:sync", OPERATOR),
}


def tokens(principal: Principal) -> frozenset[str]:
    """What a principal counts as in the ``allow`` sets."""
    if principal.kind is Kind.OPERATOR:
        return frozenset({OPERATOR})
    if principal.kind is Kind.SERVICE:
        return frozenset({SERVICE, f"{SERVICE}:{principal.id}"})
    valid = STAFF_ROLES if principal.kind is Kind.STAFF else DEVICE_ROLES
    return principal.roles & valid


def authorise(
    table: Mapping[str, Rule], method: str, principal: Principal | None, arguments: dict[str, Any]
) -> None:
    """Refuse the call (``Unauthenticated`` or ``Forbidden``) or let it through, with the
    actor filled into ``arguments`` (the bound call, changed in place)."""
    found = table.get(method)
    if found is None:
        raise Forbidden(f"{method} 未列入访问规则，拒绝调用", {"method": [method]})
    if found.open:
        return
    if principal is None:
        raise Unauthenticated("请求未携带身份凭证，请先登录或使用已登记的设备")
    granted = tokens(principal) & found.allow
    if not granted:
        raise Forbidden(
            f"{principal.label} 无权调用 {method}",
            {"method": [f"需要 {'、'.join(sorted(found.allow))}"]},
        )
    if principal.kind in (Kind.STAFF, Kind.DEVICE):
        _own_window(found, principal, granted, arguments)
        for path in found.actor:
            _own_actor(path, principal, arguments)
        if found.approver:
            _own_approval(found.approver, principal, arguments)
        if found.channel:
            _own_channel(found.channel, principal, arguments)


def _own_channel(path: str, principal: Principal, arguments: dict[str, Any]) -> None:
    given = _get(arguments, path)
    own = [DEVICE_CHANNELS[r] for r in sorted(principal.roles) if r in DEVICE_CHANNELS]
    if principal.kind is Kind.DEVICE and own:
        if given not in (None, own[0]):
            raise Forbidden("本设备只能提交本设备渠道的评价", {path: [f"须为 {own[0]}"]})
        _set(arguments, path, own[0])
    elif given in RESERVED_CHANNELS:
        raise Forbidden("只有对应的评价设备才能提交该渠道的评价", {path: ["须由该设备提交"]})


def _own_actor(path: str, principal: Principal, arguments: dict[str, Any]) -> None:
    given = _get(arguments, path)
    if given not in (None, principal.id):
        raise Forbidden("不能以他人的名义操作", {path: ["须为当前登录人员本人"]})
    if principal.kind is Kind.STAFF:
        _set(arguments, path, principal.id)


def _own_window(
    found: Rule, principal: Principal, granted: frozenset[str], arguments: dict[str, Any]
) -> None:
    bound = granted <= {"clerk", "pad"}  # a manager acts at any window; a kiosk at none
    if found.window is None or not bound:
        return
    if principal.window is None:
        raise Forbidden("尚未在窗口签到，不能办理窗口业务", {found.window: ["未签到"]})
    given = _get(arguments, found.window)
    if given not in (None, principal.window):
        raise Forbidden(
            f"只能在本人签到的 {principal.window} 号窗口办理", {found.window: ["不是签到窗口"]}
        )
    _set(arguments, found.window, principal.window)


def _own_approval(path: str, principal: Principal, arguments: dict[str, Any]) -> None:
    given = _get(arguments, path)
    if given is None:
        return
    if given != principal.id or "manager" not in principal.roles:
        raise Forbidden("审批须由审批人（负责人）本人提交", {path: ["须为当前登录的负责人本人"]})


def _get(arguments: Mapping[str, Any], path: str) -> Any:
    head, _, rest = path.partition(".")
    value = arguments.get(head)
    if not rest:
        return value
    return value.get(rest) if isinstance(value, Mapping) else None


def _set(arguments: dict[str, Any], path: str, value: str) -> None:
    head, _, rest = path.partition(".")
    if not rest:
        arguments[head] = value
    elif isinstance(arguments.get(head), dict):
        arguments[head] = {**arguments[head], rest: value}
    # Not a mapping: left as it is, for the schema to refuse with its own message.
