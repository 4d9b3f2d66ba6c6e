"""The supervisor's dashboard (辖区看板): one row per site of this site's subtree, from what
the services answer the signed-in person — ``rating.stats`` grouped by site, the queue's
``subtree_figures``, ``sync.status``, and this site's overdue cases — and the table as CSV
(UTF-8 with a BOM, for Excel) or XLSX.

A figure this tier cannot know is ``None`` with the reason in ``why`` (the page shows "—"
and the reason as a tooltip), never a guess: how many wait now at a child (its queue is not
replicated live), a child's unsent backlog (only the child knows what it has not sent),
a child's overdue cases (judged by that site's own deadlines, listed there)."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from marshmallow import fields
from openpyxl import Workbook
from openpyxl.styles import Font

from services.common.clock import parse_iso
from services.common.errors import HallError, InvalidInput
from services.common.validation import Arguments, load
from services.gateway.settings import GatewaySettings

Call = Callable[..., Any]  # call(service, method, *args): as the signed-in person
OVERDUE_LIMIT = 1000  # this site's overdue cases are counted up to this many (rating's cap)
MAX_DAYS = 92  # the queue's bound on one read of the subtree's figures

# (key, heading): the table's columns, in order; the CSV and XLSX use the same.
COLUMNS = (
    ("site_code", "站点"),
    ("tickets", "取号数"),
    ("waiting", "当前等候"),
    ("within_target_share", "按时叫号率"),
    ("evaluations", "评价数"),
    ("satisfaction_rate", "满意率"),
    ("bad", "差评数"),
    ("cases_open", "未办结工单"),
    ("cases_overdue", "超期工单"),
    ("callback_rate", "实名差评回访率"),
    ("sync_backlog", "待上报"),
    ("oldest_unsent_s", "最久未上报（秒）"),
    ("last_success", "最近同步成功"),
)
RATES = {"within_target_share", "satisfaction_rate", "callback_rate"}
# Which answer each column comes from: a service that does not answer blanks its columns.
SOURCES = {
    "queue": ("tickets", "waiting", "within_target_share"),
    "rating": ("evaluations", "satisfaction_rate", "bad", "cases_open", "callback_rate"),
    "cases": ("cases_overdue",),
    "sync": ("sync_backlog", "oldest_unsent_s", "last_success"),
}
SERVICE_ZH = {"queue": "叫号服务", "rating": "评价服务", "cases": "评价服务", "sync": "同步服务"}

NOT_LIVE = "下级站点的队列不实时上报，本级只看得到它上报的每日数据"
CHILD_BACKLOG = "待上报数只在该站点可见（本级只知道收到了什么）"
CHILD_OVERDUE = "超期按该站点自己的时限判断，请在该站点查看"
NOT_DIRECT = "经下级站点转发，本级看不到它的同步状态"
NO_UPSTREAM = "本站点没有上级，不上报"
NO_RATINGS = "本期没有计入统计的评价"
NO_CALLS = "本期没有叫号"
NO_REAL_NAME = "本期没有实名差评"
OLD_CHILD = "该站点版本较旧，未上报叫号数，按时叫号率无法合计"


class PeriodArgs(Arguments):
    date_from = fields.Date(load_default=None, allow_none=True)
    date_to = fields.Date(load_default=None, allow_none=True)


@dataclass(frozen=True)
class Period:
    date_from: date
    date_to: date


def period(args: Mapping[str, Any], today: date) -> Period:
    """The days asked for (default today), in order, at most ``MAX_DAYS``."""
    data = load(PeriodArgs, dict(args))
    first, last = data["date_from"] or today, data["date_to"] or today
    if first > last:
        raise InvalidInput.field("date_from", "起始日期不能晚于截止日期")
    if (last - first).days >= MAX_DAYS:
        raise InvalidInput.field("date_to", f"一次最多查看 {MAX_DAYS} 天")
    return Period(first, last)


def _ratio(numerator: int, denominator: int) -> float | None:
    return round(numerator / denominator, 4) if denominator else None


def _tickets(rows: Iterable[Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """The queue's per-site-day rows added up per site over the period."""
    sites: dict[str, dict[str, Any]] = {}
    for row in rows:
        site = sites.setdefault(
            row["site_code"], {"issued": 0, "called": 0, "within_target": 0, "exact": True}
        )
        for key in ("issued", "called", "within_target"):
            site[key] += int(row.get(key) or 0)
        if row.get("called") and row.get("within_target_share") is None:
            site["exact"] = False
    return sites


