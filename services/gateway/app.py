"""``GatewayApp``: the gateway's use cases — staff accounts, sign-in and sessions, device
pairing — and who a request is (docs/security.md, "Gateway"). No framework here: the
Nameko class (service.py) turns HTTP requests into these calls."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from services.common.clock import Clock, iso, parse_iso
from services.common.errors import Forbidden, InvalidInput, NotFound, TooManyRequests
from services.common.identity import Kind, Principal, Unauthenticated
from services.common.runtime import SiteContext
from services.common.validation import load
from services.gateway import domain, schemas
from services.gateway.metrics import GatewayMetrics
from services.gateway.settings import GatewaySettings
from services.gateway.store import DeviceRecord, GatewayRepository, SessionRecord, StaffRecord

WRONG = "账号或密码不正确"  # the same for an unknown account: no account oracle
# A hash to verify against when the account does not exist, so both cost the same time.
_HASHER = PasswordHasher()
_DUMMY_HASH = _HASHER.hash("not-an-account-0000")


@dataclass(frozen=True)
class SignedIn:
    """A new session: the cookie's secret (shown once) and what the page may show."""

    secret: str
    view: dict[str, Any]


class GatewayApp:
    def __init__(self, context: SiteContext, settings: GatewaySettings, clock: Clock) -> None:
        self.site = context.identity.code
        self.site_name = context.identity.name
        self.keys = context.config.access.ring
        self.repo = GatewayRepository(context.store)
        self.settings = settings
        self.clock = clock
        self.metrics = GatewayMetrics(context.metrics)
        self.lockout = domain.Lockout(
            domain.LockoutRules(settings.lockout_failures, settings.lockout_minutes)
        )
        self.session_rules = domain.SessionRules(
            settings.session_idle_minutes, settings.session_max_hours
        )

    # --- staff accounts (the operator, through hallctl) -----------------------------------

    def add_staff(self, account: Mapping[str, Any], by: str) -> dict[str, Any]:
        data = load(schemas.StaffSchema, account)
        domain.check_password_strength(data["password"], data["id"])
        now = iso(self.clock())
        record: StaffRecord = {
            "id": data["id"],
            "name": data["name"],
            "roles": domain.check_roles(data["roles"]),
            "windows": sorted(set(data["windows"])),
            "password_hash": _HASHER.hash(data["password"]),
            "disabled": False,
            "created_at": now,
            "updated_at": now,
        }
        self.repo.staff.insert(record)  # Conflict when the id is taken
        self._audit("add_staff", by, "", f"ok:{record['id']}")
        return staff_view(record)

    def disable_staff(self, staff_id: str, by: str) -> dict[str, Any]:
        record = self._account(staff_id)
        self.repo.staff.update(record["id"], {"disabled": True, "updated_at": iso(self.clock())})
        revoked = self._revoke_sessions(record["id"])
        self._audit("disable_staff", by, "", f"ok:{record['id']}:{revoked}")
        return {**staff_view({**record, "disabled": True}), "sessions_revoked": revoked}

    def reset_password(self, staff_id: str, password: str, by: str) -> dict[str, Any]:
        data = load(schemas.PasswordSchema, {"staff_id": staff_id, "password": password})
        record = self._account(data["staff_id"])
        domain.check_password_strength(data["password"], record["id"])
        changes = {"password_hash": _HASHER.hash(data["password"]), "updated_at": iso(self.clock())}
        self.repo.staff.update(record["id"], changes)
        revoked = self._revoke_sessions(record["id"])
        self._audit("reset_password", by, "", f"ok:{record['id']}:{revoked}")
        return {**staff_view(record), "sessions_revoked": revoked}

    def list_staff(self) -> list[dict[str, Any]]:
        return [staff_view(d) for d in self.repo.staff.find()]

    # --- signing in ------------------------------------------------------------------------

    def login(self, request: Any, address: str) -> SignedIn:
        """A session for the right password, unless the account or the address is locked;
        every outcome is audited and counted."""
        data = load(schemas.LoginSchema, request)
        staff_id, now = data["staff_id"], self.clock()
        keys = (f"account:{staff_id}", f"address:{address}")
        self._refuse_when_locked(keys, now, staff_id, address)
        record = self.repo.account(staff_id)
        if not _password_matches(record, data["password"]) or record is None:
            self._fail(keys, now, "login", staff_id, address)
            raise Unauthenticated(WRONG, {"password": ["账号或密码不正确"]})
        if record["disabled"]:
            self._audit("login", staff_id, address, "disabled")
            raise Unauthenticated("该账号已停用", {"staff_id": ["已停用"]})
        domain.may_sign_in_at(record["roles"], record["windows"], data["window"])
        secret = domain.new_secret()
        session: SessionRecord = {
            "id": domain.digest(secret),
            "staff_id": staff_id,
            "window": data["window"],
            "address": address,
            "created_at": iso(now),
            "last_seen": iso(now),
            "revoked": False,
        }
        self.repo.sessions.insert(session)
        self._audit("login", staff_id, address, "ok")
        self.metrics.logins.labels(**self.metrics.labels, outcome="ok").inc()
        view = {**self._principal_view(record, data["window"]), "csrf": domain.csrf_token(secret)}
        return SignedIn(secret, view)

    def logout(self, secret: str, address: str) -> None:
        session = self.repo.session(domain.digest(secret))
        if session is not None and not session["revoked"]:
            self.repo.sessions.update(session["id"], {"revoked": True})
            self._audit("logout", session["staff_id"], address, "ok")

    def session_principal(self, secret: str, csrf: str | None) -> Principal:
        """Who holds the session ``secret``; ``Unauthenticated`` when it ended, ``Forbidden``
        when ``csrf`` is not its token (a page of another origin sending the cookie)."""
        session = self._live_session(secret)
        if csrf is None or not _same(csrf, domain.csrf_token(secret)):
            raise Forbidden("请求缺少有效的 CSRF 令牌，请刷新页面后重试", {"csrf": ["无效"]})
        return self._touch(session)

    def page_principal(self, secret: str) -> Principal:
        """Who holds the session ``secret``, for a page's shell: a GET that changes nothing
        but the session's last use, so it needs no CSRF token."""
        return self._touch(self._live_session(secret))

    def _live_session(self, secret: str) -> SessionRecord:
        session = self.repo.session(domain.digest(secret))
        ended = "请先登录" if session is None else self._ended(session, self.clock())
        if ended or session is None:
            raise Unauthenticated(ended or "请先登录")
        return session

    def _touch(self, session: SessionRecord) -> Principal:
        self.repo.sessions.update(session["id"], {"last_seen": iso(self.clock())})
        record = self._account(session["staff_id"])
        return Principal(
            Kind.STAFF, record["id"], self.site, frozenset(record["roles"]), session["window"]
        )

    def staff_name(self, staff_id: str) -> str:
        return self._account(staff_id)["name"]

    def _ended(self, session: SessionRecord, now: datetime) -> str | None:
        record = self.repo.account(session["staff_id"])
        created, seen = parse_iso(session["created_at"]), parse_iso(session["last_seen"])
        revoked = session["revoked"] or record is None or record["disabled"]
        return domain.session_state(created, seen, revoked, now, self.session_rules)

    # --- devices ---------------------------------------------------------------------------

    def create_pairing(self, role: str, window: str | None, by: str) -> dict[str, Any]:
        data = load(schemas.PairingSchema, {"role": role, "window": window})
        if data["role"] == "pad" and not data["window"]:
            raise InvalidInput.field("window", "评价器必须绑定一个窗口")
        code = domain.pairing_code()
        expires = self.clock() + timedelta(minutes=self.settings.pairing_minutes)
        self.repo.pairings.insert(
            {
                "id": domain.digest(code),
                "role": data["role"],
                "window": data["window"],
                "expires_at": iso(expires),
                "used": False,
            }
        )
        self._audit("create_pairing", by, "", f"ok:{data['role']}")
        return {
            "code": code,
            "role": data["role"],
            "window": data["window"],
            "expires_at": iso(expires),
        }

    def pair(self, request: Any, address: str) -> dict[str, Any]:
        """A device token (shown once) for a valid, unused, unexpired code."""
        data = load(schemas.PairSchema, request)
        now, keys = self.clock(), (f"address:{address}",)
        self._refuse_when_locked(keys, now, "device", address)
        pairing = self.repo.pairings.get(domain.digest(data["code"]))
        valid = (
            pairing is not None and not pairing["used"] and parse_iso(pairing["expires_at"]) > now
        )
        claimed = (
            valid
            and pairing is not None
            and self.repo.pairings.update(pairing["id"], {"used": True}, expect={"used": False})
        )
        if not claimed or pairing is None:
            self._fail(keys, now, "pair", "device", address)
            raise Unauthenticated("配对码无效、已使用或已过期", {"code": ["无效"]})
        token = domain.new_secret()
        device: DeviceRecord = {
            "id": f"{pairing['role']}-{uuid.uuid4().hex[:8]}",
            "name": data["name"],
            "role": pairing["role"],
            "window": pairing["window"],
            "token": domain.digest(token),
            "revoked": False,
            "paired_at": iso(now),
        }
        self.repo.devices.insert(device)
        self._audit("pair", device["id"], address, "ok")
        return {**device_view(device), "token": token}

    def device_principal(self, token: str) -> Principal:
        device = self.repo.device_by_token(domain.digest(token))
        if device is None or device["revoked"]:
            raise Unauthenticated("设备未登记或已被撤销，请重新配对")
        roles = frozenset({device["role"]})
        return Principal(Kind.DEVICE, device["id"], self.site, roles, device["window"])

    def revoke_device(self, device_id: str, by: str) -> dict[str, Any]:
        device_id = load(schemas.DeviceSchema, {"device_id": device_id})["device_id"]
        device = self.repo.devices.get(device_id)
        if device is None:
            raise NotFound("没有这台设备", {"device_id": [device_id]})
        self.repo.devices.update(device_id, {"revoked": True})
        self._audit("revoke_device", by, "", f"ok:{device_id}")
        return device_view({**device, "revoked": True})

    def list_devices(self) -> list[dict[str, Any]]:
        return [device_view(d) for d in self.repo.devices.find()]

    def audit_log(self, limit: int = 100) -> list[dict[str, Any]]:
        wanted = load(schemas.AuditQuerySchema, {"limit": limit})["limit"]
        found = self.repo.audit.find(sort=[("at", -1)], limit=wanted)
        return [{k: v for k, v in d.items() if not k.startswith("_")} for d in found]

    # --- tickets' mobile pages (capability links printed as QR codes) ----------------------

    def ticket_token(self, ticket_id: str) -> str:
        return domain.ticket_link(self.keys().secret, ticket_id)

    def ticket_of(self, token: str) -> str:
        """The ticket of a genuine link (under any current key), else ``NotFound``: a
        guessed or altered token learns nothing, not even whether the ticket exists."""
        for key in self.keys().keys.values():
            ticket_id = domain.ticket_of_link(key, token[:512])
            if ticket_id is not None:
                return ticket_id
        raise NotFound("没有这张号票", {"token": ["无效"]})

    # --- helpers ---------------------------------------------------------------------------

    def _account(self, staff_id: str) -> StaffRecord:
        record = self.repo.account(staff_id) if isinstance(staff_id, str) else None
        if record is None:
            raise NotFound("没有这个账号", {"staff_id": [str(staff_id)[:64]]})
        return record

    def _principal_view(self, record: StaffRecord, window: str | None) -> dict[str, Any]:
        return {
            "staff_id": record["id"],
            "name": record["name"],
            "roles": record["roles"],
            "window": window,
        }

    def _revoke_sessions(self, staff_id: str) -> int:
        open_ = self.repo.sessions.find({"staff_id": staff_id, "revoked": False})
        for session in open_:
            self.repo.sessions.update(session["id"], {"revoked": True})
        return len(open_)

    # --- lockouts (sign-in, pairing, and the citizen's progress page) ----------------------

    def locked_minutes(self, keys: tuple[str, ...], now: datetime) -> int | None:
        """Whole minutes (at least 1) until the first of ``keys`` that is locked at ``now``
        unlocks, or None when none is (``domain.Lockout`` over the stored failures)."""
        since = iso(now - timedelta(minutes=self.settings.lockout_minutes))
        for key in keys:
            failures = [parse_iso(at) for at in self.repo.failures_of(key, since)]
            until = self.lockout.locked_until(failures, now)
            if until is not None:
                return max(1, int((until - now).total_seconds() // 60) + 1)
        return None

    def count_failure(self, keys: tuple[str, ...], now: datetime) -> None:
        for key in keys:
            self.repo.failures.insert({"id": uuid.uuid4().hex, "key": key, "at": iso(now)})

    def _refuse_when_locked(
        self, keys: tuple[str, ...], now: datetime, actor: str, address: str
    ) -> None:
        minutes = self.locked_minutes(keys, now)
        if minutes is not None:
            self._audit("login", actor, address, "locked")
            self.metrics.logins.labels(**self.metrics.labels, outcome="locked").inc()
            raise TooManyRequests(
                f"失败次数过多，请 {minutes} 分钟后再试", {"password": ["已暂时锁定"]}
            )

    def _fail(
        self, keys: tuple[str, ...], now: datetime, event: str, actor: str, address: str
    ) -> None:
        self.count_failure(keys, now)
        self._audit(event, actor, address, "wrong")
        self.metrics.logins.labels(**self.metrics.labels, outcome="wrong").inc()

    def _audit(self, event: str, actor: str, address: str, outcome: str) -> None:
        self.repo.audit.insert(
            {
                "id": uuid.uuid4().hex,
                "at": iso(self.clock()),
                "event": event,
                "actor": actor,
                "address": address,
                "outcome": outcome,
            }
        )


def _password_matches(record: StaffRecord | None, password: str) -> bool:
    try:
        return _HASHER.verify(record["password_hash"] if record else _DUMMY_HASH, password)
    except (VerificationError, InvalidHashError):
        return False


def _same(a: str, b: str) -> bool:
    import hmac

    return hmac.compare_digest(a.encode(), b.encode())


def staff_view(record: Mapping[str, Any]) -> dict[str, Any]:
    return {k: record[k] for k in ("id", "name", "roles", "windows", "disabled")}


def device_view(record: Mapping[str, Any]) -> dict[str, Any]:
    return {k: record[k] for k in ("id", "name", "role", "window", "revoked", "paired_at")}
