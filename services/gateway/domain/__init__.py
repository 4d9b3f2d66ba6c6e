"""The gateway's rules, framework-free: accounts and passwords, sign-in throttling, sessions
and their CSRF token, device pairing, the client's address behind trusted proxies
(docs/security.md, "Gateway")."""

from services.gateway.domain.accounts import (
    PASSWORD_MIN,
    check_password_strength,
    check_roles,
    may_sign_in_at,
)
from services.gateway.domain.addresses import Network, client_address, parse_network
from services.gateway.domain.secrets import (
    LINK_DOMAINS,
    capability_link,
    csrf_token,
    digest,
    new_secret,
    pairing_code,
    ref_of_link,
    ticket_link,
    ticket_of_link,
)
from services.gateway.domain.sessions import SessionRules, session_state
from services.gateway.domain.throttle import Lockout, LockoutRules

__all__ = [
    "LINK_DOMAINS",
    "PASSWORD_MIN",
    "Lockout",
    "LockoutRules",
    "Network",
    "SessionRules",
    "capability_link",
    "check_password_strength",
    "check_roles",
    "client_address",
    "csrf_token",
    "digest",
    "may_sign_in_at",
    "new_secret",
    "pairing_code",
    "parse_network",
    "ref_of_link",
    "session_state",
    "ticket_link",
    "ticket_of_link",
]
