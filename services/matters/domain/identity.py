"""Identity checks of applicants, and what of them is kept (docs/architecture.md, "Privacy").

A citizen's ID number must pass the GB 11643 check; an organisation's is a unified social
credit code (GB 32100). ID numbers are normalised (ASCII, no separators, upper-case ``X``)
and phones normalised before they are hashed or masked, so a lookup by ``…123x`` or with
spaces finds the same application. Only masked forms and keyed hashes are stored.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from services.common.errors import InvalidInput
from services.common.privacy import (
    id_number_hash,
    keyed_hash,
    mask_id_number,
    mask_name,
    mask_phone,
    normalise_id_number,
    normalise_phone,
    phone_hash,
    resident_id_valid,
)
from services.matters.domain.records import ProtectedApplicant

__all__ = ["CREDIT_CODE", "id_suffix_hash", "protect_applicant"]

CREDIT_CODE = re.compile(r"[0-9A-HJ-NPQRTUWXY]{2}\d{6}[0-9A-HJ-NPQRTUWXY]{10}\Z")
# A contact phone once normalised: a mobile or a landline with its area code.
PHONE_DIGITS = re.compile(r"[0-9]{3,20}\Z")


def protect_applicant(applicant: Mapping[str, Any], salt: str) -> ProtectedApplicant:
    """The applicant as stored; refuses an ID number that fails its check."""
    id_number = normalise_id_number(applicant["id_number"])
    if applicant["kind"] == "person":
        if not resident_id_valid(id_number):
            raise InvalidInput.field("applicant.id_number", "居民身份证号码应为 18 位且校验码正确")
        name = mask_name(applicant["name"])
    else:
        if not CREDIT_CODE.match(id_number):
            raise InvalidInput.field("applicant.id_number", "统一社会信用代码应为 18 位")
        name = applicant["name"].strip()  # an organisation's registered name is public
    protected = ProtectedApplicant(
        kind=applicant["kind"],
        name=name,
        id_hash=id_number_hash(salt, id_number),
        id_masked=mask_id_number(id_number),
        phone_hash=None,
        phone_masked=None,
    )
    phone = normalise_phone(applicant.get("phone") or "")
    if phone:
        if not PHONE_DIGITS.match(phone):
            raise InvalidInput.field("applicant.phone", "联系电话应为数字和连字符")
        protected["phone_hash"] = phone_hash(salt, phone)
        protected["phone_masked"] = mask_phone(phone)
    return protected


def applicant_lookup_hash(id_number: str, salt: str) -> str:
    """The hash an application is found by: the same for ``…x``, ``…X`` and spaced forms."""
    return id_number_hash(salt, id_number)


SUFFIX = 6  # the characters of an ID number a citizen types to read an application's progress


def id_suffix_hash(salt: str, number: str, id_number: str) -> str:
    """What an application keeps to check the last six characters of its applicant's ID
    number (``applicant_suffix_hash``): keyed, and bound to the application's number, so
    equal suffixes of two applications never hash alike. ``id_number`` may be the whole
    number or just its last six; both normalise alike (``…123x`` is ``…123X``)."""
    suffix = normalise_id_number(id_number)[-SUFFIX:]
    return keyed_hash(salt, "id_suffix", f"{number}:{suffix}")
