"""Queueing rules (排队叫号): site setup, the ticket state machine, the calling order,
appointments, estimates and daily figures. Standard library (and ``services.common``'s
errors, clock and privacy) only, no I/O: every function takes the current time (and
anything else it needs) as arguments.

Words used here: a ``Ticket`` (号/排队号) is one visit in one ``Category`` (业务类别) at one
site; a ``Window`` (窗口) calls tickets of the categories it serves; ``Staff`` (窗口工作人员)
sign in at windows; a ``Booking`` (预约) reserves a slot and becomes a ticket at check-in.

The modules, one concept each: ``vocabulary`` (names and states), ``categories`` (the
site's setup), ``tickets`` (issuing), ``transitions`` (the state machine), ``calling``
(the calling rule and estimates), ``windows``, ``booking``, ``figures`` (daily figures and
invitations), ``board``, and ``records`` (the stored documents). The names used across the
service are re-exported here.
"""

from services.queue.domain.board import announcement, board_windows, recent_calls
from services.queue.domain.booking import (
    booking_block,
    booking_hold,
    booking_missed,
    booking_view,
    check_booking,
    check_in_window,
    check_not_blocked,
    check_not_booked,
    slot_key,
    slot_key_of,
    slot_starts,
)
from services.queue.domain.calling import (
    add_sample,
    calling_order,
    eligible,
    estimate_wait,
    moving_average,
    service_seconds,
)
from services.queue.domain.categories import (
    Category,
    Policy,
    Setup,
    Staff,
    Window,
    build_setup,
    parse_hhmm,
    zone,
)
from services.queue.domain.figures import (
    add_wait,
    empty_stats,
    figures,
    invitation,
    merge_stats,
    site_days,
    stats_from_tickets,
    stats_id,
    waiting_over_target,
)
from services.queue.domain.tickets import (
    check_issue,
    counter_key,
    format_number,
    new_ticket,
    protect_phone,
    ticket_view,
    timestamp,
    walk_in_key,
)
from services.queue.domain.transitions import (
    TRANSITIONS,
    no_show_due,
    requeue_key,
    revert_call,
    transition,
)
from services.queue.domain.vocabulary import (
    BOOKING_CHANNELS,
    CHANNELS,
    FINAL_STATES,
    HISTORY_LIMIT,
    LANE_APPOINTMENT,
    LANE_GREEN,
    LANE_NORMAL,
    OUTCOMES,
    PRIORITY_REASONS,
    STATE_NAMES,
    UNSERVED,
    WINDOW_STATES,
)
from services.queue.domain.windows import (
    check_sign_in,
    new_window,
    window_id,
    window_view,
    with_window_history,
)

__all__ = [
    "BOOKING_CHANNELS",
    "CHANNELS",
    "FINAL_STATES",
    "HISTORY_LIMIT",
    "LANE_APPOINTMENT",
    "LANE_GREEN",
    "LANE_NORMAL",
    "OUTCOMES",
    "PRIORITY_REASONS",
    "STATE_NAMES",
    "TRANSITIONS",
    "UNSERVED",
    "WINDOW_STATES",
    "Category",
    "Policy",
    "Setup",
    "Staff",
    "Window",
    "add_sample",
    "add_wait",
    "announcement",
    "board_windows",
    "booking_block",
    "booking_hold",
    "booking_missed",
    "booking_view",
    "build_setup",
    "calling_order",
    "check_booking",
    "check_in_window",
    "check_issue",
    "check_not_blocked",
    "check_not_booked",
    "check_sign_in",
    "counter_key",
    "eligible",
    "empty_stats",
    "estimate_wait",
    "figures",
    "format_number",
    "invitation",
    "merge_stats",
    "moving_average",
    "new_ticket",
    "new_window",
    "no_show_due",
    "parse_hhmm",
    "protect_phone",
    "recent_calls",
    "requeue_key",
    "revert_call",
    "service_seconds",
    "site_days",
    "slot_key",
    "slot_key_of",
    "slot_starts",
    "stats_from_tickets",
    "stats_id",
    "ticket_view",
    "timestamp",
    "transition",
    "waiting_over_target",
    "walk_in_key",
    "window_id",
    "window_view",
    "with_window_history",
    "zone",
]
