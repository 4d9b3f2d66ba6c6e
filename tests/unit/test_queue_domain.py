"""Queueing rules (services/queue/domain/): pure functions, no store, no Nameko."""

from collections.abc import Mapping
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import pytest

from services.common.clock import iso
from services.common.errors import Conflict, Forbidden, InvalidInput, NotFound
from services.queue import domain
from services.queue.domain import Category, Policy, Window

pytestmark = pytest.mark.unit

T0 = datetime(2026, 11, 23, 2, 0, tzinfo=UTC)  # Monday 10:00 in Shanghai
SH = domain.zone("Asia/Shanghai")
POLICY = Policy()
A = Category("A", "综合受理", daily_cap=2, hours=((time(8, 30), time(12, 0)),))
B = Category("B", "不动产")


def ticket(
    tid: str,
    category: str = "A",
    minutes: int = 0,
    lane: int = domain.LANE_NORMAL,
    state: str = "waiting",
    target: str | None = None,
) -> dict[str, Any]:
    return {
        "id": tid,
        "number": tid,
        "category": category,
        "order_key": domain.timestamp(T0 + timedelta(minutes=minutes)),
        "lane": lane,
        "state": state,
        "target_window": target,
    }


def ids(tickets: list[Mapping[str, Any]] | list[dict[str, Any]]) -> list[str]:
    return [str(t["id"]) for t in tickets]


NOW = domain.timestamp(T0 + timedelta(minutes=60))


# --- the calling rule ------------------------------------------------------------------------


def test_green_channel_then_checked_in_appointments_then_longest_wait() -> None:
    window = Window("1", "1号", {"A": 1, "B": 1})
    pool = [
        ticket("A1", minutes=0),
        ticket("B1", "B", minutes=5),
        ticket("A2", minutes=30, lane=domain.LANE_APPOINTMENT),
        ticket("B2", "B", minutes=50, lane=domain.LANE_GREEN),
        ticket("A3", minutes=40, lane=domain.LANE_GREEN),
    ]
    assert ids(domain.calling_order(window, pool, NOW)) == ["A3", "B2", "A2", "A1", "B1"]


def test_weights_multiply_the_wait_of_each_category_head() -> None:
    # A head waited 20 min with weight 3 (score 60) beats B head waited 50 min (score 50)
    window = Window("1", "1号", {"A": 3, "B": 1})
    pool = [ticket("A1", minutes=40), ticket("A2", minutes=45), ticket("B1", "B", minutes=10)]
    order = ids(domain.calling_order(window, pool, NOW))
    assert order == ["A1", "B1", "A2"]  # A2 (15 min x 3 = 45) then loses to B1 (50)
    # with equal weights the longest wait alone decides
    flat = Window("1", "1号", {"A": 1, "B": 1})
    assert ids(domain.calling_order(flat, pool, NOW)) == ["B1", "A1", "A2"]


def test_ties_go_to_the_category_listed_first_for_the_window_then_prefix() -> None:
    pool = [ticket("A1", minutes=30), ticket("B1", "B", minutes=30)]
    assert ids(domain.calling_order(Window("1", "x", {"B": 1, "A": 1}), pool, NOW))[0] == "B1"
    assert ids(domain.calling_order(Window("1", "x", {"A": 1, "B": 1}), pool, NOW))[0] == "A1"
    same = [ticket("A2", minutes=30), ticket("A1", minutes=30)]
    assert ids(domain.calling_order(Window("1", "x", {"A": 1}), same, NOW)) == ["A1", "A2"]


def test_window_calls_only_its_categories_and_tickets_sent_to_it() -> None:
    window = Window("5", "5号", {"B": 1})
    pool = [
        ticket("A1", minutes=0),  # not served here
        ticket("A2", minutes=1, target="5"),  # transferred to window 5: eligible here
        ticket("B1", "B", minutes=2, target="6"),  # sent to another window
        ticket("B2", "B", minutes=3),
        ticket("B3", "B", minutes=4, state="held"),
    ]
    assert ids(domain.calling_order(window, pool, NOW)) == ["A2", "B2"]


def test_transfer_keeps_the_place_in_time() -> None:
    policy = Policy()
    old = {**ticket("A1", minutes=0), "category_name": "综合受理", "calls": 0, "history": []}
    changes = domain.transition(
        old, "transfer", T0, "S1", policy, category="B", category_name="不动产"
    )
    moved = {**old, **changes}
    assert moved["category"] == "B"
    assert moved["order_key"] == old["order_key"]
    pool = [ticket("B1", "B", minutes=10), moved]
    assert ids(domain.calling_order(Window("5", "5号", {"B": 1}), pool, NOW)) == ["A1", "B1"]


