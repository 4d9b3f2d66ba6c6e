"""hallctl operations without a broker: broker definitions, config display with secrets
masked, site files for a new site or village, pid handling, and the command line."""

from __future__ import annotations

import base64
import hashlib
import os
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from services.common.config import load_site_config
from services.common.site import Tier
from services.hallctl import cli, configfile, lifecycle, sitedir
from services.hallctl import processes as proc
from services.hallctl.broker import (
    SYNC_ROUTING_KEYS,
    BrokerNames,
    SiteBroker,
    check_password,
    password_hash,
    site_definitions,
)
from services.hallctl.commands.keys import rotate_begin, rotate_finish
from services.hallctl.siteconfig import read_sync_section, replace_sync_section
from services.hallctl.siteinit import add_child, add_village, init_site
from services.hallctl.siteplan import SitePlan
from services.hallctl.topology import SERVICES
from tests.conftest import access_key_file

pytestmark = pytest.mark.unit

UUID = "[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"


# --- definitions ------------------------------------------------------------------------------


def test_password_hash_is_rabbitmq_sha256_with_salt() -> None:
    salt = b"\x90\x8d\xc6\x0a"
    stored = password_hash("test12", salt)
    raw = base64.b64decode(stored)
    assert raw[:4] == salt
    assert raw[4:] == hashlib.sha256(salt + b"test12").digest()
    assert check_password("test12", stored)
    assert not check_password("test13", stored)
    assert password_hash("test12") != password_hash("test12")  # a fresh salt each time


def test_county_definitions_limit_a_child_to_sync_and_use_quorum_queues() -> None:
    doc = site_definitions(SiteBroker("421302", "own-pw", {"421302101": "child-pw"}))
    users = {u["name"]: u for u in doc["users"]}
    assert set(users) == {"hall-site-421302", "hall-site-421302101"}
    assert check_password("child-pw", users["hall-site-421302101"]["password_hash"])
    perms = {p["user"]: p for p in doc["permissions"]}
    assert perms["hall-site-421302"]["write"] == ".*"
    child = perms["hall-site-421302101"]
    assert child["vhost"] == "hall-421302"
    replies = r"rpc\.reply-uplink-421302101-" + UUID
    assert child["configure"] == f"^{replies}$"
    assert child["write"] == child["read"] == f"^(nameko-rpc|{replies})$"
    assert doc["topic_permissions"] == [
        {
            "user": "hall-site-421302101",
            "vhost": "hall-421302",
            "exchange": "nameko-rpc",
            "write": r"^sync\.(ingest|verify_key|reconcile_counts|proxy_outcomes"
            r"|catalog_changes|site_info)$",
            "read": "^uplink-421302101-" + UUID + "$",
        }
    ]
    assert doc["vhosts"][0]["metadata"]["default_queue_type"] == "quorum"
    (policy,) = doc["policies"]
    assert policy["pattern"] == "^(rpc|evt)-"
    assert policy["definition"]["dead-letter-exchange"] == doc["exchanges"][0]["name"]
    assert "guest" not in str(doc)


def test_village_definitions_are_classic_and_a_user_without_password_cannot_log_in() -> None:
    doc = site_definitions(SiteBroker("421302101201"), BrokerNames("x-"))
    assert doc["vhosts"] == [
        {
            "name": "x-421302101201",
            "metadata": {"description": "hall site 421302101201", "tags": []},
        }
    ]
    assert doc["policies"] == doc["queues"] == doc["topic_permissions"] == []
    assert doc["users"][0]["password_hash"] == ""


# --- configuration shown with secrets masked ----------------------------------------------------


def test_mask_secrets_hides_uri_passwords_keys_salts_and_child_keys() -> None:
    config = {
        "AMQP_URI": "pyamqp://u:topsecret@h:5672/v",
        "STORE_URI": "mongodb://hall:dbpass@db/hall",
        "SITE": {"code": "421302", "name": "县中心"},
        "SYNC": {"key": "k" * 20, "children": {"421302101": ["c" * 20]}, "batch_size": 500},
        "RATING": {"privacy_salt": "salty", "deadline_days": 5},
    }
    shown = configfile.mask_secrets(config)
    text = yaml.safe_dump(shown, allow_unicode=True)
    for secret in ("topsecret", "dbpass", "k" * 20, "c" * 20, "salty"):
        assert secret not in text
    assert shown["AMQP_URI"] == "pyamqp://u:***@h:5672/v"
    assert shown["SYNC"]["children"] == {"421302101": ["***"]}
    assert shown["SYNC"]["batch_size"] == 500
    assert shown["RATING"]["deadline_days"] == 5
    assert shown["SITE"] == config["SITE"]


