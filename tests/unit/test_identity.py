"""Signed identities (services/common/identity.py): what a forger, a replayer or another
site's key holder would try, and key rotation."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from services.common.identity import (
    TOKEN_TTL_S,
    KeyFile,
    KeyFileError,
    Kind,
    Principal,
    Unauthenticated,
    read_keys,
    sign,
    verify,
    write_key,
)

pytestmark = pytest.mark.unit

SITE = "421302"
CLERK = Principal(Kind.STAFF, "s-1001", SITE, frozenset({"clerk"}), "3")
NOW = 1_800_000_000.0


@pytest.fixture
def key(tmp_path: Path) -> Path:
    path = tmp_path / "access.key"
    write_key(path)
    return path


def test_a_signed_principal_verifies_as_itself(key: Path) -> None:
    ring = read_keys(key)
    assert verify(sign(CLERK, ring, NOW), ring, SITE, NOW) == CLERK


@pytest.mark.parametrize(
    "tamper",
    [
        lambda t: t.replace(t.split(".")[2], t.split(".")[2][:-2] + "AA"),  # payload changed
        lambda t: t[:-3] + ("AAA" if not t.endswith("AAA") else "BBB"),  # mac changed
        lambda t: "v2" + t[2:],
        lambda t: t.rsplit(".", 1)[0],
        lambda t: t + "." + t,
        lambda t: "",
        lambda t: "x" * 5000,
    ],
)
def test_a_changed_token_is_refused(key: Path, tamper: object) -> None:
    ring = read_keys(key)
    token = sign(CLERK, ring, NOW)
    with pytest.raises(Unauthenticated):
        verify(tamper(token), ring, SITE, NOW)  # type: ignore[operator]


def test_roles_cannot_be_added_without_the_key(key: Path, tmp_path: Path) -> None:
    other = tmp_path / "other.key"
    write_key(other)
    manager = Principal(Kind.STAFF, "s-1001", SITE, frozenset({"manager"}))
    forged = sign(manager, read_keys(other), NOW)  # signed with a key the site does not hold
    with pytest.raises(Unauthenticated, match="签名无效"):
        verify(forged, read_keys(key), SITE, NOW)


def test_expired_and_other_site_tokens_are_refused(key: Path) -> None:
    ring = read_keys(key)
    token = sign(CLERK, ring, NOW)
    assert verify(token, ring, SITE, NOW + TOKEN_TTL_S)  # within the skew allowance
    with pytest.raises(Unauthenticated, match="过期"):
        verify(token, ring, SITE, NOW + TOKEN_TTL_S + 60)
    with pytest.raises(Unauthenticated, match="不属于本站点"):
        verify(token, ring, "421302101", NOW)


def test_only_an_operator_token_may_leave_the_site_open(key: Path) -> None:
    ring = read_keys(key)
    operator = Principal(Kind.OPERATOR, "hallctl", "")
    assert verify(sign(operator, ring, NOW), ring, SITE, NOW) == operator
    anywhere = Principal(Kind.STAFF, "s-1", "", frozenset({"manager"}))
    with pytest.raises(Unauthenticated):
        verify(sign(anywhere, ring, NOW), ring, SITE, NOW)


def test_rotation_verifies_old_and_new_and_signs_with_new(key: Path) -> None:
    old = read_keys(key)
    old_token = sign(CLERK, old, NOW)
    write_key(key, rotate=True)
    ring = read_keys(key)
    assert ring.signing != old.signing
    assert verify(old_token, ring, SITE, NOW) == CLERK
    assert sign(CLERK, ring, NOW).split(".")[1] == ring.signing
    assert os.stat(key).st_mode & 0o777 == 0o600


def test_a_running_service_picks_up_a_rotated_key(key: Path) -> None:
    watched = KeyFile(key)
    watched.RECHECK_S = 0.0
    first = watched.ring().signing
    write_key(key, rotate=True)
    assert watched.ring().signing != first
    assert first in watched.ring().keys


@pytest.mark.parametrize(
    ("content", "mode", "rule"),
    [
        ("k1 " + "ab" * 32 + "\n", 0o644, "其他用户"),
        ("k1 zz\n", 0o600, "十六进制"),
        ("k1 abcd\n", 0o600, "至少 16 字节"),
        ("", 0o600, "每行一个"),
    ],
)
def test_a_bad_key_file_is_refused_with_its_rule(
    tmp_path: Path, content: str, mode: int, rule: str
) -> None:
    path = tmp_path / "bad.key"
    path.write_text(content)
    path.chmod(mode)
    with pytest.raises(KeyFileError, match=rule):
        read_keys(path)


def test_the_http_access_log_keeps_no_query_string() -> None:
    """An anonymous lookup by a partial ID number once landed in matters.log verbatim."""
    import logging

    from services.common.logs import ScrubPersonalData

    line = (
        '10.0.0.9 - - [06/Dec/2026 10:00:00] "GET /matters?q=%E7%99%BB&id=4213021980 HTTP/1.1"'
        " 200 9 0.001"
    )
    record = logging.LogRecord("nameko.web.server", logging.INFO, "", 0, line, None, None)
    assert ScrubPersonalData().filter(record)
    assert record.getMessage() == (
        '10.0.0.9 - - [06/Dec/2026 10:00:00] "GET /matters?… HTTP/1.1" 200 9 0.001'
    )
    other = logging.LogRecord("hall.audit", logging.INFO, "", 0, "GET /x?y=1", None, None)
    ScrubPersonalData().filter(other)
    assert other.getMessage() == "GET /x?y=1"  # only the access log's request line


def test_hallctl_rotates_the_access_key_in_two_steps(tmp_path: Path) -> None:
    from services.hallctl import cli

    path = tmp_path / "secrets" / "421302.access-key"
    write_key(path)
    first = read_keys(path)
    old_token = sign(CLERK, first, NOW)
    assert (
        cli.main(["rotate-access-key", "begin", "--site", SITE, "--data-dir", str(tmp_path)]) == 0
    )
    both = read_keys(path)
    assert both.signing != first.signing
    assert first.signing in both.keys
    assert verify(old_token, both, SITE, NOW) == CLERK  # still accepted during the rotation
    assert (
        cli.main(["rotate-access-key", "finish", "--site", SITE, "--data-dir", str(tmp_path)]) == 0
    )
    last = read_keys(path)
    assert list(last.keys) == [both.signing]
    with pytest.raises(Unauthenticated):
        verify(old_token, last, SITE, NOW)
    assert os.stat(path).st_mode & 0o777 == 0o600
