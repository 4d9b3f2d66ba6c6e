"""Queue benchmark: many kiosks taking tickets while windows call and complete, over RPC.

Starts the real `queue` service (`nameko run`, SQLite store, the local RabbitMQ on a fresh
vhost; ``--processes`` > 1 runs several service processes on the same database file), then
for ``--duration`` seconds runs ``--kiosks`` clients taking tickets and ``--windows``
clients calling the next ticket and completing it, each client with its own RPC proxy.
Kiosks together offer ``--rate`` tickets/s (0: each as fast as it can); a window serves
each citizen for ``--service-ms`` between call and complete, then calls again (0.5 s later
when it found nobody). The defaults make the issue's load: kiosks offer 330 tickets/s and
twenty windows serving 45 ms each can take about as many, so the figure is the latency at
that throughput. ``--service-ms 0`` instead makes every window a closed loop calling as fast
as the service answers: that measures the saturation throughput, and its latency is then
only Little's law (20 windows always waiting on the one service process).
Prints tickets/s and p50/p99 latency of take and call beside a no-op RPC round trip
(``queue.site_info``) measured idle and under the same load, then checks — from the clients'
answers and from the store itself — that no number was issued twice and no ticket was
called twice. Targets (issue 4): >= 300 tickets/s, call p99 < 50 ms, zero duplicates.

    python -m bench.queue                       # the issue's figure: 60 s, 330 tickets/s
    python -m bench.queue --service-ms 0        # windows as fast as the service answers
    python -m bench.queue --rate 0 --service-ms 0   # everyone as fast as possible
"""

from __future__ import annotations

import eventlet

eventlet.monkey_patch()

import argparse  # noqa: E402
import os  # noqa: E402
import shutil  # noqa: E402
import signal  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import uuid  # noqa: E402
from collections import Counter  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import yaml  # noqa: E402
from nameko.standalone.rpc import ServiceRpcProxy  # noqa: E402

import services.common.remote  # noqa: E402, F401  (typed remote errors)
from bench.support import (  # noqa: E402
    access_key,
    free_port,
    operator,
    percentile,
    rabbitmqctl,
    stop_process,
)
from services.common.errors import Conflict  # noqa: E402

BROKER = os.environ.get("BENCH_BROKER", "127.0.0.1:5672")
CATEGORIES = "ABCDE"
TARGET_TICKETS_S = 300
TARGET_CALL_P99_MS = 50


def section(windows: int) -> dict[str, Any]:
    """Five categories open all day every day; ``windows`` comprehensive windows."""
    categories = [
        {
            "prefix": p,
            "name": f"业务{p}",
            "hours": ["00:00-23:59"],
            "working_days_only": False,
            "service_minutes": 5,
        }
        for p in CATEGORIES
    ]
    return {
        "privacy_salt": "bench",
        "sweep_seconds": 5,
        "figures_seconds": 10,
        "day_close_time": "23:59",
        "categories": categories,
        "windows": [
            {"number": str(n), "categories": {p: 1 + (n + i) % 3 for i, p in enumerate(CATEGORIES)}}
            for n in range(1, windows + 1)
        ],
        "staff": [
            {"id": f"S{n}", "name": f"员工{n}", "windows": [str(n)]} for n in range(1, windows + 1)
        ],
    }


