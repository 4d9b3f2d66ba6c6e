"""The printable Chinese service guide (办事指南) of one matter, as an HTML page.

Every value is HTML-escaped: catalog text comes from people and from other sites.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime, tzinfo
from html import escape
from typing import Any

from services.matters import domain

_CSS = """
body{font-family:"Noto Serif CJK SC","SimSun",serif;max-width:960px;margin:2em auto;
line-height:1.6;color:#111}
h1{text-align:center;font-size:1.6em}h2{font-size:1.15em;border-left:4px solid #a00;
padding-left:.5em;margin-top:1.5em}
table{border-collapse:collapse;width:100%}td,th{border:1px solid #444;padding:.3em .5em;
vertical-align:top}th{background:#f1f1f1;text-align:left;white-space:nowrap}
.meta{text-align:center;color:#444}.note{color:#a00}
@media print{body{margin:0;max-width:none}h2{page-break-after:avoid}
table{page-break-inside:avoid}}
"""


def _e(value: Any) -> str:
    return escape("" if value is None else str(value))


def _rows(rows: Iterable[tuple[str, Any]]) -> str:
    return "".join(f"<tr><th>{_e(k)}</th><td>{_e(v)}</td></tr>" for k, v in rows)


def _names(codes: Iterable[str], table: Mapping[str, str]) -> str:
    return "、".join(table.get(c, c) for c in codes)


def _local_date(moment: Any, tz: tzinfo | None) -> str:
    """A stored UTC timestamp as the local date a reader expects (2025-09-01)."""
    try:
        parsed = datetime.fromisoformat(str(moment))
    except ValueError:
        return str(moment or "")
    return (parsed.astimezone(tz) if tz else parsed).date().isoformat()


def render_guide(m: Mapping[str, Any], site_name: str, tz: tzinfo | None = None) -> str:
    agency = m.get("agency") or {}
    fees = m.get("fees") or {}
    immediate = m.get("case_type") == "1"
    limit = (
        "即办件：材料齐全、符合法定形式的，当场办结"
        if immediate
        else f"承诺件：承诺 {m.get('promised_limit_days')} 个工作日办结"
    )
    parts = [
        "<!DOCTYPE html><html lang='zh-CN'><head><meta charset='utf-8'>",
        f"<title>{_e(m.get('name'))} 办事指南</title><style>{_CSS}</style></head><body>",
        f"<h1>{_e(m.get('name'))}<br>办事指南</h1>",
        f"<p class='meta'>{_e(site_name)} · 第 {_e(m.get('matter_version'))} 版"
        f" · 发布于 {_e(_local_date(m.get('published_at'), tz))}</p>",
    ]
    if m.get("status") == "retired":
        parts.append(f"<p class='note'>本事项已废止：{_e(m.get('retire_reason'))}</p>")
    parts.append("<h2>一、基本信息</h2><table>")
    parts.append(
        _rows(
            [
                ("事项名称", m.get("name")),
                ("基本编码", m.get("basic_code")),
                ("实施编码", m.get("code")),
                ("事项类型", domain.MATTER_TYPES.get(m.get("type", ""), m.get("type"))),
                ("行使层级", domain.EXERCISE_LEVELS.get(m.get("exercise_level", ""), "")),
                ("实施主体", agency.get("name")),
                ("实施主体性质", domain.AGENCY_NATURES.get(agency.get("nature", ""), "")),
                ("服务对象", _names(m.get("audience", []), domain.AUDIENCES)),
                ("办理形式", _names(m.get("handling_forms", []), domain.HANDLING_FORMS)),
                ("是否网办", "是" if m.get("online") else "否"),
                ("到办事现场次数", f"{m.get('visits')} 次"),
                ("本站办理方式", domain.AVAILABILITY.get(m.get("availability", ""), "")),
                ("可办理层级", _names(m.get("handled_at", []), domain.TIERS)),
                ("可代办层级", _names(m.get("proxy_at", []), domain.TIERS) or "无"),
            ]
        )
    )
    parts.append("</table><h2>二、设定依据</h2><ol>")
    parts += [f"<li>{_e(b)}</li>" for b in m.get("legal_basis", [])]
    parts.append("</ol><h2>三、受理条件</h2><ol>")
    parts += [f"<li>{_e(c)}</li>" for c in m.get("conditions", [])]
    parts.append("</ol><h2>四、申请材料</h2>")
    materials = m.get("materials", [])
    if m.get("no_materials_needed") and not materials:
        parts.append(f"<p>{domain.NO_MATERIALS}</p>")
    else:
        parts.append(
            "<table><tr><th>序号</th><th>材料名称</th><th>出具机构</th><th>原件</th>"
            "<th>复印件</th><th>必备</th><th>形式</th><th>受理标准</th><th>空白表格/示例</th></tr>"
        )
        for i, mat in enumerate(materials, 1):
            forms = " / ".join(_e(x) for x in (mat.get("blank_form"), mat.get("sample")) if x)
            parts.append(
                f"<tr><td>{i}</td><td>{_e(mat.get('name'))}</td><td>{_e(mat.get('issuer'))}</td>"
                f"<td>{_e(mat.get('originals'))}</td><td>{_e(mat.get('copies'))}</td>"
                f"<td>{'是' if mat.get('required') else '否'}</td>"
                f"<td>{_e(domain.MATERIAL_FORMS.get(mat.get('form', ''), ''))}</td>"
                f"<td>{_e(mat.get('acceptance_standard'))}</td><td>{forms or '—'}</td></tr>"
            )
        parts.append("</table>")
    parts.append("<h2>五、办理流程</h2><ol>")
    parts += [
        f"<li><strong>{_e(s.get('step'))}</strong> {_e(s.get('description'))}</li>"
        for s in m.get("procedure", [])
    ]
    parts.append("</ol><h2>六、办理时限</h2><table>")
    parts.append(
        _rows(
            [
                ("法定办结时限", f"{m.get('legal_limit_days')} 个工作日"),
                ("承诺办结时限", f"{m.get('promised_limit_days')} 个工作日"),
                ("办件类型", limit),
                ("时限说明", m.get("limit_note") or "自受理之日的次日起按工作日计算"),
            ]
        )
    )
    result = m.get("result") or {}
    parts.append("</table><h2>七、收费与结果</h2><table>")
    parts.append(
        _rows(
            [
                ("是否收费", "收费" if fees.get("charged") else "不收费"),
                ("收费依据", fees.get("basis") or "—"),
                ("收费标准", fees.get("standard") or "—"),
                ("办理结果", result.get("name")),
                ("结果样本", result.get("sample") or "—"),
            ]
        )
    )
    parts.append("</table><h2>八、办理地点、时间与咨询监督</h2><table>")
    parts.append(
        _rows(
            [
                ("办理地点", m.get("place")),
                ("办理时间", m.get("hours")),
                ("是否支持预约", "是" if m.get("appointment") else "否"),
                ("是否支持物流快递", "是" if m.get("express_delivery") else "否"),
                ("咨询电话", m.get("consultation_phone")),
                ("监督电话", m.get("supervision_phone")),
                ("评价渠道", "窗口评价器、二维码、政务服务网“好差评”、12345 热线"),
            ]
        )
    )
    parts.append("</table>")
    if m.get("faq"):
        parts.append("<h2>九、常见问题</h2><dl>")
        parts += [f"<dt>问：{_e(f.get('q'))}</dt><dd>答：{_e(f.get('a'))}</dd>" for f in m["faq"]]
        parts.append("</dl>")
    parts.append("</body></html>")
    return "".join(parts)