def _sync_child(
    marks: Mapping[str, Mapping[str, Any]], now: datetime, silent: timedelta
) -> tuple[dict[str, Any], dict[str, str], str | None]:
    """A direct child's sync cells from the marks this site holds for it, and why it is red."""
    heard = [parse_iso(m["last_received"]) for m in marks.values() if m.get("last_received")]
    last = max(heard) if heard else None
    cells = {"last_success": last.isoformat() if last else None}
    why = {"sync_backlog": CHILD_BACKLOG, "oldest_unsent_s": CHILD_BACKLOG}
    if last is None:
        why["last_success"] = "从未收到该站点的数据"
        return cells, why, "从未收到该站点的数据"
    if now - last > silent:
        minutes = int((now - last).total_seconds() // 60)
        return cells, why, f"已 {minutes} 分钟未收到该站点的数据"
    return cells, why, None


def _sync_own(status: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
    """This site's own upward sync: backlog summed, oldest unsent, the latest success."""
    up = status.get("up") or {}
    if not status.get("upstream"):
        keys = ("sync_backlog", "oldest_unsent_s", "last_success")
        return dict.fromkeys(keys), dict.fromkeys(keys, NO_UPSTREAM)
    backlogs = [f.get("backlog") for f in up.values()]
    ages = [f.get("oldest_unsent_age_seconds") for f in up.values()]
    successes = [f["last_success"] for f in up.values() if f.get("last_success")]
    why = {}
    if None in backlogs:
        why = dict.fromkeys(("sync_backlog", "oldest_unsent_s"), "本站点的服务暂时无法读取")
    cells = {
        "sync_backlog": None if None in backlogs else sum(backlogs),
        "oldest_unsent_s": None if None in ages else max(ages, default=0),
        "last_success": min(successes) if len(successes) == len(up) and up else None,
    }
    if cells["last_success"] is None:
        why["last_success"] = "尚未成功上报"
    return cells, why


def build_rows(
    root: str,
    stats: Mapping[str, Any],
    figures: Mapping[str, Any],
    sync: Mapping[str, Any],
    overdue: int | None,
    now: datetime,
    silent: timedelta,
) -> list[dict[str, Any]]:
    """One row per site known to any of the answers: ``{"site_code", "cells", "why",
    "red"}`` (``red`` is the reason a site shows red, or None)."""
    by_site = {g["key"]: g for g in stats.get("groups") or []}
    tickets = _tickets(figures.get("rows") or [])
    waiting = figures.get("waiting_now") or {}
    children = sync.get("children") or {}
    codes = sorted({root, *by_site, *tickets, *children})
    rows = []
    for code in codes:
        cells: dict[str, Any] = {"site_code": code}
        why: dict[str, str] = {}
        red = None
        t = tickets.get(code, {"issued": 0, "called": 0, "within_target": 0, "exact": True})
        cells["tickets"] = t["issued"]
        cells["waiting"] = waiting.get(code)
        if code not in waiting:
            why["waiting"] = NOT_LIVE
        cells["within_target_share"] = (
            _ratio(t["within_target"], t["called"]) if t["exact"] else None
        )
        if cells["within_target_share"] is None:
            why["within_target_share"] = OLD_CHILD if not t["exact"] else NO_CALLS
        f = by_site.get(code) or {}
        cells["evaluations"] = int(f.get("total") or 0)
        cells["satisfaction_rate"] = f.get("satisfaction_rate")
        if cells["satisfaction_rate"] is None:
            why["satisfaction_rate"] = NO_RATINGS
        cells["bad"] = int(f.get("bad") or 0)
        cells["cases_open"] = int(f.get("cases") or 0) - int(f.get("cases_closed") or 0)
        cells["callback_rate"] = f.get("callback_rate")
        if cells["callback_rate"] is None:
            why["callback_rate"] = NO_REAL_NAME
        if code == root:
            cells["cases_overdue"] = overdue
            if overdue is None:
                why["cases_overdue"] = "工单服务暂时无法读取"
            own, own_why = _sync_own(sync)
            cells |= own
            why |= own_why
        else:
            cells["cases_overdue"] = None
            why["cases_overdue"] = CHILD_OVERDUE
            if code in children:
                child, child_why, red = _sync_child(children[code], now, silent)
                cells |= {"sync_backlog": None, "oldest_unsent_s": None, **child}
                why |= child_why
            else:
                cells |= dict.fromkeys(("sync_backlog", "oldest_unsent_s", "last_success"))
                why |= dict.fromkeys(
                    ("sync_backlog", "oldest_unsent_s", "last_success"), NOT_DIRECT
                )
        rows.append({"site_code": code, "cells": cells, "why": why, "red": red})
    return rows


class Dashboard:
    """Gathers the answers behind the table for one signed-in person."""

    def __init__(self, root: str, settings: GatewaySettings) -> None:
        self.root = root
        self.silent = timedelta(minutes=settings.dashboard_silent_minutes)
        self.zone = settings.zone

    def today(self, now: datetime) -> date:
        return now.astimezone(self.zone).date()

    def table(self, call: Call, args: Mapping[str, Any], now: datetime) -> dict[str, Any]:
        """The table; a service that fails blanks its own columns (with its message), the
        rest is shown."""
        span = period(args, self.today(now))
        first, last = span.date_from.isoformat(), span.date_to.isoformat()
        down: dict[str, str] = {}

        def ask(source: str, service: str, method: str, *arguments: Any) -> Any:
            try:
                return call(service, method, *arguments)
            except HallError as error:
                down[source] = f"{SERVICE_ZH[source]}：{error.message}"
                return None

        stats = ask("rating", "rating", "stats", {"date_from": first, "date_to": last}, "site")
        figures = ask("queue", "queue", "subtree_figures", first, last)
        sync = ask("sync", "sync", "status")
        cases = ask("cases", "rating", "list_cases", {"overdue": True, "limit": OVERDUE_LIMIT})
        rows = build_rows(
            self.root,
            stats or {},
            figures or {},
            sync or {"upstream": None},
            None if cases is None else len(cases),
            now,
            self.silent,
        )
        for row in rows:
            for source, reason in down.items():
                row["cells"] |= dict.fromkeys(SOURCES[source])
                row["why"] |= dict.fromkeys(SOURCES[source], reason)
                row["red"] = None if source == "sync" else row["red"]
        return {
            "site_code": self.root,
            "date_from": first,
            "date_to": last,
            "today": self.today(now).isoformat(),  # the page's 30-day trends end here
            "columns": [{"key": k, "title": t} for k, t in COLUMNS],
            "rows": rows,
            "unavailable": sorted(set(down.values())),
            "silent_minutes": int(self.silent.total_seconds() // 60),
        }


def _text(key: str, value: Any) -> Any:
    """A cell as exported: rates as percentages, the unknown as "—"."""
    if value is None:
        return "—"
    if key in RATES:
        return f"{value * 100:.1f}%"
    return value


def export_csv(table: Mapping[str, Any]) -> bytes:
    """The table as CSV, UTF-8 with a BOM so Excel reads the Chinese headings."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow([title for _, title in COLUMNS])
    for row in table["rows"]:
        writer.writerow([_text(key, row["cells"].get(key)) for key, _ in COLUMNS])
    return ("\ufeff" + out.getvalue()).encode("utf-8")


def export_xlsx(table: Mapping[str, Any]) -> bytes:
    """The table as an XLSX workbook: numbers stay numbers, rates formatted as percent."""
    book = Workbook()
    sheet = book.active
    assert sheet is not None  # a new workbook has its sheet
    sheet.title = f"{table['date_from']}至{table['date_to']}"[:31]
    sheet.append([title for _, title in COLUMNS])
    for cell in sheet[1]:
        cell.font = Font(bold=True)
    for row in table["rows"]:
        sheet.append(["—" if (v := row["cells"].get(k)) is None else v for k, _ in COLUMNS])
        for (key, _), cell in zip(COLUMNS, sheet[sheet.max_row], strict=True):
            if key in RATES and isinstance(cell.value, float):
                cell.number_format = "0.0%"
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()
