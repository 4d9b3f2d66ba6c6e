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


def ticket_link(key: bytes, ticket_id: str) -> str:
    """The capability token of a ticket's mobile page (printed as a QR code): the ticket
    id and a MAC under the site's key, so a token cannot be guessed from a number."""
    body = base64.urlsafe_b64encode(ticket_id.encode()).decode().rstrip("=")
    return f"{body}.{_ticket_mac(key, ticket_id)}"


def ticket_of_link(key: bytes, token: str) -> str | None:
    """The ticket id of a genuine token, else None."""
    body, _, mac = token.partition(".")
    try:
        ticket_id = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)).decode()
    except (ValueError, UnicodeDecodeError):
        return None
    return ticket_id if hmac.compare_digest(mac, _ticket_mac(key, ticket_id)) else None


def _ticket_mac(key: bytes, ticket_id: str) -> str:
    return hmac.new(key, b"ticket-link|" + ticket_id.encode(), hashlib.sha256).hexdigest()[:32]
