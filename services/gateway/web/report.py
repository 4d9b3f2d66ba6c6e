"""The 好差评公开报告 (公开为常态) as HTML: the figures of ``rating.public_report``, as rating
computed them, laid out in tables a browser prints on A4. Pure functions from the report's
data to markup; every value is escaped (department and matter names come from the catalog,
which people write). Nothing here is personal: the report carries no staff, rater or
record ids, and this module adds none."""

from __future__ import annotations

import html
from collections.abc import Iterable, Mapping, Sequence
from datetime import date
from typing import Any

from services.common.evaluation_coding import LEVEL_ZH

# The national five levels, best first, as rating keys and names them.
LEVELS = tuple(LEVEL_ZH.items())
# 评价渠道 as a citizen knows them (rating's canonical channels).
CHANNELS = {
    "pad": "窗口评价器",
    "qr_code": "扫码评价",
    "pc": "政务服务网（电脑）",
    "mobile": "移动端",
    "sms": "短信",
    "phone": "电话",
    "self_service": "自助终端",
    "paper": "纸质评价表",
    "system_default": "系统默认评价",
}
LEVEL_HEADS = (*(name for _, name in LEVELS), "合计", "满意率", "好评率")
CASE_HEADS = ("差评案件", "已办结", "按时办结", "按时办结率", "实名差评", "回访率", "整改率")


def percent(value: float | None) -> str:
    """A rate as rating rounded it (4 decimals), in percent; no denominator, no rate."""
    return "—" if value is None else f"{value * 100:.2f}%"


def period_name(period: str) -> str:
    return f"{period[:4]}年度" if len(period) == 4 else f"{period[:4]}年{int(period[5:])}月"


def recent_periods(today: date, months: int = 12) -> list[str]:
    """This month and the ones before it, newest first (``YYYY-MM``)."""
    index = today.year * 12 + today.month - 1
    return [f"{(index - i) // 12:04d}-{(index - i) % 12 + 1:02d}" for i in range(months)]


def level_cells(fig: Mapping[str, Any]) -> list[str]:
    counts = fig["counts"]
    return [
        *(str(counts.get(key, 0)) for key, _ in LEVELS),
        str(fig["total"]),
        percent(fig["satisfaction_rate"]),
        percent(fig["good_rate"]),
    ]


def case_cells(fig: Mapping[str, Any]) -> list[str]:
    return [
        str(fig["cases"]),
        str(fig["cases_closed"]),
        str(fig["cases_closed_on_time"]),
        percent(fig["closed_on_time_rate"]),
        str(fig["real_name_bad"]),
        percent(fig["callback_rate"]),
        percent(fig["rectification_rate"]),
    ]


def table(
    name: str, caption: str, heads: Sequence[str], rows: Iterable[tuple[str, Sequence[str]]]
) -> str:
    """A section with one table; each row is (its first, naming cell, the figures)."""
    body = "".join(
        f"<tr><th scope='row'>{html.escape(label)}</th>"
        + "".join(f"<td>{html.escape(cell)}</td>" for cell in cells)
        + "</tr>"
        for label, cells in rows
    )
    if not body:
        body = f"<tr><td colspan='{len(heads)}' class='empty'>本期无评价</td></tr>"
    head = "".join(f"<th scope='col'>{html.escape(h)}</th>" for h in heads)
    return (
        f"<section class='block' data-table='{name}'><h2>{html.escape(caption)}</h2>"
        f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></section>"
    )


def summary(total: Mapping[str, Any]) -> str:
    shown = [
        ("计入统计的评价", f"{total['total']} 条"),
        ("满意率（非常满意、满意、基本满意）", percent(total["satisfaction_rate"])),
        ("好评率（非常满意、满意）", percent(total["good_rate"])),
        ("差评（不满意、非常不满意）", f"{total['bad']} 条"),
        ("差评整改率（实名差评）", percent(total["rectification_rate"])),
        ("不计入统计（不予采纳、申诉成立）", f"{total['excluded']} 条"),
    ]
    items = "".join(
        f"<div><dt>{html.escape(label)}</dt><dd>{html.escape(value)}</dd></div>"
        for label, value in shown
    )
    return (
        f"<section class='block' data-table='summary'><h2>总体情况</h2><dl>{items}</dl></section>"
    )


def by_level(groups: Iterable[Mapping[str, Any]], label: Any) -> list[tuple[str, list[str]]]:
    return [(label(g["key"]) or "未注明", level_cells(g)) for g in groups]


def window_name(key: str) -> str:
    site, _, window = key.partition(":")
    return f"{site} · {window} 号窗口"


def render(report: Mapping[str, Any], matter_names: Mapping[str, str]) -> str:
    """The report's body: every figure as ``rating.public_report`` gave it."""
    total = report["total"]
    first = ("名称", *LEVEL_HEADS)
    departments = report["by_department"]
    rows_cases = [("全部", case_cells(total))] + [
        (g["key"], case_cells(g)) for g in departments if g["cases"] or g["real_name_bad"]
    ]
    windows = [
        (
            str(w["rank"]),
            [window_name(w["key"]), str(w["total"]), percent(w["satisfaction_rate"])],
        )
        for w in report["windows"]
    ]
    return "".join(
        [
            summary(total),
            table("levels", "评价等级分布", ("范围", *LEVEL_HEADS), [("全部", level_cells(total))]),
            table("department", "按部门", first, by_level(departments, str)),
            table(
                "matter",
                "按事项",
                first,
                by_level(report["by_matter"], lambda k: matter_names.get(k, k)),
            ),
            table("cases", "差评整改", ("范围", *CASE_HEADS), rows_cases),
            table(
                "channel",
                "按评价渠道",
                ("渠道", *LEVEL_HEADS),
                by_level(report["by_channel"], lambda k: CHANNELS.get(k, k)),
            ),
            table("site", "按站点", ("站点编码", *LEVEL_HEADS), by_level(report["by_site"], str)),
            table("windows", "窗口满意率排名", ("名次", "窗口", "评价数", "满意率"), windows),
            f"<p class='note'>{html.escape(report['note'])}</p>",
        ]
    )