def test_load_config_applies_the_environment_like_nameko(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(
        "A: ${HALL_T_A:fallback}\nB: !raw_env_var ${HALL_T_B:}\nC: ${HALL_T_C:7}\nD: plain\n"
    )
    monkeypatch.setenv("HALL_T_B", "000123")
    assert configfile.load_config(path) == {"A": "fallback", "B": "000123", "C": 7, "D": "plain"}


def test_show_config_masks_and_reports_the_rule_a_bad_value_breaks(tmp_path: Path) -> None:
    site = sitedir.SiteDir(tmp_path, "421302")
    path = site.config_path("rating")
    path.parent.mkdir(parents=True)
    good = {
        "AMQP_URI": "pyamqp://hall-site-421302:pw123456@127.0.0.1:5672/hall-421302",
        "WEB_SERVER_ADDRESS": "127.0.0.1:8102",
        "SITE": {"code": "421302", "tier": "county", "name": "县中心", "upstream": ""},
        "STORE_URI": f"sqlite:///{tmp_path}/data",
        "ACCESS_KEY_FILE": str(access_key_file()),
    }
    path.write_text(yaml.safe_dump(good, allow_unicode=True))
    shown = configfile.show_config(site, "rating")
    assert "pw123456" not in shown
    assert "hall-site-421302:***@" in shown
    assert "✓ 配置检查通过" in shown
    path.write_text(yaml.safe_dump({**good, "STORE_URI": "postgres://x/y"}, allow_unicode=True))
    shown = configfile.show_config(site, "rating")
    assert "✗ 配置错误" in shown
    assert "STORE_URI" in shown
    with pytest.raises(sitedir.OpsError, match="没有 queue 的配置文件"):
        configfile.show_config(site, "queue")
    with pytest.raises(sitedir.OpsError, match="未知服务"):
        configfile.show_config(site, "billing")


# --- pid files ------------------------------------------------------------------------------------


def test_a_stale_or_foreign_pid_is_not_taken_for_the_service(tmp_path: Path) -> None:
    site = sitedir.SiteDir(tmp_path, "421302")
    config = site.config_path("queue")
    config.parent.mkdir(parents=True)
    config.write_text("{}")
    site.pid_path("queue").parent.mkdir(parents=True)
    site.pid_path("queue").write_text(f"{os.getpid()}\n")  # alive, but not `nameko run`
    assert lifecycle.running_pid(site, "queue") is None
    # a live process whose command line names this config is recognised
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)", str(config)])
    try:
        cmdline = Path(f"/proc/{sleeper.pid}/cmdline")
        deadline = time.monotonic() + 10
        while str(config).encode() not in cmdline.read_bytes() and time.monotonic() < deadline:
            time.sleep(0.01)  # until the child has exec'd
        site.pid_path("queue").write_text(f"{sleeper.pid}\n")
        assert lifecycle.running_pid(site, "queue") == sleeper.pid
        assert lifecycle.stop(site, "queue", grace=5) == sleeper.pid
        assert sleeper.poll() is not None
        assert not site.pid_path("queue").exists()
    finally:
        sleeper.kill()
        sleeper.wait()
    assert lifecycle.stop(site, "queue") is None


def test_start_refuses_a_config_that_breaks_a_rule_and_starts_nothing(tmp_path: Path) -> None:
    site = sitedir.SiteDir(tmp_path, "421302")
    config = site.config_path("matters")
    config.parent.mkdir(parents=True)
    config.write_text("AMQP_URI: pyamqp://u:p@127.0.0.1/v\nSITE: {code: '42130', tier: county}\n")
    with pytest.raises(sitedir.OpsError, match=r"SITE\.code"):
        lifecycle.start(site, "matters", wait=0)
    assert not site.pid_path("matters").exists()


# --- a new site, a new village ---------------------------------------------------------------


def _plan(code: str, name: str, upstream: str | None = None) -> SitePlan:
    return SitePlan(code, name, upstream, upstream_broker="up.example:5672")


