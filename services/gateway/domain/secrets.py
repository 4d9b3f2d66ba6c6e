"""Session secrets, device tokens and pairing codes: random, shown once, stored hashed."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets


def new_secret() -> str:
    return secrets.token_urlsafe(32)


def digest(secret: str) -> str:
    """What the store keeps of a session secret or a device token (SHA-256; they are long
    random values, so a fast hash is enough: there is nothing to guess)."""
    return hashlib.sha256(secret.encode()).hexdigest()


def csrf_token(session_secret: str) -> str:
    """The CSRF token of a session: derived from its secret, so it needs no storage and a
    page of another origin, which cannot read the cookie, cannot compute it."""
    return hmac.new(session_secret.encode(), b"csrf", hashlib.sha256).hexdigest()


def pairing_code() -> str:
    """An eight-digit one-time code a manager reads out to a device (配对码)."""
    return f"{secrets.randbelow(10**8):08d}"


# The kinds of capability link, each with its own MAC domain: a ticket's token never
# passes as an application's, nor the other way round (docs/security.md, "Capability links").
LINK_DOMAINS = {"ticket": b"ticket-link|", "application": b"application-link|"}


def ticket_link(key: bytes, ticket_id: str) -> str:
    """The capability token of a ticket's mobile page (printed as a QR code): the ticket
    id and a MAC under the site's key, so a token cannot be guessed from a number."""
    return capability_link(key, "ticket", ticket_id)


def ticket_of_link(key: bytes, token: str) -> str | None:
    """The ticket id of a genuine token, else None."""
    return ref_of_link(key, "ticket", token)


def capability_link(key: bytes, kind: str, ref_id: str) -> str:
    """The token of ``kind``'s link to ``ref_id`` (a ticket's slip, an application's 受理凭证)."""
    body = base64.urlsafe_b64encode(ref_id.encode()).decode().rstrip("=")
    return f"{body}.{_link_mac(key, kind, ref_id)}"


def ref_of_link(key: bytes, kind: str, token: str) -> str | None:
    """The id a genuine ``kind`` token stands for, else None."""
    body, _, mac = token.partition(".")
    try:
        ref_id = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)).decode()
    except (ValueError, UnicodeDecodeError):
        return None
    return ref_id if hmac.compare_digest(mac, _link_mac(key, kind, ref_id)) else None


def _link_mac(key: bytes, kind: str, ref_id: str) -> str:
    return hmac.new(key, LINK_DOMAINS[kind] + ref_id.encode(), hashlib.sha256).hexdigest()[:32]
