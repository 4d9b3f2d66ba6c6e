"""What access costs per call: verifying the signed identity and checking the role table
(docs/security.md), beside a no-op RPC round trip measured in the same run.

    python -m bench.access [--calls 2000]

What runs: the admission step exactly as ``services.common.rpc.Rpc.admit`` does it
(``identity.verify`` with the site's key ring, then ``access.authorise`` with the queue's
table, actor and window filled in) for a clerk's ``call_next``, timed in-process; and, as
the baseline, ``queue.site_info`` (public: no identity to verify) called sequentially over
the local RabbitMQ against a real ``nameko run services.queue.service``. A third figure is
a signed round trip (``queue.windows`` as a manager) next to an unsigned one (``site_info``),
which also includes the store read of ``windows``.
Target: admission under 0.2 ms per call, a small share of the no-op round trip.
"""

from __future__ import annotations

import eventlet

eventlet.monkey_patch()

import argparse  # noqa: E402
import os  # noqa: E402
import shutil  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import uuid  # noqa: E402
from pathlib import Path  # noqa: E402

import yaml  # noqa: E402
from nameko.standalone.rpc import ServiceRpcProxy  # noqa: E402

from bench.support import (  # noqa: E402
    access_key,
    free_port,
    percentile,
    rabbitmqctl,
    stop_process,
    wait_healthy,
)
from services.common.access import authorise  # noqa: E402
from services.common.callers import SignedContext  # noqa: E402
from services.common.identity import Kind, Principal, read_keys, sign, verify  # noqa: E402
from services.queue.access import ACCESS  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SITE = "421302"


def admission(key: Path, calls: int) -> list[float]:
    """Seconds per admission of a clerk's ``call_next`` (verify, then authorise)."""
    ring = read_keys(key)
    clerk = Principal(Kind.STAFF, "s-1", SITE, frozenset({"clerk"}), "3")
    samples = []
    for _ in range(calls):
        token = sign(clerk, ring)  # the caller's cost, not timed
        started = time.perf_counter()
        principal = verify(token, ring, SITE)
        authorise(ACCESS, "call_next", principal, {"window": "3", "staff_id": None})
        samples.append(time.perf_counter() - started)
    return samples


def round_trips(proxy: ServiceRpcProxy, method: str, calls: int) -> list[float]:
    samples = []
    for _ in range(calls):
        started = time.perf_counter()
        getattr(proxy, method)()
        samples.append(time.perf_counter() - started)
    return samples


def start_queue(tmp: Path, vhost: str, key: Path) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    config = {
        "AMQP_URI": f"pyamqp://guest:guest@127.0.0.1:5672/{vhost}",
        "WEB_SERVER_ADDRESS": f"127.0.0.1:{port}",
        "SITE": {"code": SITE, "tier": "county", "name": "基准测试中心", "upstream": ""},
        "UPSTREAM_AMQP_URI": "",
        "STORE_URI": f"sqlite:///{tmp / 'data'}",
        "ACCESS_KEY_FILE": str(key),
        "LOGGING": {"version": 1, "root": {"level": "WARNING"}},
    }
    path = tmp / "queue.yaml"
    path.write_text(yaml.safe_dump(config, allow_unicode=True))
    log = (tmp / "queue.log").open("ab")
    nameko = str(Path(sys.executable).with_name("nameko"))
    process = subprocess.Popen(
        [nameko, "run", "--config", str(path), "services.queue.service"],
        cwd=ROOT,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    wait_healthy([port], [process], tmp / "queue.log", timeout=60)
    return process, port


def line(label: str, samples: list[float]) -> str:
    ms = [s * 1000 for s in samples]
    return f"  {label:<38} p50 {percentile(ms, 50):7.3f} ms   p99 {percentile(ms, 99):7.3f} ms"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--calls", type=int, default=2000)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-access-"))
    key = access_key(tmp)
    vhost = f"bench-access-{uuid.uuid4().hex[:8]}"
    rabbitmqctl("add_vhost", vhost)
    rabbitmqctl("set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")
    process = None
    try:
        admitted = admission(key, args.calls)
        process, _ = start_queue(tmp, vhost, key)
        manager = Principal(Kind.STAFF, "s-2", SITE, frozenset({"manager"}))
        uri = {"AMQP_URI": f"pyamqp://guest:guest@127.0.0.1:5672/{vhost}"}
        with ServiceRpcProxy(
            "queue", uri, timeout=30, context_data=SignedContext(manager, read_keys(key))
        ) as queue:
            round_trips(queue, "site_info", 200)  # warm
            noop = round_trips(queue, "site_info", args.calls)
            signed = round_trips(queue, "windows", args.calls)
    finally:
        if process is not None:
            stop_process(process)
        rabbitmqctl("delete_vhost", vhost)
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"access admission vs RPC round trip, {args.calls} calls each, 2 CPUs")
    print(line("admission (verify + authorise)", admitted))
    print(line("no-op RPC (site_info, unsigned)", noop))
    print(line("signed RPC (windows, a manager)", signed))
    share = percentile(admitted, 50) / percentile(noop, 50)
    target = percentile(admitted, 99) < 0.0002
    print(f"admission / no-op round trip (p50) = {share:.1%}")
    print(f"target: admission p99 < 0.2 ms → {'met' if target else 'NOT met'}")


if __name__ == "__main__":
    main()
