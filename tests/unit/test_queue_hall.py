"""The queue's use cases (services/queue/app.Hall) over a real store, without Nameko: SQLite
and the MongoDB adapter (through mongomock).

Two ``Hall`` objects on one database stand for two service processes: their store
connections are separate, so their threads really interleave and only compare-and-set
keeps tickets from being issued or called twice.
"""

import threading
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest

from services.common.calendar import WorkingCalendar
from services.common.config import SiteConfig
from services.common.errors import Conflict, Forbidden, InvalidInput, NotFound
from services.common.metrics import ServiceMetrics
from services.common.runtime import SiteContext
from services.common.site import parse_site_identity
from services.common.store import open_store
from services.queue import domain
from services.queue.app import Hall, split_section

pytestmark = pytest.mark.unit

MONDAY_10 = datetime(2026, 11, 23, 2, 0, tzinfo=UTC)  # 10:00 in Shanghai, a working day

SECTION = {
    "privacy_salt": "test-salt",
    "waiting_target_minutes": 30,
    "no_show_after_calls": 2,
    "recall_cooldown_seconds": 30,
    "requeue_behind": 2,
    "day_close_time": "18:30",
    "categories": [
        {
            "prefix": "A",
            "name": "综合受理",
            "department": "政务服务局",
            "hours": ["08:30-12:00", "14:00-17:30"],
            "service_minutes": 10,
            "appointments": {"slot_minutes": 30, "capacity": 2},
        },
        {"prefix": "B", "name": "不动产", "daily_cap": 3, "hours": ["08:30-17:30"]},
        {"prefix": "C", "name": "社保医保", "hours": ["08:30-17:30"]},
    ],
    "windows": [
        {"number": "1", "kind": "comprehensive", "categories": {"A": 2, "B": 1, "C": 1}},
        {"number": "2", "categories": {"B": 1}},
        {"number": "3", "categories": ["A", "C"]},
    ],
    "staff": [
        {"id": "S1", "name": "张敏", "windows": ["1"], "backup_windows": ["2"]},
        {"id": "S2", "name": "李强", "windows": ["2"]},
        {"id": "S3", "name": "王芳", "windows": ["3"]},
    ],
}


