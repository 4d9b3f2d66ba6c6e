"""One service of a site as a process, however it was started: ``hallctl start`` records
its pid in ``<site>/run/<service>.pid``, a running ``hallctl demo`` in its
``demo-state.json``; a pid counts only while it is ``nameko run`` with the service's config
(a pid file outlives its process, and the pid may be reused)."""

from __future__ import annotations

import contextlib
from pathlib import Path

from services.hallctl import processes as proc
from services.hallctl.configfile import config_problem, load_config, web_port
from services.hallctl.sitedir import OpsError, SiteDir

STATE_FILE = "demo-state.json"  # written by ``hallctl demo``
STOP_GRACE_S = 30.0  # Nameko finishes in-flight workers on SIGTERM; then SIGKILL


def is_service_process(pid: int, config: Path) -> bool:
    """True when ``pid`` is alive and is ``nameko run`` with this config (not a reused pid)."""
    if not proc.alive(pid):
        return False
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return bool({str(config).encode(), str(config.resolve()).encode()} & set(cmdline))


def running_pid(site: SiteDir, service: str) -> int | None:
    """The pid of the service's running process, started by ``hallctl start`` or ``demo``."""
    config = site.config_path(service)
    candidates: list[int] = []
    with contextlib.suppress(OSError, ValueError):
        candidates.append(int(site.pid_path(service).read_text().strip()))
    with contextlib.suppress(OSError, ValueError, TypeError):
        candidates += [
            p.pid
            for p in proc.load_state(site.data_dir / STATE_FILE)
            if p.site == site.code and p.service == service
        ]
    return next((pid for pid in candidates if is_service_process(pid, config)), None)


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
    process = proc.spawn(
        site.code, service, config_path.resolve(), site.log_path(service), web_port(config)
    )
    site.pid_path(service).parent.mkdir(parents=True, exist_ok=True)
    site.pid_path(service).write_text(f"{process.pid}\n")
    if wait > 0 and proc.wait_healthy([process], timeout=wait):
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
        proc.terminate([pid], grace)
    site.pid_path(service).unlink(missing_ok=True)
    return pid


def restart(site: SiteDir, service: str, wait: float = 60.0) -> proc.ServiceProcess:
    stop(site, service)
    return start(site, service, wait)
