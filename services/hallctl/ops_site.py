"""Operating one site run by ``hallctl`` (no Docker, no systemd): start, stop and restart one
service, show the configuration it runs with (secrets masked), and check the whole site.

A site directory has the layout ``hallctl demo`` writes, one per site code::

    <data>/<code>/config/<service>.yaml   the Nameko config of each service
    <data>/<code>/data/                   SQLite files (one per service)
    <data>/<code>/logs/<service>.log      stdout and stderr of the process
    <data>/<code>/run/<service>.pid       the pid of the running ``nameko run``

Processes started by a running ``hallctl demo`` are found through its ``demo-state.json``.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import requests
import yaml

from services.common.config import ConfigError, load_site_config, mask_uri
from services.hallctl import processes as proc
from services.hallctl.topology import SERVICES

STATE_FILE = "demo-state.json"  # written by ``hallctl demo``
STOP_GRACE_S = 30.0  # Nameko finishes in-flight workers on SIGTERM; then SIGKILL
SECRET_KEY = re.compile(r"pass|secret|key|salt|token|credential", re.IGNORECASE)
MASK = "***"
SECRET_PATHS = {("SYNC", "children")}  # child site code → its sync keys


class OpsError(RuntimeError):
    """An operation that cannot be done, with a message for the operator (Chinese)."""


def default_data_dir() -> Path:
    return Path(os.environ.get("HALL_DATA_DIR") or os.environ.get("HALL_DEMO_DIR") or "demo-data")


@dataclass(frozen=True)
class SiteDir:
    data_dir: Path
    code: str

    @property
    def root(self) -> Path:
        return self.data_dir / self.code

    def config_path(self, service: str) -> Path:
        return self.root / "config" / f"{service}.yaml"

    def log_path(self, service: str) -> Path:
        return self.root / "logs" / f"{service}.log"

    def pid_path(self, service: str) -> Path:
        return self.root / "run" / f"{service}.pid"

    def services(self) -> list[str]:
        """The services that have a config file here, in the usual order."""
        return [s for s in SERVICES if self.config_path(s).exists()]

    def require(self, service: str) -> Path:
        if service not in SERVICES:
            raise OpsError(f"未知服务 {service}，应为 {'、'.join(SERVICES)} 之一")
        path = self.config_path(service)
        if not path.exists():
            raise OpsError(f"站点 {self.code} 没有 {service} 的配置文件 {path}")
        return path


# --- configuration --------------------------------------------------------------------------


class _NamekoLoader(yaml.SafeLoader):
    """YAML as ``nameko run`` reads it: ``${ENV:default}`` and ``!raw_env_var``."""

    installed = False


def _install_env_constructors() -> None:
    # Nameko's own constructors, imported on first use: nameko is slow to import and the
    # command line should not pay for it before it reads a config.
    from nameko.cli.main import IMPLICIT_ENV_VAR_MATCHER, env_var_constructor

    _NamekoLoader.add_constructor("!env_var", env_var_constructor)
    _NamekoLoader.add_constructor("!raw_env_var", partial(env_var_constructor, raw=True))
    _NamekoLoader.add_implicit_resolver("!env_var", IMPLICIT_ENV_VAR_MATCHER, None)
    _NamekoLoader.installed = True


def load_config(path: Path) -> dict[str, Any]:
    """The mapping ``nameko run --config path`` would get, environment applied."""
    if not _NamekoLoader.installed:
        _install_env_constructors()
    with path.open(encoding="utf-8") as stream:
        loaded = yaml.load(stream, Loader=_NamekoLoader)  # a SafeLoader subclass
    if not isinstance(loaded, dict):
        raise OpsError(f"{path} 不是 YAML 映射")
    return loaded


def mask_secrets(value: Any, secret: bool = False, path: tuple[str, ...] = ()) -> Any:
    """A copy with URIs' passwords and every value under a secret-looking key masked."""
    if isinstance(value, Mapping):
        masked = {}
        for k, v in value.items():
            inner = (*path, str(k))
            hidden = secret or bool(SECRET_KEY.search(str(k))) or inner in SECRET_PATHS
            masked[k] = mask_secrets(v, hidden, inner)
        return masked
    if isinstance(value, list):
        return [mask_secrets(v, secret, path) for v in value]
    if secret and value not in (None, ""):
        return MASK
    if isinstance(value, str) and "://" in value:
        return mask_uri(value)
    return value


def config_problem(config: Mapping[str, Any], service: str) -> str | None:
    """Why the service would refuse to start (broker not contacted), or None."""
    try:
        load_site_config(config, service)
    except ConfigError as exc:
        return str(exc)
    return None


