"""A site's life on the operator's side, without a broker: ``site-init`` remembers its options
(site.json) and reports overrides, ``add-village``/``add-town`` register a child without
writing a look-alike of its site here, ``rotate-key`` delivers the new key (or says where it
goes), ``backup`` writes owner-only files, ``install.sh`` forwards only the options given,
and ``hallctl check`` words a refused sync key."""

from __future__ import annotations

import json
import logging
import logging.config
import os
import sqlite3
import stat
import subprocess
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest
import yaml

from services.hallctl import checks, cli, configfile, sitedir
from services.hallctl.commands import backup
from services.hallctl.siteplan import load_site_options

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
COUNTY, TOWN, VILLAGE = "421302", "421302101", "421302101201"


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def hallctl(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    code = cli.main(list(argv))
    return code, capsys.readouterr().out


def configs(data: Path, code: str) -> dict[str, str]:
    site = sitedir.SiteDir(data, code)
    return {s: site.config_path(s).read_text() for s in site.services()}


# --- site-init remembers its options ------------------------------------------------------


def test_site_init_reuses_remembered_options_and_reports_overrides(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = str(tmp_path)
    first = [
        *("site-init", "--data-dir", data, "--code", TOWN, "--name", "第一街道便民服务中心"),
        *("--upstream", COUNTY, "--upstream-broker", "county.example:5672"),
        *("--base-port", "8200", "--bind", "0.0.0.0", "--prefix", "x-"),
        *("--store", "mongodb://hall:dbsecret@db.example/hall_421302101"),
    ]
    code, out = hallctl(capsys, *first)
    assert code == 0, out
    written = configs(tmp_path, TOWN)
    site_json = tmp_path / TOWN / "site.json"
    assert mode(site_json) == 0o600  # the store URI may hold a password
    saved = json.loads(site_json.read_text())
    assert saved["bind"] == "0.0.0.0"
    assert saved["base_port"] == 8200

    # a re-run with only the code (what install.sh does on an update) changes nothing
    code, out = hallctl(capsys, "site-init", "--data-dir", data, "--code", TOWN)
    assert code == 0, out
    assert configs(tmp_path, TOWN) == written
    line = next(ln for ln in out.splitlines() if ln.startswith("沿用上次的选项"))
    for shown in ("--bind 0.0.0.0", "--base-port 8200", "--prefix x-", "--upstream 421302"):
        assert shown in line
    assert "dbsecret" not in out
    assert "hall:***@db.example" in line

    # an explicit option wins, is reported, and is remembered; the others stay
    code, out = hallctl(
        capsys, "site-init", "--data-dir", data, "--code", TOWN, "--bind", "127.0.0.1"
    )
    assert code == 0, out
    assert "按本次参数更改 --bind：0.0.0.0 → 127.0.0.1" in out
    queue = configfile.load_config(sitedir.SiteDir(tmp_path, TOWN).config_path("queue"))
    assert queue["WEB_SERVER_ADDRESS"] == "127.0.0.1:8201"
    assert queue["AMQP_URI"].endswith("/x-421302101")
    assert queue["STORE_URI"].startswith("mongodb://hall:dbsecret@")
    options = load_site_options(sitedir.SiteDir(tmp_path, TOWN))
    assert options is not None
    assert options["bind"] == "127.0.0.1"

    # --store '' goes back to the default SQLite files
    code, out = hallctl(capsys, "site-init", "--data-dir", data, "--code", TOWN, "--store", "")
    assert code == 0, out
    assert "按本次参数更改 --store：mongodb://hall:***@db.example/hall_421302101 → （默认）" in out
    queue = configfile.load_config(sitedir.SiteDir(tmp_path, TOWN).config_path("queue"))
    assert queue["STORE_URI"] == f"sqlite:///{tmp_path / TOWN / 'data'}"


def test_site_init_needs_a_name_the_first_time_only(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out = hallctl(capsys, "site-init", "--data-dir", str(tmp_path), "--code", COUNTY)
    assert code == 1
    assert "第一次初始化" in out
    assert "--name" in out
    assert not (tmp_path / COUNTY).exists()


def test_registered_children_stay_in_the_definitions_until_removed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = str(tmp_path)
    init = ("site-init", "--data-dir", data, "--code", TOWN)
    hallctl(capsys, *init, "--name", "镇", "--upstream", COUNTY, "--upstream-broker", "c:5672")
    code, out = hallctl(capsys, "add-village", "--data-dir", data, "--code", VILLAGE)
    assert code == 0, out
    options = load_site_options(sitedir.SiteDir(tmp_path, TOWN))
    assert options is not None
    assert options["children"] == [VILLAGE]

    def users() -> set[str]:
        doc = json.loads((tmp_path / TOWN / "rabbitmq" / "definitions.json").read_text())
        return {u["name"] for u in doc["users"]}

    code, out = hallctl(capsys, *init)  # no --child: the village stays registered
    assert code == 0, out
    assert users() == {f"hall-site-{TOWN}", f"hall-site-{VILLAGE}"}
    assert f"已登记的下级站点（写入 definitions.json）：{VILLAGE}" in out

    code, out = hallctl(capsys, *init, "--remove-child", VILLAGE)
    assert code == 0, out
    assert f"撤销下级站点：{VILLAGE}" in out
    assert users() == {f"hall-site-{TOWN}"}
    sync = configfile.load_config(sitedir.SiteDir(tmp_path, TOWN).config_path("sync"))["SYNC"]
    assert VILLAGE not in (sync.get("children") or {})


# --- add-village / add-town register the child only ---------------------------------------


def test_add_village_registers_the_child_without_writing_its_site_here(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = str(tmp_path)
    hallctl(
        capsys,
        *("site-init", "--data-dir", data, "--code", TOWN, "--name", "镇", "--prefix", "x-"),
        *("--upstream", COUNTY, "--upstream-broker", "c:5672"),
    )
    code, out = hallctl(
        capsys, "add-village", "--data-dir", data, "--code", VILLAGE, "--bind", "0.0.0.0"
    )
    assert code == 0, out
    assert not (tmp_path / VILLAGE).exists()  # no stale look-alike of the village's site
    for kind in ("broker-password", "sync-key", "privacy-salt"):
        assert mode(tmp_path / "secrets" / f"{VILLAGE}.{kind}") == 0o600
    part = json.loads((tmp_path / TOWN / "rabbitmq" / f"child-{VILLAGE}.json").read_text())
    assert [u["name"] for u in part["users"]] == [f"x-site-{VILLAGE}"]  # the town's prefix
    key = (tmp_path / "secrets" / f"{VILLAGE}.sync-key").read_text().strip()
    town_sync = configfile.load_config(sitedir.SiteDir(tmp_path, TOWN).config_path("sync"))
    assert town_sync["SYNC"]["children"] == {VILLAGE: [key]}
    assert "已忽略 --bind" in out
    assert f"本机未生成 {VILLAGE} 的站点目录" in out
    assert f"SYNC.children 中登记 {VILLAGE}" in out

    # --local: the village runs on this machine too, so its site directory is written here
    code, out = hallctl(
        capsys,
        *("add-village", "--data-dir", data, "--code", VILLAGE, "--local", "--name", "一村"),
        *("--upstream-broker", "127.0.0.1:5672", "--base-port", "8300"),
    )
    assert code == 0, out
    sync = configfile.load_config(sitedir.SiteDir(tmp_path, VILLAGE).config_path("sync"))
    assert sync["SYNC"]["key"] == key  # the same key the town registered
    assert sync["WEB_SERVER_ADDRESS"] == "127.0.0.1:8303"


# --- rotate-key delivers the new key --------------------------------------------------------


def _town_with_village(tmp_path: Path, capsys: pytest.CaptureFixture[str], local: bool) -> None:
    data = str(tmp_path)
    hallctl(
        capsys,
        *("site-init", "--data-dir", data, "--code", TOWN, "--name", "镇"),
        *("--upstream", COUNTY, "--upstream-broker", "c:5672"),
    )
    extra = ("--local", "--name", "一村", "--upstream-broker", "t:5672") if local else ()
    assert hallctl(capsys, "add-village", "--data-dir", data, "--code", VILLAGE, *extra)[0] == 0


def test_rotate_key_prints_where_the_key_goes_when_the_child_is_elsewhere(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _town_with_village(tmp_path, capsys, local=False)
    old = (tmp_path / "secrets" / f"{VILLAGE}.sync-key").read_text().strip()
    code, out = hallctl(
        capsys,
        *("rotate-key", "begin", "--data-dir", str(tmp_path), "--child", VILLAGE),
        *("--child-data-dir", "/var/lib/hall"),
    )
    assert code == 0, out
    new_file = tmp_path / "secrets" / f"{VILLAGE}.sync-key.new"
    assert mode(new_file) == 0o600
    destination = f"/var/lib/hall/secrets/{VILLAGE}.sync-key"
    assert f"路径为 {destination}（权限 600" in out
    assert f"scp -p {new_file} root@<{VILLAGE} 的主机>:{destination}" in out
    assert f"hallctl site-init --data-dir /var/lib/hall --code {VILLAGE}" in out
    assert f"hallctl rotate-key finish --data-dir {tmp_path} --child {VILLAGE}" in out
    new = new_file.read_text().strip()
    town_sync = configfile.load_config(sitedir.SiteDir(tmp_path, TOWN).config_path("sync"))
    assert town_sync["SYNC"]["children"][VILLAGE] == [old, new]
    assert not Path(destination).exists() or Path(destination).read_text().strip() != new


def test_rotate_key_writes_the_key_into_a_child_site_reachable_here(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _town_with_village(tmp_path, capsys, local=False)
    # the village's own site directory, reachable from the town (e.g. the same PC, or mounted)
    village_data = tmp_path / "village-pc"
    (village_data / "secrets").mkdir(parents=True)
    for kind in ("broker-password", "sync-key", "privacy-salt"):
        source = tmp_path / "secrets" / f"{VILLAGE}.{kind}"
        (village_data / "secrets" / source.name).write_text(source.read_text())
    assert (
        hallctl(
            capsys,
            *("site-init", "--data-dir", str(village_data), "--code", VILLAGE, "--name", "一村"),
            *("--upstream", TOWN, "--upstream-broker", "t:5672"),
        )[0]
        == 0
    )
    key_file = village_data / "secrets" / f"{VILLAGE}.sync-key"
    key_file.chmod(0o644)  # whatever it was, the delivered key is owner-only
    code, out = hallctl(
        capsys,
        *("rotate-key", "begin", "--data-dir", str(tmp_path), "--child", VILLAGE),
        *("--child-data-dir", str(village_data)),
    )
    assert code == 0, out
    new = (tmp_path / "secrets" / f"{VILLAGE}.sync-key.new").read_text().strip()
    assert key_file.read_text().strip() == new
    assert mode(key_file) == 0o600
    village_sync = sitedir.SiteDir(village_data, VILLAGE).config_path("sync")
    assert configfile.load_config(village_sync)["SYNC"]["key"] == new
    assert mode(village_sync) == 0o600
    assert f"已把新密钥交付给下级站点 {VILLAGE}：{key_file}" in out
    # a later site-init at the village keeps the new key (it reads secrets/<code>.sync-key)
    hallctl(capsys, "site-init", "--data-dir", str(village_data), "--code", VILLAGE)
    assert configfile.load_config(village_sync)["SYNC"]["key"] == new


# --- backups are owner-only ---------------------------------------------------------------


def _live_wal_database(path: Path) -> sqlite3.Connection:
    """A database in WAL mode with rows still only in its -wal file (a running service)."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA wal_autocheckpoint = 0")
    conn.execute("CREATE TABLE docs (id TEXT PRIMARY KEY, body TEXT)")
    conn.executemany("INSERT INTO docs VALUES (?, ?)", [(f"d{i}", "满意") for i in range(50)])
    return conn


def test_backup_writes_consistent_copies_readable_by_the_owner_only(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "hall"
    assert (
        hallctl(
            capsys,
            *("site-init", "--data-dir", str(data), "--code", VILLAGE, "--name", "一村"),
            *("--upstream", TOWN, "--upstream-broker", "t:5672"),
        )[0]
        == 0
    )
    live = [_live_wal_database(data / VILLAGE / "data" / f"{s}.db") for s in ("rating", "queue")]
    old_umask = os.umask(0o022)  # the usual umask: files 644, directories 755
    try:
        target = tmp_path / "backups" / "2026-11-20"
        code, out = hallctl(
            capsys,
            *("backup", "--data-dir", str(data), "--site", VILLAGE, "--to", str(target)),
            "--with-secrets",
        )
    finally:
        os.umask(old_umask)
        for conn in live:
            conn.close()
    assert code == 0, out
    assert mode(target) == 0o700
    written = sorted(p.name for p in target.iterdir())
    assert written == ["queue.db", "rating.db", "secrets"]  # matters, sync: no data yet
    for name in ("queue.db", "rating.db"):
        assert mode(target / name) == 0o600
        copy = sqlite3.connect(target / name)
        assert copy.execute("SELECT count(*) FROM docs").fetchone() == (50,)  # WAL included
        assert copy.execute("PRAGMA journal_mode").fetchone() == ("delete",)
        copy.close()
    assert mode(target / "secrets") == 0o700
    assert {mode(p) for p in (target / "secrets").iterdir()} == {0o600}
    assert "✓ rating" in out
    assert "尚无数据文件" in out
    # never overwrites an earlier backup
    code, out = hallctl(
        capsys, "backup", "--data-dir", str(data), "--site", VILLAGE, "--to", str(target)
    )
    assert code == 1
    assert "已存在，不覆盖" in out


def test_backup_finds_the_sqlite_file_of_each_store_uri() -> None:
    assert backup.sqlite_file("sqlite:////var/lib/hall/x/data", "rating") == Path(
        "/var/lib/hall/x/data/rating.db"
    )
    assert backup.sqlite_file("sqlite:////srv/site.db?synchronous=NORMAL", "queue") == Path(
        "/srv/site.db"
    )
    assert backup.sqlite_file("sqlite:///rel/dir", "sync") == Path("rel/dir/sync.db")
    assert backup.sqlite_file("mongodb://db/hall", "sync") is None


# --- install.sh forwards only the options given ---------------------------------------------


def install_args(*argv: str, env_file: Path | None = None) -> list[str]:
    """The ``hallctl site-init`` arguments install.sh builds (its option parsing, run alone)."""
    text = (ROOT / "deploy" / "systemd" / "install.sh").read_text()
    start = text.index('CODE="" SECRETS=""')
    end = text.index("\n", text.index('[ -n "$CODE" ] ||'))
    parsing = text[start:end]
    if env_file is not None:
        parsing = parsing.replace("/etc/hall/hall.env", str(env_file))
    args_line = next(ln for ln in text.splitlines() if ln.startswith("args=(site-init"))
    show = 'printf "%s\\n" "${args[@]}"'
    script = f"set -euo pipefail\nDATA=/var/lib/hall\n{parsing}\n{args_line}\n{show}\n"
    done = subprocess.run(
        ["bash", "-c", script, "install.sh", *argv], capture_output=True, text=True, timeout=30
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.splitlines()


def test_install_sh_forwards_only_given_options_and_reuses_the_installed_code(
    tmp_path: Path,
) -> None:
    assert install_args(
        "--code", VILLAGE, "--name", "一村", "--bind", "0.0.0.0", "--secrets", "/x"
    ) == [
        *("site-init", "--data-dir", "/var/lib/hall", "--code", VILLAGE),
        *("--name", "一村", "--bind", "0.0.0.0"),
    ]
    env = tmp_path / "hall.env"
    env.write_text(f"# comment\nHALL_SITE={VILLAGE}\nCALENDAR_OVERRIDE=\n")
    # a re-run without options: no default overrides what site.json remembers
    assert install_args(env_file=env) == [
        *("site-init", "--data-dir", "/var/lib/hall", "--code", VILLAGE)
    ]
    assert install_args("--store", "", "--base-port", "8300", env_file=env)[-4:] == [
        *("--store", "", "--base-port", "8300")
    ]


# --- hallctl check words a refused key ------------------------------------------------------


class FakeSync:
    """The parent's ``sync`` service as ``checks`` calls it: ``check_key()`` answers."""

    def __init__(self, answer: Mapping[str, object]) -> None:
        self.answer = answer

    def check_key(self) -> Mapping[str, object]:
        return self.answer


class FakeCluster:
    def __init__(self, answer: Mapping[str, object]) -> None:
        self.sync = FakeSync(answer)


def test_check_names_the_site_the_parent_and_the_cause_of_a_refused_key(tmp_path: Path) -> None:
    site = sitedir.SiteDir(tmp_path, VILLAGE)
    refused = {
        "ok": False,
        "reason": "forbidden",
        "error": f"上级站点 {TOWN} 拒绝了本站点 {VILLAGE} 的同步密钥：签名不一致",
    }
    check = checks._key_check(site, TOWN, FakeCluster(refused))
    assert not check.ok
    line = check.line()
    assert line.startswith("✗ sync")
    assert f"站点 {VILLAGE} 的同步密钥未通过上级站点 {TOWN} 的核验（forbidden）" in line
    assert f"核对 SYNC.children.{VILLAGE}" in line
    rotating = checks._key_check(site, TOWN, FakeCluster({"ok": True, "key": "previous"}))
    assert rotating.ok
    assert "仍在用旧密钥" in rotating.detail
    old = {"ok": True, "verified": False, "note": "上级站点的同步服务版本较旧"}
    assert checks._key_check(site, TOWN, FakeCluster(old)).ok


def test_generated_configs_of_a_site_are_valid_yaml_and_owner_only(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    hallctl(capsys, "site-init", "--data-dir", str(tmp_path), "--code", COUNTY, "--name", "县")
    for path in (tmp_path / COUNTY / "config").iterdir():
        assert mode(path) == 0o600
        assert isinstance(yaml.safe_load(path.read_text().replace("!raw_env_var ", "")), dict)


@pytest.fixture
def logging_restored() -> Iterator[None]:
    """dictConfig changes the process's logging: put it back for the other tests."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    loggers = dict(logging.Logger.manager.loggerDict)
    disabled = {n: lg.disabled for n, lg in loggers.items() if isinstance(lg, logging.Logger)}
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    for name, was in disabled.items():
        logging.getLogger(name).disabled = was


@pytest.mark.parametrize("source", ["site-init", "container"])
def test_generated_logging_keeps_nameko_loggers_that_exist_before_it(
    source: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], logging_restored: None
) -> None:
    """Nameko creates its loggers before it applies LOGGING: an entrypoint's unexpected error
    (logged by ``nameko.containers``) must still reach the log."""
    if source == "site-init":
        hallctl(capsys, "site-init", "--data-dir", str(tmp_path), "--code", COUNTY, "--name", "县")
        path = sitedir.SiteDir(tmp_path, COUNTY).config_path("rating")
    else:
        path = ROOT / "deploy" / "config" / "rating.yaml"
    text = path.read_text().replace("!raw_env_var ", "")  # the env references are not needed
    nameko_logger = logging.getLogger("nameko.containers")  # exists before, as in nameko
    logging.config.dictConfig(yaml.safe_load(text)["LOGGING"])
    nameko_logger.error("unexpected error in entrypoint")
    assert "ERROR nameko.containers unexpected error in entrypoint" in capsys.readouterr().err
    try:
        int("bad phone 138 1234 5678 for 42130219900101123X")
    except ValueError:
        nameko_logger.exception("error handling worker %s", "+8613912345678")
    logged = capsys.readouterr().err
    assert "Traceback" in logged
    assert "139****5678" in logged
    assert "138****5678" in logged
    for personal in ("1234 5678", "13912345678", "0219900101"):
        assert personal not in logged
