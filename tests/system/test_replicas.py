"""Two processes of every service on one store, under a mixed load, with exact counts.

For each of matters, queue, rating and sync, two real ``nameko run`` processes of the
service run for one site on one RabbitMQ vhost and one store (the same SQLite directory:
each service has its own file there, and both processes open it). Both consume the
service's one RPC queue, so calls from several client threads spread over them. The checks
are exact: no number issued twice, no ticket called twice, one invitation per completed
service, figures and rollups that count every record once, every replicated record sent
and received once.

tools/deploy_render/common.py (``REPLICA_SAFE``) lets a deploy overlay run a service with
more than one replica only when its test here passes.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import datetime
from importlib.resources import files
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import kombu.pools
import pytest
import requests
import yaml

import services.common.remote  # noqa: F401  (typed remote errors over RPC)
from bench.support import free_port, stop_process
from services.common.calendar import load_calendar
from services.common.errors import Conflict
from services.hallctl.showcase import demo_id_number
from tests.conftest import VhostFactory, access_key_file, amqp_uri, operator_rpc, wait_for

pytestmark = pytest.mark.system

ROOT = Path(__file__).resolve().parents[2]
NAMEKO = str(Path(sys.executable).with_name("nameko"))
ZONE = ZoneInfo("Asia/Shanghai")
COUNTY, TOWN, VILLAGE = "421302", "421302101", "421302101201"
TIERS = {COUNTY: "county", TOWN: "town", VILLAGE: "village"}
REPLICAS = 2
RpcFactory = Callable[[], Any]


# --- processes --------------------------------------------------------------------------


class Replica:
    """One ``nameko run`` process of ``service`` with its own YAML config, log and port."""

    def __init__(self, tmp: Path, service: str, n: int, config: dict[str, Any]) -> None:
        self.service, self.port = service, free_port()
        self.name = f"{service}-{config['SITE']['code']}-{n}"
        self.path = tmp / f"{self.name}.yaml"
        self.log = tmp / f"{self.name}.log"
        config = {**config, "WEB_SERVER_ADDRESS": f"127.0.0.1:{self.port}"}
        self.path.write_text(yaml.safe_dump(config, allow_unicode=True, sort_keys=False))
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        env = {**os.environ, "PYTHONWARNINGS": "ignore"}
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [NAMEKO, "run", "--config", str(self.path), f"services.{self.service}.service"],
                cwd=ROOT,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )

    def healthy(self) -> bool:
        assert self.proc is not None
        assert self.proc.poll() is None, self.tail()
        try:
            return requests.get(f"http://127.0.0.1:{self.port}/health", timeout=2).ok
        except requests.RequestException:
            return False

    def metrics(self) -> str:
        return requests.get(f"http://127.0.0.1:{self.port}/metrics", timeout=5).text

    def tail(self, lines: int = 30) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return f"--- {self.name}\n" + "\n".join(text.splitlines()[-lines:])

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc, timeout=10)


@contextmanager
def running(replicas: list[Replica], one_by_one: bool = False) -> Iterator[list[Replica]]:
    """Start every replica at once (or each once the previous is healthy), wait until all
    are healthy, stop them all at the end."""
    try:
        for n, replica in enumerate(replicas, 1):
            replica.start()
            if one_by_one or n == len(replicas):
                wait_for(
                    lambda n=n: all(r.healthy() for r in replicas[:n]),  # type: ignore[misc]
                    90,
                    "every process healthy",
                    lambda: "\n".join(r.tail() for r in replicas),
                )
        yield replicas
    finally:
        for replica in replicas:
            replica.stop()
        kombu.pools.reset()  # pooled publisher connections to vhosts deleted after the module


def settled(read: Callable[[], Any], timeout: float, pause: float = 1.5) -> Any:
    """``read()`` once two readings ``pause`` seconds apart agree (or at the deadline): a
    count still moving (a fold or flush behind) is not judged before it stops."""
    deadline = time.monotonic() + timeout
    last = read()
    while time.monotonic() < deadline:
        time.sleep(pause)
        now = read()
        if now == last:
            return now
        last = now
    return last


def config(
    vhost: str, data: Path, code: str, upstream_vhost: str | None = None, **extra: Any
) -> dict[str, Any]:
    """A site's config; the village's upstream is the town, reached on ``upstream_vhost``."""
    upstream = TOWN if code == VILLAGE else ""
    return {
        "AMQP_URI": amqp_uri(vhost),
        "SITE": {"code": code, "tier": TIERS[code], "name": f"测试{code}", "upstream": upstream},
        "UPSTREAM_AMQP_URI": amqp_uri(upstream_vhost) if upstream_vhost else "",
        "STORE_URI": f"sqlite:///{data}",
        "ACCESS_KEY_FILE": str(access_key_file()),
        "LOGGING": {
            "version": 1,
            "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
            "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
            "root": {"level": "INFO", "handlers": ["console"]},
        },
        **extra,
    }


def pair(tmp: Path, service: str, cfg: dict[str, Any]) -> list[Replica]:
    """``REPLICAS`` processes of ``service`` on the same config (the same store)."""
    return [Replica(tmp, service, n, cfg) for n in range(REPLICAS)]


def rpc_factory(vhost: str) -> RpcFactory:
    return lambda: operator_rpc(amqp_uri(vhost), timeout=60)


def in_threads(count: int, work: Callable[[int], Any]) -> list[Any]:
    """``work(i)`` for i in range(count), each in its own thread; their results (the first
    error is raised)."""
    with ThreadPoolExecutor(count) as pool:
        return list(pool.map(work, range(count)))


def feed(rpc: Any, service: str, name: str) -> list[dict[str, Any]]:
    """Every record of a published feed, page by page."""
    items: list[dict[str, Any]] = []
    since = 0
    while page := getattr(rpc, service).feed(name, since, 5000)["items"]:
        items += page
        since = page[-1]["_seq"]
    return items


def duplicates(values: list[Any]) -> dict[Any, int]:
    return {v: n for v, n in Counter(values).items() if n > 1}


def calendar_override(root: Path) -> dict[str, str]:
    """CALENDAR_OVERRIDE when the holiday data lacks next year (deadlines run into it)."""
    next_year = datetime.now(ZONE).year + 1
    if os.environ.get("CALENDAR_OVERRIDE") or load_calendar(None).covers(next_year):
        return {}
    path = root / "calendar-test.yaml"
    path.write_text(yaml.safe_dump({next_year: {"holidays": [], "workdays": []}}))
    return {"CALENDAR_OVERRIDE": str(path)}


def metric_sum(text: str, name: str, **labels: str) -> float:
    """The sum of the series of ``name`` carrying every one of ``labels``."""
    total = 0.0
    for line in text.splitlines():
        match = re.match(rf"{name}\{{(.*)\}} (\S+)$", line)
        if match and all(f'{k}="{v}"' in match.group(1) for k, v in labels.items()):
            total += float(match.group(2))
    return total


@pytest.fixture(scope="module")
def vhosts(vhost_factory: VhostFactory) -> VhostFactory:
    return vhost_factory


# --- queue ------------------------------------------------------------------------------

WINDOWS = 6
KIOSKS = 4
TICKETS_PER_KIOSK = 15
QUEUE_SECTION: dict[str, Any] = {
    "privacy_salt": "replica-test-salt-queue",
    "sweep_seconds": 1,
    "figures_seconds": 1,
    "day_close_time": "23:59",
    "categories": [
        {
            "prefix": prefix,
            "name": name,
            "department": "政务服务局",
            "hours": ["00:00-23:59"],
            "working_days_only": False,
        }
        for prefix, name in (("A", "综合受理"), ("B", "不动产"))
    ],
    "windows": [
        {"number": str(n), "categories": {"A": 2, "B": 1}, "kind": "comprehensive"}
        for n in range(1, WINDOWS + 1)
    ],
    "staff": [{"id": f"S{n}", "name": f"员工{n}", "windows": [str(n)]} for n in range(1, 7)],
}


def test_two_queue_processes_issue_call_and_invite_exactly_once(
    vhosts: VhostFactory, tmp_path: Path
) -> None:
    vhost = vhosts("replica-queue")
    cfg = config(vhost, tmp_path / "data", COUNTY, QUEUE=QUEUE_SECTION)
    connect = rpc_factory(vhost)
    with running(pair(tmp_path, "queue", cfg)):
        with connect() as rpc:
            for n in range(1, WINDOWS + 1):
                rpc.queue.open_window(str(n), f"S{n}")
        taking = threading.Event()
        taking.set()

        def kiosk(k: int) -> list[dict[str, Any]]:
            with connect() as rpc:
                return [
                    rpc.queue.take_ticket("AB"[(k + i) % 2], "kiosk")
                    for i in range(TICKETS_PER_KIOSK)
                ]

        def window(w: int) -> tuple[list[str], list[str], int]:
            number = str(w + 1)
            called: list[str] = []
            completed: list[str] = []
            lost = 0
            with connect() as rpc:
                while True:
                    try:
                        ticket = rpc.queue.call_next(number, f"S{number}")
                    except Conflict:  # lost a race on the window record: undone, try again
                        lost += 1
                        assert lost < 50, f"window {number} refused 50 calls in a row"
                        continue
                    if ticket is None:
                        if not taking.is_set():
                            return called, completed, lost
                        time.sleep(0.05)
                        continue
                    called.append(ticket["id"])
                    done = rpc.queue.complete(ticket["id"], "done", None, None, number)
                    assert done["state"] == "completed"
                    completed.append(done["id"])

        with ThreadPoolExecutor(KIOSKS + WINDOWS) as pool:
            windows = [pool.submit(window, w) for w in range(WINDOWS)]
            kiosks = [pool.submit(kiosk, k) for k in range(KIOSKS)]
            taken = [t for f in kiosks for t in f.result()]
            taking.clear()
            results = [f.result() for f in windows]

        called = [t for c, _, _ in results for t in c]
        completed = [t for _, c, _ in results for t in c]
        issued = KIOSKS * TICKETS_PER_KIOSK
        assert len(taken) == issued
        assert duplicates([t["number"] for t in taken]) == {}, "a number issued twice"
        assert duplicates([t["id"] for t in taken]) == {}
        assert duplicates(called) == {}, "a ticket called twice"
        assert sorted(called) == sorted(t["id"] for t in taken), "a ticket never called"
        assert sorted(completed) == sorted(called)
        per_category = Counter(t["category"] for t in taken)
        with connect() as rpc:
            for ticket_id in called:
                ticket = rpc.queue.ticket(ticket_id)
                assert (ticket["state"], ticket["calls"]) == ("completed", 1), ticket_id
            invitations = feed(rpc, "queue", "evaluation_invitations")
            assert duplicates([i["id"] for i in invitations]) == {}, "an invitation twice"
            assert sorted(i["service_ref"]["id"] for i in invitations) == sorted(completed)

            def figures() -> dict[str, tuple[int, int, int]]:
                return {
                    f["category"]: (f["issued"], f["served"], f["no_show"])
                    for f in feed(rpc, "queue", "daily_figures")
                }

            want = {p: (n, n, 0) for p, n in per_category.items()}
            seen = settled(figures, 15)
            if seen != want:  # give a late flush its chance before judging
                seen = wait_for(lambda: (f := figures()) == want and f, 5, "", str) or seen
            assert seen == want, f"daily figures {seen}, expected {want}"


# --- matters ----------------------------------------------------------------------------

INSTANT = "2000021001421302001"  # 即办件: accepted and completed in one call
PROMISED = "0700018003421302001"  # 承诺件, 1 working day: accept → review → decide → complete
PUBLISHED = "2000021006421302001"  # republished concurrently
DESKS = 6
APPLICATIONS_PER_DESK = 6
PUBLISHERS = 3
PUBLISHES_PER_PUBLISHER = 4


def seed_matter(code: str) -> dict[str, Any]:
    text = files("services.matters").joinpath("seed/catalog.yaml").read_text("utf-8")
    matter: dict[str, Any] = next(m for m in yaml.safe_load(text)["matters"] if m["code"] == code)
    return matter


def application(matter: dict[str, Any], desk: int) -> dict[str, Any]:
    return {
        "matter_code": matter["code"],
        "applicant": {"kind": "person", "name": "测试群众", "id_number": demo_id_number()},
        "channel": "window",
        "materials": [{"name": m["name"]} for m in matter["materials"] if m["required"]],
        "window": str(desk + 1),
        "staff_id": f"clerk-{desk + 1}",
    }


def test_two_matters_processes_number_complete_invite_and_publish_exactly_once(
    vhosts: VhostFactory, tmp_path: Path
) -> None:
    vhost = vhosts("replica-matters")
    section = {"privacy_salt": "replica-test-salt-matters", "seed_catalog": "seed/catalog.yaml"}
    cfg = config(vhost, tmp_path / "data", COUNTY, MATTERS=section, **calendar_override(tmp_path))
    connect = rpc_factory(vhost)
    instant, promised = seed_matter(INSTANT), seed_matter(PROMISED)
    # one by one: starting both on an empty store is the next test's subject
    with running(pair(tmp_path, "matters", cfg), one_by_one=True):

        def desk(d: int) -> list[dict[str, Any]]:
            done = []
            with connect() as rpc:
                m = rpc.matters
                for i in range(APPLICATIONS_PER_DESK):
                    if i % 2:
                        done.append(m.submit_application(application(instant, d)))
                        continue
                    accepted = m.submit_application(application(promised, d))
                    assert accepted["state"] == "accepted", accepted["state"]
                    m.start_review(accepted["id"])
                    m.decide_application(accepted["id"], "approve")
                    done.append(m.complete_application(accepted["id"]))
            return done

        def publisher(p: int) -> tuple[list[int], int]:
            versions: list[int] = []
            lost = 0
            matter = seed_matter(PUBLISHED)
            with connect() as rpc:
                m = rpc.matters
                for i in range(PUBLISHES_PER_PUBLISHER):
                    draft = {**matter, "aliases": [f"查询打印{p}-{i}"]}
                    try:
                        m.save_matter_draft(draft)
                        m.approve_matter_change(PUBLISHED, f"chief-{p}")
                        versions.append(m.publish_matter(PUBLISHED)["matter_version"])
                    except Conflict:  # another publisher's draft or publish came between
                        lost += 1
            return versions, lost

        with ThreadPoolExecutor(DESKS + PUBLISHERS) as pool:
            desks = [pool.submit(desk, d) for d in range(DESKS)]
            publishers = [pool.submit(publisher, p) for p in range(PUBLISHERS)]
            completed = [a for f in desks for a in f.result()]
            published = [v for f in publishers for v in f.result()[0]]

        assert len(completed) == DESKS * APPLICATIONS_PER_DESK
        assert {a["state"] for a in completed} == {"completed"}
        assert duplicates([a["number"] for a in completed]) == {}, "a number issued twice"
        assert duplicates([a["id"] for a in completed]) == {}
        assert duplicates(published) == {}, f"one version published twice: {published}"
        with connect() as rpc:
            listed = rpc.matters.list_applications({"limit": 500})
            assert listed["count"] == len(completed)
            invitations = feed(rpc, "matters", "evaluation_invitations")
            assert duplicates([i["id"] for i in invitations]) == {}, "an invitation twice"
            refs = sorted(i["service_ref"]["id"] for i in invitations)
            assert refs == sorted(a["id"] for a in completed)
            summaries = feed(rpc, "matters", "application_summaries")
            assert duplicates([s["id"] for s in summaries]) == {}
            assert len(summaries) == len(completed)
            assert {s["state"] for s in summaries} == {"completed"}
            catalog = [c for c in feed(rpc, "matters", "catalog") if c["code"] == PUBLISHED]
            versions = [c["matter_version"] for c in catalog]
            # one seeded version 1 (both processes seed an empty catalog at start), then
            # each successful publish exactly once, in order
            assert versions == list(range(1, len(published) + 2)), versions
            assert sorted(published) == versions[1:]
            current = rpc.matters.get_matter(PUBLISHED)
            assert current["matter_version"] == len(published) + 1
            every = [c["id"] for c in feed(rpc, "matters", "catalog")]
            assert duplicates(every) == {}
            seed = yaml.safe_load(
                files("services.matters").joinpath("seed/catalog.yaml").read_text("utf-8")
            )
            assert len(every) == len(seed["matters"]) + len(published), "seeded twice?"


def test_two_matters_processes_started_together_seed_the_catalog_once(
    vhosts: VhostFactory, tmp_path: Path
) -> None:
    """Both processes start at once on an empty store, each finding the catalog empty: both
    come up, and the seed catalog is published once."""
    vhost = vhosts("replica-seed")
    section = {"privacy_salt": "replica-test-salt-matters", "seed_catalog": "seed/catalog.yaml"}
    cfg = config(vhost, tmp_path / "data", COUNTY, MATTERS=section, **calendar_override(tmp_path))
    with running(pair(tmp_path, "matters", cfg)), rpc_factory(vhost)() as rpc:
        catalog = feed(rpc, "matters", "catalog")
    seed = yaml.safe_load(files("services.matters").joinpath("seed/catalog.yaml").read_text())
    assert sorted(c["id"] for c in catalog) == sorted(f"{m['code']}@1" for m in seed["matters"])


# --- rating -----------------------------------------------------------------------------

RATERS = 8
RATINGS_PER_RATER = 36
BAD_EVERY = 3  # every third rating is bad and opens a case
READERS = 6


def rating(rater: int, i: int, bad_every: int = BAD_EVERY) -> dict[str, Any]:
    """A pad rating of a service without invitation; every ``bad_every``-th one is bad."""
    body: dict[str, Any] = {
        "service_ref": {"kind": "other", "id": f"r{rater}-{i}-{uuid.uuid4().hex[:6]}"},
        "window": str(rater % 4 + 1),
        "staff_id": f"staff-{rater}-{i % 3}",
        "matter_code": f"M{i % 5}",
        "department": f"部门{rater % 2}",
        "channel": "pad",
        "level": "very_satisfied" if i % 2 else "satisfied",
    }
    if i % bad_every == 0:
        body.update(level="dissatisfied", reasons={"tags": ["等候时间长"], "text": "排队太久"})
    return body


def test_two_rating_processes_fold_every_evaluation_exactly_once(
    vhosts: VhostFactory, tmp_path: Path
) -> None:
    """Raters submit good and bad ratings; each bad one's case is taken through its steps
    (each step a new version of the case, folded as a difference); readers ask for
    ``stats`` meanwhile (a read folds what is pending, in whichever process answers)."""
    vhost = vhosts("replica-rating")
    section = {"privacy_salt": "replica-test-salt-rating", "sweep_interval_seconds": 1}
    cfg = config(vhost, tmp_path / "data", COUNTY, RATING=section, **calendar_override(tmp_path))
    connect = rpc_factory(vhost)
    with running(pair(tmp_path, "rating", cfg)):
        rating_now = threading.Event()
        rating_now.set()

        def rater(r: int) -> list[dict[str, Any]]:
            stored = []
            with connect() as rpc:
                for i in range(RATINGS_PER_RATER):
                    evaluation = rpc.rating.submit_evaluation(rating(r, i))
                    stored.append(evaluation)
                    if evaluation["case_id"]:
                        close_case(rpc, evaluation["case_id"], f"handler-{r}")
            return stored

        def reader(_: int) -> int:
            reads = 0
            with connect() as rpc:
                while rating_now.is_set():
                    rpc.rating.stats({}, None)
                    reads += 1
            return reads

        with ThreadPoolExecutor(RATERS + READERS) as pool:
            readers = [pool.submit(reader, n) for n in range(READERS)]
            raters = [pool.submit(rater, r) for r in range(RATERS)]
            stored = [e for f in raters for e in f.result()]
            rating_now.clear()
            for f in readers:
                f.result()

        bad = [e for e in stored if e["bad"]]
        assert len(stored) == RATERS * RATINGS_PER_RATER
        assert len(bad) == RATERS * RATINGS_PER_RATER // BAD_EVERY
        assert all(e["case_id"] for e in bad)
        assert not any(e["held"] for e in stored)
        with connect() as rpc:
            evaluations = feed(rpc, "rating", "evaluations")
            cases = feed(rpc, "rating", "cases")
            assert duplicates([e["id"] for e in evaluations]) == {}
            assert len(evaluations) == len(stored)
            assert len(cases) == len(bad)
            assert {c["state"] for c in cases} == {"closed"}

            def total() -> dict[str, Any]:
                figures: dict[str, Any] = rpc.rating.stats({}, None)["total"]
                return figures

            figures = settled(total, 10)
            seen = {k: figures[k] for k in ("total", "bad", "cases", "cases_closed")}
            want = {
                "total": len(evaluations),
                "bad": len(bad),
                "cases": len(cases),
                "cases_closed": len(cases),
            }
            assert seen == want, f"stats {seen}; stored evaluations and cases {want}"
            levels = Counter(e["level"] for e in evaluations)
            assert {k: v for k, v in figures["counts"].items() if v} == dict(levels)
            windows = rpc.rating.stats({}, "window")["groups"]
            assert sum(g["total"] for g in windows) == len(evaluations)


def close_case(rpc: Any, case_id: str, handler: str) -> None:
    """A bad rating's case from opened to closed, one version per step."""
    steps: tuple[tuple[str, dict[str, Any]], ...] = (
        ("assign_case", {"handler": handler, "by": "chief"}),
        ("record_callback", {"by": handler, "contacted": True, "note": "已回访"}),
        ("classify_case", {"by": handler, "classification": "explain", "note": "解释说明"}),
        ("record_feedback", {"by": handler, "method": "phone", "content": "已告知"}),
    )
    for method, payload in steps:
        getattr(rpc.rating, method)({"case_id": case_id, **payload})


