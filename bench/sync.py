"""A backlog of evaluations at a village drained to the county through the town, by the
``sync`` service in real ``nameko run`` processes, beside raw kombu publish + consume of the
same number of messages on the same broker, in the same run.

    python -m bench.sync [--n 100000] [--batch 1000]      # --n 1000000 for the full figure

Three sites (village 421302101201 → town 421302101 → county 421302), each on its own vhost
with its own SQLite store, each running ``sync`` and the real ``rating`` service: the town
and the county apply what arrives through ``rating.apply_replicated`` (ownership checks,
versioned upserts, the rollups folded in). The backlog (evaluations shaped as rating stores
them, ``bench/rating.py``) is written into the village's rating store first; then
``sync.push_now()`` at the village drains it to the town (hop 1) while the town's own timer
pushes on to the county (hop 2), pipelined.

Baseline: kombu publishes the same number of persistent messages (one evaluation each,
same JSON) to a durable queue on the same broker while a second connection consumes them
with acks.
Targets: at least 5,000 records/s per hop; one million drained in under five minutes.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from contextlib import suppress
from datetime import date
from pathlib import Path
from typing import Any

from kombu import Connection, Consumer, Exchange, Producer, Queue
from nameko.standalone.rpc import ClusterRpcProxy

from bench.rating import seeded_doc
from bench.support import access_key, free_port, operator, rabbitmqctl, stop_process, wait_healthy
from services.common import remote  # noqa: F401  (typed errors from RPC)
from services.common.store import open_store

ROOT = Path(__file__).resolve().parents[1]

TARGET_PER_HOP = 5000.0
TARGET_MILLION_S = 300.0
BROKER = "127.0.0.1:5672"
NAMEKO = str(Path(sys.executable).with_name("nameko"))
SITES = (
    ("421302", "county", None),
    ("421302101", "town", "421302"),
    ("421302101201", "village", "421302101"),
)
KEYS = {"421302101": "t" * 32, "421302101201": "v" * 32}
SAMPLE = {
    "id": "421302101201-bench-0",
    "schema": 1,
    "site_code": "421302101201",
    "level": "满意",
    "real_name": True,
    "phone_masked": "138****5678",
    "window": "3",
    "created_at": "2026-11-22T08:00:00.000Z",
    "updated_at": "2026-11-22T08:00:00.000Z",
    "version": 1,
}


def uri(vhost: str) -> str:
    return f"pyamqp://guest:guest@{BROKER}/{vhost}"


def raw_kombu(vhost: str, n: int) -> float:
    """Seconds to publish ``n`` persistent messages and consume them all with acks: one
    connection publishing, another consuming at the same time (as sync's hops overlap)."""
    body = json.dumps(SAMPLE, ensure_ascii=False)
    exchange = Exchange("bench", type="direct", durable=True)
    queue = Queue("bench", exchange, routing_key="bench", durable=True)
    with Connection(uri(vhost)) as conn:
        queue(conn.channel()).declare()
    received = 0
    consumed = threading.Event()

    def consume() -> None:
        nonlocal received
        with Connection(uri(vhost)) as conn:

            def on_message(_body: Any, message: Any) -> None:
                nonlocal received
                message.ack()
                received += 1

            with Consumer(conn.channel(), [queue], callbacks=[on_message], prefetch_count=1000):
                while received < n:
                    with suppress(TimeoutError):
                        conn.drain_events(timeout=1)
        consumed.set()

    started = time.perf_counter()
    consumer = threading.Thread(target=consume, daemon=True)
    consumer.start()
    with Connection(uri(vhost)) as conn:
        producer = Producer(conn.channel(), exchange, routing_key="bench", serializer="json")
        for _ in range(n):
            producer.publish(body, delivery_mode=2)
    if not consumed.wait(600):
        raise SystemExit(f"raw kombu: only {received} of {n} messages consumed in 10 minutes")
    return time.perf_counter() - started


class Bench:
    def __init__(self, n: int, batch: int, data: Path) -> None:
        self.n, self.batch, self.data = n, batch, data
        self.prefix = f"bench-sync-{uuid.uuid4().hex[:6]}-"
        self.processes: list[subprocess.Popen[bytes]] = []
        self.ports: dict[tuple[str, str], int] = {}

    def vhost(self, code: str) -> str:
        return f"{self.prefix}{code}"

    def config(self, code: str, tier: str, upstream: str | None, service: str) -> Path:
        port = self.ports[(code, service)] = free_port()
        parents = {site: up for site, _, up in SITES}
        children = {c: [k] for c, k in KEYS.items() if parents[c] == code}
        sync = {
            "key": KEYS.get(code),
            "children": children,
            "upward": [{"service": "rating", "feed": "evaluations"}],
            "batch_size": self.batch,
            "rpc_timeout": 60,
            "cycle_seconds": 3600,  # the timed push_now drains the whole backlog
            "push_interval": 3600 if tier == "village" else 0.2,
            "pull_catalog": False,
            "pull_outcomes": False,
            "reconcile_interval": 86400,
        }
        lines = [
            f"AMQP_URI: '{uri(self.vhost(code))}'",
            f"WEB_SERVER_ADDRESS: 127.0.0.1:{port}",
            f"SITE: {{code: '{code}', tier: {tier}, name: 基准{code}, "
            f"upstream: '{upstream or ''}'}}",
            f"UPSTREAM_AMQP_URI: '{uri(self.vhost(upstream)) if upstream else ''}'",
            f"STORE_URI: 'sqlite:///{self.data / code}'",
            f"ACCESS_KEY_FILE: '{access_key(self.data)}'",
            f"SYNC: {json.dumps(sync)}",
            "LOGGING: {version: 1, root: {level: WARNING}}",
            "",
        ]
        path = self.data / f"{code}-{service}.yaml"
        path.write_text("\n".join(lines))
        return path

    def start(self) -> None:
        for code, _, _ in SITES:
            rabbitmqctl("add_vhost", self.vhost(code))
            rabbitmqctl("set_permissions", "-p", self.vhost(code), "guest", ".*", ".*", ".*")
        rabbitmqctl("add_vhost", self.vhost("raw"))
        rabbitmqctl("set_permissions", "-p", self.vhost("raw"), "guest", ".*", ".*", ".*")
        env = {**os.environ, "PYTHONWARNINGS": "ignore"}
        for code, tier, upstream in SITES:
            for service, target in (
                ("rating", "services.rating.service"),
                ("sync", "services.sync.service"),
            ):
                config = self.config(code, tier, upstream, service)
                with (self.data / f"{code}-{service}.log").open("ab") as log:
                    self.processes.append(
                        subprocess.Popen(
                            [NAMEKO, "run", "--config", str(config), target],
                            cwd=ROOT,
                            env=env,
                            stdout=log,
                            stderr=subprocess.STDOUT,
                        )
                    )
        try:
            wait_healthy(self.ports.values(), self.processes, self.data, timeout=90)
        except SystemExit:
            for path in sorted(self.data.glob("*.log")):  # the temporary directory goes away
                print(f"--- {path.name}\n{path.read_text(errors='replace')[-1500:]}")
            raise

    def stop(self) -> None:
        for process in self.processes:  # all at once, then wait for each
            process.terminate()
        for process in self.processes:
            stop_process(process, timeout=20)
        for code in (*(s[0] for s in SITES), "raw"):
            rabbitmqctl("delete_vhost", self.vhost(code))

    def count(self, code: str) -> int:
        """Evaluations held in a site's rating store (read beside the running service)."""
        store = open_store(f"sqlite:///{self.data / code}", "rating")
        try:
            return store.collection("evaluations").count()
        finally:
            store.close()

    def seed(self, code: str) -> None:
        """The backlog, written into the village's rating store as rating writes it."""
        store = open_store(f"sqlite:///{self.data / code}", "rating")
        rng, day = random.Random(13), date(2026, 11, 22)
        try:
            evaluations = store.collection("evaluations")
            for start in range(0, self.n, 5000):
                docs = []
                for n in range(start, min(start + 5000, self.n)):
                    doc = seeded_doc(n, day, rng)
                    ref = f"{code}-bench{n}"
                    doc |= {
                        "id": f"ev:ticket:{ref}:1",
                        "site_code": code,
                        "recorded_at_site": code,
                        "service_ref": {"kind": "ticket", "id": ref},
                        "invitation_id": f"ticket:{ref}",
                        "version": 1,
                    }
                    docs.append(doc)
                evaluations.upsert_versioned_many(docs)
        finally:
            store.close()

    def run(self) -> tuple[float, float]:
        village = uri(self.vhost("421302101201"))
        with ClusterRpcProxy(
            {"AMQP_URI": village}, timeout=600, context_data=operator(self.data / "access.key")
        ) as rpc:
            # An empty push first: the village's timer is then not due for an hour, so the
            # whole backlog is drained by the timed push_now below.
            rpc.sync.push_now()
            print(f"writing a backlog of {self.n:,} evaluations at the village …", flush=True)
            self.seed("421302101201")
            started = time.perf_counter()
            hop1: list[float] = []

            def drain() -> None:
                with ClusterRpcProxy(
                    {"AMQP_URI": village},
                    timeout=3600,
                    context_data=operator(self.data / "access.key"),
                ) as own:
                    own.sync.push_now()
                hop1.append(time.perf_counter() - started)

            worker = threading.Thread(target=drain)
            worker.start()
            while self.count("421302") < self.n:
                time.sleep(0.25)
            total = time.perf_counter() - started
            worker.join()
        return hop1[0], total


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=1000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-sync-") as tmp:
        bench = Bench(args.n, args.batch, Path(tmp))
        bench.start()
        try:
            raw_s = raw_kombu(bench.vhost("raw"), args.n)
            hop1_s, total_s = bench.run()
        finally:
            bench.stop()
    raw_rate = args.n / raw_s
    hop1_rate = args.n / hop1_s
    total_rate = args.n / total_s
    million_s = 1_000_000 / min(hop1_rate, total_rate)
    print(f"\nrecords: {args.n:,}, batch {args.batch}, SQLite, one RabbitMQ, {os.cpu_count()} CPUs")
    print(f"raw kombu publish+consume      {raw_s:8.1f} s  {raw_rate:10,.0f} msg/s   (baseline)")
    print(f"sync+rating village → town     {hop1_s:8.1f} s  {hop1_rate:10,.0f} rec/s")
    print(f"sync+rating village → county   {total_s:8.1f} s  {total_rate:10,.0f} rec/s")
    print(f"sync / raw kombu               {total_rate / raw_rate:8.2f} x")
    print(
        f"targets: ≥ {TARGET_PER_HOP:,.0f} rec/s per hop → "
        f"{'met' if hop1_rate >= TARGET_PER_HOP else 'NOT met'}; one million in < "
        f"{TARGET_MILLION_S:.0f} s → about {million_s:.0f} s at this rate "
        f"({'met' if million_s < TARGET_MILLION_S else 'NOT met'})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