def test_calling_order_is_deterministic_whatever_the_input_order() -> None:
    window = Window("1", "x", {"A": 2, "B": 1, "C": 1})
    pool = [ticket(f"{c}{i}", c, minutes=i * 3 + n) for n, c in enumerate("ABC") for i in range(5)]
    first = ids(domain.calling_order(window, pool, NOW))
    assert ids(domain.calling_order(window, list(reversed(pool)), NOW)) == first
    assert sorted(first) == sorted(ids(pool))


# --- the ticket state machine ---------------------------------------------------------------


def stored(state: str, **extra: Any) -> dict[str, Any]:
    return {
        "id": "T",
        "number": "A001",
        "state": state,
        "category": "A",
        "category_name": "综合受理",
        "order_key": 1.0,
        "calls": 1 if state == "called" else 0,
        "window": "1" if state in ("called", "serving") else None,
        "last_called_at": iso(T0 - timedelta(minutes=5)),
        "history": [],
        **extra,
    }


DETAILS: dict[str, dict[str, Any]] = {
    "call": {"window": "1", "staff_id": "S1"},
    "transfer": {"category": "B", "category_name": "不动产"},
    "requeue": {"order_key": 2.0},
    "no_show": {},
}


@pytest.mark.parametrize("action", sorted(domain.TRANSITIONS))
@pytest.mark.parametrize("state", sorted(domain.STATE_NAMES))
def test_every_transition_is_allowed_exactly_from_its_states(action: str, state: str) -> None:
    allowed, target = domain.TRANSITIONS[action]
    extra = {"calls": 3} if action == "no_show" and state == "called" else {}
    doc = stored(state, **extra)
    if state in allowed:
        changes = domain.transition(doc, action, T0, "S1", POLICY, **DETAILS.get(action, {}))
        assert changes["state"] == target
        entry = changes["history"][-1]
        assert (entry["by"], entry["from"], entry["to"], entry["action"]) == (
            "S1",
            state,
            target,
            action,
        )
        assert entry["at"] == iso(T0)
    else:
        with pytest.raises(Conflict) as caught:
            domain.transition(doc, action, T0, "S1", POLICY, **DETAILS.get(action, {}))
        assert domain.STATE_NAMES[state] in caught.value.message
        assert "state" in caught.value.fields


def test_recall_needs_the_cool_down_and_stops_at_the_no_show_count() -> None:
    policy = Policy(no_show_after_calls=3, recall_cooldown_seconds=30)
    doc = stored("called", last_called_at=iso(T0 - timedelta(seconds=10)))
    with pytest.raises(Conflict, match="不足30秒"):
        domain.transition(doc, "recall", T0, "S1", policy)
    doc["last_called_at"] = iso(T0 - timedelta(seconds=31))
    changes = domain.transition(doc, "recall", T0, "S1", policy)
    assert changes["calls"] == 2
    assert changes["last_called_at"] == iso(T0)
    with pytest.raises(Conflict, match="已呼叫3次"):
        domain.transition({**doc, "calls": 3}, "recall", T0, "S1", policy)


def test_no_show_only_after_the_configured_calls_and_cool_down() -> None:
    policy = Policy(no_show_after_calls=2, recall_cooldown_seconds=30)
    early = stored("called", calls=1)
    with pytest.raises(Conflict, match="须呼叫满2次"):
        domain.transition(early, "no_show", T0, "S1", policy)
    fresh = stored("called", calls=2, last_called_at=iso(T0 - timedelta(seconds=5)))
    assert not domain.no_show_due(fresh, policy, T0)
    due = stored("called", calls=2)
    assert domain.no_show_due(due, policy, T0)
    assert domain.transition(due, "no_show", T0, "system", policy)["state"] == "no_show"


def test_actions_at_a_window_must_come_from_the_calling_window() -> None:
    with pytest.raises(Conflict, match="不属于 2 号窗口"):
        domain.transition(stored("called"), "start", T0, "S2", POLICY, window="2")
    assert domain.transition(stored("called"), "start", T0, "S1", POLICY, window="1")


