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