def test_replace_sync_section_keeps_the_rest_of_the_file_byte_for_byte() -> None:
    text = "A: 1\nB: !raw_env_var ${X:}\nSYNC:\n  key: old-key-0123456789\nLOGGING:\n  version: 1\n"
    new = replace_sync_section(text, {"key": "new-key-0123456789", "children": {"1": ["k"]}})
    assert new.startswith("A: 1\nB: !raw_env_var ${X:}\nSYNC:\n")
    assert new.endswith("LOGGING:\n  version: 1\n")
    assert read_sync_section(new) == {"key": "new-key-0123456789", "children": {"1": ["k"]}}
    assert read_sync_section(replace_sync_section("A: 1", {})) == {}


def test_add_village_writes_valid_configs_secrets_and_registers_it_with_the_town(
    tmp_path: Path,
) -> None:
    init_site(tmp_path, _plan("421302", "曾都区政务服务中心"))
    init_site(tmp_path, _plan("421302101", "第一街道便民服务中心", "421302"))
    added = add_village(tmp_path, _plan("421302101202", "二村便民服务站", "421302101"), local=True)

    secrets = tmp_path / "secrets"
    key = (secrets / "421302101202.sync-key").read_text().strip()
    password = (secrets / "421302101202.broker-password").read_text().strip()
    assert len(key) >= 16
    village = added.village
    assert village is not None  # written here: local=True
    for path in [*secrets.iterdir(), *village.root.joinpath("config").iterdir()]:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    for service in SERVICES:
        config = configfile.load_config(village.config_path(service))
        site = load_site_config(config, service)
        assert site.identity.code == "421302101202"
        assert site.identity.upstream == "421302101"
        assert config["WEB_SERVER_ADDRESS"] == f"127.0.0.1:{8100 + SERVICES.index(service)}"
        assert "@up.example:5672/hall-421302101" in config["UPSTREAM_AMQP_URI"]
    village_sync = configfile.load_config(village.config_path("sync"))
    assert village_sync["SYNC"]["key"] == key
    # the town's sync now accepts the village's key
    assert added.parent_sync_config is not None  # the town's config is here
    town_sync = configfile.load_config(added.parent_sync_config)
    assert town_sync["SYNC"]["children"] == {"421302101202": [key]}
    assert town_sync["SYNC"]["key"] == (secrets / "421302101.sync-key").read_text().strip()
    # the town broker's part: the village's user, limited to sync
    part = yaml.safe_load(added.parent_definitions.read_text())
    assert set(part) == {"users", "permissions", "topic_permissions"}
    assert check_password(password, part["users"][0]["password_hash"])
    assert part["topic_permissions"][0]["write"] == SYNC_ROUTING_KEYS
    assert part["topic_permissions"][0]["read"] == "^uplink-421302101202-" + UUID + "$"
    assert part["permissions"][0]["vhost"] == "hall-421302101"


def test_init_site_again_keeps_secrets_and_registered_children(tmp_path: Path) -> None:
    init_site(tmp_path, _plan("421302", "县中心"))
    init_site(tmp_path, _plan("421302101", "镇中心", "421302"))
    add_village(tmp_path, _plan("421302101202", "二村", "421302101"))
    key = (tmp_path / "secrets" / "421302101.sync-key").read_text()
    init_site(tmp_path, _plan("421302101", "镇中心", "421302"), children=("421302101202",))
    assert (tmp_path / "secrets" / "421302101.sync-key").read_text() == key
    town = sitedir.SiteDir(tmp_path, "421302101")
    sync = configfile.load_config(town.config_path("sync"))["SYNC"]
    assert list(sync["children"]) == ["421302101202"]
    definitions = yaml.safe_load((town.root / "rabbitmq" / "definitions.json").read_text())
    assert {u["name"] for u in definitions["users"]} == {
        "hall-site-421302101",
        "hall-site-421302101202",
    }


def test_add_village_refuses_a_code_that_is_not_a_village_of_that_town(tmp_path: Path) -> None:
    with pytest.raises(sitedir.OpsError, match="不是村"):
        add_village(tmp_path, _plan("421302101", "镇", "421302"))
    with pytest.raises(sitedir.OpsError, match="不是 421302102202 的上级"):
        add_village(tmp_path, _plan("421302102202", "村", "421302101"))
    assert not (tmp_path / "421302102202").exists()


# --- command line ---------------------------------------------------------------------------


