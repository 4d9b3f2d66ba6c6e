"""The queue service in a real Nameko container against the real RabbitMQ: RPCs with typed
errors, the invitation feed and its event hint, the timer's repair after a crash, the board
over HTTP (JSON, long-poll, server-sent events), metrics, and many concurrent clients."""

import json
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, ClassVar

import eventlet
import pytest
import requests
from nameko.containers import ServiceContainer
from nameko.events import event_handler
from nameko.standalone.rpc import ServiceRpcProxy

from services.common.config import ConfigError
from services.common.errors import Conflict, Forbidden, InternalError, InvalidInput, NotFound
from services.queue.app import QueueApp
from services.queue.provider import QueueProvider
from services.queue.service import QueueService
from services.queue.settings import OPERATION_KEYS
from tests.conftest import amqp_uri, free_port, operator_context, site_config
from tests.service.helpers import wait_for

pytestmark = pytest.mark.service

START = datetime(2026, 11, 23, 2, 0, tzinfo=UTC)  # Monday 10:00 in Shanghai
NOW = [START]

Site = dict[str, str]  # the broker URI and the HTTP base of a started queue
Boot = Callable[..., Site]
Start = Callable[[type, dict[str, object]], Any]  # tests/service/conftest.py: start
VhostFactory = Callable[[str], str]  # tests/conftest.py: vhost_factory

SECTION: dict[str, Any] = {
    "privacy_salt": "service-test-salt",
    "sweep_seconds": 1,
    "figures_seconds": 1,
    "board_poll_seconds": 5,
    "board_heartbeat_seconds": 0.5,
    "board_stream_seconds": 3,
    "max_streams": 3,
    "no_show_after_calls": 2,
    "recall_cooldown_seconds": 0,
    "categories": [
        {"prefix": "A", "name": "综合受理", "department": "政务服务局", "hours": ["08:30-17:30"]},
        {"prefix": "B", "name": "不动产", "hours": ["08:30-17:30"]},
    ],
    "windows": [
        {"number": str(n), "categories": {"A": 2, "B": 1}, "kind": "comprehensive"}
        for n in range(1, 9)
    ],
    "staff": [{"id": f"S{n}", "name": f"员工{n}", "windows": [str(n)]} for n in range(1, 9)],
}


class FixedClockHall(QueueProvider):
    clock = staticmethod(lambda: NOW[0])


class QueueAtTen(QueueService):
    """The real service, with the clock held at a working Monday morning."""

    app = FixedClockHall()


class CrashOnceHall(QueueApp):
    """Dies (as a killed process would) right after the completion is stored, once."""

    crashed = False

    def invite(self, ticket: Mapping[str, Any]) -> bool:
        if not CrashOnceHall.crashed:
            CrashOnceHall.crashed = True
            raise RuntimeError("模拟：办结已写入，邀请尚未写入时进程崩溃")
        return super().invite(ticket)


class CrashingProvider(FixedClockHall):
    app_class = CrashOnceHall


class QueueThatCrashes(QueueService):
    app = CrashingProvider()


class Listener:
    name = "listener"
    received: ClassVar[list[dict[str, Any]]] = []

    @event_handler("queue", "evaluation_invited")
    def on_invited(self, payload: dict[str, Any]) -> None:
        Listener.received.append(payload)


@pytest.fixture
def site(start: Start, vhost_factory: VhostFactory, tmp_path: Path) -> Boot:
    NOW[0] = START
    Listener.received = []
    vhost = vhost_factory("queue")
    port = free_port()
    config = site_config(vhost, tmp_path, "421302", "county", port=port, QUEUE=SECTION)
    start(Listener, config)

    def boot(cls: type = QueueAtTen) -> Site:
        start(cls, config)
        return {"uri": amqp_uri(vhost), "http": f"http://127.0.0.1:{port}"}

    return boot


def rpc(site: Site, timeout: float = 20) -> Any:
    return ServiceRpcProxy(
        "queue", {"AMQP_URI": site["uri"]}, timeout=timeout, context_data=operator_context()
    )