# --- sync -------------------------------------------------------------------------------

SYNC_KEY = "replica-test-sync-key-0123456789"
PACE = {
    "batch_size": 20,
    "rpc_timeout": 10,
    "local_timeout": 10,
    "push_interval": 0.2,
    "backoff_base": 0.2,
    "backoff_cap": 2,
    "reconcile_interval": 3600,
    "status_interval": 1,
}
UPWARD = [{"service": "rating", "feed": "evaluations"}, {"service": "rating", "feed": "cases"}]
WAVES = 4
PER_WAVE = 30


def test_two_sync_processes_push_every_record_once(vhosts: VhostFactory, tmp_path: Path) -> None:
    town_vhost, village_vhost = vhosts("replica-town"), vhosts("replica-village")
    calendar: dict[str, Any] = calendar_override(tmp_path)
    salt: dict[str, Any] = {"privacy_salt": "replica-test-salt-rating"}
    town_sync: dict[str, Any] = {**PACE, "children": {VILLAGE: [SYNC_KEY]}}
    village_sync: dict[str, Any] = {
        **PACE,
        "key": SYNC_KEY,
        "upward": UPWARD,
        "pull_catalog": False,
        "pull_outcomes": False,
    }
    town_data, village_data = tmp_path / "town", tmp_path / "village"
    town = [
        Replica(tmp_path, "rating", 0, config(town_vhost, town_data, TOWN, RATING=salt)),
        Replica(tmp_path, "sync", 0, config(town_vhost, town_data, TOWN, SYNC=town_sync)),
    ]
    syncs = pair(
        tmp_path,
        "sync",
        config(village_vhost, village_data, VILLAGE, town_vhost, SYNC=village_sync),
    )
    village_rating = Replica(
        tmp_path,
        "rating",
        0,
        config(village_vhost, village_data, VILLAGE, town_vhost, RATING=salt, **calendar),
    )
    at_village, at_town = rpc_factory(village_vhost), rpc_factory(town_vhost)
    with running([*town, village_rating, *syncs]):
        stored: list[dict[str, Any]] = []
        with at_village() as rpc:
            for wave in range(WAVES):  # records keep coming while both replicas push
                replies = [
                    rpc.rating.submit_evaluation.call_async(rating(wave, i, PER_WAVE))
                    for i in range(PER_WAVE)
                ]
                stored += [reply.result() for reply in replies]
                # operators' "push now" on both replicas at once, beside their own timers
                pushes = [rpc.sync.push_now.call_async() for _ in range(2 * REPLICAS)]
                for push in pushes:
                    push.result()
            top = {
                name: int(rpc.rating.feed(name, 0, 1)["high_water"])
                for name in ("evaluations", "cases")
            }
            versions = {e["id"]: e["version"] for e in feed(rpc, "rating", "evaluations")}
        bad = sum(1 for e in stored if e["bad"])

        def arrived() -> bool:
            with at_town() as rpc:
                return len(feed(rpc, "rating", "evaluations")) >= len(stored)

        detail = lambda: "\n".join(r.tail() for r in [*town, *syncs])  # noqa: E731
        wait_for(arrived, 45, "every evaluation at the town", detail)
        with at_town() as rpc:
            wait_for(lambda: len(feed(rpc, "rating", "cases")) >= bad, 20, "the cases", detail)
            time.sleep(2)  # any late duplicate push lands now
            evaluations = feed(rpc, "rating", "evaluations")
            assert duplicates([e["id"] for e in evaluations]) == {}
            assert sorted(e["id"] for e in evaluations) == sorted(e["id"] for e in stored)
            assert {e["id"]: e["version"] for e in evaluations} == versions
            figures = rpc.rating.stats({"site_code": VILLAGE}, None)["total"]
            assert (figures["total"], figures["bad"]) == (len(stored), bad)
            children = rpc.sync.status()["children"][VILLAGE]
        for name, seq in top.items():
            assert children[f"rating.{name}"]["high_water"] == seq, children
        # the checkpoint (one, in the shared store) at the head of each feed, as either
        # replica reports it
        with at_village() as rpc:
            for _ in syncs:
                status = rpc.sync.status()
                for name, seq in top.items():
                    up = status["up"][f"rating.{name}"]
                    assert (up["checkpoint"], up["backlog"]) == (seq, 0), up
        # every version of every record sent up once at most (by one replica or the other)
        # and received once at most: between one push per record and one per version
        with at_village() as rpc:
            pushed = {
                name: (len(docs), sum(d["version"] for d in docs))
                for name in ("evaluations", "cases")
                if (docs := feed(rpc, "rating", name))
            }
        for name, (least, most) in pushed.items():
            label = {"feed": f"rating.{name}"}
            sent = [
                metric_sum(r.metrics(), "hall_sync_records_total", direction="up", **label)
                for r in syncs
            ]
            received = metric_sum(
                town[1].metrics(), "hall_sync_records_total", direction="in", **label
            )
            counts = f"{least} records in {most} versions; sent {sent}, received {received}"
            assert least <= sum(sent) <= most, f"rating.{name}: {counts}"
            assert least <= received <= most, f"rating.{name}: {counts}"
