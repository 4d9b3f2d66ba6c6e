"""The pure parts of sync's key check: which registered key signed a probe, the probe's
schema, and the ``key_check_interval`` setting."""

from typing import Any

import pytest

from services.common import validation
from services.common.errors import InvalidInput
from services.sync import domain
from services.sync.schemas import KeyProbeSchema
from services.sync.settings import SyncSettings

pytestmark = pytest.mark.unit

OLD, NEW, OTHER = "o" * 32, "n" * 32, "x" * 32


def load_key_probe(raw: Any) -> dict[str, Any]:
    return validation.load(KeyProbeSchema(), raw, "probe")


def probe(key: str) -> dict[str, Any]:
    return domain.sign({"schema": 1, "child": "421302101201", "upstream": "421302101"}, key)


def test_matching_key_tells_the_old_from_the_new_key_of_a_rotation() -> None:
    assert domain.matching_key(probe(OLD), [OLD, NEW]) == 0
    assert domain.matching_key(probe(NEW), [OLD, NEW]) == 1
    assert domain.matching_key(probe(NEW), [NEW]) == 0
    assert domain.matching_key(probe(OTHER), [OLD, NEW]) is None
    assert domain.matching_key({**probe(NEW), "child": "421302101202"}, [NEW]) is None
    assert domain.matching_key({"child": "421302101201"}, [NEW]) is None


def test_key_probe_schema_and_interval_setting() -> None:
    loaded = load_key_probe(probe(NEW))
    assert loaded["child"] == "421302101201"
    assert loaded["upstream"] == "421302101"
    with pytest.raises(InvalidInput, match=r"probe\.upstream"):
        load_key_probe({"schema": 1, "child": "421302101201", "signature": "ab"})
    assert SyncSettings.from_section({}).key_check_interval == 60.0
    assert SyncSettings.from_section({"key_check_interval": 5}).key_check_interval == 5.0
    with pytest.raises(InvalidInput, match=r"SYNC\.key_check_interval"):
        SyncSettings.from_section({"key_check_interval": 0.1})
