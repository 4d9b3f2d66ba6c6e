"""办事指南 on a phone, as HTML: the search results of ``matters.search_matters`` and one
matter's guide from its document (``matters.get_matter``), with the names matters gives
(``type_name``, ``case_type_name``, ``availability_name``, each material's
``form_name``), so no code table of matters is copied here. The sections follow the
printable guide matters serves at ``/matters/<code>/guide``; every value is escaped
(catalog text comes from people and from other sites)."""

from __future__ import annotations

import html
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import quote, urlencode

PAGE_SIZE = 20  # matters per page of the list: a phone screen or two


def _e(value: Any) -> str:
    return html.escape("" if value is None else str(value))


def limit_text(item: Mapping[str, Any]) -> str:
    if item.get("case_type") == "1":
        return "即办件，当场办结"
    return f"承诺 {item.get('promised_limit_days')} 个工作日办结"


def result_item(item: Mapping[str, Any]) -> str:
    where = item.get("availability_name") or ""
    if item.get("online"):
        where += " · 可网上办理"
    return (
        f"<li><a class='matter' href='/m/guide/{quote(str(item['code']), safe='')}'>"
        f"<span class='name'>{_e(item.get('name'))}</span>"
        f"<span class='dept'>{_e(item.get('department'))}</span>"
        f"<span class='limit'>{_e(limit_text(item))}</span>"
        f"<span class='where'>{_e(where)}</span></a></li>"
    )


def results(found: Mapping[str, Any], q: str, page: int) -> tuple[str, str, str]:
    """The count line, the list and the pager of one page of results."""
    total = int(found["total"])
    pages = max(1, -(-total // PAGE_SIZE))
    count = f"共 {total} 项" + (f"，第 {page}/{pages} 页" if pages > 1 else "")
    if q and not total:
        count = "没有找到相关事项，请换个关键词试试"
    items = "".join(result_item(i) for i in found["items"])

    def link(to: int, text: str, rel: str) -> str:
        query = urlencode({**({"q": q} if q else {}), "page": to})
        return f"<a class='page' rel='{rel}' href='/m/guide?{_e(query)}'>{text}</a>"

    pager = (link(page - 1, "上一页", "prev") if page > 1 else "") + (
        link(page + 1, "下一页", "next") if page < pages else ""
    )
    return count, items, pager


def _rows(rows: Iterable[tuple[str, Any]]) -> str:
    return "".join(f"<div><dt>{_e(k)}</dt><dd>{_e(v)}</dd></div>" for k, v in rows if v)


def _list(items: Iterable[Any]) -> str:
    shown = "".join(f"<li>{_e(i)}</li>" for i in items)
    return f"<ol>{shown}</ol>" if shown else "<p>无</p>"


def material(m: Mapping[str, Any]) -> str:
    counts = f"原件 {m.get('originals', 0)} 份 · 复印件 {m.get('copies', 0)} 份"
    forms = " · ".join(
        f"{label}：{m[key]}"
        for key, label in (("blank_form", "空白表格"), ("sample", "示例"))
        if m.get(key)
    )
    return (
        "<li class='material'>"
        f"<span class='name'>{_e(m.get('name'))}</span>"
        f"<span class='need'>{'必需' if m.get('required') else '非必需'}</span>"
        f"<span>{_e(counts)} · {_e(m.get('form_name'))}</span>"
        f"<span>受理标准：{_e(m.get('acceptance_standard'))}</span>"
        + (f"<span>{_e(forms)}</span>" if forms else "")
        + (f"<span>出具单位：{_e(m.get('issuer'))}</span>" if m.get("issuer") else "")
        + "</li>"
    )


def materials(m: Mapping[str, Any]) -> str:
    if m.get("no_materials_needed") and not m.get("materials"):
        return "<p>无需提交材料</p>"
    return "<ul class='materials'>" + "".join(material(x) for x in m["materials"]) + "</ul>"


def phone(number: Any) -> str:
    """A public office number as a link a phone can call."""
    if not number:
        return "—"
    digits = "".join(c for c in str(number) if c.isdigit())
    return f"<a class='tel' href='tel:{digits}'>{_e(number)}</a>"


def section(title: str, body: str) -> str:
    return f"<section><h2>{_e(title)}</h2>{body}</section>"


def guide_body(m: Mapping[str, Any]) -> str:
    """The guide's sections, from the matter document as matters returns it."""
    fees = m.get("fees") or {}
    fee = f"收费：{fees.get('standard')}（依据 {fees.get('basis')}）" if fees.get("charged") else ""
    retired = f"<p class='note'>本事项已废止：{_e(m.get('retire_reason'))}</p>"
    steps = "".join(
        f"<li><b>{_e(s.get('step'))}</b> {_e(s.get('description'))}</li>"
        for s in m.get("procedure", [])
    )
    faq = "".join(
        f"<dt>问：{_e(f.get('q'))}</dt><dd>答：{_e(f.get('a'))}</dd>" for f in m.get("faq", [])
    )
    basics = [
        ("实施主体", (m.get("agency") or {}).get("name")),
        ("事项类型", m.get("type_name")),
        ("本站办理", m.get("availability_name")),
        ("网上办理", "可以" if m.get("online") else "不可以"),
        ("到现场次数", f"{m.get('visits')} 次"),
    ]
    limits = [
        ("法定办结时限", f"{m.get('legal_limit_days')} 个工作日"),
        ("承诺办结时限", f"{m.get('promised_limit_days')} 个工作日"),
        ("办件类型", f"{m.get('case_type_name')}（{limit_text(m)}）"),
        ("时限说明", m.get("limit_note") or "自受理之日的次日起按工作日计算"),
    ]
    where = [
        ("办理地点", m.get("place")),
        ("办理时间", m.get("hours")),
        ("预约办理", "支持" if m.get("appointment") else "不支持"),
        ("快递送达", "支持" if m.get("express_delivery") else "不支持"),
    ]
    contact = (
        f"<dl><div><dt>咨询电话</dt><dd>{phone(m.get('consultation_phone'))}</dd></div>"
        f"<div><dt>监督电话</dt><dd>{phone(m.get('supervision_phone'))}</dd></div></dl>"
    )
    result = (m.get("result") or {}).get("name")
    return "".join(
        [
            retired if m.get("status") == "retired" else "",
            section("基本信息", f"<dl>{_rows(basics)}</dl>"),
            section("受理条件", _list(m.get("conditions", []))),
            section("申请材料", materials(m)),
            section("办理流程", f"<ol>{steps}</ol>" if steps else "<p>无</p>"),
            section("办理时限", f"<dl>{_rows(limits)}</dl>"),
            section("收费", f"<p>{_e(fee or '不收费')}</p>"),
            section("办理结果", f"<p>{_e(result or '—')}</p>"),
            section("办理地点和时间", f"<dl>{_rows(where)}</dl>"),
            section("咨询与监督", contact),
            section("常见问题", f"<dl class='faq'>{faq}</dl>") if faq else "",
        ]
    )
