"""The scale and the tables: five satisfaction levels, what was rated, rating channels,
the detail questions, statistics dimensions, and the reasons a rating is held.

Sources: 国办发〔2019〕51号 (seed 003 篇一) and GB/T 39046-2020 table 9, as summarised in
DOMAIN.md "Evaluation".
"""

from __future__ import annotations

from enum import StrEnum

from services.common.evaluation_coding import FIRST as FIRST
from services.common.evaluation_coding import LEVEL_ZH as CODED_LEVEL_ZH
from services.common.evaluation_coding import SUPPLEMENTARY as SUPPLEMENTARY


class Level(StrEnum):
    """满意度: the national five levels, best first; the last two are bad ratings (差评)."""

    VERY_SATISFIED = "very_satisfied"
    SATISFIED = "satisfied"
    BASICALLY_SATISFIED = "basically_satisfied"
    DISSATISFIED = "dissatisfied"
    VERY_DISSATISFIED = "very_dissatisfied"

    @property
    def zh(self) -> str:
        return LEVEL_ZH[self]

    @property
    def bad(self) -> bool:
        return self in BAD_LEVELS


# The names are the export coding's (services/common/evaluation_coding.py), kept once.
LEVEL_ZH = {level: CODED_LEVEL_ZH[level.value] for level in Level}
BAD_LEVELS = frozenset({Level.DISSATISFIED, Level.VERY_DISSATISFIED})
# 好评 = the two top levels; 满意 (satisfaction) = every level that is not bad.
GOOD_LEVELS = frozenset({Level.VERY_SATISFIED, Level.SATISFIED})
SATISFIED_LEVELS = frozenset(set(Level) - BAD_LEVELS)


class RefKind(StrEnum):
    """What was evaluated: a ticket (一次一评), an application (一事一评), or other channels."""

    TICKET = "ticket"
    APPLICATION = "application"
    ONLINE = "online"
    HOTLINE = "hotline"
    OTHER = "other"


class Channel(StrEnum):
    """评价渠道, canonical: how the rating was given (mapped to codes only on export)."""

    PAD = "pad"  # 窗口评价器/平板
    QR_CODE = "qr_code"
    PC = "pc"
    MOBILE = "mobile"
    SMS = "sms"
    PHONE = "phone"
    SELF_SERVICE = "self_service"  # 自助终端
    PAPER = "paper"  # 纸质评价表, entered by a clerk
    SYSTEM_DEFAULT = "system_default"  # 系统默认评价 (a per-site option)


# 评价问询 detail questions (51号文 三(二)); the first four are yes/no, the last is text.
DETAIL_QUESTIONS = (
    "guide_clear",
    "procedure_convenient",
    "materials_simplified",
    "interface_friendly",
)
SUGGESTION = "suggestion"

# Dimensions statistics can filter and group by, each kept as its own rollup bucket.
DIMENSIONS = ("window", "staff", "matter", "department", "channel")
ALL = "*"


# Why a rating is held for review instead of counted (see ``submission.suspicion_reasons``).
HOLD_ZH = {
    "before_service_end": "评价时间早于服务结束时间",
    "self_rating": "工作人员评价本人办理的服务",
    "phone_daily_limit": "同一手机号当日评价次数过多",
    "device_daily_limit": "同一设备当日评价次数过多",
}