def test_requeue_only_once_and_behind_the_configured_people() -> None:
    doc = stored("no_show", order_key=0.5)
    keys = [10.0, 20.0, 30.0, 40.0, 50.0]
    key = domain.requeue_key(doc, keys, 3)
    assert 30.0 < key < 40.0  # three people (10, 20, 30) ahead
    assert domain.requeue_key(doc, keys[:2], 3) > 20.0  # fewer waiting: at the end
    assert domain.requeue_key(doc, [], 3) > 0.5
    assert domain.requeue_key(doc, keys, 0) < 10.0
    changes = domain.transition(doc, "requeue", T0, "S1", POLICY, order_key=key)
    assert changes["requeued"] is True
    assert changes["lane"] == domain.LANE_NORMAL
    with pytest.raises(Conflict, match="不能再次重排"):
        domain.transition({**doc, "requeued": True}, "requeue", T0, "S1", POLICY, order_key=1.0)


def test_transfer_without_a_new_target_is_refused() -> None:
    with pytest.raises(InvalidInput):
        domain.transition(stored("waiting"), "transfer", T0, "S1", POLICY)


def test_hold_then_resume_returns_to_the_same_window_keeping_its_place() -> None:
    held = {**stored("serving"), **domain.transition(stored("serving"), "hold", T0, "S1", POLICY)}
    assert held["held_from_window"] == "1"
    resumed = domain.transition(held, "resume", T0, "S1", POLICY)
    assert resumed["state"] == "waiting"
    assert resumed["target_window"] == "1"
    assert "order_key" not in resumed


def test_history_is_bounded() -> None:
    doc = stored("waiting", history=[{"n": i} for i in range(domain.HISTORY_LIMIT)])
    changes = domain.transition(doc, "hold", T0, "S1", POLICY, reason="补材料")
    assert len(changes["history"]) == domain.HISTORY_LIMIT
    assert changes["history"][-1]["reason"] == "补材料"


# --- issuing ----------------------------------------------------------------------------------


def local(hour: int, minute: int = 0, day: int = 23) -> datetime:
    return datetime(2026, 11, day, hour, minute, tzinfo=SH)


def test_issue_refusals_closed_non_working_day_hours_and_cap() -> None:
    with pytest.raises(Conflict, match="暂停取号"):
        domain.check_issue(Category("A", "综合", enabled=False), local(9), True, None)
    with pytest.raises(Conflict, match="不是工作日"):
        domain.check_issue(A, local(9), False, None)
    with pytest.raises(Conflict, match=r"08:30-12:00"):
        domain.check_issue(A, local(13), True, None)
    domain.check_issue(A, local(9), True, 2)
    with pytest.raises(Conflict, match="每日限2个"):
        domain.check_issue(A, local(9), True, 3)
    domain.check_issue(A, local(9), True, 3, appointment=True)  # booked slots are not capped
    weekend = Category("A", "综合", working_days_only=False)
    domain.check_issue(weekend, local(9), False, None)


def test_numbers_restart_every_day_per_category() -> None:
    assert domain.counter_key(date(2026, 11, 23), "A") != domain.counter_key(
        date(2026, 11, 24), "A"
    )
    assert domain.counter_key(date(2026, 11, 23), "A") != domain.counter_key(
        date(2026, 11, 23), "B"
    )
    assert domain.format_number("A", 12) == "A012"
    assert domain.format_number("A", 1234) == "A1234"
    assert domain.announcement("A012", "3") == "请A012号到3号窗口办理"


def test_new_ticket_validates_channel_and_priority_and_protects_the_phone() -> None:
    phone = domain.protect_phone("138 1234 5678", "salt")
    made = domain.new_ticket(
        site_code="421302",
        day=date(2026, 11, 23),
        category=A,
        value=7,
        channel="kiosk",
        now=T0,
        by="kiosk",
        priority="elderly",
        phone=phone,
    )
    assert made["id"] == "421302:2026-11-23:A007"
    assert made["lane"] == domain.LANE_GREEN
    assert made["phone_masked"] == "138****5678"
    assert "13812345678" not in str(made)
    others: dict[str, Any] = {
        "site_code": "1",
        "day": T0.date(),
        "category": A,
        "value": 1,
        "now": T0,
        "by": "x",
    }
    with pytest.raises(InvalidInput, match="channel"):
        domain.new_ticket(**others, channel="fax")
    with pytest.raises(InvalidInput, match="priority"):
        domain.new_ticket(**others, channel="kiosk", priority="vip")


