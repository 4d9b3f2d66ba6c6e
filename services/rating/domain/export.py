"""Export profiles: one canonical enum is stored; each upstream target gets its own explicit
table. A target that has no code for a canonical value maps it to None and the export
reports the record as unmapped instead of guessing."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

from services.common.clock import parse_iso
from services.rating.domain.scale import FIRST, SUPPLEMENTARY, Channel, Level


@dataclass(frozen=True)
class ExportProfile:
    name: str
    title: str
    levels: Mapping[Level, str]
    channels: Mapping[Channel, tuple[str, str] | None]  # code, label
    sequences: Mapping[int, str]


# GB/T 39046-2020 table 9: 满意度代码 per annex A.8 (1 = 非常满意 … 5 = 非常不满意); 评价渠道
# named as the table lists them (PC端, 移动服务端, 二维码, 政务大厅平板电脑, 政务大厅其他终端,
# 电话, 短信), numbered in that order.
GBT39046 = ExportProfile(
    name="gbt39046",
    title="GB/T 39046-2020 表9",
    levels={
        Level.VERY_SATISFIED: "1",
        Level.SATISFIED: "2",
        Level.BASICALLY_SATISFIED: "3",
        Level.DISSATISFIED: "4",
        Level.VERY_DISSATISFIED: "5",
    },
    channels={
        Channel.PC: ("1", "PC端"),
        Channel.MOBILE: ("2", "移动服务端"),
        Channel.QR_CODE: ("3", "二维码"),
        Channel.PAD: ("4", "政务大厅平板电脑"),
        Channel.SELF_SERVICE: ("5", "政务大厅其他终端"),
        Channel.PAPER: ("5", "政务大厅其他终端"),  # a paper form keyed in at the hall
        Channel.PHONE: ("6", "电话"),
        Channel.SMS: ("7", "短信"),
        Channel.SYSTEM_DEFAULT: None,  # the table has no code for a system default rating
    },
    sequences={FIRST: "1", SUPPLEMENTARY: "2"},
)

_PROVINCIAL_LEVELS = {
    Level.VERY_DISSATISFIED: "1",
    Level.DISSATISFIED: "2",
    Level.BASICALLY_SATISFIED: "3",
    Level.SATISFIED: "4",
    Level.VERY_SATISFIED: "5",
}

# Codes 1-5 are the same in both provincial numberings; they differ from 6 on.
_PROVINCIAL_CHANNELS = {
    Channel.PC: ("1", "pc"),
    Channel.MOBILE: ("2", "移动端"),
    Channel.QR_CODE: ("3", "二维码"),
    Channel.PAD: ("4", "平板/评价器"),
    Channel.PAPER: ("4", "平板/评价器"),  # entered at the window in place of the pad
    Channel.SELF_SERVICE: ("5", "自助终端"),
}

# Provincial interface numbering with 6 = 电话 and 7 = 短信 (no system default rating).
PROVINCIAL_PHONE = ExportProfile(
    name="provincial_phone",
    title="省级接口（6 电话，7 短信）",
    levels=_PROVINCIAL_LEVELS,
    channels={
        **_PROVINCIAL_CHANNELS,
        Channel.PHONE: ("6", "电话"),
        Channel.SMS: ("7", "短信"),
        Channel.SYSTEM_DEFAULT: None,
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
        Channel.SMS: ("6", "短信"),
        Channel.PHONE: None,  # this numbering has no telephone channel
        Channel.SYSTEM_DEFAULT: ("7", "系统默认评价"),
    },
    sequences={FIRST: "1", SUPPLEMENTARY: "2"},
)

EXPORT_PROFILES = {p.name: p for p in (GBT39046, PROVINCIAL_PHONE, PROVINCIAL_DEFAULT)}


def export_record(
    doc: Mapping[str, Any], profile: ExportProfile, zone: ZoneInfo
) -> dict[str, Any] | None:
    """One evaluation in the target's coding; None when the target cannot code its channel."""
    channel = profile.channels[Channel(doc["channel"])]
    if channel is None:
        return None
    level = Level(doc["level"])
    moment = parse_iso(doc["submitted_at"]).astimezone(zone)
    rater = doc.get("rater") or {}
    return {
        "办件编号": doc["service_ref"]["id"],
        "评价渠道": channel[1],
        "评价渠道代码": channel[0],
        "评价人": rater.get("name_masked") or "匿名",
        "评价时间": moment.strftime("%Y%m%dT%H%M%S"),
        "评价次数": profile.sequences[int(doc["sequence"])],
        "满意度": level.zh,
        "满意度代码": profile.levels[level],
        "文字评价": doc.get("comment") or "",
        "行政区划": doc["site_code"],
        "是否计入统计": "否" if doc.get("excluded") or doc.get("held") else "是",
    }
