"""Starting, watching and stopping ``nameko run`` processes, for ``hallctl demo`` (its whole
network) and ``hallctl start`` (one service of a site)."""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import requests

_PR_SET_PDEATHSIG = 1


@dataclass(frozen=True)
class ServiceProcess:
    site: str
    service: str
    pid: int
    port: int
    log: str

    @property
    def health_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/health"


def nameko_command(config: Path, service: str) -> list[str]:
    # The nameko script installed beside this interpreter, so a venv needs no activation.
    script = Path(sys.executable).with_name("nameko")
    return [str(script), "run", "--config", str(config), f"services.{service}.service"]


def _stop_with_parent() -> None:
    """In the child before exec: get SIGTERM when hallctl dies, even by SIGKILL, so a killed
    demo never leaves orphaned services holding ports and broker connections (Linux)."""
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


# Processes this interpreter started, kept so that their exit status is collected through
# their Popen (a dropped Popen of a live child warns, and a child reaped behind its back
# confuses it).
_CHILDREN: dict[int, subprocess.Popen[bytes]] = {}


def spawn(
    site: str, service: str, config: Path, log: Path, port: int, stop_with_parent: bool = False
) -> ServiceProcess:
    """Start ``nameko run`` for one service, its output appended to ``log``; with
    ``stop_with_parent`` it gets SIGTERM when this process dies (the demo)."""
    log.parent.mkdir(parents=True, exist_ok=True)
    # nameko's CLI imports eventlet, whose deprecation notice would bury real log lines.
    env = {**os.environ, "PYTHONWARNINGS": "ignore::Warning:nameko.cli.commands"}
    with log.open("ab") as out:
        child = subprocess.Popen(
            nameko_command(config, service),
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # Ctrl-C reaches hallctl only; it stops children in order
            preexec_fn=_stop_with_parent if stop_with_parent and sys.platform == "linux" else None,
        )
    _CHILDREN[child.pid] = child
    return ServiceProcess(site, service, child.pid, port, str(log))


def health(process: ServiceProcess, timeout: float = 3.0) -> dict[str, object] | None:
    """The /health body, or None when the service does not answer."""
    try:
        answer = requests.get(process.health_url, timeout=timeout)
        body: dict[str, object] = answer.json()
    except (requests.RequestException, ValueError):
        return None
    return body


def alive(pid: int) -> bool:
    """Whether ``pid`` runs (a child of ours is asked through its Popen)."""
    child = _CHILDREN.get(pid)
    if child is None:  # started by another hallctl: probe it
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return not _zombie(pid)
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


def wait_healthy(processes: list[ServiceProcess], timeout: float) -> list[ServiceProcess]:
    """Wait until every process reports ok; return those that did not (or died) in time."""
    deadline = time.monotonic() + timeout
    pending = list(processes)
    while pending and time.monotonic() < deadline:
        pending = [p for p in pending if (health(p) or {}).get("status") != "ok"]
        if any(not alive(p.pid) for p in pending):
            break
        if pending:
            time.sleep(0.3)
    return pending


def terminate(pids: list[int], grace: float) -> None:
    """SIGTERM (Nameko finishes in-flight workers), then SIGKILL what is left after
    ``grace`` seconds; returns when every process is gone."""
    for pid in pids:
        _signal(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and any(alive(pid) for pid in pids):
        time.sleep(0.1)
    for pid in pids:
        if alive(pid):
            _signal(pid, signal.SIGKILL)
    while any(alive(pid) for pid in pids):
        time.sleep(0.05)


def stop_all(processes: list[ServiceProcess], grace: float = 20.0) -> None:
    terminate([p.pid for p in processes], grace)


def _signal(pid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signum)


def tail(path: str, lines: int = 5) -> str:
    try:
        return "\n".join(Path(path).read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def save_state(path: Path, processes: list[ServiceProcess]) -> None:
    path.write_text(json.dumps([asdict(p) for p in processes], indent=1))


def load_state(path: Path) -> list[ServiceProcess]:
    return [ServiceProcess(**item) for item in json.loads(path.read_text())]
