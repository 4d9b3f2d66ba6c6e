"""好差评 platform connector benchmark: records per second the connector pushes, beside a
raw ``requests`` POST loop of the same records in the same batches against the same fake
platform in the same run.

    python -m bench.platform [--records 10000] [--batch 250] [--fail-rate 0.0]

What runs, in this process: the real ``rating`` and ``sync`` services (Nameko containers on a
fresh vhost of the local RabbitMQ, eventlet-patched like the service tests), the county's
rating store seeded with ``--records`` evaluations, and the fake platform of
tests/platform_fake.py (a real HTTP server: signature check, validation against the
gbt39046 coding, dedupe by idempotency key; ``--fail-rate`` of its requests fail).

- raw: the records coded once up front, then one ``requests.Session`` POSTing them in
  ``--batch`` sized, HMAC-signed batches, back to back: the floor of HTTP and the fake.
- connector: ``SYNC.platform`` pushing the same records from rating's feed (read over RPC,
  masked, coded, signed, each batch's acknowledgements settled into the checkpoint), timed
  from the fake's first request to its last acknowledgement.

A bench reports: it exits non-zero on errors only, never on a missed target.
"""

from __future__ import annotations

import eventlet

eventlet.monkey_patch()

import argparse  # noqa: E402
import json  # noqa: E402
import shutil  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402
from urllib.parse import urlsplit  # noqa: E402
from zoneinfo import ZoneInfo  # noqa: E402

import requests  # noqa: E402
from nameko.containers import ServiceContainer  # noqa: E402

from bench.support import free_port, vhosts  # noqa: E402
from services.common.evaluation_coding import GBT39046  # noqa: E402
from services.common.store import open_store  # noqa: E402
from services.rating.service import RatingService  # noqa: E402
from services.sync.domain.platform import auth_headers, coded  # noqa: E402
from services.sync.service import SyncService  # noqa: E402
from tests.conftest import site_config  # noqa: E402
from tests.platform_fake import FakePlatform, seed_rating_store  # noqa: E402

COUNTY = "421302"
SECRET = "bench-platform-secret-0123456789"  # noqa: S105  (a bench value)
ZONE = ZoneInfo("Asia/Shanghai")


def raw_loop(fake: FakePlatform, data: Path, batch: int) -> tuple[int, float]:
    """The seeded records coded once, then POSTed back to back: (records, seconds)."""
    store = open_store(f"sqlite:///{data / COUNTY}", "rating")
    try:
        docs = store.collection("evaluations").changes_since(0, 5000 * 1000)
    finally:
        store.close()
    records = []
    for doc in docs:
        payload, _ = coded(doc, GBT39046, ZONE)
        if payload is not None:  # under other keys than the connector's: both are counted
            records.append({**payload, "idempotency_key": f"raw:{payload['idempotency_key']}"})
    bodies = [
        json.dumps(
            {"site_code": COUNTY, "profile": "gbt39046", "records": records[i : i + batch]},
            ensure_ascii=False,
            separators=(",", ":"),
        ).encode()
        for i in range(0, len(records), batch)
    ]
    path = urlsplit(fake.url).path
    session = requests.Session()
    started = time.perf_counter()
    for body in bodies:
        headers = auth_headers("hmac", SECRET, "POST", path, body, int(time.time()))
        answer = session.post(
            fake.url, data=body, headers={"Content-Type": "application/json", **headers}, timeout=30
        )
        answer.raise_for_status()
    return len(records), time.perf_counter() - started


def connector(fake: FakePlatform, vhost: str, data: Path, batch: int, expected: int) -> float:
    """Seconds from the connector's first request to the fake's last acknowledgement."""
    platform = {
        "url": fake.url,
        "profile": "gbt39046",
        "secret": SECRET,
        "batch_size": batch,
        "read_timeout": 2.0,
        "interval": 0.1,
        "backoff_base": 0.05,
        "backoff_cap": 0.5,
    }
    section = {
        "upward": [],
        "pull_catalog": False,
        "pull_outcomes": False,
        "cycle_seconds": 60.0,
        "platform": platform,
    }
    container = ServiceContainer(
        SyncService, site_config(vhost, data, COUNTY, "county", port=free_port(), SYNC=section)
    )
    fake.first_at = None
    before = len(fake.accepted)
    container.start()
    try:
        deadline = time.monotonic() + 600
        while len(fake.accepted) - before < expected:
            if time.monotonic() > deadline:
                raise RuntimeError(f"only {len(fake.accepted) - before} of {expected} arrived")
            time.sleep(0.05)
        return fake.busy_seconds()
    finally:
        container.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--records", type=int, default=10_000, help="evaluations (10000)")
    parser.add_argument("--batch", type=int, default=250, help="records per request (250)")
    parser.add_argument("--fail-rate", type=float, default=0.0, help="failed requests (0.0)")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-platform-"))
    fake = FakePlatform(SECRET, "gbt39046", fail_rate=args.fail_rate, seed=5, stall_s=2.5)
    fake.start()
    started = time.monotonic()
    try:
        seed_rating_store(tmp, COUNTY, args.records, 0)
        with vhosts("bench") as make:
            vhost = make("platform")
            rating = ServiceContainer(
                RatingService,
                site_config(vhost, tmp, COUNTY, "county", port=free_port(), RATING={}),
            )
            rating.start()
            try:
                fake_rate, fake.fail_rate = fake.fail_rate, 0.0  # the raw loop never retries
                count, raw_s = raw_loop(fake, tmp, args.batch)
                fake.fail_rate = fake_rate
                pushed_s = connector(fake, vhost, tmp, args.batch, count)
            finally:
                rating.stop()
        print(f"records {count:,}, batch {args.batch}, failed requests {args.fail_rate:.0%}")
        print(f"raw requests POST loop  {count / raw_s:10,.0f} records/s  ({raw_s:.2f} s)")
        print(f"platform connector      {count / pushed_s:10,.0f} records/s  ({pushed_s:.2f} s)")
        print(f"fake platform outcomes  {dict(fake.outcomes)}")
        if fake.resent_after_ack or fake.rejected:
            resent, refused = len(fake.resent_after_ack), len(fake.rejected)
            print(f"errors: {resent} needless resends, {refused} refused")
            return 1
    finally:
        fake.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"run time {time.monotonic() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
