import pytest

from services.common.errors import InvalidInput
from services.common.site import (
    Tier,
    is_proper_ancestor,
    parse_site_identity,
    tier_of,
    within_subtree,
)

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("code", "tier"),
    [
        ("000000", Tier.NATIONAL),
        ("420000", Tier.PROVINCE),
        ("421300", Tier.CITY),
        ("421302", Tier.COUNTY),
        ("421310", Tier.COUNTY),
        ("421302101", Tier.TOWN),
        ("421302101201", Tier.VILLAGE),
    ],
)
def test_tier_of_code(code: str, tier: Tier) -> None:
    assert tier_of(code) is tier


@pytest.mark.parametrize(
    ("code", "root", "inside"),
    [
        ("421302101201", "421302101", True),
        ("421302101201", "421302", True),
        ("421302101201", "421300", True),
        ("421302101201", "420000", True),
        ("421302101201", "000000", True),
        ("421302101201", "421302101201", True),
        ("421302102201", "421302101", False),
        ("421302", "421302101", False),
        ("431302101201", "420000", False),
        ("421310", "421300", True),
        ("421310", "421302", False),  # a county ending in 0 is not inside its neighbour
    ],
)
def test_within_subtree(code: str, root: str, inside: bool) -> None:
    assert within_subtree(code, root) is inside


def test_proper_ancestor_excludes_self_and_siblings() -> None:
    assert is_proper_ancestor("421302", "421302101")
    assert is_proper_ancestor("000000", "421302")
    assert not is_proper_ancestor("421302101", "421302101")
    assert not is_proper_ancestor("421302102", "421302101201")
    assert not is_proper_ancestor("421302101201", "421302101")


def test_valid_identity_accepts_yaml_integer_codes() -> None:
    identity = parse_site_identity(421302101, "town", "便民服务中心", 421302)
    assert identity.code == "421302101"
    assert identity.upstream == "421302"
    assert identity.as_dict()["tier"] == "town"


@pytest.mark.parametrize(
    ("args", "key", "fragment"),
    [
        (("42130x", "county", "n", None), "SITE.code", "数字"),
        (("4213021", "county", "n", None), "SITE.code", "6 位"),
        (("421302101", "village", "n", None), "SITE.code", "12 位"),
        (("421300", "county", "n", None), "SITE.tier", "city"),
        (("421302", "hall", "n", None), "SITE.tier", "national"),
        (("421302", "county", " ", None), "SITE.name", "不能为空"),
        (("421302101", "town", "n", "421303"), "SITE.upstream", "不是"),
        (("421302101", "town", "n", "421302101201"), "SITE.upstream", "不是"),
        (("421302", "county", "n", 0), "SITE.upstream", "引号"),
    ],
)
def test_invalid_identity_names_key_and_rule(
    args: tuple[object, str, str, object], key: str, fragment: str
) -> None:
    with pytest.raises(InvalidInput) as caught:
        parse_site_identity(*args)
    assert list(caught.value.fields) == [key]
    assert fragment in str(caught.value)
