"""What a record may carry when it leaves the site (docs/architecture.md, "Privacy"):
personal keys dropped at any depth, phones and ID numbers in free text masked by
``services.common.privacy.scrub_text`` in every form people type them."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from functools import lru_cache
from typing import Any

from services.common.privacy import scrub_text

# Keys that name or identify a person. Dropped (at any depth) from every record before it
# leaves the site, even though the feeds are meant to be clean already.
DEFAULT_MASK_KEYS = (
    "phone",
    "phone_number",
    "mobile",
    "mobile_phone",
    "telephone",
    "contact_phone",
    "applicant_phone",
    "name",
    "applicant_name",
    "citizen_name",
    "contact_name",
    "rater_name",
    "id_number",
    "id_card",
    "id_card_number",
    "applicant_id_number",
    "address",
    "email",
    "openid",
)
# Values under these keys are identifiers or codes, never free text: left as they are.
_STRUCTURAL_KEY = re.compile(
    r"(^id$|_id$|^site_code$|_code$|_at$|^date$|^schema$|_masked$|^number$|_number$|_no$)"
)
# Only text with eleven digits (ASCII or full-width), at most one separator between two,
# can hold a phone or an ID number: most values have none and are not scrubbed.
_MAYBE_NUMBER = re.compile(r"\d(?:\D?\d){10}")


def mask_record(doc: Mapping[str, Any], drop: Iterable[str] = DEFAULT_MASK_KEYS) -> dict[str, Any]:
    """A copy of ``doc`` fit to leave the site: personal keys dropped at any depth, phone
    and ID numbers masked inside free text, the local feed position ``_seq`` removed.
    ``phone_masked`` and the ``real_name`` flag are kept."""
    dropped = frozenset(drop)
    cleaned: dict[str, Any] = _mask_value(doc, dropped, key="")
    cleaned.pop("_seq", None)
    return cleaned


@lru_cache(maxsize=4096)
def _free_text(key: str) -> bool:
    return not _STRUCTURAL_KEY.search(key)


def _mask_value(value: Any, drop: frozenset[str], key: str) -> Any:
    if isinstance(value, str):
        if _free_text(key) and _MAYBE_NUMBER.search(value):
            return scrub_text(value)
        return value
    if isinstance(value, Mapping):
        return {k: _mask_value(v, drop, k) for k, v in value.items() if k not in drop}
    if isinstance(value, list):
        return [_mask_value(item, drop, key) for item in value]
    return value


def personal_keys(doc: Mapping[str, Any], drop: Iterable[str] = DEFAULT_MASK_KEYS) -> list[str]:
    """The personal keys present in ``doc`` at any depth (empty for a clean record)."""
    dropped = frozenset(drop)
    found: set[str] = set()

    def walk(value: Any) -> None:
        if isinstance(value, Mapping):
            found.update(dropped.intersection(value))
            for v in value.values():
                if isinstance(v, Mapping | list):
                    walk(v)
        elif isinstance(value, list):
            for item in value:
                if isinstance(item, Mapping | list):
                    walk(item)

    walk(doc)
    return sorted(found)
