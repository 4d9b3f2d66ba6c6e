"""The upstream targets' coding of an evaluation (GB/T 39046-2020 table 9 and the provincial
interfaces): one canonical enum value is stored; each target gets its own explicit table.
A target that has no code for a canonical value maps it to None, and the caller reports
the record as unmapped instead of guessing.

Shared by rating (``rating.export``) and sync (the platform connector, which must not
import rating): pure tables keyed by the canonical values (rating's ``Level`` and
``Channel`` are ``StrEnum``s, so they look these up as themselves)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

from services.common.clock import parse_iso
from services.common.privacy import scrub_text

# 满意度, the national five levels, best first (rating's ``Level`` values).
LEVEL_ZH = {
    "very_satisfied": "非常满意",
    "satisfied": "满意",
    "basically_satisfied": "基本满意",
    "dissatisfied": "不满意",
    "very_dissatisfied": "非常不满意",
}
FIRST, SUPPLEMENTARY = 1, 2
# 评价时间 in every target: local time, ``YYYYMMDDThhmmss``.
TIME_FORMAT = "%Y%m%dT%H%M%S"


@dataclass(frozen=True)
class ExportProfile:
    name: str
    title: str
    levels: Mapping[str, str]
    channels: Mapping[str, tuple[str, str] | None]  # code, label
    sequences: Mapping[int, str]


# GB/T 39046-2020 table 9: 满意度代码 per annex A.8 (1 = 非常满意 … 5 = 非常不满意); 评价渠道
# named as the table lists them (PC端, 移动服务端, 二维码, 政务大厅平板电脑, 政务大厅其他终端,
# 电话, 短信), numbered in that order.
GBT39046 = ExportProfile(
    name="gbt39046",
    title="GB/T 39046-2020 表9",
    levels={
        "very_satisfied": "1",
        "satisfied": "2",
        "basically_satisfied": "3",
        "dissatisfied": "4",
        "very_dissatisfied": "5",
    },
    channels={
        "pc": ("1", "PC端"),
        "mobile": ("2", "移动服务端"),
        "qr_code": ("3", "二维码"),
        "pad": ("4", "政务大厅平板电脑"),
        "self_service": ("5", "政务大厅其他终端"),
        "paper": ("5", "政务大厅其他终端"),  # a paper form keyed in at the hall
        "phone": ("6", "电话"),
        "sms": ("7", "短信"),
        "system_default": None,  # the table has no code for a system default rating
    },
    sequences={FIRST: "1", SUPPLEMENTARY: "2"},
)

_PROVINCIAL_LEVELS = {
    "very_dissatisfied": "1",
    "dissatisfied": "2",
    "basically_satisfied": "3",
    "satisfied": "4",
    "very_satisfied": "5",
}

# Codes 1-5 are the same in both provincial numberings; they differ from 6 on.
_PROVINCIAL_CHANNELS = {
    "pc": ("1", "pc"),
    "mobile": ("2", "移动端"),
    "qr_code": ("3", "二维码"),
    "pad": ("4", "平板/评价器"),
    "paper": ("4", "平板/评价器"),  # entered at the window in place of the pad
    "self_service": ("5", "自助终端"),
}

# Provincial interface numbering with 6 = 电话 and 7 = 短信 (no system default rating).
PROVINCIAL_PHONE = ExportProfile(
    name="provincial_phone",
    title="省级接口（6 电话，7 短信）",
    levels=_PROVINCIAL_LEVELS,
    channels={
        **_PROVINCIAL_CHANNELS,
        "phone": ("6", "电话"),
        "sms": ("7", "短信"),
        "system_default": None,
    },
    sequences={FIRST: "1", SUPPLEMENTARY: "2"},
)

# Provincial interface numbering with 6 = 短信 (SMS and phone call-backs) and 7 = 系统默认评价.
PROVINCIAL_DEFAULT = ExportProfile(
    name="provincial_default",
    title="省级接口（6 短信，7 系统默认评价）",
    levels=_PROVINCIAL_LEVELS,
    channels={
        **_PROVINCIAL_CHANNELS,
        "sms": ("6", "短信"),
        "phone": None,  # this numbering has no telephone channel
        "system_default": ("7", "系统默认评价"),
    },
    sequences={FIRST: "1", SUPPLEMENTARY: "2"},
)

EXPORT_PROFILES = {p.name: p for p in (GBT39046, PROVINCIAL_PHONE, PROVINCIAL_DEFAULT)}


def export_record(
    doc: Mapping[str, Any], profile: ExportProfile, zone: ZoneInfo
) -> dict[str, Any] | None:
    """One evaluation in the target's coding; None when the target cannot code its channel."""
    channel = profile.channels[str(doc["channel"])]
    if channel is None:
        return None
    level = str(doc["level"])
    moment = parse_iso(doc["submitted_at"]).astimezone(zone)
    rater = doc.get("rater") or {}
    return {
        "办件编号": doc["service_ref"]["id"],
        "评价渠道": channel[1],
        "评价渠道代码": channel[0],
        "评价人": rater.get("name_masked") or "匿名",
        "评价时间": moment.strftime(TIME_FORMAT),
        "评价次数": profile.sequences[int(doc["sequence"])],
        "满意度": LEVEL_ZH[level],
        "满意度代码": profile.levels[level],
        "文字评价": doc.get("comment") or "",
        "行政区划": doc["site_code"],
        "是否计入统计": "否" if doc.get("excluded") or doc.get("held") else "是",
    }


