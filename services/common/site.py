"""Site identity: which hall, centre or station this process serves, and where it sits.

A site (站点) is identified by its administrative division code: 6 digits for a county
and above (the national platform is ``000000``), 9 for a town, 12 for a village. Pure
rules only; no configuration reading and no I/O here.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from services.common.errors import InvalidInput


class Tier(StrEnum):
    """Administrative tier (层级), ordered from the top."""

    NATIONAL = "national"
    PROVINCE = "province"
    CITY = "city"
    COUNTY = "county"
    TOWN = "town"
    VILLAGE = "village"

    @property
    def rank(self) -> int:
        return list(Tier).index(self)


NATIONAL_CODE = "000000"

# Digits of the code that identify a site at each tier; the rest must be zero (or absent).
_SIGNIFICANT_DIGITS = {
    Tier.NATIONAL: 0,
    Tier.PROVINCE: 2,
    Tier.CITY: 4,
    Tier.COUNTY: 6,
    Tier.TOWN: 9,
    Tier.VILLAGE: 12,
}
_CODE_LENGTH = {tier: max(6, digits) for tier, digits in _SIGNIFICANT_DIGITS.items()}


@dataclass(frozen=True)
class SiteIdentity:
    """One site of the network: its code, tier, display name and upstream site code."""

    code: str
    tier: Tier
    name: str
    upstream: str | None

    def as_dict(self) -> dict[str, str | None]:
        return {
            "site_code": self.code,
            "tier": self.tier.value,
            "name": self.name,
            "upstream": self.upstream,
        }


def prefix(code: str) -> str:
    """The part of a code that every site in its subtree shares (``42`` for ``420000``)."""
    return code[: _SIGNIFICANT_DIGITS[tier_of(code)]]


def subtree_range(code: str) -> dict[str, str] | None:
    """A ``site_code`` range filter for ``code`` and every site below it (None: all)."""
    shared = prefix(code)
    return {"$gte": shared, "$lt": shared + ":"} if shared else None  # ':' sorts after '9'


def within_subtree(code: str, root: str) -> bool:
    """True when site ``code`` is ``root`` itself or lies below it."""
    return code.startswith(prefix(root))


def is_proper_ancestor(ancestor: str, code: str) -> bool:
    """True when ``ancestor`` is strictly above ``code`` in the division tree."""
    return len(prefix(ancestor)) < len(prefix(code)) and within_subtree(code, ancestor)


def ancestor_at(code: str, tier: Tier) -> str | None:
    """The code of the site above ``code`` at ``tier`` (``421302`` for village
    ``421302101201`` at ``county``), or None when ``tier`` is not above it."""
    digits = _SIGNIFICANT_DIGITS[tier]
    if digits >= len(prefix(code)):
        return None
    return code[:digits].ljust(_CODE_LENGTH[tier], "0")


def tier_of(code: str) -> Tier:
    """The tier a well-formed code denotes, judged by its length and trailing zeros."""
    if code == NATIONAL_CODE:
        return Tier.NATIONAL
    if len(code) == 12:
        return Tier.VILLAGE
    if len(code) == 9:
        return Tier.TOWN
    if code.endswith("0000"):
        return Tier.PROVINCE
    if code.endswith("00"):
        return Tier.CITY
    return Tier.COUNTY


def parse_site_identity(
    code: object, tier: object, name: object, upstream: object, key: str = "SITE"
) -> SiteIdentity:
    """Validate raw configuration values; errors name the key (``SITE.code``) and the rule."""
    code_s = _digits(code, f"{key}.code")
    tier_v = _tier(tier, f"{key}.tier")
    expected_length = _CODE_LENGTH[tier_v]
    if len(code_s) != expected_length:
        raise InvalidInput.field(
            f"{key}.code",
            f"{tier_v.value} 级站点编码应为 {expected_length} 位数字，实际为 {code_s!r}",
        )
    if tier_of(code_s) is not tier_v:
        raise InvalidInput.field(
            f"{key}.tier",
            f"编码 {code_s} 属于 {tier_of(code_s).value} 级，与配置的 {tier_v.value} 不符",
        )
    name_s = str(name or "").strip()
    if not name_s:
        raise InvalidInput.field(f"{key}.name", "站点名称不能为空")
    upstream_s = None if upstream in (None, "") else _digits(upstream, f"{key}.upstream")
    if upstream_s is not None and not is_proper_ancestor(upstream_s, code_s):
        raise InvalidInput.field(
            f"{key}.upstream", f"上级站点 {upstream_s} 不是 {code_s} 的上级行政区划"
        )
    return SiteIdentity(code=code_s, tier=tier_v, name=name_s, upstream=upstream_s)


def _digits(value: object, key: str) -> str:
    # YAML turns an unquoted 421302 into an int; accept it, but "000000" must be quoted.
    text = str(value).strip() if value is not None else ""
    if not text.isdigit() or not text.isascii():
        raise InvalidInput.field(key, f"站点编码必须由数字组成（如 421302），实际为 {text!r}")
    if len(text) < 6:
        raise InvalidInput.field(
            key, f"站点编码至少 6 位，实际为 {text!r}（YAML 中请用引号或 !raw_env_var 保留前导零）"
        )
    return text


def _tier(value: object, key: str) -> Tier:
    try:
        return Tier(str(value).strip())
    except ValueError:
        allowed = "、".join(t.value for t in Tier)
        raise InvalidInput.field(key, f"层级必须是 {allowed} 之一，实际为 {value!r}") from None