def test_phone_hash_depends_on_the_salt_and_bad_numbers_are_refused() -> None:
    one, masked = domain.protect_phone("13812345678", "s1")
    assert masked == "138****5678"
    assert one != domain.protect_phone("13812345678", "s2")[0]
    assert one == domain.protect_phone("138-1234-5678", "s1")[0]
    with pytest.raises(InvalidInput, match="11位"):
        domain.protect_phone("12345", "s1")
    with pytest.raises(InvalidInput, match="privacy_salt"):
        domain.protect_phone("13812345678", "")


@pytest.mark.parametrize("typed", ["138 1234 5678", "+86 138-1234-5678", "１３８１２３４５６７８"])
def test_a_phone_is_normalised_before_it_is_hashed_and_masked(typed: str) -> None:
    assert domain.protect_phone(typed, "s1") == domain.protect_phone("13812345678", "s1")


def test_estimate_is_a_range_from_people_ahead_service_time_and_windows() -> None:
    assert domain.estimate_wait(0, 600, 2) == {
        "expected_seconds": 0,
        "low_minutes": 0,
        "high_minutes": 0,
    }
    est = domain.estimate_wait(10, 600, 2)  # 10 people x 10 min / 2 windows = 50 min
    assert est["expected_seconds"] == 3000
    assert est["low_minutes"] == 35
    assert est["high_minutes"] == 65
    assert domain.estimate_wait(10, 600, 0)["expected_seconds"] == 6000  # no window open: 1
    assert domain.moving_average([], 300) == 300
    assert domain.add_sample([1.0, 2.0, 3.0], 4.0, 3) == [2.0, 3.0, 4.0]


# --- appointments ----------------------------------------------------------------------------


BOOKABLE = Category(
    "B",
    "不动产",
    hours=((time(8, 30), time(10, 0)), (time(14, 0), time(15, 0))),
    slot_minutes=30,
    slot_capacity=2,
)


def test_slots_fill_the_opening_hours() -> None:
    assert [f"{s:%H:%M}" for s in domain.slot_starts(BOOKABLE)] == [
        "08:30",
        "09:00",
        "09:30",
        "14:00",
        "14:30",
    ]
    assert domain.slot_starts(B) == []


def test_booking_refusals() -> None:
    now = local(9)
    tomorrow = date(2026, 11, 24)
    domain.check_booking(BOOKABLE, tomorrow, time(9, 0), now, True, POLICY)
    with pytest.raises(Conflict, match="不提供预约"):
        domain.check_booking(B, tomorrow, time(9, 0), now, True, POLICY)
    with pytest.raises(Conflict, match="不是工作日"):
        domain.check_booking(BOOKABLE, tomorrow, time(9, 0), now, False, POLICY)
    with pytest.raises(InvalidInput, match="没有 09:15"):
        domain.check_booking(BOOKABLE, tomorrow, time(9, 15), now, True, POLICY)
    with pytest.raises(Conflict, match="已过"):
        domain.check_booking(BOOKABLE, date(2026, 11, 23), time(8, 30), now, True, POLICY)
    with pytest.raises(Conflict, match="14天"):
        domain.check_booking(BOOKABLE, date(2026, 12, 23), time(9, 0), now, True, POLICY)


def test_repeated_no_shows_block_bookings_for_a_period() -> None:
    policy = Policy(booking_no_show_limit=3, booking_no_show_days=30, booking_block_days=30)
    today = date(2026, 11, 23)
    two = [today - timedelta(days=1), today - timedelta(days=10)]
    assert domain.booking_block(two, today, policy) is None
    three = [*two, today - timedelta(days=20)]
    assert domain.booking_block(three, today, policy) == today + timedelta(days=29)
    old = [today - timedelta(days=40), *two]  # one no-show too old to count
    assert domain.booking_block(old, today, policy) is None
    long_ago = [today - timedelta(days=d) for d in (35, 36, 37)]
    assert domain.booking_block(long_ago, today, policy) is None


def test_check_in_window_on_time_late_and_too_early() -> None:
    slot = local(10)
    assert domain.check_in_window(slot, local(9, 30), POLICY) is True
    assert domain.check_in_window(slot, local(10, 15), POLICY) is True
    assert domain.check_in_window(slot, local(10, 16), POLICY) is False
    with pytest.raises(Conflict, match="09:30 后签到"):
        domain.check_in_window(slot, local(9, 29), POLICY)
    with pytest.raises(Conflict, match="只能当天签到"):
        domain.check_in_window(slot, local(10, day=24), POLICY)
    assert domain.booking_missed(slot, local(10, 16), POLICY)
    assert not domain.booking_missed(slot, local(10, 15), POLICY)


