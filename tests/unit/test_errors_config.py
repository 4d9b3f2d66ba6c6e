import json

import pytest
from nameko.exceptions import deserialize, serialize

from services.common import remote  # noqa: F401  (typed remote errors)
from services.common.config import ConfigError, load_site_config, mask_uri
from services.common.errors import (
    Conflict,
    Forbidden,
    HallError,
    InvalidInput,
    NotFound,
    http_response,
)
from tests.conftest import access_key_file

pytestmark = pytest.mark.unit

GOOD = {
    "AMQP_URI": "pyamqp://u:secret@127.0.0.1:5672/hall-421302101",
    "SITE": {"code": "421302101", "tier": "town", "name": "镇中心", "upstream": "421302"},
    "UPSTREAM_AMQP_URI": "pyamqp://u:secret@127.0.0.1:5672/hall-421302",
    "STORE_URI": "sqlite:////var/lib/hall/421302101",
    "ACCESS_KEY_FILE": str(access_key_file()),
}


@pytest.mark.parametrize(
    ("error", "status"),
    [
        (InvalidInput("输入有误", {"phone": ["格式不对"]}), 400),
        (NotFound("没有该事项"), 404),
        (Conflict("状态不允许"), 409),
        (Forbidden("无权操作"), 403),
    ],
)
def test_errors_round_trip_typed_and_map_to_http(error: HallError, status: int) -> None:
    back = deserialize(json.loads(json.dumps(serialize(error))))
    assert type(back) is type(error)
    assert back.message == error.message
    assert back.fields == error.fields
    code, headers, body = http_response(error)
    assert code == status
    assert json.loads(body) == {
        "error": error.code,
        "message": error.message,
        "fields": error.fields,
    }
    assert "json" in headers["Content-Type"]


def test_good_config_loads() -> None:
    config = load_site_config(GOOD, "rating")
    assert config.identity.code == "421302101"
    assert config.upstream_amqp_uri is not None
    assert config.section == {}


@pytest.mark.parametrize(
    ("change", "key"),
    [
        ({"SITE": None}, "SITE"),
        ({"AMQP_URI": "http://host/"}, "AMQP_URI"),
        ({"AMQP_URI": ""}, "AMQP_URI"),
        ({"UPSTREAM_AMQP_URI": ""}, "UPSTREAM_AMQP_URI"),
        ({"STORE_URI": "redis://localhost/0"}, "STORE_URI"),
        ({"STORE_URI": ""}, "STORE_URI"),
        ({"RATING": "not a mapping"}, "RATING"),
        ({"ACCESS_KEY_FILE": ""}, "ACCESS_KEY_FILE"),
        ({"ACCESS_KEY_FILE": "/nonexistent/access.key"}, "ACCESS_KEY_FILE"),
    ],
)
def test_bad_config_names_the_key(change: dict[str, object], key: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_site_config({**GOOD, **change}, "rating")
    assert key in caught.value.fields
    assert "\n" not in str(caught.value)


def test_mask_uri_hides_password_only() -> None:
    assert mask_uri("pyamqp://user:s3cr3t@host:5672/v") == "pyamqp://user:***@host:5672/v"
    assert mask_uri("pyamqp://host/v") == "pyamqp://host/v"
