"""Public pages, no sign-in (docs/screens.md): the 好差评公开报告 of a month or a year
(``/report/<period>``, printable on A4) and 办事指南 on a phone (``/m/guide``). The
gateway reads them as itself, through the bridge (a deadline, typed errors), from RPCs
that are public by their service's own rule: ``rating.public_report``,
``matters.search_matters``, ``matters.get_matter``. Nothing personal is read or shown, so
the report may be cached for a short while; the security headers stay."""

from __future__ import annotations

import html
import re
from datetime import datetime
from typing import Any

from werkzeug.wrappers import Request, Response

from services.common import service as base
from services.common.errors import HallError, InvalidInput, NotFound
from services.common.validation import ID_PATTERN
from services.gateway.app import GatewayApp
from services.gateway.web import guide, report
from services.gateway.web.screens import as_gateway, page

# A report is data of the past (the current month changes only as ratings arrive): a
# browser or proxy may keep it five minutes. Error pages are never kept.
REPORT_CACHE = "public, max-age=300"
CALM = "服务暂时无法连接，请稍后再试。您的浏览不受影响，其他页面可照常使用。"
NOTICE_BODY = {"report.css": "report", "guide.css": "mobile guide"}  # body classes per sheet
# What a period looks like, said once for the reader; rating's own check decides.
PERIOD_RULE = "期间应为 YYYY-MM（月度，如 2026-05）或 YYYY（年度，如 2026）"
MATTER_LOOKUPS = 100  # matter names resolved for one report, at most (matters' page limit)
MATTER_CODE = re.compile(f"(?:{ID_PATTERN})\\Z")


class PublicPages:
    """Routes mixed into ``GatewayService`` (which provides ``app`` and ``bridge``)."""

    app: GatewayApp
    bridge: Any

    def _public(self, service: str, method: str, *args: Any, **kwargs: Any) -> Any:
        """A public RPC of this site, called as the gateway itself."""
        return as_gateway(self.app, self.bridge)(service, method, *args, **kwargs)

    def _notice(
        self, status: int, css: str, heading: str, text: str, back: tuple[str, str]
    ) -> Response:
        answer = page(
            "notice",
            site_name=html.escape(self.app.site_name),
            stylesheet=css,
            kind=NOTICE_BODY[css],
            heading=html.escape(heading),
            text=html.escape(text),
            back=back[0],
            back_text=html.escape(back[1]),
        )
        answer.status_code = status
        return answer

    # --- 好差评公开报告 -------------------------------------------------------------------
    @base.api("GET", "/report", exposed=True)
    def report_index(self, request: Request) -> Response:
        today = datetime.now(self.app.settings.zone).date()

        def links(periods: list[str]) -> str:
            return "".join(
                f"<li><a href='/report/{p}'>{report.period_name(p)}</a></li>" for p in periods
            )

        answer = page(
            "reportindex",
            site_name=html.escape(self.app.site_name),
            years=links([str(today.year)]),
            months=links(report.recent_periods(today)),
        )
        answer.headers["Cache-Control"] = REPORT_CACHE
        return answer

    @base.api("GET", "/report/<string:period>", exposed=True)
    def report_page(self, request: Request, period: str) -> Response:
        """The report of ``period`` as rating validates and computes it."""
        back = ("/report", "选择其他期间")
        try:
            data = self._public("rating", "public_report", period)
        except InvalidInput as error:
            detail = "，".join(error.fields.get("period", [])) or error.message
            # rating's words when they add to the rule (a month 13), not when they repeat it
            text = PERIOD_RULE if detail.startswith("应为") else f"{PERIOD_RULE}。{detail}"
            return self._notice(400, "report.css", "报告期间有误", text, back)
        except HallError:
            return self._notice(503, "report.css", "报告暂时无法生成", CALM, back)
        answer = page(
            "report",
            site_name=html.escape(self.app.site_name),
            period_name=html.escape(report.period_name(data["period"])),
            date_from=html.escape(data["date_from"]),
            date_to=html.escape(data["date_to"]),
            body=report.render(data, self._matter_names(data["by_matter"])),
        )
        answer.headers["Cache-Control"] = REPORT_CACHE
        return answer

    def _matter_names(self, groups: list[dict[str, Any]]) -> dict[str, str]:
        """Matter codes as their catalog names, in one call; a code matters cannot name (or
        that is no code at all) stays as it is."""
        codes = [
            g["key"]
            for g in groups
            if isinstance(g.get("key"), str) and len(g["key"]) <= 24 and MATTER_CODE.match(g["key"])
        ][:MATTER_LOOKUPS]
        if not codes:
            return {}
        try:
            found = self._public(
                "matters", "search_matters", codes=codes, include_retired=True, limit=len(codes)
            )
        except HallError:
            return {}  # the report still reads, by code
        return {item["code"]: item["name"] for item in found["items"] if item.get("name")}

    # --- 办事指南 (phone) ---------------------------------------------------------------
    @base.api("GET", "/m/guide", exposed=True)
    def guide_list(self, request: Request) -> Response:
        """Matters whose name or alias holds every keyword; no keyword, the whole catalog,
        a page at a time."""
        q = request.args.get("q", "").strip()
        wanted = request.args.get("page", "1")
        number = int(wanted) if wanted.isascii() and wanted.isdigit() and len(wanted) < 5 else 1
        number = max(number, 1)
        try:
            found = self._public(
                "matters",
                "search_matters",
                q=q,
                limit=guide.PAGE_SIZE,
                offset=(number - 1) * guide.PAGE_SIZE,
            )
        except InvalidInput as error:
            return self._notice(
                400, "guide.css", "查询条件有误", error.message, ("/m/guide", "重新查询")
            )
        except HallError:
            return self._notice(
                503, "guide.css", "办事指南暂时无法查询", CALM, ("/m/guide", "重试")
            )
        count, items, pager = guide.results(found, q, number)
        return page(
            "guidelist",
            site_name=html.escape(self.app.site_name),
            q=html.escape(q),
            count=html.escape(count),
            items=items,
            pager=pager,
        )

    @base.api("GET", "/m/guide/<string:code>", exposed=True)
    def guide_page(self, request: Request, code: str) -> Response:
        back = ("/m/guide", "返回事项列表")
        try:
            matter = self._public("matters", "get_matter", code)
        except (NotFound, InvalidInput):
            return self._notice(
                404, "guide.css", "没有这个事项", "事项编码不存在或已变更，请从事项列表查找。", back
            )
        except HallError:
            return self._notice(503, "guide.css", "办事指南暂时无法查询", CALM, back)
        return page(
            "guide",
            site_name=html.escape(self.app.site_name),
            matter_name=html.escape(str(matter.get("name"))),
            code=html.escape(str(matter.get("code"))),
            version=html.escape(str(matter.get("matter_version"))),
            body=guide.guide_body(matter),
        )