# --- figures, invitations, setup -------------------------------------------------------------


def test_daily_figures_from_stats() -> None:
    stats: dict[str, Any] = dict(domain.empty_stats("421302", date(2026, 11, 23), "A"))
    for wait in (10, 100, 200, 1000, 2000):  # seconds
        stats.update(domain.add_wait(stats, wait, 1800))
    stats.update(issued=6, served=4, no_show=1)
    fig = domain.figures(stats)
    assert fig["id"] == "421302:2026-11-23:A"
    assert (fig["issued"], fig["served"], fig["no_show"]) == (6, 4, 1)
    assert fig["within_target_share"] == 0.8
    assert fig["wait_p50_s"] == 210  # 200 s lies in the 195-210 bucket
    assert fig["wait_p90_s"] == 2010
    assert fig["schema"] == 1
    empty = domain.figures(domain.empty_stats("421302", date(2026, 11, 23), "B"))
    assert empty["wait_p50_s"] is None
    assert empty["within_target_share"] is None


def test_invitation_has_the_contract_shape() -> None:
    done = {
        "id": "421302:2026-11-23:A001",
        "site_code": "421302",
        "window": "3",
        "staff_id": "S003",
        "matter_code": "0700000100",
        "ended_at": "2026-11-23T02:10:00.000000Z",
    }
    inv = domain.invitation(done, "县政务服务和大数据管理局", T0)
    assert inv == {
        "id": "ticket:421302:2026-11-23:A001",
        "schema": 1,
        "service_ref": {"kind": "ticket", "id": "421302:2026-11-23:A001"},
        "site_code": "421302",
        "window": "3",
        "staff_id": "S003",
        "matter_code": "0700000100",
        "department": "县政务服务和大数据管理局",
        "service_channel": "window",
        "service_ended_at": "2026-11-23T02:10:00.000000Z",
        "created_at": iso(T0),
    }


GOOD: dict[str, Any] = {
    "categories": [{"prefix": "A", "name": "综合", "hours": ["08:30-12:00"]}],
    "windows": [{"number": "1", "categories": {"A": 1}}],
    "staff": [{"id": "S1", "name": "张三", "windows": ["1"], "backup_windows": []}],
}


@pytest.mark.parametrize(
    ("patch", "field"),
    [
        ({"categories": [*GOOD["categories"], *GOOD["categories"]]}, "categories[1].prefix"),
        ({"categories": [{"prefix": "a", "name": "x"}]}, "categories[0].prefix"),
        ({"categories": [{"prefix": "A", "name": "x", "hours": ["12:00-08:00"]}]}, "hours[0]"),
        ({"categories": [{"prefix": "A", "name": "x", "hours": ["8-9"]}]}, "hours[0]"),
        ({"windows": [{"number": "1", "categories": {"Z": 1}}]}, "windows[0].categories"),
        ({"staff": [{"id": "S1", "name": "x", "windows": ["9"]}]}, "staff[0].windows"),
        ({"timezone": "Mars/Base"}, "timezone"),
        ({"day_close_time": "25:00"}, "day_close_time"),
    ],
)
def test_setup_rules_name_the_field(patch: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        domain.build_setup({**GOOD, **patch})
    assert any(field in name for name in caught.value.fields)


def test_staff_sign_in_own_window_backup_window_or_refused() -> None:
    setup = domain.build_setup(
        {
            **GOOD,
            "windows": [
                {"number": "1", "categories": {"A": 1}},
                {"number": "2", "categories": {"A": 1}},
                {"number": "3", "categories": {"A": 1}},
            ],
            "staff": [{"id": "S1", "name": "张三", "windows": ["1"], "backup_windows": ["2"]}],
        }
    )
    assert domain.check_sign_in(setup, "S1", "1") is False
    assert domain.check_sign_in(setup, "S1", "2") is True
    with pytest.raises(Forbidden, match="B岗"):
        domain.check_sign_in(setup, "S1", "3")
    with pytest.raises(NotFound):
        domain.check_sign_in(setup, "S9", "1")


def test_every_action_of_the_state_machine_has_its_function_in_the_table() -> None:
    from services.queue.domain.transitions import EFFECTS

    assert set(EFFECTS) == set(domain.TRANSITIONS)
    with pytest.raises(InvalidInput, match="outcome"):
        domain.transition(stored("serving"), "complete", T0, "S1", POLICY, outcome="maybe")
