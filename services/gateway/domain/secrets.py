"""Session secrets, device tokens and pairing codes: random, shown once, stored hashed."""

from __future__ import annotations

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
