"""The gateway's repository: staff accounts, sessions, devices, pairing codes, sign-in
failures and the audit, in the site's store (namespace ``gateway``). Passwords are kept
as argon2id hashes; session secrets and device tokens as SHA-256 digests; nothing here is
replicated or published."""

from __future__ import annotations

from typing import Any, TypedDict, cast

from services.common.store import Collection, Doc, Index, Store


class StaffRecord(TypedDict):
    """``staff``: one 工作人员账号."""

    id: str
    name: str
    roles: list[str]
    windows: list[str]
    password_hash: str
    disabled: bool
    created_at: str
    updated_at: str


class SessionRecord(TypedDict):
    """``sessions``: one sign-in; ``id`` is the digest of the cookie's secret."""

    id: str
    staff_id: str
    window: str | None
    address: str
    created_at: str
    last_seen: str
    revoked: bool


class DeviceRecord(TypedDict):
    """``devices``: one enrolled kiosk, board or pad (终端); ``token`` is a digest."""

    id: str
    name: str
    role: str
    window: str | None
    token: str
    revoked: bool
    paired_at: str


class PairingRecord(TypedDict):
    """``pairings``: a one-time code (``id`` is its digest) for one device."""

    id: str
    role: str
    window: str | None
    expires_at: str
    used: bool


class FailureRecord(TypedDict):
    """``failures``: one failed sign-in or pairing, by account and by address."""

    id: str
    key: str  # "account:<id>" or "address:<ip>"
    at: str


class AuditRecord(TypedDict):
    """``audit``: sign-in, sign-out, pairing, account changes (never a password or token)."""

    id: str
    at: str
    event: str
    actor: str
    address: str
    outcome: str


class GatewayRepository:
    def __init__(self, store: Store) -> None:
        self.staff = store.collection("staff", [Index(("disabled",))])
        self.sessions = store.collection("sessions", [Index(("staff_id", "revoked"))])
        self.devices = store.collection("devices", [Index(("token",), unique=True)])
        self.pairings = store.collection("pairings")
        self.failures = store.collection("failures", [Index(("key", "at")), Index(("at",))])
        self.audit = store.collection("audit", [Index(("at",))])

    def account(self, staff_id: str) -> StaffRecord | None:
        return cast(StaffRecord | None, self.staff.get(staff_id))

    def session(self, session_id: str) -> SessionRecord | None:
        return cast(SessionRecord | None, self.sessions.get(session_id))

    def device_by_token(self, token_digest: str) -> DeviceRecord | None:
        found = self.devices.find({"token": token_digest}, limit=1)
        return cast(DeviceRecord, found[0]) if found else None

    def failures_of(self, key: str, since: str) -> list[str]:
        return [d["at"] for d in self.failures.find({"key": key, "at": {"$gte": since}})]

    def record(self, collection: Collection, doc: Any) -> Doc:
        return collection.insert(doc)
