"""好差评 figures: submissions per second through RPC, and ``stats`` latency over one million
stored evaluations on SQLite, beside a no-op RPC and a raw SQLite scan of the same rows.

    python -m bench.rating [--stored 1000000] [--submit 3000] [--calls 200]
                           [--clients 1] [--window 64]

What runs: the million evaluations (a year of a county, two towns and two villages) are
seeded through the rating repository in batches, and folded into the rollups exactly as the
service folds them; then a real ``nameko run services.rating.service`` process serves them
on a throw-away RabbitMQ vhost. Submissions are pad ratings answering invitations (the
normal on-site flow: schema validation, invitation binding, refusal checks, one durable
evaluation write), from ``--clients`` processes each keeping ``--window`` calls in flight;
the no-op baseline is ``rating.site_info`` driven the same way. ``stats`` is called
sequentially; the raw scan is one ``SELECT … GROUP BY level`` over the evaluations table
for the same days.
Targets (issue 5): at least 1,000 evaluations/s; stats p99 under 50 ms.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime, timedelta
from functools import partial
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Barrier
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import yaml

from bench.support import (
    access_key,
    free_port,
    operator,
    percentile,
    rabbitmqctl,
    stop_process,
    wait_healthy,
)
from services.common.clock import iso
from services.common.store import open_store
from services.rating import domain
from services.rating.store import RatingRepository

TARGET_SUBMISSIONS_PER_S = 1000
TARGET_STATS_P99_MS = 50
ROOT = Path(__file__).resolve().parents[1]
SITES = ("421302", "421302101", "421302102", "421302101201", "421302102201")
ZONE = ZoneInfo("Asia/Shanghai")
LEVELS = [lv.value for lv in domain.Level]
LEVEL_WEIGHTS = (60, 30, 7, 2, 1)
CHANNELS = [c.value for c in domain.Channel if c is not domain.Channel.SYSTEM_DEFAULT]


def seeded_doc(n: int, day: date, rng: random.Random) -> dict[str, Any]:
    site = SITES[n % len(SITES)]
    level = rng.choices(LEVELS, LEVEL_WEIGHTS)[0]
    window = str(rng.randrange(1, 21))
    moment = datetime.combine(day, datetime.min.time(), ZONE).replace(hour=10).astimezone(UTC)
    ref = f"{site}-seed{n}"
    return {
        "id": domain.evaluation_id(site, "ticket", ref, 1),
        "schema": 1,
        "site_code": site,
        "recorded_at_site": site,
        "service_ref": {"kind": "ticket", "id": ref},
        "invitation_id": f"ticket:{ref}",
        "sequence": 1,
        "window": window,
        "staff_id": f"{site}-staff{rng.randrange(40)}",
        "matter_code": f"M{rng.randrange(20):02d}",
        "department": f"部门{rng.randrange(10)}",
        "service_channel": "window",
        "service_ended_at": iso(moment),
        "channel": rng.choice(CHANNELS),
        "level": level,
        "level_zh": domain.Level(level).zh,
        "bad": domain.Level(level).bad,
        "details": dict.fromkeys(domain.DETAIL_QUESTIONS),
        "reasons": {"tags": ["等候过长"] if domain.Level(level).bad else [], "text": None},
        "comment": None,
        "rater": {"real_name": False, "phone_masked": None, "name_masked": None},
        "entered_by": None,
        "submitted_at": iso(moment),
        "day": day.isoformat(),
        "held": False,
        "hold_reasons": [],
        "excluded": None,
        "case_id": None,
        "case_pending": False,
        "created_at": iso(moment),
        "updated_at": iso(moment),
    }


def seed(data: Path, stored: int, submit: int, today: date) -> list[str]:
    """Evaluations over the past year plus open invitations for the submissions to answer."""
    store = open_store(f"sqlite:///{data}", "rating")
    repo = RatingRepository(store)
    rng = random.Random(5)
    days = 365
    per_day = max(1, stored // days)
    batch: list[dict[str, Any]] = []
    started = time.perf_counter()
    for n in range(stored):
        day = today - timedelta(days=days - min(days - 1, n // per_day))
        batch.append(seeded_doc(n, day, rng))
        if len(batch) == 10000 or n == stored - 1:
            repo.evaluations.insert_many(batch)
            repo.fold("evaluations", limit=10000)
            batch = []
    seconds = time.perf_counter() - started
    ended = iso(datetime.now(UTC) - timedelta(minutes=1))
    tickets = [f"421302-bench{uuid.uuid4().hex}" for _ in range(submit)]
    repo.add_invitations(
        [
            {
                "id": f"ticket:{t}",
                "schema": 1,
                "service_ref": {"kind": "ticket", "id": t},
                "site_code": "421302",
                "window": str(i % 20 + 1),
                "staff_id": f"421302-staff{i % 40}",
                "matter_code": "M01",
                "department": "部门1",
                "service_channel": "window",
                "service_ended_at": ended,
                "created_at": ended,
            }
            for i, t in enumerate(tickets)
        ],
        "queue",
        ended,
    )
    buckets = repo.rollups.count()
    store.close()
    print(
        f"seeded {stored:,} evaluations via the repository in {seconds:.1f} s "
        f"({stored / seconds:,.0f}/s incl. rollup folding; {buckets:,} rollup buckets)"
    )
    return tickets


def start_service(tmp: Path, data: Path, vhost: str) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    config = {
        "AMQP_URI": f"pyamqp://guest:guest@127.0.0.1:5672/{vhost}",
        "WEB_SERVER_ADDRESS": f"127.0.0.1:{port}",
        "SITE": {"code": "421302", "tier": "county", "name": "基准测试县中心", "upstream": ""},
        "UPSTREAM_AMQP_URI": "",
        "STORE_URI": f"sqlite:///{data}",
        "ACCESS_KEY_FILE": str(access_key(tmp)),
        "RATING": {"privacy_salt": "bench-salt-0123456789"},
        "max_workers": 20,
    }
    path = tmp / "rating.yaml"
    path.write_text(yaml.safe_dump(config, allow_unicode=True))
    env = {**os.environ, "PYTHONWARNINGS": "ignore::Warning:nameko.cli.commands"}
    log = (tmp / "rating.log").open("ab")
    nameko = str(Path(sys.executable).with_name("nameko"))
    proc = subprocess.Popen(
        [nameko, "run", "--config", str(path), "services.rating.service"],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    wait_healthy([port], [proc], tmp / "rating.log", timeout=60)
    return proc, port


def _client(
    uri: dict[str, str],
    method: str,
    payloads: Sequence[tuple[object, ...]],
    window: int,
    barrier: Barrier,
    done: Queue[float],
) -> None:
    from nameko.standalone.rpc import ClusterRpcProxy

    import services.common.remote  # noqa: F401

    with ClusterRpcProxy(
        uri, timeout=120, context_data=operator(Path(uri["ACCESS_KEY_FILE"]))
    ) as cluster:
        call = getattr(cluster.rating, method)
        cluster.rating.site_info()  # connected and warm before the clock starts
        barrier.wait()
        inflight: list[Any] = []
        for payload in payloads:
            inflight.append(call.call_async(*payload))
            if len(inflight) >= window:
                inflight.pop(0).result()
        for reply in inflight:
            reply.result()
    done.put(time.perf_counter())


def pipelined(
    uri: dict[str, str],
    method: str,
    payloads: Sequence[tuple[object, ...]],
    window: int,
    clients: int,
) -> float:
    """Calls per second from ``clients`` processes, each with ``window`` calls in flight."""
    import multiprocessing

    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(clients + 1)
    done: Queue[float] = ctx.Queue()
    procs = [
        ctx.Process(target=_client, args=(uri, method, payloads[i::clients], window, barrier, done))
        for i in range(clients)
    ]
    for proc in procs:
        proc.start()
    barrier.wait()
    started = time.perf_counter()
    finished = max(done.get(timeout=600) for _ in procs)
    for proc in procs:
        proc.join()
    return len(payloads) / (finished - started)


def latencies(call: Callable[[], object], calls: int) -> list[float]:
    out: list[float] = []
    for _ in range(calls):
        started = time.perf_counter()
        call()
        out.append((time.perf_counter() - started) * 1000)
    return out


def raw_scan(db: Path, date_from: str, date_to: str) -> float:
    import sqlite3

    conn = sqlite3.connect(db)
    started = time.perf_counter()
    conn.execute(
        "SELECT json_extract(doc, '$.level'), COUNT(*) FROM \"rating.evaluations\" "
        "WHERE json_extract(doc, '$.day') BETWEEN ? AND ? GROUP BY 1",
        (date_from, date_to),
    ).fetchall()
    seconds = time.perf_counter() - started
    conn.close()
    return seconds * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--stored", type=int, default=1_000_000)
    parser.add_argument("--submit", type=int, default=3000)
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--window", type=int, default=64, help="calls in flight per client")
    parser.add_argument("--clients", type=int, default=1, help="client processes")
    args = parser.parse_args()

    from nameko.standalone.rpc import ClusterRpcProxy

    import services.common.remote  # noqa: F401  typed errors over RPC

    tmp = Path(tempfile.mkdtemp(prefix="bench-rating-"))
    data = tmp / "data"
    today = datetime.now(ZONE).date()
    tickets = seed(data, args.stored, args.submit, today)
    vhost = f"bench-rating-{uuid.uuid4().hex[:8]}"
    rabbitmqctl("add_vhost", vhost)
    rabbitmqctl("set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")
    proc = None
    try:
        proc, _ = start_service(tmp, data, vhost)
        uri = {
            "AMQP_URI": f"pyamqp://guest:guest@127.0.0.1:5672/{vhost}",
            "ACCESS_KEY_FILE": str(tmp / "access.key"),
        }
        with ClusterRpcProxy(
            uri, timeout=120, context_data=operator(tmp / "access.key")
        ) as cluster:
            rating = cluster.rating
            rating.site_info()
            noop_rate = pipelined(uri, "site_info", [()] * args.submit, args.window, args.clients)
            payloads = [
                (
                    {
                        "invitation_id": f"ticket:{t}",
                        "service_ref": {"kind": "ticket"},
                        "channel": "pad",
                        "level": "satisfied",
                        "details": {"guide_clear": True},
                    },
                )
                for t in tickets
            ]
            submit_rate = pipelined(uri, "submit_evaluation", payloads, args.window, args.clients)
            month_from = (today - timedelta(days=29)).isoformat()
            year_from = (today - timedelta(days=364)).isoformat()
            last_month_end = today.replace(day=1) - timedelta(days=1)
            last_month = {
                "date_from": last_month_end.replace(day=1).isoformat(),
                "date_to": last_month_end.isoformat(),
            }
            queries = {
                "this month, whole subtree": ({}, None),
                "30 days, whole subtree": ({"date_from": month_from}, None),
                "last month by staff": (last_month, "staff"),
                "30 days by staff (worst)": ({"date_from": month_from}, "staff"),
                "365 days by month": ({"date_from": year_from}, "month"),
            }
            total = rating.stats({"date_from": year_from}, None)["total"]["total"]
            noop = latencies(rating.site_info, args.calls)
            results = {
                name: latencies(partial(rating.stats, *q), args.calls)
                for name, q in queries.items()
            }
        db = data / "rating.db"
        scans = {
            "30 days": raw_scan(db, month_from, today.isoformat()),
            "365 days": raw_scan(db, year_from, today.isoformat()),
        }
    finally:
        if proc is not None:
            stop_process(proc, timeout=30)
        rabbitmqctl("delete_vhost", vhost)

    print(
        f"\nsubmissions through RPC ({args.submit:,} pad ratings; {args.clients} client "
        f"processes x {args.window} calls in flight; {os.cpu_count()} CPUs shared with "
        f"RabbitMQ and the service)"
    )
    print(
        f"  submit_evaluation      {submit_rate:8,.0f} evaluations/s   "
        f"(target >= {TARGET_SUBMISSIONS_PER_S:,})"
    )
    print(f"  no-op RPC (site_info)  {noop_rate:8,.0f} calls/s")
    print(f"\nstats over {total:,} counted evaluations in the store ({args.calls} calls each)")
    print(
        f"  {'no-op RPC (site_info)':34} p50 {percentile(noop, 50):7.2f} ms   "
        f"p99 {percentile(noop, 99):7.2f} ms"
    )
    for name, values in results.items():
        print(
            f"  {'stats ' + name:34} p50 {percentile(values, 50):7.2f} ms   "
            f"p99 {percentile(values, 99):7.2f} ms   (target p99 < {TARGET_STATS_P99_MS} ms)"
        )
    for name, ms in scans.items():
        print(f"  {'raw SQLite scan ' + name:34} {ms:9.1f} ms   (same rows, GROUP BY level)")
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