class Clock:
    def __init__(self, now=MONDAY_10):
        self.now = now

    def __call__(self):
        return self.now

    def advance(self, **delta):
        self.now += timedelta(**delta)


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture(params=["sqlite", "mongomock"])
def store_uri(request, tmp_path):
    """Every use case runs on both adapters (MongoDB through mongomock)."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}"
    return f"mongomock://{tmp_path.name}/hall"


@pytest.fixture
def make_hall(store_uri, clock):
    stores = []

    def make(section=SECTION):
        store = open_store(store_uri, "queue")
        stores.append(store)
        identity = parse_site_identity("421302", "county", "测试中心", None)
        config = SiteConfig(identity, "pyamqp://h/", store_uri, None, None, section)
        metrics = ServiceMetrics("queue", "421302", "county", "sqlite")
        context = SiteContext("queue", config, store, WorkingCalendar(), metrics)
        data, ops = split_section(section)
        hall = Hall(context, ops, clock)
        hall.seed(data)
        return hall

    yield make
    for store in stores:
        store.close()


@pytest.fixture
def hall(make_hall):
    return make_hall()


def open_all(hall):
    for number, staff in (("1", "S1"), ("2", "S2"), ("3", "S3")):
        hall.open_window(number, staff)


def metric(hall, name, **labels):
    return hall.context.metrics.registry.get_sample_value(
        name, {"service": "queue", "site": "421302", **labels}
    )


# --- taking tickets ------------------------------------------------------------------------


def test_take_ticket_numbers_people_ahead_estimate_and_masked_phone(hall, clock):
    open_all(hall)
    first = hall.take({"category": "A", "channel": "kiosk"})
    second = hall.take({"category": "A", "channel": "wechat", "phone": "13812345678"})
    assert (first["number"], second["number"]) == ("A001", "A002")
    assert second["people_ahead"] == 1
    # one ahead, 10 min each, two open windows serve A: 5 min expected, ±2 min
    assert second["estimate"] == {"expected_seconds": 300, "low_minutes": 3, "high_minutes": 7}
    assert second["phone_masked"] == "138****5678"
    stored = hall.repo.tickets.get(second["id"])
    assert "13812345678" not in str(stored)
    assert stored["phone_hash"]
    assert "phone_hash" not in second
    assert hall.take({"category": "B"})["number"] == "B001"
    assert metric(hall, "hall_queue_waiting", category="A") == 2
    assert metric(hall, "hall_queue_tickets_issued_total", category="A", channel="wechat") == 1


def test_take_refusals_unknown_category_hours_cap_and_bad_phone(hall, clock):
    with pytest.raises(InvalidInput) as caught:
        hall.take({"category": "Z"})
    assert "category" in caught.value.fields
    for _ in range(3):
        hall.take({"category": "B"})
    with pytest.raises(Conflict, match="每日限3个"):
        hall.take({"category": "B"})
    clock.advance(hours=3)  # 13:00: A is closed at noon
    with pytest.raises(Conflict, match="08:30-12:00、14:00-17:30"):
        hall.take({"category": "A"})
    clock.advance(hours=2)
    with pytest.raises(InvalidInput, match="11位"):
        hall.take({"category": "A", "phone": "110"})
    assert metric(hall, "hall_queue_tickets_refused_total", category="B") == 1


def test_weekend_is_refused_for_working_day_categories(hall, clock):
    clock.now = datetime(2026, 11, 28, 2, 0, tzinfo=UTC)  # Saturday
    with pytest.raises(Conflict, match="不是工作日"):
        hall.take({"category": "A"})


def test_concurrent_kiosks_in_two_processes_never_duplicate_a_number(make_hall):
    halls = [make_hall(), make_hall()]
    taken, errors = [], []

    def kiosk(hall):
        try:
            for _ in range(40):
                taken.append(hall.take({"category": "C"})["number"])
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=kiosk, args=(halls[i % 2],)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(taken) == 320
    assert sorted(taken) == [f"C{n:03d}" for n in range(1, 321)]


# --- calling --------------------------------------------------------------------------------


def test_call_next_picks_by_rule_and_announces(hall, clock):
    open_all(hall)
    a1 = hall.take({"category": "A"})
    clock.advance(minutes=1)
    b1 = hall.take({"category": "B"})
    clock.advance(minutes=1)
    green = hall.take({"category": "C", "priority": "disabled"})
    clock.advance(minutes=10)
    called = hall.call_next("1")
    assert called["id"] == green["id"]
    assert called["announcement"] == f"请{green['number']}号到1号窗口办理"
    assert called["waited_seconds"] == 600
    hall.do(called["id"], "complete", None)
    # A (weight 2, waited 12 min = 24) beats B (weight 1, waited 11 min)
    assert hall.call_next("1")["id"] == a1["id"]
    assert hall.call_next("2")["id"] == b1["id"]
    assert hall.call_next("3") is None  # nobody left for A/C
    assert metric(hall, "hall_queue_wait_seconds_count", category="C") == 1
    assert metric(hall, "hall_queue_estimate_error_seconds_count", category="A") == 1


def test_window_must_be_open_and_finish_its_ticket_before_calling_again(hall, clock):
    hall.take({"category": "B"})
    hall.take({"category": "B"})
    with pytest.raises(Conflict, match="关闭"):
        hall.call_next("2")
    with pytest.raises(NotFound):
        hall.call_next("99")
    hall.open_window("2", "S2")
    first = hall.call_next("2")
    with pytest.raises(Conflict, match="尚未处理"):
        hall.call_next("2")
    hall.do(first["id"], "start", None)
    with pytest.raises(Conflict, match="尚未办结"):
        hall.call_next("2")
    with pytest.raises(Forbidden):
        hall.call_next("2", staff_id="S1")
    hall.pause_window("2", "午休", "S2")
    hall.do(first["id"], "complete", None)
    with pytest.raises(Conflict, match="暂停"):
        hall.call_next("2")  # a paused window is never called to
    hall.open_window("2", None)
    assert hall.call_next("2")["number"] == "B002"


def test_many_windows_in_two_processes_never_call_a_ticket_twice(make_hall, clock):
    wide = {**SECTION, "windows": [{"number": str(n), "categories": ["A"]} for n in range(1, 13)]}
    wide["staff"] = [{"id": f"S{n}", "name": f"员{n}", "windows": [str(n)]} for n in range(1, 13)]
    halls = [make_hall(wide), make_hall(wide)]
    for n in range(1, 13):
        halls[0].open_window(str(n), f"S{n}")
    for _ in range(150):
        halls[0].take({"category": "A"})
    calls, errors = [], []

    def window(number, hall):
        try:
            while True:
                try:
                    got = hall.call_next(number)
                except Conflict:
                    continue  # lost the window race: try again
                if got is None:
                    return
                calls.append((got["id"], number))
                hall.do(got["id"], "complete", None)
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=window, args=(str(n), halls[n % 2])) for n in range(1, 13)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    counts = Counter(tid for tid, _ in calls)
    assert len(counts) == 150
    assert max(counts.values()) == 1
    done = halls[0].repo.tickets.find({"state": "completed"})
    assert len(done) == 150
    assert len(halls[0].repo.invitations.find()) == 150
    lost = sum(
        metric(h, "hall_queue_call_conflicts_total") or 0 for h in halls
    )  # races really happened (two processes, twelve threads): report, not required
    print(f"compare-and-set races lost and retried: {lost}")


def test_recall_cool_down_then_automatic_no_show_then_requeue_once(hall, clock):
    hall.open_window("3", "S3")
    tickets = []
    for _ in range(5):
        tickets.append(hall.take({"category": "C"}))
        clock.advance(seconds=1)
    first = hall.call_next("3")
    assert first["id"] == tickets[0]["id"]
    with pytest.raises(Conflict, match="不足30秒"):
        hall.recall(first["id"], "3", None)
    clock.advance(seconds=31)
    again = hall.recall(first["id"], "3", None)
    assert again["calls"] == 2
    assert again["announcement"] == "请C001号到3号窗口办理"
    with pytest.raises(Conflict, match="须呼叫满2次"):
        hall.do(first["id"], "no_show", None)  # the cool-down after the 2nd call runs
    clock.advance(seconds=31)
    hall.tick()  # the timer marks it
    assert hall.ticket(first["id"])["state"] == "no_show"
    requeued = hall.requeue(first["id"], "S3")
    assert requeued["state"] == "waiting"
    # behind two people: C002, C003, then C001
    order = [hall.call_next("3")["number"]]
    for _ in range(3):
        hall.do(hall.repo.at_window("3")[0]["id"], "complete", None)
        order.append(hall.call_next("3")["number"])
    assert order == ["C002", "C003", "C001", "C004"]
    hall.do(hall.repo.at_window("3")[0]["id"], "complete", None)
    with pytest.raises(Conflict, match="当前为“已办结”"):
        hall.requeue(first["id"], "S3")


def test_call_next_marks_an_exhausted_called_ticket_as_no_show(hall, clock):
    hall.open_window("2", "S2")
    hall.take({"category": "B"})
    hall.take({"category": "B"})
    first = hall.call_next("2")
    clock.advance(seconds=31)
    hall.recall(first["id"], "2", None)
    clock.advance(seconds=31)
    second = hall.call_next("2")
    assert second["number"] == "B002"
    history = hall.history(first["id"])
    assert [h["action"] for h in history] == ["take", "call", "recall", "no_show"]
    assert history[-1]["by"] == "system"


def test_transfer_to_another_window_keeps_its_place(hall, clock):
    open_all(hall)
    early = hall.take({"category": "A"})
    clock.advance(minutes=5)
    hall.take({"category": "B"})
    called = hall.call_next("3")
    assert called["id"] == early["id"]
    moved = hall.transfer(early["id"], "B", "2", "S3")
    assert (moved["state"], moved["category"], moved["target_window"]) == ("waiting", "B", "2")
    # window 1 also serves B, but the ticket was sent to window 2
    clock.advance(minutes=1)
    assert hall.call_next("2")["id"] == early["id"]  # older than B001, so first
    with pytest.raises(InvalidInput):
        hall.transfer(early["id"], "Z", None, "S3")


def test_hold_resume_cancel_and_audit_trail(hall, clock):
    open_all(hall)
    t = hall.take({"category": "A"})
    hall.call_next("1")
    hall.do(t["id"], "start", None)
    held = hall.do(t["id"], "hold", None, reason="回去取复印件")
    assert held["state"] == "held"
    assert hall.call_next("1") is None
    resumed = hall.do(t["id"], "resume", "S1")
    assert resumed["target_window"] == "1"
    assert hall.call_next("3") is None  # it goes back to window 1 only
    assert hall.call_next("1")["id"] == t["id"]
    cancelled = hall.do(t["id"], "cancel", "citizen", reason="不办了")
    assert cancelled["state"] == "cancelled"
    trail = [(h["action"], h["from"], h["to"], h["by"]) for h in hall.history(t["id"])]
    assert trail == [
        ("take", None, "waiting", "kiosk"),
        ("call", "waiting", "called", "S1"),
        ("start", "called", "serving", "S1"),
        ("hold", "serving", "held", "S1"),
        ("resume", "held", "waiting", "S1"),
        ("call", "waiting", "called", "S1"),
        ("cancel", "called", "cancelled", "citizen"),
    ]
    assert all(h["at"].endswith("Z") for h in hall.history(t["id"]))
    with pytest.raises(NotFound):
        hall.history("nope")


# --- windows and staff ------------------------------------------------------------------------


def test_sign_in_rules_and_ab_backup(hall):
    with pytest.raises(Forbidden, match="B岗"):
        hall.sign_in("3", "S1")
    backup = hall.sign_in("2", "S1")
    assert backup["backup"] is True
    with pytest.raises(Conflict, match="已在 2 号窗口签到"):
        hall.sign_in("1", "S1")
    with pytest.raises(Conflict, match="已由 S1 签到"):
        hall.sign_in("2", "S2")
    hall.sign_out("2", "S1")
    assert hall.sign_in("2", "S2")["backup"] is False
    with pytest.raises(Conflict, match="没有工作人员签到"):
        hall.open_window("3", None)
    with pytest.raises(Conflict, match="不能暂停"):
        hall.pause_window("3", None, None)
    hall.open_window("2", None)
    hall.take({"category": "B"})
    hall.call_next("2")
    with pytest.raises(Conflict, match="不能关闭"):
        hall.close_window("2", "S2")
    states = {w["number"]: w["state"] for w in hall.windows()}
    assert states == {"1": "closed", "2": "open", "3": "closed"}
    assert metric(hall, "hall_queue_windows", state="open") == 1


# --- durable evaluation invitation ---------------------------------------------------------


def test_completion_invites_exactly_one_evaluation(hall, clock):
    open_all(hall)
    t = hall.take({"category": "A", "matter_code": "0700000100"})
    hall.call_next("1")
    hall.do(t["id"], "start", None)
    clock.advance(minutes=7)
    hall.do(t["id"], "complete", None, outcome="accepted", application_id="app-1")
    (inv,) = hall.repo.invitations.find()
    assert inv["id"] == f"ticket:{t['id']}"
    assert inv["window"] == "1"
    assert inv["staff_id"] == "S1"
    assert inv["department"] == "政务服务局"
    assert inv["matter_code"] == "0700000100"
    assert inv["service_ended_at"] == domain.iso(clock.now)
    assert hall.repo.tickets.get(t["id"])["invited"] is True
    assert hall.sweep_invitations() == []  # nothing to repair
    assert hall.invite(hall.repo.tickets.get(t["id"])) is False  # a repeat changes nothing
    assert len(hall.repo.invitations.find()) == 1
    with pytest.raises(Conflict, match="已办结"):
        hall.do(t["id"], "complete", None)
    assert metric(hall, "hall_queue_service_seconds_count", category="A") == 1


def test_crash_between_completion_and_invitation_is_repaired_by_the_sweep(
    hall, make_hall, clock, monkeypatch
):
    open_all(hall)
    t = hall.take({"category": "A"})
    hall.call_next("1")

    def crash(ticket):
        raise SystemExit("process killed after the completion was written")

    monkeypatch.setattr(hall, "invite", crash)
    with pytest.raises(SystemExit):
        hall.do(t["id"], "complete", None)
    assert hall.repo.tickets.get(t["id"])["state"] == "completed"
    assert hall.repo.invitations.find() == []
    # a restarted process sweeps: the invitation appears once, the flag clears
    restarted = make_hall()
    restarted.refresh_gauges()
    assert metric(restarted, "hall_queue_invitations_pending") == 1
    assert restarted.sweep_invitations() == [f"ticket:{t['id']}"]
    assert restarted.sweep_invitations() == []
    (inv,) = restarted.repo.invitations.find()
    assert inv["service_ref"] == {"kind": "ticket", "id": t["id"]}
    assert restarted.repo.tickets.get(t["id"])["invited"] is True
    assert metric(restarted, "hall_queue_invitations_pending") == 0


def test_crash_after_insert_before_flag_clear_does_not_duplicate(hall, make_hall, clock):
    open_all(hall)
    t = hall.take({"category": "A"})
    hall.call_next("1")
    original = hall.repo.tickets.update

    def drop_flag_clear(doc_id, changes, expect=None):
        if changes == {"invited": True}:
            raise SystemExit("killed before the flag was cleared")
        return original(doc_id, changes, expect)

    hall.repo.tickets.update = drop_flag_clear
    with pytest.raises(SystemExit):
        hall.do(t["id"], "complete", None)
    restarted = make_hall()
    assert restarted.sweep_invitations() == [f"ticket:{t['id']}"]
    assert len(restarted.repo.invitations.find()) == 1


# --- day close ---------------------------------------------------------------------------------


def test_close_day_expires_unserved_tickets_and_numbering_restarts(hall, clock):
    open_all(hall)
    waiting = hall.take({"category": "A"})
    serving = hall.take({"category": "C"})
    done = hall.take({"category": "B"})
    hall.call_next("2")
    hall.do(done["id"], "complete", None)
    hall.call_next("3")  # C001 (A001 is older but window 3 is A/C: oldest first)
    first_called = hall.repo.at_window("3")[0]
    hall.do(first_called["id"], "start", None)
    with pytest.raises(Conflict, match="未到闭厅时间 18:30"):
        hall.close_day(None, "manager")
    clock.advance(hours=9)  # 19:00
    result = hall.close_day(None, "manager")
    assert result["expired"] == 2
    reasons = {
        hall.ticket(waiting["id"])["state"]: hall.ticket(waiting["id"])["reason"],
        hall.ticket(serving["id"])["state"]: hall.ticket(serving["id"])["reason"],
    }
    assert set(reasons) == {"expired"}
    expired = [hall.ticket(i) for i in (waiting["id"], serving["id"])]
    assert {e["reason"] for e in expired} == {
        "当日闭厅，未办理的号自动作废",
        "闭厅时仍在办理中，未登记办结",
    }
    assert hall.ticket(done["id"])["state"] == "completed"
    figures = {f["category"]: f for f in hall.repo.figures.find()}
    assert figures["B"]["served"] == 1
    assert figures["A"]["issued"] == 1
    assert figures["A"]["served"] == 0
    clock.advance(hours=15)  # next morning 10:00
    assert hall.take({"category": "A"})["number"] == "A001"
    with pytest.raises(InvalidInput):
        hall.close_day("2030-01-01", "manager")


def test_timer_closes_a_day_missed_while_the_service_was_down(hall, clock):
    t = hall.take({"category": "A"})
    clock.advance(days=1)
    hall.tick()
    assert hall.ticket(t["id"])["state"] == "expired"
    assert hall.day_closed("2026-11-23")


def test_daily_figures_are_published_during_the_day(hall, clock):
    open_all(hall)
    for _ in range(3):
        hall.take({"category": "C"})
    clock.advance(minutes=40)
    hall.call_next("3")
    assert hall.publish_figures() == 1
    (fig,) = hall.repo.figures.find()
    assert fig["id"] == "421302:2026-11-23:C"
    assert (fig["issued"], fig["served"], fig["within_target_share"]) == (3, 0, 0.0)
    assert fig["wait_p50_s"] == 2400 + 15
    assert hall.publish_figures() == 0  # unchanged: not republished
    assert metric(hall, "hall_queue_within_target_ratio", category="C") == 0.0


def test_gauges_are_rebuilt_from_the_store_after_a_restart(hall, make_hall):
    for _ in range(4):
        hall.take({"category": "A"})
    restarted = make_hall()
    assert metric(restarted, "hall_queue_waiting", category="A") is None
    restarted.refresh_gauges()
    assert metric(restarted, "hall_queue_waiting", category="A") == 4
    assert metric(restarted, "hall_queue_wait_over_target", category="A") == 0


def test_tickets_waiting_past_the_target_are_counted(hall, clock):
    hall.take({"category": "A"})
    clock.advance(minutes=20)
    hall.take({"category": "A"})
    clock.advance(minutes=11)  # first: 31 min (over the 30-minute target), second: 11 min
    hall.refresh_gauges()
    assert metric(hall, "hall_queue_wait_over_target", category="A") == 1
    clock.advance(minutes=20)
    hall.refresh_gauges()
    assert metric(hall, "hall_queue_wait_over_target", category="A") == 2


# --- appointments --------------------------------------------------------------------------


def book(hall, phone="13900000001", slot="10:30", day="2026-11-23", category="A"):
    from datetime import date

    return hall.book(
        {
            "category": category,
            "date": date.fromisoformat(day),
            "slot": slot,
            "phone": phone,
            "channel": "web",
        }
    )


def test_booking_capacity_duplicates_and_cancel(hall):
    first = book(hall, "13900000001")
    assert first["phone_masked"] == "139****0001"
    assert len(first["code"]) == 8
    assert "phone_hash" not in first
    with pytest.raises(Conflict, match="请勿重复预约"):
        book(hall, "13900000001")
    book(hall, "13900000002")
    with pytest.raises(Conflict, match="已约满"):
        book(hall, "13900000003")
    hall.cancel_booking(first["code"])
    slots = {s["slot"]: s for s in hall.slots("A", datetime(2026, 11, 23).date())}
    assert slots["10:30"]["available"] == 1
    book(hall, "13900000003")
    with pytest.raises(Conflict, match="不提供预约"):
        book(hall, category="B")
    with pytest.raises(Conflict, match="已过"):
        book(hall, slot="09:00")


def test_check_in_on_time_is_called_before_walk_ins_late_joins_the_queue(hall, clock):
    clock.advance(hours=-1)  # 09:00
    hall.open_window("3", "S3")
    on_time = book(hall, "13900000001", slot="10:30")
    late = book(hall, "13900000002", slot="10:00")
    with pytest.raises(Conflict, match="请于 10:00 后签到"):
        hall.check_in(on_time["code"])
    walk_in = hall.take({"category": "A"})
    clock.advance(minutes=76)  # 10:16: 10:00 slot is late, 10:30 slot may check in
    late_ticket = hall.check_in(late["id"])
    assert late_ticket["on_time"] is False
    ticket = hall.check_in(on_time["code"])
    assert ticket["on_time"] is True
    assert ticket["channel"] == "appointment"
    with pytest.raises(Conflict, match="不能签到"):
        hall.check_in(on_time["code"])
    order = []
    for _ in range(3):
        got = hall.call_next("3")
        order.append(got["id"])
        hall.do(got["id"], "complete", None)
    assert order == [ticket["id"], walk_in["id"], late_ticket["id"]]
    assert hall.booking(on_time["id"])["ticket_id"] == ticket["id"]


def checked_in_before_a_crash(hall, clock, monkeypatch, crash_point):
    """Check in at 10:16 for the 10:30 slot, killing the process at ``crash_point``."""
    booking = book(hall, "13900000001", slot="10:30")
    clock.advance(minutes=16)
    original = hall.repo.bookings.update

    def killed(doc_id, changes, expect=None):
        if crash_point == "before the ticket" and changes.get("state") == "booked":
            raise SystemExit("killed before the ticket was issued")  # the undo never runs
        if crash_point == "before the link" and "ticket_id" in changes:
            raise SystemExit("killed before the ticket was linked")
        return original(doc_id, changes, expect)

    monkeypatch.setattr(hall.repo.bookings, "update", killed)
    if crash_point == "before the ticket":
        monkeypatch.setattr(hall, "_issue", lambda *a, **k: (_ for _ in ()).throw(SystemExit()))
    with pytest.raises(SystemExit):
        hall.check_in(booking["code"])
    monkeypatch.undo()
    assert hall.booking(booking["id"])["state"] == "checked_in"
    return booking


def test_a_check_in_stranded_before_its_ticket_is_given_back_after_a_sweep(
    hall, make_hall, clock, monkeypatch
):
    booking = checked_in_before_a_crash(hall, clock, monkeypatch, "before the ticket")
    restarted = make_hall()
    assert restarted.repair_check_ins() == 0  # too fresh: a check-in may still be running
    clock.advance(seconds=restarted.ops.sweep_seconds + 1)
    assert restarted.repair_check_ins() == 1
    assert restarted.booking(booking["id"])["state"] == "booked"
    ticket = restarted.check_in(booking["code"])  # the citizen checks in again
    assert ticket["on_time"] is True
    assert restarted.booking(booking["id"])["ticket_id"] == ticket["id"]
    assert restarted.repair_check_ins() == 0


def test_a_check_in_stranded_after_its_ticket_gets_that_ticket_linked(
    hall, make_hall, clock, monkeypatch
):
    booking = checked_in_before_a_crash(hall, clock, monkeypatch, "before the link")
    (issued,) = [t for t in hall.repo.tickets.find() if t.get("booking_id") == booking["id"]]
    restarted = make_hall()
    clock.advance(seconds=restarted.ops.sweep_seconds + 1)
    assert restarted.repair_check_ins() == 1
    repaired = restarted.booking(booking["id"])
    assert (repaired["state"], repaired["ticket_id"]) == ("checked_in", issued["id"])
    assert len(restarted.repo.tickets.find()) == 1  # no second ticket


def test_repeated_no_shows_block_new_bookings_with_the_reason(hall, clock):
    for day in ("2026-11-24", "2026-11-25"):
        book(hall, "13900000009", day=day)
    clock.advance(days=2, hours=8)  # 25 Nov 18:00: both bookings were missed
    hall.tick()
    assert len(hall.repo.bookings.find({"state": "no_show"})) == 2
    book(hall, "13900000009", day="2026-11-26")  # two misses: still allowed
    clock.advance(days=1)
    assert hall.sweep_bookings() == 1  # the timer's sweep (runs every sweep_seconds)
    assert len(hall.repo.bookings.find({"state": "no_show"})) == 3
    with pytest.raises(Forbidden, match="30天内有3次预约未到，2026-12-26 前不能预约"):
        book(hall, "13900000009", day="2026-11-30")
    book(hall, "13900000008", day="2026-11-30")  # others are not blocked


# --- configuration --------------------------------------------------------------------------


def test_configuration_is_versioned_and_tickets_keep_working(hall, clock):
    open_all(hall)
    t = hall.take({"category": "A"})
    assert hall.configuration()["config_version"] == 1
    changed = {k: v for k, v in SECTION.items() if k != "privacy_salt"}
    changed["categories"] = [*SECTION["categories"], {"prefix": "D", "name": "户籍"}]
    changed["windows"] = [*SECTION["windows"], {"number": "4", "categories": ["D"]}]
    result = hall.configure(changed, "manager-1", expected_version=1)
    assert result["config_version"] == 2
    assert result["changed_by"] == "manager-1"
    assert hall.take({"category": "D"})["number"] == "D001"
    assert hall.call_next("1")["id"] == t["id"]
    assert hall.config_history(1)["config"]["categories"][0]["prefix"] == "A"
    with pytest.raises(Conflict, match="第 2 版"):
        hall.configure(changed, "manager-2", expected_version=1)
    with pytest.raises(InvalidInput) as caught:
        hall.configure({**changed, "privacy_salt": "x"}, "manager-1")
    assert "privacy_salt" in caught.value.fields
    with pytest.raises(InvalidInput) as caught:
        hall.configure({**changed, "waiting_target_minutes": 0}, "manager-1")
    assert caught.value.fields == {"waiting_target_minutes": ["应在 1 到 480 之间"]}


def test_a_restart_keeps_manager_changes_until_the_file_changes(hall, make_hall):
    changed = {k: v for k, v in SECTION.items() if k != "privacy_salt"}
    hall.configure({**changed, "waiting_target_minutes": 20}, "manager")
    assert make_hall().setup()[0].policy.waiting_target_minutes == 20
    edited = {**SECTION, "waiting_target_minutes": 25}
    again = make_hall(edited)
    assert again.setup()[0].policy.waiting_target_minutes == 25
    assert again.configuration()["config_version"] == 3
    assert again.configuration()["changed_by"] == "config-file"


# --- board ---------------------------------------------------------------------------------


def test_board_shows_latest_calls_announcements_and_waiting_counts(hall, clock):
    open_all(hall)
    before = hall.board()
    hall.take({"category": "A"})
    hall.take({"category": "C"})
    hall.take({"category": "C"})
    called = hall.call_next("3")
    board = hall.board()
    assert board["version"] > before["version"]
    assert board["announcement"] == f"请{called['number']}号到3号窗口办理"
    window3 = next(w for w in board["windows"] if w["window"] == "3")
    assert window3["number"] == called["number"]
    waiting = {w["category"]: w["waiting"] for w in board["waiting"]}
    assert waiting == {"A": 1, "B": 0, "C": 1} or waiting == {"A": 0, "B": 0, "C": 2}
    assert board["recent"][0]["announcement"] == board["announcement"]
    assert hall.board() is board  # unchanged version: served from the cache


def test_a_call_that_loses_its_window_is_undone_keeping_the_place(hall, clock):
    hall.open_window("2", "S2")
    first = hall.take({"category": "B"})
    clock.advance(seconds=5)
    hall.take({"category": "B"})
    original = hall.repo.windows.update

    def window_changed_meanwhile(doc_id, changes, expect=None):
        if "last_ticket" in changes:  # a pause (or a second call) got in first
            original(doc_id, {"state": "paused"})
        return original(doc_id, changes, expect)

    hall.repo.windows.update = window_changed_meanwhile
    with pytest.raises(Conflict, match="本次叫号已撤回"):
        hall.call_next("2")
    hall.repo.windows.update = original
    back = hall.repo.tickets.get(first["id"])
    assert back["state"] == "waiting"
    assert back["window"] is None
    assert [h["action"] for h in back["history"]] == ["take", "call", "revert_call"]
    hall.open_window("2", None)
    assert hall.call_next("2")["id"] == first["id"]  # still first in line


def test_without_a_configured_salt_one_is_generated_and_kept(make_hall):
    unsalted = {k: v for k, v in SECTION.items() if k != "privacy_salt"}
    first = make_hall(unsalted)
    ticket = first.take({"category": "A", "phone": "13812345678"})
    again = make_hall(unsalted)
    assert again.salt == first.salt
    assert len(first.salt) == 32
    second = again.take({"category": "A", "phone": "13812345678"})
    stored = [again.repo.tickets.get(t["id"])["phone_hash"] for t in (ticket, second)]
    assert stored[0] == stored[1]


def test_unknown_configuration_keys_are_refused(hall):
    changed = {k: v for k, v in SECTION.items() if k != "privacy_salt"}
    with pytest.raises(InvalidInput) as caught:
        hall.configure({**changed, "waiting_target": 20}, "manager")
    assert caught.value.fields == {"waiting_target": ["不认识的字段"]}
    with pytest.raises(InvalidInput) as caught:
        hall.configure({**changed, "windows": [{"number": "1", "categories": {"A": 0}}]}, "m")
    assert "windows[0].categories" in caught.value.fields


def test_a_manager_may_close_the_day_early(hall):
    t = hall.take({"category": "A"})
    result = hall.close_day(None, "manager", early=True)
    assert result == {"date": "2026-11-23", "expired": 1, "booking_no_shows": 0}
    entry = hall.history(t["id"])[-1]
    assert (entry["action"], entry["by"], entry["to"]) == ("expire", "manager", "expired")