def ms(samples: list[float], q: float) -> str:
    return f"{percentile(samples, q * 100) * 1000:7.2f}"


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.vhost = f"bench-queue-{uuid.uuid4().hex[:8]}"
        self.uri = f"pyamqp://guest:guest@{BROKER}/{self.vhost}"
        self.dir = Path(tempfile.mkdtemp(prefix="bench-queue-"))
        self.procs: list[subprocess.Popen[bytes]] = []
        self.take_lat: list[float] = []
        self.call_lat: list[float] = []
        self.complete_lat: list[float] = []
        self.noop_idle: list[float] = []
        self.noop_load: list[float] = []
        self.numbers: list[str] = []
        self.called: list[str] = []
        self.errors: Counter[str] = Counter()
        self.stop_at = 0.0
        self.http = f"127.0.0.1:{free_port()}"
        self.inside: dict[str, float] = {}
        self.cpu_s = 0.0
        self.load = (0.0, 0.0)

    # --- the service ----------------------------------------------------------------------

    def start_service(self) -> None:
        rabbitmqctl("add_vhost", self.vhost)
        rabbitmqctl("set_permissions", "-p", self.vhost, "guest", ".*", ".*", ".*")
        config = {
            "AMQP_URI": self.uri,
            "WEB_SERVER_ADDRESS": self.http,
            "SITE": {"code": "421302", "tier": "county", "name": "基准测试中心", "upstream": ""},
            "UPSTREAM_AMQP_URI": "",
            "STORE_URI": f"sqlite:///{self.dir / 'data'}?synchronous={self.args.synchronous}",
            "ACCESS_KEY_FILE": str(access_key(self.dir)),
            "max_workers": self.args.max_workers,
            "QUEUE": section(self.args.windows),
            "LOGGING": {"version": 1, "root": {"level": "WARNING"}},
        }
        path = self.dir / "queue.yaml"
        path.write_text(yaml.safe_dump(config, allow_unicode=True))
        nameko = Path(sys.executable).with_name("nameko")
        for n in range(self.args.processes):
            if n:  # each process needs its own HTTP port
                config["WEB_SERVER_ADDRESS"] = f"127.0.0.1:{free_port()}"
                path = self.dir / f"queue-{n}.yaml"
                path.write_text(yaml.safe_dump(config, allow_unicode=True))
            profile = os.environ.get("BENCH_PROFILE")  # a file: profile the service process
            prefix = [sys.executable, "-m", "cProfile", "-o", profile] if profile and not n else []
            self.procs.append(
                subprocess.Popen(
                    [*prefix, str(nameko), "run", "--config", str(path), "services.queue.service"],
                    stdout=open(self.dir / f"service-{n}.log", "wb"),  # noqa: SIM115
                    stderr=subprocess.STDOUT,
                )
            )
            self.wait_ready()

    def wait_ready(self) -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                with ServiceRpcProxy(
                    "queue", {"AMQP_URI": self.uri}, timeout=2, context_data=self.identity()
                ) as queue:
                    queue.site_info()
                    return
            except Exception:  # noqa: BLE001  any failure here means "not up yet"
                if any(proc.poll() is not None for proc in self.procs):
                    sys.exit(f"queue service exited; see the logs in {self.dir}")
                eventlet.sleep(0.5)
        sys.exit("queue service did not answer within 60 s")

    def stop_service(self) -> None:
        for proc in self.procs:  # all at once, then wait for each
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs:
            stop_process(proc, timeout=30)

    def cleanup(self) -> None:
        self.stop_service()
        try:
            rabbitmqctl("delete_vhost", self.vhost)
        finally:
            if not self.args.keep:
                shutil.rmtree(self.dir, ignore_errors=True)

    # --- the clients --------------------------------------------------------------------------

    def identity(self) -> Any:
        return operator(self.dir / "access.key")

    def proxy(self) -> ServiceRpcProxy:
        return ServiceRpcProxy(
            "queue", {"AMQP_URI": self.uri}, timeout=30, context_data=self.identity()
        )

    def kiosk(self, n: int) -> None:
        interval = self.args.kiosks / self.args.rate if self.args.rate else 0.0
        with self.proxy() as queue:
            i = n
            due = time.monotonic() + interval * n / self.args.kiosks  # spread the starts
            while time.monotonic() < self.stop_at:
                if interval:
                    eventlet.sleep(max(0.0, due - time.monotonic()))
                    due += interval
                category = CATEGORIES[i % len(CATEGORIES)]
                i += 1
                started = time.perf_counter()
                try:
                    ticket = queue.take_ticket(category, "kiosk")
                except Exception as exc:  # noqa: BLE001  every refusal is counted and reported
                    self.errors[f"take: {type(exc).__name__}"] += 1
                    continue
                self.take_lat.append(time.perf_counter() - started)
                self.numbers.append(ticket["id"])

    def window(self, number: str) -> None:
        with self.proxy() as queue:
            while time.monotonic() < self.stop_at:
                started = time.perf_counter()
                try:
                    ticket = queue.call_next(number)
                except Conflict as exc:
                    self.errors[f"call: {exc.message[:30]}"] += 1
                    continue
                self.call_lat.append(time.perf_counter() - started)
                if ticket is None:
                    eventlet.sleep(0.5)  # nobody waiting: the clerk looks again shortly
                    continue
                self.called.append(ticket["id"])
                if self.args.service_ms:
                    eventlet.sleep(self.args.service_ms / 1000)
                started = time.perf_counter()
                queue.complete(ticket["id"], window=number)
                self.complete_lat.append(time.perf_counter() - started)

    def noop(self, samples: list[float], until: float, pause: float) -> None:
        with self.proxy() as queue:
            while time.monotonic() < until:
                started = time.perf_counter()
                queue.site_info()
                samples.append(time.perf_counter() - started)
                eventlet.sleep(pause)

    def run(self) -> int:
        args = self.args
        print(f"starting the queue service (SQLite in {self.dir}, vhost {self.vhost}) …")
        self.start_service()
        with self.proxy() as queue:
            for n in range(1, args.windows + 1):
                queue.open_window(str(n), f"S{n}")
        self.noop(self.noop_idle, time.monotonic() + 3, 0.0)  # idle baseline, 3 s
        offered = f"{args.rate:.0f} tickets/s offered" if args.rate else "as fast as possible"
        print(
            f"load: {args.kiosks} kiosks taking ({offered}), {args.windows} windows calling and "
            f"completing, {args.duration:.0f} s; {args.processes} service process(es), "
            f"max_workers={args.max_workers}, SQLite synchronous={args.synchronous}"
        )
        load_before = os.getloadavg()[0]
        cpu_before = self.service_cpu()
        began = time.monotonic()
        self.stop_at = began + args.duration
        threads = [eventlet.spawn(self.kiosk, n) for n in range(args.kiosks)]
        threads += [eventlet.spawn(self.window, str(n)) for n in range(1, args.windows + 1)]
        threads.append(eventlet.spawn(self.noop, self.noop_load, self.stop_at, 0.05))
        for thread in threads:
            thread.wait()
        elapsed = time.monotonic() - began
        self.cpu_s = self.service_cpu() - cpu_before
        self.inside = self.worker_times()
        self.load = (load_before, os.getloadavg()[0])
        self.stop_service()  # then read the store itself, at rest
        return self.report(elapsed)

    def worker_times(self) -> dict[str, float]:
        """Mean time inside the service's workers per RPC method (ms), from its /metrics."""
        import requests

        text = requests.get(f"http://{self.http}/metrics", timeout=10).text
        sums: dict[str, float] = {}
        counts: dict[str, float] = {}
        for line in text.splitlines():
            if not line.startswith("hall_entrypoint_duration_seconds_"):
                continue
            name, value = line.rsplit(" ", 1)
            method = name.split('method="', 1)[1].split('"', 1)[0]
            if name.startswith("hall_entrypoint_duration_seconds_sum"):
                sums[method] = float(value)
            elif name.startswith("hall_entrypoint_duration_seconds_count"):
                counts[method] = float(value)
        return {m: sums[m] / counts[m] * 1000 for m in sums if counts.get(m)}

    def service_cpu(self) -> float:
        """CPU seconds (user + system) used so far by the service processes."""
        total = 0.0
        for proc in self.procs:
            fields = Path(f"/proc/{proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        return total

    # --- the figures ----------------------------------------------------------------------------

    def store_check(self) -> tuple[int, int, int]:
        """(tickets, duplicate numbers, tickets called more than once) read from the store."""
        from services.common.store import open_store

        store = open_store(f"sqlite:///{self.dir / 'data'}", "queue")
        try:
            tickets = store.collection("tickets")
            seen: Counter[tuple[str, str]] = Counter()
            double = total = 0
            since = 0
            while batch := tickets.changes_since(since, 5000):
                for doc in batch:
                    total += 1
                    seen[(doc["date"], doc["number"])] += 1
                    calls = [h for h in doc["history"] if h["action"] == "call"]
                    if len(calls) > 1:
                        double += 1
                since = batch[-1]["_seq"]
            duplicates = sum(n - 1 for n in seen.values() if n > 1)
        finally:
            store.close()
        return total, duplicates, double

    def report(self, elapsed: float) -> int:
        taken, called = len(self.numbers), len(self.called)
        dup_numbers = taken - len(set(self.numbers))
        dup_calls = called - len(set(self.called))
        stored, stored_dups, stored_double = self.store_check()
        rate = taken / elapsed
        call_p99 = percentile(self.call_lat, 99) * 1000
        print()
        print(f"{'':28}{'p50 ms':>8}{'p99 ms':>8}{'count':>9}")
        rows = [
            ("no-op RPC (site_info) idle", self.noop_idle),
            ("no-op RPC under load", self.noop_load),
            ("take_ticket", self.take_lat),
            ("call_next", self.call_lat),
            ("complete", self.complete_lat),
        ]
        for label, samples in rows:
            print(f"{label:28}{ms(samples, 0.5):>8}{ms(samples, 0.99):>8}{len(samples):>9}")
        print()
        target = f"(target >= {TARGET_TICKETS_S})"
        print(f"tickets taken     {taken:>8}  = {rate:7.1f} tickets/s   {target}")
        print(f"tickets called    {called:>8}  = {called / elapsed:7.1f} calls/s")
        print(f"call_next p99     {call_p99:8.2f} ms            (target < {TARGET_CALL_P99_MS} ms)")
        print(
            f"duplicates        numbers {dup_numbers} / double calls {dup_calls} (clients); "
            f"numbers {stored_dups} / double calls {stored_double} in {stored} stored tickets"
        )
        rpcs = taken + len(self.call_lat) + len(self.complete_lat) + len(self.noop_load)
        print(
            f"service CPU       {self.cpu_s:.1f} s for {rpcs} RPCs = "
            f"{self.cpu_s / max(rpcs, 1) * 1000:.2f} ms per RPC; {os.cpu_count()} CPUs, "
            f"load average {self.load[0]:.1f} before / {self.load[1]:.1f} after"
        )
        shown = ("site_info", "take_ticket", "call_next", "complete")
        inside = ", ".join(f"{m} {self.inside[m]:.2f}" for m in shown if m in self.inside)
        print(f"time in workers   {inside} ms (mean, first process; the rest is queueing)")
        if self.errors:
            print(f"refused calls     {dict(self.errors)}")
        if statistics.fmean(self.noop_idle or [0]) == 0:  # pragma: no cover
            print("no baseline samples")
        ok = (
            dup_numbers == dup_calls == stored_dups == stored_double == 0
            and stored >= taken
            and rate >= TARGET_TICKETS_S
            and call_p99 < TARGET_CALL_P99_MS
        )
        print("RESULT:", "targets met" if ok else "targets NOT met")
        return 0 if dup_numbers == dup_calls == stored_dups == stored_double == 0 else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of load (60)")
    parser.add_argument("--kiosks", type=int, default=50, help="concurrent ticket takers (50)")
    parser.add_argument("--windows", type=int, default=20, help="windows calling (20)")
    parser.add_argument(
        "--rate", type=float, default=330.0, help="tickets/s all kiosks offer; 0: flat out (330)"
    )
    parser.add_argument(
        "--service-ms",
        type=float,
        default=45.0,
        help="a window's service time between call and complete (45); 0: closed loop",
    )
    parser.add_argument("--max-workers", type=int, default=10, help="Nameko worker pool (10)")
    parser.add_argument(
        "--synchronous",
        default="FULL",
        choices=("FULL", "NORMAL"),
        help="SQLite durability: FULL (default, fsync per commit) or NORMAL (WAL, no fsync "
        "per commit: survives a process crash, may lose the last commits on power loss)",
    )
    parser.add_argument("--processes", type=int, default=1, help="queue service processes (1)")
    parser.add_argument("--keep", action="store_true", help="keep the data directory")
    args = parser.parse_args()
    bench = Bench(args)
    try:
        return bench.run()
    finally:
        bench.cleanup()


if __name__ == "__main__":
    sys.exit(main())
