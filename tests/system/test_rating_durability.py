"""Stopping and restarting rating while tickets keep completing loses no invitation and no
evaluation: real ``nameko run`` processes on a real RabbitMQ.

The invitation source is ``TicketSource`` below, a minimal real ``SiteService`` named
``queue`` that publishes the ``evaluation_invitations`` feed exactly as the contract says
(records in its own store, plus the ``evaluation_invited`` hint). It is a test source, run
with ``nameko run tests.system.test_rating_durability:TicketSource``.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml
from nameko.events import EventDispatcher
from nameko.rpc import rpc

from bench.support import free_port, stop_process
from services.common import service as base
from services.common.access import BASE_ACCESS, OPERATOR, rule
from tests.conftest import VhostFactory, access_key_file, operator_rpc

pytestmark = pytest.mark.system

ROOT = Path(__file__).resolve().parents[2]
NAMEKO = str(Path(sys.executable).with_name("nameko"))
SITE = "421302101"
PHONE = "13698765432"


ACCESS = {**BASE_ACCESS, "complete": rule(OPERATOR)}


class TicketSource(base.SiteService):
    """Test source publishing evaluation invitations the way queue does (contract)."""

    name = "queue"
    feeds = ("evaluation_invitations",)
    access = ACCESS
    dispatch = EventDispatcher()

    @rpc
    def complete(self, window: str) -> str:
        ticket = f"{self.runtime.identity.code}-{uuid.uuid4().hex}"
        now = datetime.now(UTC).isoformat().replace("+00:00", "Z")
        self.runtime.store.collection("evaluation_invitations").insert(
            {
                "id": f"ticket:{ticket}",
                "schema": 1,
                "service_ref": {"kind": "ticket", "id": ticket},
                "site_code": SITE,
                "window": window,
                "staff_id": f"staff-{window}",
                "matter_code": "M1",
                "department": "民政办",
                "service_channel": "window",
                "service_ended_at": now,
                "created_at": now,
            }
        )
        self.dispatch("evaluation_invited", {"id": f"ticket:{ticket}"})
        return ticket


def config(vhost: str, data: Path, port: int, **extra: object) -> dict[str, Any]:
    return {
        "AMQP_URI": f"pyamqp://guest:guest@127.0.0.1:5672/{vhost}",
        "WEB_SERVER_ADDRESS": f"127.0.0.1:{port}",
        "SITE": {"code": SITE, "tier": "town", "name": "测试镇便民服务中心", "upstream": ""},
        "UPSTREAM_AMQP_URI": "",
        "STORE_URI": f"sqlite:///{data}",
        "ACCESS_KEY_FILE": str(access_key_file()),
        "LOGGING": {
            "version": 1,
            "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
            "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
            "root": {"level": "DEBUG", "handlers": ["console"]},
        },
        **extra,
    }


class Process:
    def __init__(self, tmp: Path, name: str, target: str, cfg: dict[str, Any]) -> None:
        self.path = tmp / f"{name}.yaml"
        self.path.write_text(yaml.safe_dump(cfg, allow_unicode=True))
        self.log = tmp / f"{name}.log"
        self.target = target
        self.port = int(cfg["WEB_SERVER_ADDRESS"].rsplit(":", 1)[1])
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        env = {**os.environ, "PYTHONWARNINGS": "ignore::Warning:nameko.cli.commands"}
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [NAMEKO, "run", "--config", str(self.path), self.target],
                cwd=ROOT,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, self.log.read_text()[-2000:]
            try:
                if requests.get(f"http://127.0.0.1:{self.port}/health", timeout=1).ok:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.2)
        raise AssertionError(f"{self.target} did not become healthy")

    def stop(self) -> None:
        if self.proc:
            stop_process(self.proc, timeout=20)


def submit(rating: Any, ticket: str, **extra: object) -> Any:
    """``rating.submit_evaluation`` called asynchronously: its reply (``.result()``)."""
    return rating.submit_evaluation.call_async(
        {
            "invitation_id": f"ticket:{ticket}",
            "service_ref": {"kind": "ticket"},
            "channel": "pad",
            "level": "satisfied",
            **extra,
        }
    )


def test_restart_loses_no_invitation_and_no_evaluation(
    vhost_factory: VhostFactory, tmp_path: Path
) -> None:

    import services.common.remote  # noqa: F401  typed errors over RPC
    from services.common.errors import NotFound

    vhost = vhost_factory("rating-durable")
    source = Process(
        tmp_path,
        "source",
        "tests.system.test_rating_durability:TicketSource",
        config(vhost, tmp_path / "source", free_port()),
    )
    rating = Process(
        tmp_path,
        "rating",
        "services.rating.service",
        config(
            vhost, tmp_path / "rating", free_port(), RATING={"privacy_salt": "durability-test-salt"}
        ),
    )
    source.start()
    rating.start()
    try:
        with operator_rpc(vhost, timeout=60) as cluster:
            tickets = [cluster.queue.complete(str(n % 4)) for n in range(10)]
            replies = [(ticket, submit(cluster.rating, ticket)) for ticket in tickets[:4]]
            for _, reply in replies:
                reply.result()
            real_name = tickets[0]

            rating.stop()  # graceful stop while the hall keeps working
            tickets += [cluster.queue.complete(str(n % 4)) for n in range(10)]
            # evaluations sent while rating is down wait in its durable RPC queue
            during = [(t, submit(cluster.rating, t)) for t in tickets[4:8]]
            rating.start()
            tickets += [cluster.queue.complete(str(n % 4)) for n in range(10)]
            for ticket, reply in during:
                assert reply.result()["service_ref"]["id"] == ticket
            replies += during

            # every invitation arrives: each remaining ticket can be rated by its invitation
            remaining = tickets[8:]
            deadline = time.monotonic() + 20
            while remaining and time.monotonic() < deadline:
                still: list[str] = []
                for ticket in remaining:
                    extra: dict[str, object] = {}
                    if ticket == tickets[8]:
                        extra = {
                            "level": "dissatisfied",
                            "reasons": {"tags": ["慢"]},
                            "rater": {"real_name": True, "name": "赵钱孙", "phone": PHONE},
                        }
                    try:
                        submit(cluster.rating, ticket, **extra).result()
                    except NotFound:
                        still.append(ticket)
                remaining = still
                if remaining:
                    time.sleep(0.5)
            assert remaining == [], f"{len(remaining)} invitations never arrived"

            rating.stop()  # and once more: everything stored survives a second restart
            rating.start()
            stats = cluster.rating.stats({}, None)["total"]
            assert stats["total"] == len(tickets) == 30
            assert stats["bad"] == 1
            assert stats["cases"] == 1
            ids: set[str] = set()
            since = 0
            while True:
                page = cluster.rating.feed("evaluations", since, 500)
                if not page["items"]:
                    break
                ids |= {d["service_ref"]["id"] for d in page["items"]}
                since = page["last_seq"]
            assert ids == set(tickets)
            assert real_name in ids
    finally:
        rating.stop()
        source.stop()
    log = rating.log.read_text()
    assert "rating" in log
    assert PHONE not in log
    assert "赵钱孙" not in log
