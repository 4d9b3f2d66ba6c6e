"""Matter search through RPC over a big catalog, beside a no-op RPC in the same run.

    python -m bench.matters [--matters 10000] [--applications 100000] [--queries 2000]

Seeds a county's store directly through the matters repository (10,000 matters, built from
the demo catalog's 36 matters with realistic variants, and 100,000 applications), starts
the real service with ``nameko run`` on the real RabbitMQ (a throw-away vhost), and then
times, from a client process, ``matters.search_matters`` with a mix of keywords and filters
and ``matters.site_info`` (the no-op baseline), interleaved so both see the same conditions.
Target (issue 3): search p99 under 3x the no-op round trip.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import yaml

from bench.support import access_key, operator, percentile, rabbitmqctl, stop_process
from services.common.store import open_store
from services.matters.store import MattersRepository, version_id

TARGET = 3.0
ROOT = Path(__file__).resolve().parents[1]
SEED = ROOT / "services" / "matters" / "seed" / "catalog.yaml"
SITE = "421302"
QUALIFIERS = (
    "企业", "个人", "农村集体经济组织", "外籍人员", "港澳台居民", "退役军人", "新就业形态劳动者",
    "小微企业", "个体工商户", "事业单位", "社会组织", "异地务工人员", "高校毕业生", "残疾人",
    "老年人", "未成年人", "军人家属", "农民工", "灵活就业人员", "林权",
)  # fmt: skip
ACTIONS = ("", "变更", "注销", "补证", "换证", "延续", "备案", "撤销", "更正", "查询")
QUERIES: list[dict[str, Any]] = [
    {"q": "登记"},
    {"q": "不动产"},
    {"q": "养老保险"},
    {"q": "医疗 报销"},
    {"q": "营业执照"},
    {"q": "二手房"},
    {"q": "低保"},
    {"q": "户口"},
    {"q": "证"},
    {"q": "补贴", "tier": "village"},
    {"q": "登记", "type": "07", "online": True},
    {"q": "", "department": "民政"},
    {"q": "个体工商户 注销"},
    {"q": "结婚"},
    {"q": "不存在的事项名称"},
]


def seed(data: Path, n_matters: int, n_applications: int) -> list[str]:
    """Write the catalog, the current view and applications straight into the store."""
    base = yaml.safe_load(SEED.read_text(encoding="utf-8"))["matters"]
    rng = random.Random(42)
    store = open_store(f"sqlite:///{data}?synchronous=NORMAL", "matters")
    repo = MattersRepository(store)
    now = "2025-09-01T01:00:00Z"
    records, current = [], []
    for i in range(n_matters):
        src = base[i % len(base)]
        qualifier = QUALIFIERS[(i // len(base)) % len(QUALIFIERS)]
        action = ACTIONS[(i // (len(base) * len(QUALIFIERS))) % len(ACTIONS)]
        basic = f"{src['type']}{10000 + i:05d}{i % 1000:03d}"
        code = f"{basic}{SITE}001"
        matter = {
            **src,
            "code": code,
            "basic_code": basic,
            "name": f"{qualifier}{src['name']}{action}",
            "aliases": [f"{a}{action}" for a in src["aliases"]],
        }
        records.append(
            {
                "id": version_id(code, 1),
                "schema": 1,
                "code": code,
                "matter_version": 1,
                "status": "published",
                "matter": matter,
                "site_code": SITE,
                "published_at": now,
                "created_at": now,
                "updated_at": now,
            }
        )
        current.append(
            {
                **matter,
                "id": code,
                "matter_version": 1,
                "status": "published",
                "published_at": now,
                "availability": "offered",
                "availability_local": False,
                "origin_site": SITE,
                "site_code": SITE,
                "updated_at": now,
            }
        )
    for start in range(0, n_matters, 2000):
        repo.catalog.insert_many(records[start : start + 2000])
        repo.matters.insert_many(current[start : start + 2000])
    repo.settings.insert({"id": "catalog_projection", "seq": repo.catalog.last_seq()})
    states = ("accepted", "in_review", "approved", "completed", "delivered", "completed")
    batch: list[dict[str, Any]] = []
    for i in range(n_applications):
        m = current[rng.randrange(n_matters)]
        state = states[i % len(states)]
        open_ = state in ("accepted", "in_review", "approved")
        due = f"2025-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"
        batch.append(
            {
                "id": f"{SITE}-{uuid.UUID(int=rng.getrandbits(128)).hex}",
                "schema": 1,
                "number": f"{SITE}20250901{i:07d}",
                "site_code": SITE,
                "matter_code": m["id"],
                "matter_version": 1,
                "matter_name": m["name"],
                "matter_type": m["type"],
                "department": m["agency"]["name"],
                "case_type": m["case_type"],
                "promised_limit_days": m["promised_limit_days"],
                "legal_limit_days": m["legal_limit_days"],
                "channel": "window",
                "window": "A01",
                "staff_id": None,
                "applicant": {
                    "kind": "person",
                    "name": "张*",
                    "id_hash": f"{i:064x}",
                    "id_masked": "4213**********1234",
                    "phone_hash": None,
                    "phone_masked": None,
                },
                "applicant_hash": f"{i:064x}",
                "materials": [],
                "notices": [],
                "clock": "running" if open_ else "stopped",
                "due_date": due,
                "accepted_on": "2025-09-01",
                "suspensions": [],
                "suspended_days": 0,
                "state": state,
                "history": [],
                "created_at": now,
                "updated_at": now,
                "outbox_pending": False,
            }
        )
        if len(batch) == 5000:
            repo.applications.insert_many(batch)
            batch = []
    if batch:
        repo.applications.insert_many(batch)
    counts = (repo.matters.count(), repo.applications.count())
    store.close()
    return [f"{counts[0]} matters", f"{counts[1]} applications"]


def write_config(path: Path, vhost: str, data: Path) -> None:
    path.write_text(
        "\n".join(
            [
                f"AMQP_URI: pyamqp://guest:guest@127.0.0.1:5672/{vhost}",
                "SITE: {code: '421302', tier: county, name: 基准测试区政务服务中心, upstream: ''}",
                "UPSTREAM_AMQP_URI: ''",
                f"STORE_URI: 'sqlite:///{data}'",
                f"ACCESS_KEY_FILE: '{access_key(path.parent)}'",
                "WEB_SERVER_ADDRESS: 127.0.0.1:0",
                "MATTERS: {sweep_interval_seconds: 5}",
                "",
            ]
        ),
        encoding="utf-8",
    )


def measure(vhost: str, queries: int, key: Path) -> tuple[list[float], list[float], list[int]]:
    import warnings

    warnings.filterwarnings("ignore", message=".*Eventlet is deprecated")
    import eventlet

    eventlet.monkey_patch()
    from nameko.standalone.rpc import ServiceRpcProxy

    search, noop, totals = [], [], []
    config = {"AMQP_URI": f"pyamqp://guest:guest@127.0.0.1:5672/{vhost}"}
    context = operator(key)
    with ServiceRpcProxy("matters", config, timeout=30, context_data=context) as matters:
        deadline = time.monotonic() + 60
        while True:  # wait for the service to be up
            try:
                matters.site_info()
                break
            except Exception:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)
        for query in QUERIES:  # warm up: the first search builds the index
            matters.search_matters(**query)
        for i in range(queries):
            query = QUERIES[i % len(QUERIES)]
            started = time.perf_counter()
            matters.site_info()
            noop.append(time.perf_counter() - started)
            started = time.perf_counter()
            result = matters.search_matters(**query)
            search.append(time.perf_counter() - started)
            totals.append(result["total"])
    return search, noop, totals


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--matters", type=int, default=10000)
    parser.add_argument("--applications", type=int, default=100000)
    parser.add_argument("--queries", type=int, default=2000)
    args = parser.parse_args()

    vhost = f"bench-matters-{uuid.uuid4().hex[:8]}"
    work = Path(tempfile.mkdtemp(prefix="bench-matters-"))
    data = work / "data"
    t0 = time.monotonic()
    seeded = seed(data, args.matters, args.applications)
    print(f"seeded {', '.join(seeded)} in {time.monotonic() - t0:.1f} s (SQLite, {data})")
    rabbitmqctl("add_vhost", vhost)
    rabbitmqctl("set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")
    config = work / "matters.yaml"
    write_config(config, vhost, data)
    nameko = Path(sys.executable).with_name("nameko")
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    log = (work / "matters.log").open("wb")
    process = subprocess.Popen(
        [str(nameko), "run", "--config", str(config), "services.matters.service"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    try:
        search, noop, totals = measure(vhost, args.queries, work / "access.key")
    finally:
        stop_process(process, timeout=20)
        log.close()
        rabbitmqctl("delete_vhost", vhost)
        shutil.rmtree(work, ignore_errors=True)

    def ms(samples: list[float], p: float) -> float:
        return percentile(samples, p) * 1000

    print(f"{args.queries} searches over {args.matters} matters with {args.applications} "
          f"applications in the store, {len(QUERIES)} query shapes "
          f"(matches per query: {min(totals)}–{max(totals)})")  # fmt: skip
    print(f"{'':28}{'median ms':>10}{'p99 ms':>10}")
    print(f"{'no-op RPC (site_info)':28}{ms(noop, 50):>10.2f}{ms(noop, 99):>10.2f}")
    print(f"{'search_matters RPC':28}{ms(search, 50):>10.2f}{ms(search, 99):>10.2f}")
    ratio = percentile(search, 99) / percentile(noop, 99)
    ratio_median = percentile(search, 99) / statistics.median(noop)
    print(f"search p99 / no-op p99    = {ratio:.2f}x (target < {TARGET:.0f}x)")
    print(f"search p99 / no-op median = {ratio_median:.2f}x")
    print(
        "PASS" if ratio < TARGET else "FAIL", "— target: search p99 under 3x the no-op round trip"
    )


if __name__ == "__main__":
    main()
