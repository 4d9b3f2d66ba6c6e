"""The boundary, fuzzed (issue 13, item 4): every RPC of every service, found by
introspection, is called with Hypothesis-made arguments (junk and plausible values, too many
or too few of them, unknown keywords) on real containers and RabbitMQ. A refusal must be a
typed error (``InvalidInput`` naming its field, ``NotFound``, ``Conflict``, ``Forbidden``, …),
never ``InternalError``, a ``RemoteError`` or a timeout, and must change no store: every
SQLite table of the site (row count, ``max(seq)``) is the same before and after it.

Each service runs at its own site (own vhost, own data directory), started once for all its
RPCs; sync's site also runs matters, rating and queue, and registers a child key, so a
signed ``sync.ingest`` gets past the signature check.

``HALL_FUZZ_EXAMPLES`` sets the examples per RPC (80 by default, to keep the whole suite near
15 minutes on 2 cores; e.g. 2000 for a long run);
``HALL_FUZZ_RANDOM=1`` draws new examples instead of the fixed (derandomized) CI ones;
``HALL_FUZZ_REPORT=<file>`` appends every failure there as a JSON line and lets the run go
on, to list all of them instead of the first one per RPC; ``HALL_FUZZ_ONLY=<rpc>`` fuzzes
that RPC alone (a call that kills a service stops its test: every later RPC is reported
"not fuzzed", so run them one by one to look further).
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable, Iterator
from datetime import date
from pathlib import Path
from typing import Any

import eventlet
import eventlet.event
import pytest
import yaml
from hypothesis import HealthCheck, Phase, given, settings
from nameko.containers import ServiceContainer
from nameko.exceptions import RpcTimeout

from services.common import remote  # noqa: F401  (typed errors come back typed)
from services.common.errors import HallError
from services.gateway.service import GatewayService
from services.matters.service import MattersService
from services.queue.service import QueueService
from services.rating.service import RatingService
from services.sync.service import SyncService
from tests.conftest import VhostFactory, operator_rpc, site_config
from tests.service import fuzzing
from tests.service.helpers import SEED, resident_id

pytestmark = pytest.mark.service

EXAMPLES = int(os.environ.get("HALL_FUZZ_EXAMPLES", "80"))
RANDOM = os.environ.get("HALL_FUZZ_RANDOM", "") == "1"
REPORT = os.environ.get("HALL_FUZZ_REPORT", "")
CALL_TIMEOUT = 10.0  # seconds; a call that takes longer is a failure (a stalled entrypoint)

SERVICES: dict[str, type] = {
    "matters": MattersService,
    "queue": QueueService,
    "rating": RatingService,
    "sync": SyncService,
    "gateway": GatewayService,
}
COUNTY, TOWN = "421302", "421302101"
TOWN_KEY = "t" * 32
QUIET = 3600  # seconds: timers that would write while a refused call is watched
SECTIONS: dict[str, dict[str, Any]] = {
    "MATTERS": {"seed_catalog": SEED, "sweep_interval_seconds": QUIET},
    "RATING": {"privacy_salt": "boundary-fuzz-salt-0001", "sweep_interval_seconds": QUIET},
    "QUEUE": {
        "privacy_salt": "boundary-fuzz-salt-0002",
        "sweep_seconds": QUIET,
        "figures_seconds": QUIET,
        "categories": [
            {"prefix": "A", "name": "综合受理", "hours": ["00:00-23:59"]},
            {"prefix": "B", "name": "不动产", "hours": ["00:00-23:59"]},
        ],
        "windows": [{"number": str(n), "categories": {"A": 1, "B": 1}} for n in (1, 2, 3)],
        "staff": [{"id": f"S{n}", "name": f"员工{n}", "windows": [str(n)]} for n in (1, 2, 3)],
    },
    "SYNC": {
        "children": {TOWN: [TOWN_KEY]},
        "push_interval": QUIET,
        "pull_interval": QUIET,
        "reconcile_interval": QUIET,
        "rpc_timeout": 5,
    },
}
# The services each site runs: the one under test, and those sync calls.
COMPANIONS = {"sync": ("matters", "rating", "queue", "sync")}


def rpcs() -> list[tuple[str, str]]:
    return [(s, m) for s, cls in SERVICES.items() for m in sorted(fuzzing.rpc_methods(cls))]


def test_every_rpc_can_be_called() -> None:
    """Discovery finds the inherited RPCs, and every RPC is one this suite can call."""
    for cls in SERVICES.values():
        found = fuzzing.rpc_methods(cls)
        assert {"site_info", "feed", "apply_replicated"} <= set(found), cls.__name__
        assert fuzzing.uncallable(cls) == []


# --- the sites ------------------------------------------------------------------------------


def _sign(payload: dict[str, Any]) -> dict[str, Any]:
    """Sign as the town would (NaN and lone surrogates included: the attack is the point)."""
    import hashlib
    import hmac

    body = {k: v for k, v in payload.items() if k != "signature"}
    raw = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    digest = hmac.new(TOWN_KEY.encode(), raw.encode("utf-8", "surrogatepass"), hashlib.sha256)
    return {**payload, "child": TOWN, "signature": digest.hexdigest()}


def _common_values(plausible: fuzzing.Plausible, service: str) -> None:
    today = date.today().isoformat()  # noqa: DTZ011  (the site's own day is what matters)
    cls = SERVICES[service]
    plausible.add("name", *getattr(cls, "feeds", ()), *getattr(cls, "replicated_feeds", ()))
    plausible.add("id", "421302:2026-11-23:A", "case:421302:1", "ev:ticket:421302:A001")
    plausible.add("code", "421302", TOWN, "0700018004421302001")
    plausible.add("date", today, "2026-11-23", "2026-02-30", "23/11/2026")
    plausible.add("window", "1", "2", "9", "01")
    plausible.add("staff_id", "S1", "S2", "nobody")
    plausible.add("by", "S1", "管理员")
    plausible.add("category", "A", "B", "Z")
    plausible.add(
        "phone", "13812345678", "138 1234 5678", "+8613812345678", "１３８１２３４５６７８"
    )
    plausible.add("slot", "09:00", "09:00-09:30", "25:00")
    plausible.add("month", "2026-11", "2026-13", "2026-1")
    plausible.add("period", "2026-11", "2026-Q4", "2026", "2026-W48")
    plausible.add("reason", "测试理由", " ")
    plausible.add("feed", "rating.evaluations", "matters.application_summaries", "x.y")
    plausible.add("child", TOWN)
    plausible.add("upstream", COUNTY)
    plausible.add("service", "rating", "matters", "queue", "sync")
    plausible.add("feed", "evaluations", "cases", "application_summaries", "daily_figures")
    plausible.add(
        "records",
        [{"id": f"{TOWN}:2026-11-23:A", "site_code": TOWN, "version": 1}],
        [{"id": f"{COUNTY}:2026-11-23:A", "site_code": TOWN, "version": 10**9}],
        [{"id": "x", "site_code": TOWN, "version": 2**63}],
        [{"id": "y", "site_code": TOWN, "version": 1, "score": math.nan}],
        [{"id": "\ud800", "site_code": TOWN, "version": 1}],
    )


def _seed(service: str, proxy: Any, plausible: fuzzing.Plausible) -> None:
    """Make a few real records, so ids that exist are among the values tried."""
    attempts: list[Callable[[], Any]] = []
    if service == "matters":
        catalog = yaml.safe_load(Path(SEED).read_text(encoding="utf-8"))["matters"]
        plausible.add("code", *[m["code"] for m in catalog[:6]])
        code = catalog[0]["code"]
        person = {"kind": "person", "name": "李四", "id_number": resident_id("42130219851212567")}

        def submit() -> Any:
            matter = proxy.matters.get_matter(code)
            needed = [{"name": m["name"]} for m in matter["materials"] if m["required"]]
            application = {"matter_code": code, "applicant": person, "channel": "window"}
            return proxy.matters.submit_application({**application, "materials": needed})

        attempts += [submit, submit]
    elif service == "queue":
        attempts += [lambda: proxy.queue.take_ticket("A"), lambda: proxy.queue.take_ticket("B")]
    elif service == "rating":
        evaluation = {"service_ref": {"kind": "online"}, "channel": "pc"}
        attempts += [
            lambda: proxy.rating.submit_evaluation({**evaluation, "level": "very_dissatisfied"}),
            lambda: proxy.rating.submit_evaluation({**evaluation, "level": "satisfied"}),
            lambda: proxy.rating.list_cases(),
        ]
    for attempt in attempts:
        try:
            fuzzing.harvest(plausible, attempt())
        except HallError:
            continue


class ContainerKilled(Exception):
    """A call killed a service container (it would exit the ``nameko run`` process)."""


class Site:
    """One site: its containers (restarted when a call kills one), an RPC proxy, a read-only
    view of its stores, and the values that look real there."""

    def __init__(
        self,
        service: str,
        new_vhost: VhostFactory,
        new_data: Callable[[], Path],
        plausible: fuzzing.Plausible,
    ) -> None:
        self.service, self.new_vhost, self.plausible = service, new_vhost, plausible
        self.new_data = new_data
        self.containers: list[ServiceContainer] = []
        self.killer = ""
        self.start()

    def start(self) -> None:
        """Containers on a new vhost with new stores, and a proxy to them."""
        names = COMPANIONS.get(self.service, (self.service,))
        sections = {s.upper(): SECTIONS.get(s.upper(), {}) for s in names}  # GATEWAY: all defaults
        vhost, data = self.new_vhost(f"fuzz-{self.service}"), self.new_data()
        self.config = {**site_config(vhost, data, COUNTY, "county"), **sections}
        self.watch = fuzzing.StoreWatch(data)
        self.boot()
        self.connect()

    def connect(self) -> None:
        uri = self.config["AMQP_URI"]
        self.runner = operator_rpc(str(uri), timeout=CALL_TIMEOUT)
        self.proxy = self.runner.start()

    def boot(self) -> None:
        self.dead = eventlet.event.Event()
        for name in COMPANIONS.get(self.service, (self.service,)):
            container = ServiceContainer(SERVICES[name], self.config)
            container.start()
            self.containers.append(container)
            eventlet.spawn(self._watch, container, self.dead)

    @staticmethod
    def _watch(container: ServiceContainer, dead: eventlet.event.Event) -> None:
        try:
            container.wait()
        except Exception as exc:  # noqa: BLE001  (what killed it is the news)
            if not dead.ready():
                dead.send(exc)

    def stop_containers(self) -> None:
        for thread in [eventlet.spawn(c.kill) for c in self.containers]:
            thread.wait()
        self.containers = []

    def invoke(self, method: str) -> fuzzing.Invoke:
        def call(c: fuzzing.Call) -> Any:
            if self.dead.ready():
                # Not restarted: a container started again in this process after a kill
                # does not answer (and in production systemd restarts the process into the
                # same request, still unacknowledged). Run one RPC alone to look further.
                raise ContainerKilled(f"the site was killed earlier by {self.killer}")
            try:
                return getattr(getattr(self.proxy, self.service), method)(*c.args, **c.kwargs)
            except RpcTimeout:
                if self.dead.ready():  # no answer because the call killed the service
                    self.killer = f"{self.service}.{method}{c!r}"
                    cause = self.dead.wait()
                    raise ContainerKilled(f"{type(cause).__name__}: {cause}") from None
                raise

        return call

    def settle(self, timeout: float = 15.0, quiet: float = 2.5) -> None:
        """Wait until the store has not moved for ``quiet`` seconds (start-up work, the first
        run of each timer, seeding, hints)."""
        deadline = time.monotonic() + timeout
        last, since = self.watch.snapshot(), time.monotonic()
        while time.monotonic() < deadline and time.monotonic() - since < quiet:
            eventlet.sleep(0.25)
            now = self.watch.snapshot()
            if now != last:
                last, since = now, time.monotonic()

    def close(self) -> None:
        self.runner.stop()
        self.watch.close()
        self.stop_containers()


@pytest.fixture
def site_of(
    vhost_factory: VhostFactory, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Callable[[str], Site]]:
    """``site_of(service)``: a new site running that service, stopped after the test.

    One test per service, its RPCs fuzzed in turn on one site: containers kept across
    pytest tests stopped consuming after a few tests (one managed thread gone)."""
    started: list[Site] = []

    def make(service: str) -> Site:
        def data() -> Path:
            return tmp_path_factory.mktemp(f"fuzz-{service}")

        plausible = fuzzing.Plausible(fuzzing.schemas_of(service))
        plausible.finish = _sign if service == "sync" else None
        _common_values(plausible, service)
        site = Site(service, vhost_factory, data, plausible)
        started.append(site)
        _seed(service, site.proxy, plausible)
        site.settle()
        return site

    yield make
    for site in started:
        site.close()


# --- the property ---------------------------------------------------------------------------


def _report(service: str, method: str, call: fuzzing.Call, problem: str) -> None:
    with open(REPORT, "a", encoding="utf-8") as out:
        line = {"service": service, "rpc": method, "call": repr(call), "problem": problem}
        out.write(json.dumps(line, ensure_ascii=False) + "\n")


def _fuzz(site: Site, method: str) -> list[str]:
    """Run the property over ``method``; the problems found (only the first, unless
    ``HALL_FUZZ_REPORT`` is set, which writes each of them there)."""
    service = site.service
    signature = fuzzing.rpc_methods(SERVICES[service])[method]
    invoke = site.invoke(method)
    found: list[str] = []

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        derandomize=not RANDOM,
        database=None,
        # No shrinking: a call that kills the site makes every later one fail alike.
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
        report_multiple_bugs=False,
        print_blob=False,
    )
    @given(call=fuzzing.calls(site.plausible, signature))
    def refused_cleanly(call: fuzzing.Call) -> None:
        if (found and not REPORT) or (found and site.dead.ready()):
            return
        before = site.watch.snapshot()
        _, error = fuzzing.outcome(invoke, call)
        if error is None:
            return  # accepted: the store may change
        problem = fuzzing.refusal_problem(error)
        if problem is None:
            moved = fuzzing.changes(before, site.watch.snapshot())
            problem = f"refused ({type(error).__name__}), store changed: {moved}" if moved else None
        if problem:
            found.append(f"{service}.{method}{call!r}: {problem}")
            if REPORT:
                _report(service, method, call, problem)

    refused_cleanly()
    return found


@pytest.mark.timeout(1800)
@pytest.mark.parametrize("service", list(SERVICES))
def test_refusals_are_typed_and_change_nothing(
    site_of: Callable[[str], Site], service: str
) -> None:
    """Every RPC of ``service`` (``HALL_FUZZ_ONLY=<rpc>`` for one of them), in turn."""
    site = site_of(service)
    only = os.environ.get("HALL_FUZZ_ONLY", "")
    problems: list[str] = []
    for method in sorted(fuzzing.rpc_methods(SERVICES[service])):
        if only and method != only:
            continue
        if site.dead.ready():
            problems.append(f"{service}.{method}: not fuzzed, the site was killed by {site.killer}")
            continue
        problems += _fuzz(site, method)
    assert not problems, "\n".join(problems)
