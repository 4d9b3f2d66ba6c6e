"""Helpers the benchmarks and the tests share: a free local port or block of ports,
``rabbitmqctl``, stopping a child process, waiting for a site's ``/health``, percentiles.

Standard library only at import time: service tests import this (through tests/conftest.py)
before eventlet has patched the process.
"""

from __future__ import annotations

import random
import shutil
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


def access_key(directory: Path) -> Path:
    """A new site access key in ``directory`` (the services verify with it)."""
    from services.common.identity import ensure_key

    path = directory / "access.key"
    ensure_key(path)
    return path


def operator(key: Path) -> Any:
    """Context data signing every call as the site's operator (``hallctl``) with ``key``."""
    from services.common.callers import operator as signed
    from services.common.identity import read_keys

    return signed(read_keys(key))


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


# Blocks start on a hundred, below Linux's ephemeral range (32768 and up by default), where an
# outgoing connection's local port (e.g. one to the broker) could take a port of the block.
BLOCKS = range(10000, 32700, 100)


def free_block(size: int = 30) -> int:
    """The first of ``size`` consecutive ports on 127.0.0.1 that are all free right now, for
    sites that number their services' ports from a base (``--base-port``)."""
    starts = list(BLOCKS)
    random.shuffle(starts)
    for start in starts:
        if all(_free(port) for port in range(start, start + size)):
            return start
    raise RuntimeError(f"no {size} consecutive free ports below 32700")


def _free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def rabbitmqctl(*args: str) -> None:
    """Run ``rabbitmqctl -q ARGS`` (the local broker's; scripts/bootstrap.sh installs it)."""
    ctl = shutil.which("rabbitmqctl")
    if not ctl:
        raise RuntimeError("rabbitmqctl is required: run scripts/bootstrap.sh")
    subprocess.run([ctl, "-q", *args], check=True, capture_output=True, timeout=60)


MANAGEMENT = ("127.0.0.1", 15672)  # the broker's HTTP API, when its plugin is on


def management(method: str, path: str, body: dict[str, Any] | None = None) -> bool:
    """One call to the local broker's management API (``/api<path>``) as guest; False when
    the API is not there (plugin off) or refuses, so the caller falls back to
    ``rabbitmqctl``."""
    import base64
    import http.client
    import json

    headers = {
        "Authorization": "Basic " + base64.b64encode(b"guest:guest").decode(),
        "Content-Type": "application/json",
    }
    connection = http.client.HTTPConnection(*MANAGEMENT, timeout=10)
    try:
        payload = json.dumps(body) if body is not None else None
        connection.request(method, f"/api{path}", body=payload, headers=headers)
        return connection.getresponse().status < 300
    except OSError:
        return False
    finally:
        connection.close()


@contextmanager
def vhosts(prefix: str) -> Iterator[Callable[[str], str]]:
    """``make(label)``: a new vhost ``<prefix>-<label>-<random>`` that guest has full
    rights on; every one made is deleted at the end. Through the management API when the
    broker has it (milliseconds; ``scripts/bootstrap.sh --test`` turns it on, on loopback
    only), else ``rabbitmqctl`` (an Erlang VM start, about 0.8 s, per call)."""
    created: list[str] = []

    def make(label: str) -> str:
        name = f"{prefix}-{label}-{uuid.uuid4().hex[:8]}"
        everything = {"configure": ".*", "write": ".*", "read": ".*"}
        if not (
            management("PUT", f"/vhosts/{name}", {})
            and management("PUT", f"/permissions/{name}/guest", everything)
        ):
            rabbitmqctl("add_vhost", name)
            rabbitmqctl("set_permissions", "-p", name, "guest", ".*", ".*", ".*")
        created.append(name)
        return name

    try:
        yield make
    finally:
        for name in created:
            if not management("DELETE", f"/vhosts/{name}"):
                rabbitmqctl("delete_vhost", name)


def stop_process(process: subprocess.Popen[bytes], timeout: float = 30) -> None:
    """SIGTERM, then SIGKILL when it has not exited within ``timeout`` seconds."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def wait_healthy(
    ports: Iterable[int], processes: Iterable[subprocess.Popen[bytes]], logs: Path, timeout: float
) -> None:
    """Poll ``http://127.0.0.1:PORT/health`` of each port until it answers 2xx. Exit the
    benchmark, pointing at ``logs`` (the log file's tail when it is one file), when one of
    ``processes`` has exited or the sites have not all answered within ``timeout`` seconds."""
    import requests  # not at import time: see the module's docstring

    processes = list(processes)
    deadline = time.monotonic() + timeout
    for port in ports:
        while True:
            try:
                if requests.get(f"http://127.0.0.1:{port}/health", timeout=2).ok:
                    break
            except requests.RequestException:
                pass
            if time.monotonic() > deadline or any(p.poll() is not None for p in processes):
                tail = logs.read_text(errors="replace")[-2000:] if logs.is_file() else ""
                raise SystemExit(f"{tail}\nservices did not start; see {logs}")
            time.sleep(0.2)


def percentile(values: list[float], p: float) -> float:
    """The ``p``-th percentile (0-100) by nearest rank; NaN when there are no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]
