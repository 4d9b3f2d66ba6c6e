"""The two Grafana dashboards (site, county overview) as data, rendered to JSON by
:mod:`tools.deploy_render`. Every query names metrics the services export
(``tests/unit/test_deploy_files.py`` checks them against the code)."""

from __future__ import annotations

import json
from typing import Any

DATASOURCE = {"type": "prometheus", "uid": "hall-prometheus"}
BAD = 'level=~"dissatisfied|very_dissatisfied"'  # rating's BAD_LEVELS (差评)


def _quantile(q: float, by: str, buckets: str, window: str) -> str:
    return f"histogram_quantile({q}, sum by (le, {by}) (rate({buckets}[{window}])))"


class _Layout:
    """Places panels left to right, 24 columns wide, wrapping into rows."""

    def __init__(self) -> None:
        self.x = 0
        self.y = 0
        self.row_h = 0
        self.next_id = 1

    def place(self, w: int, h: int) -> dict[str, int]:
        if self.x + w > 24:
            self.x, self.y, self.row_h = 0, self.y + self.row_h, 0
        pos = {"x": self.x, "y": self.y, "w": w, "h": h}
        self.x += w
        self.row_h = max(self.row_h, h)
        return pos

    def row(self, title: str) -> dict[str, Any]:
        self.x, self.y, self.row_h = 0, self.y + self.row_h, 0
        panel = {
            "id": self._id(),
            "type": "row",
            "title": title,
            "collapsed": False,
            "gridPos": {"x": 0, "y": self.y, "w": 24, "h": 1},
            "panels": [],
        }
        self.y += 1
        return panel

    def _id(self) -> int:
        self.next_id += 1
        return self.next_id - 1

    def panel(
        self,
        kind: str,
        title: str,
        targets: list[tuple[str, str]],
        unit: str = "short",
        w: int = 8,
        h: int = 8,
        description: str = "",
    ) -> dict[str, Any]:
        return {
            "id": self._id(),
            "type": kind,
            "title": title,
            "description": description,
            "datasource": DATASOURCE,
            "gridPos": self.place(w, h),
            "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
            "options": {},
            "targets": [
                {
                    "refId": chr(ord("A") + i),
                    "datasource": DATASOURCE,
                    "expr": expr,
                    "legendFormat": legend,
                }
                for i, (expr, legend) in enumerate(targets)
            ],
        }


def _dashboard(
    uid: str, title: str, panels: list[dict[str, Any]], variables: list[dict[str, Any]]
) -> dict[str, Any]:
    return {
        "uid": uid,
        "title": title,
        "tags": ["hall"],
        "timezone": "browser",
        "schemaVersion": 39,
        "version": 1,
        "editable": True,
        "refresh": "30s",
        "time": {"from": "now-6h", "to": "now"},
        "templating": {"list": variables},
        "annotations": {"list": []},
        "panels": panels,
    }


def _query_var(name: str, label: str, query: str, regex: str = "") -> dict[str, Any]:
    return {
        "name": name,
        "label": label,
        "type": "query",
        "datasource": DATASOURCE,
        "query": {"query": query, "refId": name},
        "definition": query,
        "regex": regex,
        "refresh": 2,
        "sort": 1,
        "includeAll": False,
        "multi": False,
    }