def test_cli_add_village_then_show_its_config_masked(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = str(tmp_path)
    assert (
        cli.main(
            [
                "site-init",
                "--data-dir",
                data,
                "--code",
                "421302101",
                "--name",
                "镇",
                "--upstream",
                "421302",
                "--upstream-broker",
                "c:5672",
            ]
        )
        == 0
    )
    assert (
        cli.main(
            [
                "add-village",
                "--data-dir",
                data,
                "--code",
                "421302101203",
                "--name",
                "三村",
                "--upstream-broker",
                "t:5672",
                "--local",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "import_definitions" in out
    assert "SYNC.children 中登记 421302101203" in out
    assert cli.main(["config", "--data-dir", data, "--site", "421302101203", "sync"]) == 0
    shown = capsys.readouterr().out
    key = (tmp_path / "secrets" / "421302101203.sync-key").read_text().strip()
    assert key not in shown
    assert "key: '***'" in shown
    assert "✓ 配置检查通过" in shown
    assert (
        cli.main(
            [
                "definitions",
                "--site",
                "421302101",
                "--child",
                "421302101203",
                "--secrets-dir",
                str(tmp_path / "secrets"),
            ]
        )
        == 0
    )
    printed = yaml.safe_load(capsys.readouterr().out)
    child = next(u for u in printed["users"] if u["name"] == "hall-site-421302101203")
    password = (tmp_path / "secrets" / "421302101203.broker-password").read_text().strip()
    assert check_password(password, child["password_hash"])
    assert cli.main(["stop", "--data-dir", data, "--site", "421302101203", "billing"]) == 1
    assert "未知服务 billing" in capsys.readouterr().out


def test_add_town_registers_it_with_the_county(tmp_path: Path) -> None:
    init_site(tmp_path, _plan("421302", "县中心"))
    added = add_child(tmp_path, _plan("421302102", "第二街道", "421302"), Tier.TOWN)
    key = (tmp_path / "secrets" / "421302102.sync-key").read_text().strip()
    assert added.parent_sync_config is not None  # the county's config is here
    county_sync = configfile.load_config(added.parent_sync_config)["SYNC"]
    assert county_sync["children"] == {"421302102": [key]}
    assert added.parent_definitions == tmp_path / "421302" / "rabbitmq" / "child-421302102.json"
    with pytest.raises(sitedir.OpsError, match="不是镇"):
        add_child(tmp_path, _plan("421302102201", "村", "421302102"), Tier.TOWN)


def test_rotate_sync_key_accepts_both_keys_then_only_the_new_one(tmp_path: Path) -> None:
    init_site(tmp_path, _plan("421302", "县中心"))
    init_site(tmp_path, _plan("421302101", "镇中心", "421302"))
    add_village(tmp_path, _plan("421302101202", "二村", "421302101"), local=True)
    secrets = tmp_path / "secrets"
    old = (secrets / "421302101202.sync-key").read_text().strip()
    town = sitedir.SiteDir(tmp_path, "421302101").config_path("sync")
    village = sitedir.SiteDir(tmp_path, "421302101202").config_path("sync")

    rotate_begin(tmp_path, "421302101202", "421302101")
    new = (secrets / "421302101202.sync-key.new").read_text().strip()
    assert new != old
    assert configfile.load_config(town)["SYNC"]["children"]["421302101202"] == [old, new]
    # the child's site is here: the new key is delivered to it (used after its restart)
    assert configfile.load_config(village)["SYNC"]["key"] == new
    rotate_begin(tmp_path, "421302101202", "421302101")  # again: the same new key, no third
    assert configfile.load_config(town)["SYNC"]["children"]["421302101202"] == [old, new]

    rotate_finish(tmp_path, "421302101202", "421302101")
    assert configfile.load_config(town)["SYNC"]["children"]["421302101202"] == [new]
    assert configfile.load_config(village)["SYNC"]["key"] == new
    assert (secrets / "421302101202.sync-key").read_text().strip() == new
    assert not (secrets / "421302101202.sync-key.new").exists()
    with pytest.raises(sitedir.OpsError, match="没有进行中的密钥轮换"):
        rotate_finish(tmp_path, "421302101202", "421302101")


def test_an_exited_process_not_yet_collected_counts_as_stopped() -> None:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    deadline = time.monotonic() + 10
    while not proc._zombie(child.pid) and time.monotonic() < deadline:
        time.sleep(0.01)  # exited, but nobody has waited for it: a zombie
    assert proc._zombie(child.pid)
    child.wait()
    assert not proc._zombie(child.pid)
