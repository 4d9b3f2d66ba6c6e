"""Secret files of a data directory (``<data>/secrets/<code>.<kind>``): broker passwords,
sync keys, privacy salts, each readable by its owner only."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

ACCESS_KEY = "access-key"  # the site's identity key (ACCESS_KEY_FILE); it stays on the site


def secrets_dir(data_dir: Path) -> Path:
    return data_dir / "secrets"


def secret_path(data_dir: Path, code: str, kind: str) -> Path:
    """``kind``: ``broker-password``, ``sync-key``, ``privacy-salt`` (the site's files)."""
    return secrets_dir(data_dir) / f"{code}.{kind}"


def read_secret(path: Path) -> str | None:
    return path.read_text().strip() if path.exists() else None


def write_secret(path: Path, value: str | None = None) -> str:
    """Write ``value`` (or a new random one) to ``path``, readable by its owner only."""
    value = value or secrets.token_urlsafe(24)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)  # an existing file keeps its mode through O_CREAT: set it
    with os.fdopen(fd, "w") as out:
        out.write(value + "\n")
    return value


def site_secret(data_dir: Path, code: str, kind: str) -> str:
    """The site's secret of ``kind``, generated once and kept for every later run."""
    path = secret_path(data_dir, code, kind)
    return read_secret(path) or write_secret(path)


def broker_password_path(secrets: Path, code: str) -> Path:
    """``<secrets>/<code>.broker-password``, as ``site-init`` and ``hallctl demo`` write it."""
    return secrets / f"{code}.broker-password"
