"""The queue service in a real Nameko container against the real RabbitMQ: RPCs with typed
errors, the invitation feed and its event hint, the timer's repair after a crash, the board
over HTTP (JSON, long-poll, server-sent events), metrics, and many concurrent clients."""

import json
import threading
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import ClassVar

import eventlet
import pytest
import requests
from nameko.containers import ServiceContainer
from nameko.events import event_handler
from nameko.exceptions import RemoteError
from nameko.standalone.rpc import ServiceRpcProxy

from services.common.config import ConfigError
from services.common.errors import Conflict, Forbidden, InvalidInput, NotFound
from services.queue.app import Hall, HallProvider
from services.queue.service import QueueService
from tests.conftest import amqp_uri, free_port, site_config
from tests.service.helpers import wait_for

pytestmark = pytest.mark.service

START = datetime(2026, 11, 23, 2, 0, tzinfo=UTC)  # Monday 10:00 in Shanghai
NOW = [START]

SECTION = {
    "privacy_salt": "service-test-salt",
    "sweep_seconds": 1,
    "figures_seconds": 1,
    "board_poll_seconds": 5,
    "board_heartbeat_seconds": 0.5,
    "board_stream_seconds": 3,
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


OPERATIONS = (
    "privacy_salt",
    "sweep_seconds",
    "figures_seconds",
    "board_poll_seconds",
    "board_heartbeat_seconds",
    "board_stream_seconds",
)


class FixedClockHall(HallProvider):
    clock = staticmethod(lambda: NOW[0])


class QueueAtTen(QueueService):
    """The real service, with the clock held at a working Monday morning."""

    hall = FixedClockHall()


class CrashOnceHall(Hall):
    """Dies (as a killed process would) right after the completion is stored, once."""

    crashed = False

    def invite(self, ticket):
        if not CrashOnceHall.crashed:
            CrashOnceHall.crashed = True
            raise RuntimeError("模拟：办结已写入，邀请尚未写入时进程崩溃")
        return super().invite(ticket)


class CrashingProvider(FixedClockHall):
    hall_class = CrashOnceHall


class QueueThatCrashes(QueueService):
    hall = CrashingProvider()


class Listener:
    name = "listener"
    received: ClassVar[list] = []

    @event_handler("queue", "evaluation_invited")
    def on_invited(self, payload):
        Listener.received.append(payload)


@pytest.fixture
def site(start, vhost_factory, tmp_path):
    NOW[0] = START
    Listener.received = []
    vhost = vhost_factory("queue")
    port = free_port()
    config = site_config(vhost, tmp_path, "421302", "county", port=port, QUEUE=SECTION)
    start(Listener, config)

    def boot(cls=QueueAtTen):
        start(cls, config)
        return {"uri": amqp_uri(vhost), "http": f"http://127.0.0.1:{port}"}

    return boot


def rpc(site, timeout=20):
    return ServiceRpcProxy("queue", {"AMQP_URI": site["uri"]}, timeout=timeout)


def test_ticket_life_over_rpc_with_feed_event_and_typed_errors(site):
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
        assert caught.value.fields["channel"][0].startswith("应为 kiosk")
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


def test_crash_after_completion_is_repaired_by_the_timer(site):
    CrashOnceHall.crashed = False
    s = site(QueueThatCrashes)
    with rpc(s) as queue:
        queue.open_window("2", "S2")
        ticket = queue.take_ticket("B")
        queue.call_next("2")
        with pytest.raises(RemoteError, match="RuntimeError"):
            queue.complete(ticket["id"])
        assert queue.ticket(ticket["id"])["state"] == "completed"
        items = wait_for(lambda: queue.feed("evaluation_invitations", 0, 10)["items"])
        assert [i["id"] for i in items] == [f"ticket:{ticket['id']}"]
    wait_for(lambda: Listener.received)
    assert Listener.received[0] == {"id": f"ticket:{ticket['id']}"}


def test_board_json_long_poll_stream_and_metrics(site):
    s = site()
    with rpc(s) as queue:
        queue.open_window("3", "S3")
        first = requests.get(f"{s['http']}/board", timeout=5).json()
        assert first["waiting"][0] == {"category": "A", "name": "综合受理", "waiting": 0}

        def later():
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
        lines = []

        def read():
            for line in stream.iter_lines(decode_unicode=True):
                lines.append(line)

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


def test_many_kiosks_and_windows_at_once_no_duplicates_no_double_calls(site):
    s = site()
    with rpc(s) as queue:
        for n in range(1, 9):
            queue.open_window(str(n), f"S{n}")
    numbers, calls, errors = [], [], []
    kiosks_done = threading.Event()

    def kiosk(category):
        try:
            with rpc(s) as queue:
                for _ in range(10):
                    numbers.append(queue.take_ticket(category)["number"])
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    def window(number):
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
        except Exception as exc:  # pragma: no cover - reported below
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


def test_a_bad_queue_section_refuses_to_start(vhost_factory, tmp_path):
    vhost = vhost_factory("bad")
    broken = {**SECTION, "windows": [{"number": "1", "categories": {"Z": 1}}]}
    config = site_config(vhost, tmp_path, "421302", "county", QUEUE=broken)
    with pytest.raises(ConfigError) as caught:
        ServiceContainer(QueueService, config)
    assert "windows[0].categories" in caught.value.fields


def test_configure_and_appointments_over_rpc(site):
    s = site()
    changed = {k: v for k, v in SECTION.items() if k not in OPERATIONS}
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