def test_ticket_life_over_rpc_with_feed_event_and_typed_errors(site: Boot) -> None:
    s = site()
    with rpc(s) as queue:
        assert queue.configuration()["config_version"] == 1
        queue.open_window("1", "S1")
        taken = queue.take_ticket("A", "wechat", "13812345678", None, "0700000100")
        assert taken["number"] == "A001"
        assert taken["phone_masked"] == "138****5678"
        assert "phone_hash" not in taken
        assert taken["people_ahead"] == 0
        NOW[0] += timedelta(minutes=12)
        called = queue.call_next("1")
        assert called["announcement"] == "请A001号到1号窗口办理"
        queue.start_service(called["id"], "1")
        NOW[0] += timedelta(minutes=8)
        done = queue.complete(called["id"], "accepted", "APP-1", None, "1")
        assert done["state"] == "completed"
        page = queue.feed("evaluation_invitations", 0, 10)
        (invitation,) = page["items"]
        assert invitation["id"] == f"ticket:{called['id']}"
        assert invitation["window"] == "1"
        assert invitation["staff_id"] == "S1"
        assert invitation["matter_code"] == "0700000100"
        assert invitation["service_channel"] == "window"
        assert [e["action"] for e in queue.ticket_history(called["id"])] == [
            "take",
            "call",
            "start",
            "complete",
        ]
        # typed errors cross the wire
        with pytest.raises(InvalidInput) as caught:
            queue.take_ticket("Z")
        assert "category" in caught.value.fields
        with pytest.raises(InvalidInput) as caught:
            queue.take_ticket("A", "fax")
        assert caught.value.fields["channel"][0].startswith("应为以下之一：kiosk")
        with pytest.raises(Forbidden):
            queue.sign_in("2", "S1")
        with pytest.raises(NotFound):
            queue.ticket("421302:2026-11-23:A999")
        queue.pause_window("1", "午休")
        queue.take_ticket("B")
        with pytest.raises(Conflict, match="暂停"):
            queue.call_next("1")
        figures = wait_for(lambda: queue.feed("daily_figures", 0, 10)["items"])
        by_category = {f["category"]: f for f in figures}
        assert by_category["A"]["served"] == 1
        assert by_category["A"]["wait_p50_s"] == 720 + 15
    wait_for(lambda: Listener.received)
    assert Listener.received == [{"id": f"ticket:{called['id']}"}]


def test_crash_after_completion_is_repaired_by_the_timer(site: Boot) -> None:
    CrashOnceHall.crashed = False
    s = site(QueueThatCrashes)
    with rpc(s) as queue:
        queue.open_window("2", "S2")
        ticket = queue.take_ticket("B")
        queue.call_next("2")
        with pytest.raises(InternalError) as crashed:
            queue.complete(ticket["id"])
        # The caller learns it failed, not why: the cause is logged and counted at the site.
        assert "模拟" not in str(crashed.value)
        assert "RuntimeError" not in str(crashed.value)
        metrics = requests.get(f"{s['http']}/metrics", timeout=5).text
        assert 'method="complete",service="queue",site="421302"} 1.0' in metrics
        assert 'hall_entrypoint_errors_total{error="RuntimeError",kind="Rpc"' in metrics
        assert queue.ticket(ticket["id"])["state"] == "completed"
        items = wait_for(lambda: queue.feed("evaluation_invitations", 0, 10)["items"])
        assert [i["id"] for i in items] == [f"ticket:{ticket['id']}"]
    wait_for(lambda: Listener.received)
    assert Listener.received[0] == {"id": f"ticket:{ticket['id']}"}