# --- 差评整改: the outcome of a bad rating's rectification case ------------------------------
# GB/T 39046 table 9 and the provincial interfaces code evaluations only; they define no
# fields for a case. ``rectification_v1`` is this system's own, explicit coding of a case
# (docs/api.md, "sync: the platform connector", 差评整改记录): codes from rating's own case
# states and classifications, local times, no personal data (no handler, no rater, no phone).
RECTIFICATION_V1 = "rectification_v1"
# rating's ``CaseState`` → (办理状态代码, 办理状态)
CASE_STATES: Mapping[str, tuple[str, str]] = {
    "callback_pending": ("1", "待回访核实"),
    "classification_pending": ("2", "待定性"),
    "rectifying": ("3", "整改中"),
    "feedback_pending": ("4", "待反馈"),
    "closed": ("5", "已办结"),
}
# rating's ``Classification`` → (定性代码, 定性); not yet classified: both "".
CASE_CLASSIFICATIONS: Mapping[str, tuple[str, str]] = {
    "fix_now": ("1", "立行立改"),
    "ledger": ("2", "限期整改"),
    "explain": ("3", "解释说明"),
    "not_adopted": ("4", "不予采纳"),
}
# rating's feedback methods (``record_feedback``) → 反馈方式
FEEDBACK_METHODS: Mapping[str, str] = {
    "phone": "电话",
    "sms": "短信",
    "letter": "信函",
    "visit": "上门",
    "online": "网上",
}
MEASURES_MAX = 500  # 整改措施: characters kept
DATE_FORMAT = "%Y%m%d"
RECTIFICATION_FIELDS = (
    "案件编号",
    "评价编号",
    "评价幂等键",
    "办件编号",
    "行政区划",
    "办理状态代码",
    "办理状态",
    "定性代码",
    "定性",
    "回访期限",
    "回访时间",
    "整改期限",
    "整改完成时间",
    "整改措施",
    "反馈时间",
    "反馈方式",
    "办结时间",
    "是否按期",
)


def service_ref_of(evaluation_id: str) -> str:
    """The 办件编号 (the service's reference, as the evaluation's own record gives it) inside
    rating's evaluation id ``ev:<site>:<kind>:<ref id>:<sequence>``; "" for another form."""
    parts = evaluation_id.split(":")
    if len(parts) < 5 or parts[0] != "ev":
        return ""
    return ":".join(parts[3:-1])


def _local(stamp: str | None, zone: ZoneInfo) -> str:
    return parse_iso(stamp).astimezone(zone).strftime(TIME_FORMAT) if stamp else ""


def _day(value: str | None) -> str:
    return value.replace("-", "") if value else ""


def rectification_record(
    doc: Mapping[str, Any], zone: ZoneInfo
) -> tuple[dict[str, Any] | None, str | None]:
    """One case version in ``rectification_v1``: (the fields, None), or (None, why it cannot be
    coded) for a state, classification or feedback method the coding has no code for — never
    guessed. Free text (整改措施) has phones and ID numbers masked, and is capped."""
    state = CASE_STATES.get(str(doc.get("state")))
    if state is None:
        return None, f"rectification_v1 没有该案件状态（{doc.get('state')}）的代码"
    classification: tuple[str, str] = ("", "")
    if doc.get("classification") is not None:
        found = CASE_CLASSIFICATIONS.get(str(doc["classification"]))
        if found is None:
            return None, f"rectification_v1 没有该定性（{doc['classification']}）的代码"
        classification = found
    steps: dict[str, Mapping[str, Any]] = {}
    for item in doc.get("steps") or []:
        steps[str(item.get("step"))] = item  # the last of each kind
    feedback = steps.get("feedback") or {}
    method = ""
    if feedback.get("method") is not None:
        method = FEEDBACK_METHODS.get(str(feedback["method"]), "")
        if not method:
            return None, f"rectification_v1 没有该反馈方式（{feedback['method']}）的代码"
    measures = str((steps.get("rectified") or {}).get("measures") or "")
    on_time = doc.get("on_time")
    evaluation = str(doc["evaluation_id"])
    return {
        "案件编号": str(doc["id"]),
        "评价编号": evaluation,
        "评价幂等键": f"{evaluation}@v1",
        "办件编号": service_ref_of(evaluation),
        "行政区划": str(doc["site_code"]),
        "办理状态代码": state[0],
        "办理状态": state[1],
        "定性代码": classification[0],
        "定性": classification[1],
        "回访期限": _day(doc.get("callback_due")),
        "回访时间": _local((steps.get("callback") or {}).get("at"), zone),
        "整改期限": _day(doc.get("close_due")),
        "整改完成时间": _local((steps.get("rectified") or {}).get("at"), zone),
        "整改措施": scrub_text(measures)[:MEASURES_MAX],
        "反馈时间": _local(feedback.get("at"), zone),
        "反馈方式": method,
        "办结时间": _local(doc.get("closed_at"), zone),
        "是否按期": "" if on_time is None else ("是" if on_time else "否"),
    }, None