def site_dashboard() -> dict[str, Any]:
    s = 'site="$site"'
    g = _Layout()
    panels = [
        g.row("服务状态 Services"),
        g.panel(
            "stat",
            "服务在线",
            [(f"up{{{s}}}", "{{service}}")],
            w=8,
            h=5,
            description="1 = Prometheus can scrape the service; 0 = down (alert HallServiceDown).",
        ),
        g.panel(
            "timeseries",
            "接口延迟 p95",
            [
                (
                    _quantile(
                        0.95, "service", f"hall_entrypoint_duration_seconds_bucket{{{s}}}", "5m"
                    ),
                    "{{service}}",
                )
            ],
            unit="s",
            w=8,
            h=5,
        ),
        g.panel(
            "timeseries",
            "接口错误",
            [
                (
                    f"sum by (service, error) (rate(hall_entrypoint_errors_total{{{s}}}[5m]))",
                    "{{service}} {{error}}",
                )
            ],
            unit="ops",
            w=8,
            h=5,
        ),
        g.row("取号叫号 Queue"),
        g.panel(
            "timeseries",
            "当前等候人数",
            [(f"sum by (category) (hall_queue_waiting{{{s}}})", "{{category}}")],
        ),
        g.panel(
            "timeseries",
            "等候时长 p50 / p90",
            [
                (
                    _quantile(0.5, "category", f"hall_queue_wait_seconds_bucket{{{s}}}", "30m"),
                    "p50 {{category}}",
                ),
                (
                    _quantile(0.9, "category", f"hall_queue_wait_seconds_bucket{{{s}}}", "30m"),
                    "p90 {{category}}",
                ),
            ],
            unit="s",
        ),
        g.panel(
            "timeseries",
            "目标时长内叫号比例（今日）",
            [(f"hall_queue_within_target_ratio{{{s}}}", "{{category}}")],
            unit="percentunit",
        ),
        g.row("好差评 Rating"),
        g.panel(
            "timeseries",
            "评价（按等级，每小时）",
            [(f"sum by (level) (increase(hall_evaluations_total{{{s}}}[1h]))", "{{level}}")],
        ),
        g.panel(
            "timeseries",
            "差评整改在办",
            [(f"sum by (state) (hall_rating_cases_open{{{s}}})", "{{state}}")],
        ),
        g.panel(
            "stat",
            "差评整改逾期",
            [(f"sum by (step) (hall_rating_cases_overdue{{{s}}})", "{{step}}")],
            description="Alert HallRatingCaseOverdue when above 0 for 5 minutes.",
        ),
        g.row("事项与办件 Matters"),
        g.panel(
            "stat",
            "办件逾期 / 临期 / 暂停计时",
            [
                (f"sum(hall_applications_overdue{{{s}}})", "逾期"),
                (f"sum(hall_applications_due_soon{{{s}}})", "临期"),
                (f"sum(hall_applications_suspended{{{s}}})", "暂停计时"),
            ],
        ),
        g.panel(
            "timeseries",
            "受理与办结（每小时）",
            [
                (f"sum(increase(hall_applications_submitted_total{{{s}}}[1h]))", "受理"),
                (f"sum(increase(hall_applications_completed_total{{{s}}}[1h]))", "办结"),
            ],
        ),
        g.panel(
            "stat", "事项目录", [(f"sum by (status) (hall_catalog_matters{{{s}}})", "{{status}}")]
        ),
        g.row("同步 Sync"),
        g.panel(
            "timeseries",
            "待同步记录",
            [(f"sum by (direction, feed) (hall_sync_backlog{{{s}}})", "{{direction}} {{feed}}")],
        ),
        g.panel(
            "timeseries",
            "最早未同步记录的时长",
            [
                (
                    f"max by (direction, feed) (hall_sync_oldest_unsent_age_seconds{{{s}}})",
                    "{{direction}} {{feed}}",
                )
            ],
            unit="s",
            description="Alert HallSyncBacklogOld above 1 hour.",
        ),
        g.panel(
            "timeseries",
            "距上次同步成功",
            [
                (
                    f"time() - max by (direction) (hall_sync_last_success_timestamp{{{s}}})",
                    "{{direction}}",
                )
            ],
            unit="s",
        ),
        g.panel(
            "timeseries",
            "同步错误（按原因）",
            [
                (
                    f"sum by (direction, reason) (increase(hall_sync_errors_total{{{s}}}[15m]))",
                    "{{direction}} {{reason}}",
                )
            ],
        ),
        g.panel("stat", "搁置的记录", [(f"sum by (feed) (hall_sync_parked{{{s}}})", "{{feed}}")]),
    ]
    variables = [_query_var("site", "站点", "label_values(hall_service_info, site)")]
    return _dashboard("hall-site", "政务服务大厅 · 站点", panels, variables)


def county_dashboard() -> dict[str, Any]:
    c = 'site=~"$county.*"'
    g = _Layout()
    panels = [
        g.row("全县概览 County overview"),
        g.panel(
            "table",
            "各站点服务在线数",
            [(f"sum by (site, tier) (up{{{c}}})", "{{site}}")],
            w=12,
            description="4 = all four services of the site are up.",
        ),
        g.panel(
            "table",
            "各站点版本与存储",
            [(f"hall_service_info{{{c}}}", "{{site}} {{service}}")],
            w=12,
        ),
        g.panel(
            "bargauge",
            "办件逾期（按站点）",
            [(f"sum by (site) (hall_applications_overdue{{{c}}})", "{{site}}")],
        ),
        g.panel(
            "bargauge",
            "差评整改逾期（按站点）",
            [(f"sum by (site) (hall_rating_cases_overdue{{{c}}})", "{{site}}")],
        ),
        g.panel(
            "bargauge",
            "当前等候人数（按站点）",
            [(f"sum by (site) (hall_queue_waiting{{{c}}})", "{{site}}")],
        ),
        g.panel(
            "timeseries",
            "全县评价（按等级，每日）",
            [(f"sum by (level) (increase(hall_evaluations_total{{{c}}}[1d]))", "{{level}}")],
            w=12,
        ),
        g.panel(
            "timeseries",
            "差评率（每日）",
            [
                (
                    f"sum(increase(hall_evaluations_total{{{c}, {BAD}}}[1d]))"
                    f" / sum(increase(hall_evaluations_total{{{c}}}[1d]))",
                    "差评率",
                )
            ],
            unit="percentunit",
            w=12,
        ),
        g.row("同步链路 Replication"),
        g.panel(
            "bargauge",
            "最早未同步记录（按站点）",
            [(f"max by (site) (hall_sync_oldest_unsent_age_seconds{{{c}}})", "{{site}}")],
            unit="s",
        ),
        g.panel(
            "bargauge",
            "距上次同步成功（按站点）",
            [
                (
                    "time() - max by (site) "
                    f'(hall_sync_last_success_timestamp{{{c}, direction="up"}})',
                    "{{site}}",
                )
            ],
            unit="s",
        ),
        g.panel(
            "timeseries",
            "同步错误（按站点与原因）",
            [
                (
                    f"sum by (site, reason) (increase(hall_sync_errors_total{{{c}}}[1h]))",
                    "{{site}} {{reason}}",
                )
            ],
        ),
    ]
    variables = [
        _query_var("county", "县（区）", 'label_values(hall_service_info{tier="county"}, site)'),
    ]
    return _dashboard("hall-county", "政务服务大厅 · 全县概览", panels, variables)


def render_dashboard(doc: dict[str, Any]) -> str:
    return json.dumps(doc, ensure_ascii=False, indent=2) + "\n"