def test_board_json_long_poll_stream_and_metrics(site: Boot) -> None:
    s = site()
    with rpc(s) as queue:
        queue.open_window("3", "S3")
        first = requests.get(f"{s['http']}/board", timeout=5).json()
        assert first["waiting"][0] == {
            "category": "A",
            "name": "综合受理",
            "waiting": 0,
            "estimate": {"expected_seconds": 0, "low_minutes": 0, "high_minutes": 0},
        }

        def later() -> None:
            eventlet.sleep(0.5)
            with rpc(s) as other:
                other.take_ticket("A")
                other.call_next("3")

        thread = eventlet.spawn(later)
        started = time.monotonic()
        polled = requests.get(f"{s['http']}/board?after={first['version']}", timeout=10).json()
        assert 0.3 < time.monotonic() - started < 5
        assert polled["version"] > first["version"]
        thread.wait()
        board = queue.board()
        assert board["announcement"] == "请A001号到3号窗口办理"
        unchanged = requests.get(f"{s['http']}/board?after={board['version']}", timeout=10)
        assert unchanged.json()["version"] == board["version"]  # poll time ran out
        bad = requests.get(f"{s['http']}/board?after=x", timeout=5)
        assert bad.status_code == 400
        assert bad.json()["fields"] == {"after": ["应为整数（上次看板的 version）"]}

        stream = requests.get(f"{s['http']}/board/stream", stream=True, timeout=10)
        assert stream.headers["Content-Type"].startswith("text/event-stream")
        lines: list[str] = []

        def read() -> None:
            lines.extend(stream.iter_lines(decode_unicode=True))

        reader = eventlet.spawn(read)
        eventlet.sleep(1.2)
        queue.take_ticket("B")
        reader.wait()  # the stream ends by itself after board_stream_seconds
        events = [json.loads(line[6:]) for line in lines if line.startswith('data: {"')]
        assert events[0]["announcement"] == "请A001号到3号窗口办理"
        assert events[-1]["waiting"][1]["waiting"] == 1  # the B ticket taken meanwhile
        assert ": heartbeat" in lines
        assert "event: bye" in lines

        metrics = requests.get(f"{s['http']}/metrics", timeout=5).text
        assert 'hall_queue_waiting{category="B",service="queue",site="421302"} 1.0' in metrics
        assert 'hall_queue_wait_seconds_count{category="A",service="queue",site="421302"}' in (
            metrics
        )
        assert "13812345678" not in metrics


def test_board_connections_are_capped_per_process_and_freed_when_closed(site: Boot) -> None:
    """``QUEUE.max_streams`` board streams and long-polls at once (3 here): one more is
    answered 503 with a Chinese JSON error while the first ones keep streaming; closing
    them frees their places at once (long before their lifetime ends)."""
    s = site()
    url = f"{s['http']}/board/stream"
    opened = time.monotonic()
    streams = [requests.get(url, stream=True, timeout=10) for _ in range(3)]
    assert [r.status_code for r in streams] == [200, 200, 200]
    for late in (url, f"{s['http']}/board?after=0"):  # version 0: a long-poll would wait
        refused = requests.get(late, timeout=5)
        assert refused.status_code == 503
        body = refused.json()
        assert body["error"] == "too_many_viewers"
        assert "叫号屏连接已满" in body["message"]
    assert requests.get(f"{s['http']}/board", timeout=5).status_code == 200  # plain JSON
    for stream in streams:  # the first ones keep working
        lines = stream.iter_lines(decode_unicode=True)
        assert next(lines) == "retry: 3000"
        assert next(line for line in lines if line) == "event: board"
    for stream in streams:
        stream.close()

    def admitted() -> bool:
        with requests.get(url, stream=True, timeout=5) as probe:
            return probe.status_code == 200

    wait_for(admitted, timeout=2)
    assert time.monotonic() - opened < SECTION["board_stream_seconds"]

    def all_free() -> bool:  # a closed stream is noticed at its next write (a heartbeat)
        metrics = requests.get(f"{s['http']}/metrics", timeout=5).text
        return 'hall_queue_board_viewers{service="queue",site="421302"} 0.0' in metrics

    wait_for(all_free, timeout=3)
    for bad in ("٣", "+5", " 5", "1_0", "9" * 17, "-1"):
        refused = requests.get(f"{s['http']}/board", params={"after": bad}, timeout=5)
        assert refused.status_code == 400, bad