def show_config(site: SiteDir, service: str) -> str:
    """The effective config of one service as YAML, secrets masked, plus its verdict."""
    config = load_config(site.require(service))
    text = yaml.safe_dump(mask_secrets(config), allow_unicode=True, sort_keys=False)
    problem = config_problem(config, service)
    verdict = f"# ✗ 配置错误：{problem}" if problem else "# ✓ 配置检查通过（未连接消息代理）"
    return f"# {site.config_path(service)}\n{text}{verdict}\n"


def web_port(config: Mapping[str, Any]) -> int:
    address = str(config.get("WEB_SERVER_ADDRESS") or "0.0.0.0:8000")
    return int(address.rsplit(":", 1)[1])


# --- processes ------------------------------------------------------------------------------


def _is_service_process(pid: int, config: Path) -> bool:
    """True when ``pid`` is alive and is ``nameko run`` with this config (not a reused pid)."""
    if not alive(pid):
        return False
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return bool({str(config).encode(), str(config.resolve()).encode()} & set(cmdline))


# Processes this interpreter started, kept so that their exit status is collected through
# their Popen (a dropped Popen of a live child warns, and a child reaped behind its back
# confuses it).
_CHILDREN: dict[int, subprocess.Popen[bytes]] = {}


def _spawn(site: SiteDir, service: str, config: Path, port: int) -> proc.ServiceProcess:
    """Like ``processes.spawn`` (same command, log and session), keeping the Popen."""
    log = site.log_path(service)
    log.parent.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "PYTHONWARNINGS": "ignore::Warning:nameko.cli.commands"}
    with log.open("ab") as out:
        child = subprocess.Popen(
            proc.nameko_command(config, service),
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    _CHILDREN[child.pid] = child
    return proc.ServiceProcess(site.code, service, child.pid, port, str(log))


def alive(pid: int) -> bool:
    """Whether ``pid`` runs (a child of ours is asked through its Popen)."""
    child = _CHILDREN.get(pid)
    if child is None:
        return proc.alive(pid) and not _zombie(pid)
    if child.poll() is None:
        return True
    del _CHILDREN[pid]
    return False


def _zombie(pid: int) -> bool:
    """An exited process its parent (e.g. another hallctl) has not collected yet."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[-1].split()[0] == "Z"


def running_pid(site: SiteDir, service: str) -> int | None:
    config = site.config_path(service)
    candidates: list[int] = []
    pid_file = site.pid_path(service)
    with contextlib.suppress(OSError, ValueError):
        candidates.append(int(pid_file.read_text().strip()))
    state = site.data_dir / STATE_FILE
    with contextlib.suppress(OSError, ValueError, TypeError):
        for p in proc.load_state(state):
            if p.site == site.code and p.service == service:
                candidates.append(p.pid)
    return next((pid for pid in candidates if _is_service_process(pid, config)), None)


def start(site: SiteDir, service: str, wait: float = 60.0) -> proc.ServiceProcess:
    """Start one service with its config; wait until its /health is ok (0: do not wait)."""
    config_path = site.require(service)
    pid = running_pid(site, service)
    if pid is not None:
        raise OpsError(f"{site.code} {service} 已在运行（pid {pid}）")
    config = load_config(config_path)
    problem = config_problem(config, service)
    if problem:
        raise OpsError(f"{site.code} {service} 配置错误：{problem}")
    process = _spawn(site, service, config_path.resolve(), web_port(config))
    site.pid_path(service).parent.mkdir(parents=True, exist_ok=True)
    site.pid_path(service).write_text(f"{process.pid}\n")
    if wait > 0 and wait_healthy([process], timeout=wait):
        raise OpsError(
            f"{site.code} {service} 在 {wait:.0f} 秒内未就绪，日志 {process.log}：\n"
            f"{proc.tail(process.log)}"
        )
    return process


def stop(site: SiteDir, service: str, grace: float = STOP_GRACE_S) -> int | None:
    """SIGTERM (Nameko lets in-flight workers finish), SIGKILL after ``grace`` seconds.

    Returns the pid stopped, or None when the service was not running."""
    site.require(service)
    pid = running_pid(site, service)
    if pid is not None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + grace
        while alive(pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        if alive(pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            while alive(pid):
                time.sleep(0.05)
    site.pid_path(service).unlink(missing_ok=True)
    return pid


def wait_healthy(processes: list[proc.ServiceProcess], timeout: float) -> list[proc.ServiceProcess]:
    """Wait until every process reports ok; return those that did not (or died) in time."""
    deadline = time.monotonic() + timeout
    pending = list(processes)
    while pending and time.monotonic() < deadline:
        pending = [p for p in pending if (proc.health(p) or {}).get("status") != "ok"]
        if any(not alive(p.pid) for p in pending):
            break
        if pending:
            time.sleep(0.3)
    return pending


def restart(site: SiteDir, service: str, wait: float = 60.0) -> proc.ServiceProcess:
    stop(site, service)
    return start(site, service, wait)


# --- end-to-end check -----------------------------------------------------------------------


@dataclass(frozen=True)
class Check:
    service: str
    what: str
    ok: bool
    detail: str

    def line(self) -> str:
        return f"{'✓' if self.ok else '✗'} {self.service:<8} {self.what:<16} {self.detail}"


def _health_check(service: str, config: Mapping[str, Any], timeout: float) -> Check:
    url = f"http://127.0.0.1:{web_port(config)}/health"
    try:
        answer = requests.get(url, timeout=timeout)
        body = answer.json()
    except (requests.RequestException, ValueError) as exc:
        return Check(service, "/health", False, f"{url} 无应答（{type(exc).__name__}）")
    ok = answer.status_code == 200 and body.get("status") == "ok"
    return Check(service, "/health", ok, f"{answer.status_code} {body.get('checks')}")


def _rpc_checks(
    site: SiteDir, service: str, config: Mapping[str, Any], timeout: float
) -> list[Check]:
    from nameko.standalone.rpc import ClusterRpcProxy

    import services.common.errors  # noqa: F401  (typed remote errors)

    checks: list[Check] = []
    upstream = str((config.get("SITE") or {}).get("upstream") or "")
    try:
        with ClusterRpcProxy({"AMQP_URI": config["AMQP_URI"]}, timeout=timeout) as cluster:
            checks.append(_guarded(service, "rpc site_info", _site_info, site, service, cluster))
            if service == "sync" and upstream:
                checks.append(_guarded(service, "rpc ping_upstream", _ping_upstream, cluster))
                key = _guarded(service, "rpc check_key", _key_check, site, upstream, cluster)
                checks.append(key)
    except Exception as exc:  # e.g. AccessRefused from the broker: report, keep checking
        checks.append(Check(service, "rpc", False, f"{type(exc).__name__}: {exc}"[:200]))
    return checks


def _guarded(service: str, what: str, check: Any, *args: Any) -> Check:
    """One RPC check; a failure (remote error, timeout) is reported as a failed check."""
    try:
        result: Check = check(*args)
    except Exception as exc:
        return Check(service, what, False, f"{type(exc).__name__}: {exc}"[:300])
    return result


def _site_info(site: SiteDir, service: str, cluster: Any) -> Check:
    info = getattr(cluster, service).site_info()
    same = info.get("site_code") == site.code and info.get("service") == service
    detail = f"{info.get('site_code')} {info.get('name')} store={info.get('store')}"
    return Check(service, "rpc site_info", same, detail)


def _ping_upstream(cluster: Any) -> Check:
    answer = cluster.sync.ping_upstream()
    up = answer["upstream"]
    detail = f"→ {up['site_code']} {up['name']}（{answer['round_trip_ms']} ms）"
    return Check("sync", "rpc ping_upstream", True, detail)


# What to do after a failed key check, by the reason ``sync.check_key`` reports.
KEY_REMEDY = {
    "forbidden": "处理：在上级站点核对 SYNC.children.{code} 与本站点 SYNC.key"
    "（{code}.sync-key）是否一致，上级改动后重启其 sync（见 docs/operations.md 第 3、7 节）",
    "conflict": "处理：在本站点 sync.yaml 中设置 SYNC.key，或改正 UPSTREAM_AMQP_URI",
    "unreachable": "处理：检查网络、上级 RabbitMQ、UPSTREAM_AMQP_URI，以及上级是否已导入"
    " child-{code}.json",
    "timeout": "处理：上级站点应答过慢，检查链路与上级负载",
    "unknown_service": "处理：上级站点的 sync 服务未运行",
}


def _key_check(site: SiteDir, upstream: str, cluster: Any) -> Check:
    """``sync.check_key()``: does the parent accept this site's ``SYNC.key``?"""
    answer = cluster.sync.check_key()
    what = "rpc check_key"
    if answer.get("ok") and answer.get("verified") is False:
        return Check("sync", what, True, f"未核验：{answer.get('note')}")
    if answer.get("ok"):
        previous = answer.get("key") == "previous"
        rotating = "（上级正在轮换密钥，本站点仍在用旧密钥）" if previous else ""
        detail = f"上级站点 {upstream} 接受站点 {site.code} 的同步密钥{rotating}"
        return Check("sync", what, True, detail)
    reason = str(answer.get("reason") or "error")
    remedy = KEY_REMEDY.get(reason, "").format(code=site.code)
    detail = (
        f"站点 {site.code} 的同步密钥未通过上级站点 {upstream} 的核验（{reason}）："
        f"{answer.get('error')}" + (f"。{remedy}" if remedy else "")
    )
    return Check("sync", what, False, detail)


def check_site(site: SiteDir, timeout: float = 10.0) -> list[Check]:
    """/health of every service, then ``site_info`` over the site's broker (and the upstream
    link through ``sync.ping_upstream`` when the site has one)."""
    services = site.services()
    if not services:
        raise OpsError(f"{site.root} 下没有任何服务配置")
    checks: list[Check] = []
    for service in services:
        config = load_config(site.config_path(service))
        health = _health_check(service, config, timeout=min(timeout, 5.0))
        # Under systemd, Docker or Kubernetes there is no pid file: /health speaks for it.
        pid = running_pid(site, service)
        where = f"pid {pid}" if pid else "无 pid 文件"
        checks.append(Check(service, health.what, health.ok, f"{where}  {health.detail}"))
        checks.extend(_rpc_checks(site, service, config, timeout))
    return checks


# --- command line ---------------------------------------------------------------------------


def _site_args(cmd: argparse.ArgumentParser) -> None:
    cmd.add_argument("--site", required=True, help="站点代码")
    cmd.add_argument(
        "--data-dir",
        type=Path,
        default=None,
        help="站点目录的上级（默认 $HALL_DATA_DIR，或 $HALL_DEMO_DIR，或 demo-data）",
    )


def _site(args: argparse.Namespace) -> SiteDir:
    data_dir = args.data_dir if args.data_dir is not None else default_data_dir()
    return SiteDir(data_dir.resolve(), args.site)


def add_parsers(commands: Any) -> None:
    for action, help_text in (
        ("start", "启动站点的一个（或全部）服务"),
        ("stop", "停止站点的一个（或全部）服务（SIGTERM，等待在办请求完成）"),
        ("restart", "重启站点的一个（或全部）服务，其他服务不受影响"),
    ):
        cmd = commands.add_parser(action, help=help_text)
        _site_args(cmd)
        cmd.add_argument("services", nargs="*", metavar="SERVICE", help="不给时为全部服务")
        if action != "stop":  # stop waits for in-flight workers (30 s), then SIGKILL
            cmd.add_argument("--wait", type=float, default=60.0, help="等待 /health 正常的秒数")
        cmd.set_defaults(handler=partial(_run_process_action, action))
    show = commands.add_parser("config", help="显示服务将使用的配置（密码等已遮盖）")
    _site_args(show)
    show.add_argument("service", choices=SERVICES)
    show.set_defaults(handler=_run_show)
    check = commands.add_parser("check", help="端到端检查站点：/health、经消息代理的 RPC")
    _site_args(check)
    check.add_argument("--timeout", type=float, default=10.0)
    check.set_defaults(handler=_run_check)


def _run_process_action(action: str, args: argparse.Namespace) -> int:
    site = _site(args)
    services: Sequence[str] = args.services or site.services()
    try:
        for service in services:
            if action == "stop":
                pid = stop(site, service)
                print(f"{site.code} {service} " + (f"已停止（pid {pid}）" if pid else "未在运行"))
                continue
            process = (
                restart(site, service, args.wait)
                if action == "restart"
                else start(site, service, args.wait)
            )
            print(f"{site.code} {service} 已启动（pid {process.pid}，端口 {process.port}）")
    except OpsError as exc:
        print(f"错误：{exc}")
        return 1
    return 0


def _run_show(args: argparse.Namespace) -> int:
    try:
        print(show_config(_site(args), args.service), end="")
    except OpsError as exc:
        print(f"错误：{exc}")
        return 1
    return 0


def _run_check(args: argparse.Namespace) -> int:
    try:
        checks = check_site(_site(args), args.timeout)
    except OpsError as exc:
        print(f"错误：{exc}")
        return 1
    for check in checks:
        print(check.line())
    failed = [c for c in checks if not c.ok]
    print(f"{len(checks) - len(failed)}/{len(checks)} 项正常")
    return 0 if not failed else 1
