"""The queue's words: channels, priorities, outcomes, ticket and window states, lanes."""

from __future__ import annotations

CHANNELS = ("kiosk", "web", "wechat", "appointment", "staff")
BOOKING_CHANNELS = ("web", "wechat", "phone", "staff")
PRIORITY_REASONS = {
    "elderly": "老年人",
    "disabled": "残疾人",
    "pregnant": "孕妇",
    "military": "军人",
}
OUTCOMES = {"done": "办结", "accepted": "已受理", "consulted": "咨询", "not_accepted": "不予受理"}
STATE_NAMES = {
    "waiting": "等候中",
    "called": "已叫号",
    "serving": "办理中",
    "completed": "已办结",
    "no_show": "过号",
    "held": "暂挂",
    "cancelled": "已取消",
    "expired": "已作废",
}
ACTION_NAMES = {
    "take": "取号",
    "call": "叫号",
    "recall": "重呼",
    "start": "开始办理",
    "complete": "办结",
    "no_show": "标记过号",
    "requeue": "过号重排",
    "transfer": "转移",
    "hold": "暂挂",
    "resume": "恢复",
    "cancel": "取消",
    "expire": "作废",
    "revert_call": "撤回叫号",
}
FINAL_STATES = ("completed", "no_show", "cancelled", "expired")
UNSERVED = ("waiting", "called", "serving", "held")
ACTIVE_AT_WINDOW = ("called", "serving")
# Lanes of the calling rule: lower is called first.
LANE_GREEN, LANE_APPOINTMENT, LANE_NORMAL = 0, 1, 2
HISTORY_LIMIT = 100  # audit entries kept per ticket (a ticket rarely has more than 15)
WINDOW_STATES = {"closed": "关闭", "open": "开放", "paused": "暂停"}
WAIT_BUCKET_S = 15  # resolution of the per-day wait distribution behind p50/p90
