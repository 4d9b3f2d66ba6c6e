"""Personal data, one way everywhere: normalise, hash and mask phones and ID numbers, scrub
free text, and the site's privacy salt.

A phone is normalised before it is hashed, counted, compared or masked, so "138 1234 5678",
"+86-138-1234-5678" and full-width "１３８１２３４５６７８" are one phone for every abuse limit.
Hashes are keyed (HMAC-SHA256) with the site's salt and a kind, so a hash is useless
without the salt and a phone hash never equals an ID-number hash. Nothing here does I/O
except ``site_salt``, which reads and writes one document of the collection it is given.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import unicodedata
from collections.abc import Iterable
from typing import TYPE_CHECKING

from services.common.errors import Conflict

if TYPE_CHECKING:
    from services.common.store.port import Collection

MOBILE = re.compile(r"1[3-9][0-9]{9}")
RESIDENT_ID = re.compile(r"[0-9]{17}[0-9X]")
_SEPARATORS = re.compile(r"[\s\-()（）.]")
_COUNTRY_PREFIX = re.compile(r"(?:\+|00)?86(?=1[3-9][0-9]{9}$)")

# Free text: phones and ID numbers as people type them. ``\d`` matches full-width digits
# too; a separator is one space, hyphen or bracket (ASCII or full-width) between digits.
_SEP = r"[ \-－\u3000()（）]?"
_PHONE_IN_TEXT = re.compile(
    rf"(?<!\d)(?:(?:\+|＋|00|００)?{_SEP}[8８]{_SEP}[6６]{_SEP})?"
    rf"[1１]{_SEP}[3-9３-９](?:{_SEP}\d){{9}}(?!\d)"
)
_ID_IN_TEXT = re.compile(
    rf"(?<!\d)\d(?:{_SEP}\d){{14}}(?:(?:{_SEP}\d){{2}}{_SEP}[\dXxＸｘ])?(?![\dXxＸｘ])"
)


def normalise_phone(value: str) -> str:
    """Digits only, ASCII, without the +86 / 0086 / 86 country prefix of a mobile."""
    flat = _SEPARATORS.sub("", unicodedata.normalize("NFKC", value))
    return _COUNTRY_PREFIX.sub("", flat)


def is_mobile(value: str) -> bool:
    """A mainland mobile number once normalised (11 digits, 13x–19x)."""
    return MOBILE.fullmatch(normalise_phone(value)) is not None


def normalise_id_number(value: str) -> str:
    """ASCII, no separators, the check character upper-cased."""
    return _SEPARATORS.sub("", unicodedata.normalize("NFKC", value)).upper()


def resident_id_check(body: str) -> str:
    """The ISO 7064 MOD 11-2 check character of a citizen ID's first 17 digits (GB 11643)."""
    total = sum(int(c) * w for c, w in zip(body, _ID_WEIGHTS, strict=True))
    return "10X98765432"[total % 11]


_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)


def resident_id_valid(value: str) -> bool:
    """GB 11643 citizen ID, once normalised: 17 digits and the check character."""
    value = normalise_id_number(value)
    return RESIDENT_ID.fullmatch(value) is not None and resident_id_check(value[:17]) == value[17]


def keyed_hash(salt: str, kind: str, value: str) -> str:
    """HMAC-SHA256 of ``kind:value`` under the site salt; callers normalise ``value``."""
    return hmac.new(salt.encode(), f"{kind}:{value}".encode(), hashlib.sha256).hexdigest()


def phone_hash(salt: str, phone: str) -> str:
    return keyed_hash(salt, "phone", normalise_phone(phone))


def id_number_hash(salt: str, id_number: str) -> str:
    return keyed_hash(salt, "id_number", normalise_id_number(id_number))


def mask_phone(phone: str) -> str:
    """138****5678; a number too short to keep seven digits is all stars."""
    digits = normalise_phone(phone)
    if len(digits) < 7:
        return "*" * len(digits)
    return f"{digits[:3]}****{digits[-4:]}"


def mask_id_number(value: str) -> str:
    """4213**********1234: the first four and the last four kept."""
    value = normalise_id_number(value)
    if len(value) <= 8:
        return "*" * len(value)
    return value[:4] + "*" * (len(value) - 8) + value[-4:]


def mask_name(name: str) -> str:
    """张** : the first character kept."""
    name = name.strip()
    return name[:1] + "*" * max(len(name) - 1, 1)


def scrub_text(text: str, names: Iterable[str | None] = ()) -> str:
    """Free text fit to leave the site: ID numbers (15 or 18 characters) and mobile numbers
    masked in every form people type them, and each of ``names`` masked."""
    for name in names:
        if name and name.strip():
            text = text.replace(name.strip(), mask_name(name))
    text = _ID_IN_TEXT.sub(lambda m: mask_id_number(m.group()), text)
    return _PHONE_IN_TEXT.sub(lambda m: mask_phone(m.group()), text)


SALT_ID = "privacy_salt"


def site_salt(configured: str | None, settings: Collection) -> str:
    """The configured salt, else one generated once for this store and kept in
    ``settings`` (document ``privacy_salt``); safe when several processes start at once."""
    if configured:
        return configured
    doc = settings.get(SALT_ID)
    if doc is None:
        try:
            doc = settings.insert({"id": SALT_ID, "salt": secrets.token_hex(32)})
        except Conflict:  # another process of this service stored its salt first
            doc = settings.get(SALT_ID)
    assert doc is not None, "the salt was stored by this process or another"
    return str(doc["salt"])
