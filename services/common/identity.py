"""Who is calling: principals and the signed identity every RPC carries (docs/security.md).

A caller puts a short-lived token in the Nameko context data under ``hall_identity`` (an
AMQP header). The token names a ``Principal`` and is signed with the site's access key
(HMAC-SHA256), which only the site's own machine holds: its services, its gateway and
``hallctl`` there. A child site, a device or a person on the LAN never holds it, so none of
them can name an identity the site did not give them: the gateway signs, per call, for the
staff member or device it authenticated.

Token: ``v1.<key id>.<payload, base64url JSON>.<mac, base64url>``. The payload is
``{"k": kind, "i": id, "s": site, "r": roles, "w": window, "e": expiry}``; a token lives
``TOKEN_TTL_S`` seconds, so a token copied off the wire is soon worthless. The key file
holds one key per line, ``<key id> <hex>``: the first signs, all verify, which is how a key
is rotated without a flag day (add the new key first, then drop the old one).
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import hmac
import json
import os
import secrets
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from services.common.errors import Forbidden, HallError
from services.common.roles import DEVICE_ROLES as DEVICE_ROLES  # re-exported
from services.common.roles import STAFF_ROLES as STAFF_ROLES

IDENTITY_KEY = "hall_identity"  # the context-data key (AMQP header nameko.hall_identity)
TOKEN_TTL_S = 60
CLOCK_SKEW_S = 5  # tolerated between the signer's clock and the verifier's
_MAX_TOKEN = 2048


class Unauthenticated(Forbidden):
    """The call carries no identity, or one this site cannot verify (forged, expired,
    signed with an unknown key, or for another site). A kind of ``Forbidden``: whoever
    catches that catches this; HTTP says 401."""

    code = "unauthenticated"
    http_status = 401


class Kind(StrEnum):
    STAFF = "staff"  # a person signed in at the gateway (roles below)
    DEVICE = "device"  # an enrolled kiosk, board or pad
    OPERATOR = "operator"  # hallctl on the site's own machine
    SERVICE = "service"  # one of the site's own services


@dataclass(frozen=True)
class Principal:
    """Someone the site knows. ``roles`` are staff roles or one device role; ``window`` is
    the window a clerk signed in at, or the window a pad is bound to. ``site`` empty: an
    operator, whose reach is the key file it can read."""

    kind: Kind
    id: str
    site: str
    roles: frozenset[str] = field(default_factory=frozenset)
    window: str | None = None

    @property
    def label(self) -> str:
        """How audits and refusals name the caller (an account id, never a person's name)."""
        return f"{self.kind.value}:{self.id}"


@dataclass(frozen=True)
class KeyRing:
    """The site's access keys: ``signing`` signs, every key in ``keys`` verifies."""

    keys: Mapping[str, bytes]
    signing: str

    @property
    def secret(self) -> bytes:
        return self.keys[self.signing]


def sign(principal: Principal, ring: KeyRing, now: float | None = None) -> str:
    """A token for ``principal``, valid ``TOKEN_TTL_S`` seconds from ``now``."""
    expires = int((time.time() if now is None else now) + TOKEN_TTL_S)
    payload = {
        "k": principal.kind.value,
        "i": principal.id,
        "s": principal.site,
        "r": sorted(principal.roles),
        "w": principal.window,
        "e": expires,
    }
    body = _b64(json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode())
    signed = f"v1.{ring.signing}.{body}"
    return f"{signed}.{_b64(_mac(ring.secret, signed))}"


def verify(token: object, ring: KeyRing, site: str, now: float | None = None) -> Principal:
    """The principal ``token`` names, or ``Unauthenticated`` saying why (never echoing it)."""
    if not isinstance(token, str) or not token:
        raise Unauthenticated("请求未携带身份凭证，请先登录或使用已登记的设备")
    parts = token.split(".") if len(token) <= _MAX_TOKEN else []
    if len(parts) != 4 or parts[0] != "v1":
        raise Unauthenticated("身份凭证格式不正确")
    secret = ring.keys.get(parts[1])
    mac = _unb64(parts[3])
    if (
        secret is None
        or mac is None
        or not hmac.compare_digest(mac, _mac(secret, ".".join(parts[:3])))
    ):
        raise Unauthenticated("身份凭证签名无效")
    principal, expires = _payload(parts[2])
    if expires + CLOCK_SKEW_S < (time.time() if now is None else now):
        raise Unauthenticated("身份凭证已过期，请重新登录")
    anywhere = principal.site == "" and principal.kind == Kind.OPERATOR
    if principal.site != site and not anywhere:
        raise Unauthenticated("身份凭证不属于本站点")
    return principal


def _payload(text: str) -> tuple[Principal, float]:
    raw = _unb64(text)
    try:
        data: dict[str, Any] = json.loads(raw or b"")
        roles = data["r"]
        principal = Principal(
            kind=Kind(data["k"]),
            id=_text(data["i"]),
            site=_text(data["s"], empty=True),
            roles=frozenset(_text(r) for r in roles) if isinstance(roles, list) else frozenset(),
            window=None if data["w"] is None else _text(data["w"]),
        )
        expires = data["e"]
    except (TypeError, KeyError, ValueError, AttributeError):
        raise Unauthenticated("身份凭证内容不正确") from None
    if not isinstance(expires, int) or isinstance(expires, bool):
        raise Unauthenticated("身份凭证内容不正确")
    return principal, expires


def _text(value: Any, empty: bool = False) -> str:
    if not isinstance(value, str) or not (value or empty) or len(value) > 64:
        raise ValueError("not an identity field")
    return value


def _mac(secret: bytes, signed: str) -> bytes:
    return hmac.new(secret, signed.encode(), hashlib.sha256).digest()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes | None:
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        return None


# --- the key file ------------------------------------------------------------------------


class KeyFileError(HallError):
    code = "invalid_input"
    http_status = 400


def read_keys(path: str | Path) -> KeyRing:
    """The ring in ``path``; ``KeyFileError`` naming the rule when it is missing, readable by
    others, or malformed (a service refuses to start rather than trust every caller)."""
    file = Path(path)
    try:
        mode = file.stat().st_mode
        lines = file.read_text(encoding="ascii").split()
    except (OSError, UnicodeDecodeError) as exc:
        raise KeyFileError(f"无法读取访问密钥文件 {file}：{exc.__class__.__name__}") from None
    if mode & 0o007:  # group-readable is how Kubernetes mounts a Secret for the pod's group
        raise KeyFileError(f"访问密钥文件 {file} 不能让其他用户读取（权限应为 600 或 440）")
    keys: dict[str, bytes] = {}
    for kid, value in zip(lines[::2], lines[1::2], strict=False):
        try:
            keys.setdefault(kid, bytes.fromhex(value))
        except ValueError:
            raise KeyFileError(f"访问密钥文件 {file} 中密钥 {kid} 不是十六进制") from None
    if not keys or len(lines) % 2 or any(len(k) < 16 for k in keys.values()):
        raise KeyFileError(f"访问密钥文件 {file} 应每行一个“密钥编号 十六进制密钥”（至少 16 字节）")
    return KeyRing(keys, signing=lines[0])


def write_key(path: str | Path, rotate: bool = False) -> str:
    """Create ``path`` (0600) with a new key, or with ``rotate`` put a new signing key in
    front of the keys already there. Returns the new key id."""
    file = Path(path)
    kept = file.read_text(encoding="ascii").strip() if rotate and file.exists() else ""
    kid = secrets.token_hex(4)
    text = f"{kid} {secrets.token_hex(32)}\n" + (f"{kept}\n" if kept else "")
    file.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(file.with_suffix(".tmp"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w", encoding="ascii") as out:
        out.write(text)
    os.replace(file.with_suffix(".tmp"), file)
    return kid


def keep_only_signing_key(path: str | Path) -> str:
    """End a rotation: drop every key but the signing one (tokens of the old key are then
    refused). Returns the key id kept."""
    ring = read_keys(path)
    file = Path(path)
    descriptor = os.open(file.with_suffix(".tmp"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w", encoding="ascii") as out:
        out.write(f"{ring.signing} {ring.secret.hex()}\n")
    os.replace(file.with_suffix(".tmp"), file)
    return ring.signing


def ensure_key(path: str | Path) -> None:
    """Create the key file if it does not exist yet (site set-up; never rotates)."""
    if not Path(path).exists():
        write_key(path)


class KeyFile:
    """The key file a running service verifies with, read again when it changes (looked at
    no more than every ``RECHECK_S`` seconds), so a rotation needs no restart."""

    RECHECK_S = 5.0

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._ring = read_keys(self.path)
        self._stamp = self._stat()
        self._checked = time.monotonic()
        self._lock = threading.Lock()

    def ring(self) -> KeyRing:
        if time.monotonic() - self._checked >= self.RECHECK_S:
            with self._lock:
                self._checked = time.monotonic()
                stamp = self._stat()
                if stamp != self._stamp:
                    # A half-written or broken file keeps the old ring (and is said at start).
                    with contextlib.suppress(KeyFileError):
                        self._ring, self._stamp = read_keys(self.path), stamp
        return self._ring

    def _stat(self) -> tuple[int, int]:
        try:
            info = self.path.stat()
        except OSError:
            return (0, 0)
        return (info.st_mtime_ns, info.st_ino)