def test_many_kiosks_and_windows_at_once_no_duplicates_no_double_calls(site: Boot) -> None:
    s = site()
    with rpc(s) as queue:
        for n in range(1, 9):
            queue.open_window(str(n), f"S{n}")
    numbers: list[str] = []
    calls: list[str] = []
    errors: list[Exception] = []
    kiosks_done = threading.Event()

    def kiosk(category: str) -> None:
        try:
            with rpc(s) as queue:
                numbers.extend(queue.take_ticket(category)["number"] for _ in range(10))
        except Exception as exc:  # noqa: BLE001  (collected and asserted on below)
            errors.append(exc)

    def window(number: str) -> None:
        try:
            with rpc(s) as queue:
                while True:
                    got = queue.call_next(number)
                    if got is None:
                        if kiosks_done.is_set():
                            return
                        eventlet.sleep(0.05)
                        continue
                    calls.append(got["id"])
                    queue.complete(got["id"], window=number)
        except Exception as exc:  # noqa: BLE001  (collected and asserted on below)
            errors.append(exc)

    kiosks = [eventlet.spawn(kiosk, "AB"[i % 2]) for i in range(20)]
    windows = [eventlet.spawn(window, str(n)) for n in range(1, 9)]
    for k in kiosks:
        k.wait()
    kiosks_done.set()
    for w in windows:
        w.wait()
    assert errors == []
    assert len(numbers) == 200
    assert len(set(numbers)) == 200
    assert sorted(n for n in numbers if n[0] == "A") == [f"A{i:03d}" for i in range(1, 101)]
    counts = Counter(calls)
    assert len(counts) == 200
    assert max(counts.values()) == 1
    with rpc(s) as queue:
        page = queue.feed("evaluation_invitations", 0, 500)
    assert len({i["id"] for i in page["items"]}) == 200


def test_a_bad_queue_section_refuses_to_start(vhost_factory: VhostFactory, tmp_path: Path) -> None:
    vhost = vhost_factory("bad")
    broken = {**SECTION, "windows": [{"number": "1", "categories": {"Z": 1}}]}
    config = site_config(vhost, tmp_path, "421302", "county", QUEUE=broken)
    with pytest.raises(ConfigError) as caught:
        ServiceContainer(QueueService, config)
    assert "QUEUE.windows[0].categories" in caught.value.fields


def test_configure_and_appointments_over_rpc(site: Boot) -> None:
    s = site()
    changed = {k: v for k, v in SECTION.items() if k not in OPERATION_KEYS}
    changed["categories"] = [
        {**SECTION["categories"][0], "appointments": {"slot_minutes": 30, "capacity": 1}},
        SECTION["categories"][1],
    ]
    with rpc(s) as queue:
        result = queue.configure(changed, "manager-1", 1)
        assert result["config_version"] == 2
        with pytest.raises(Conflict):
            queue.configure(changed, "manager-2", 1)
        with pytest.raises(InvalidInput) as caught:
            queue.book("A", "23/11/2026", "10:30", "13900000001")
        assert caught.value.fields == {"date": ["日期应写成 YYYY-MM-DD"]}
        booking = queue.book("A", "2026-11-23", "10:30", "13900000001")
        assert booking["phone_masked"] == "139****0001"
        with pytest.raises(Conflict, match="已约满"):
            queue.book("A", "2026-11-23", "10:30", "13900000002")
        slots = {x["slot"]: x["available"] for x in queue.slots("A", "2026-11-23")}
        assert slots["10:30"] == 0
        NOW[0] += timedelta(minutes=20)  # 10:20: within the check-in window
        ticket = queue.check_in(booking["code"])
        assert ticket["on_time"] is True
        assert ticket["green_channel"] is False
        queue.open_window("1", "S1")
        walk_in = queue.take_ticket("A")
        assert walk_in["people_ahead"] == 1  # the appointment goes first
        assert queue.call_next("1")["id"] == ticket["id"]
