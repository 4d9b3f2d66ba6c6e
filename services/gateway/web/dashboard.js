// 辖区看板: the subtree's sites as a sortable table (from POST /dashboard/table, which asks
// the services as this person), a site's drill-down (rating.stats by window, staff, matter,
// department; 30-day trends from rating.stats by day and queue.subtree_figures), and the
// month's rankings. A figure the gateway says cannot be known shows "—" with the reason.
"use strict";
(() => {
  const $ = (id) => document.getElementById(id);
  const status = $("status");
  const form = $("period");
  let table = null;
  let sort = { key: "site_code", dir: 1 };
  let chosen = null;

  function el(tag, props = {}, ...children) {
    const n = document.createElement(tag);
    for (const [k, v] of Object.entries(props)) {
      if (k === "text") n.textContent = v == null ? "" : String(v);
      else if (k === "dataset") Object.assign(n.dataset, v);
      else n[k] = v;
    }
    n.append(...children);
    return n;
  }

  const RATES = new Set(["within_target_share", "satisfaction_rate", "callback_rate"]);
  const percent = (v) => (v == null ? "—" : (v * 100).toFixed(1) + "%");

  function shown(key, value) {
    if (value == null) return "—";
    if (RATES.has(key)) return percent(value);
    if (key === "last_success") {
      return new Date(value).toLocaleString("zh-CN", { month: "2-digit", day: "2-digit",
        hour: "2-digit", minute: "2-digit", hour12: false });
    }
    if (key === "oldest_unsent_s") return Math.round(value);
    return value;
  }

  const isoDay = (d) => d.toISOString().slice(0, 10);
  function addDays(day, n) {
    const d = new Date(day + "T00:00:00Z");
    d.setUTCDate(d.getUTCDate() + n);
    return isoDay(d);
  }

  // The period the select names, as dates ending on the gateway's today.
  function span(today) {
    const which = form.elements.span.value;
    if (which === "week") return { date_from: addDays(today, -6), date_to: today };
    if (which === "month") return { date_from: today.slice(0, 8) + "01", date_to: today };
    return { date_from: today, date_to: today };
  }

  function say(text, bad = false) {
    status.textContent = text;
    status.classList.toggle("bad", bad);
  }

  function head() {
    $("sites-head").replaceChildren(...table.columns.map((c) => {
      const th = el("th", { className: c.key === "site_code" ? "" : "num", scope: "col" },
        el("button", { type: "button", text: c.title, dataset: { key: c.key } }));
      if (c.key === sort.key) th.setAttribute("aria-sort", sort.dir > 0 ? "ascending" : "descending");
      return th;
    }));
  }

  function compare(a, b) {
    const x = a.cells[sort.key], y = b.cells[sort.key];
    if (x == null && y == null) return a.site_code < b.site_code ? -1 : 1;
    if (x == null) return 1; // the unknown last, whichever way
    if (y == null) return -1;
    return (x < y ? -1 : x > y ? 1 : 0) * sort.dir;
  }

  function body() {
    const rows = [...table.rows].sort(compare).map((row) => {
      const tr = el("tr", { dataset: { site: row.site_code } });
      if (row.red) { tr.className = "silent"; tr.title = row.red; }
      if (row.site_code === chosen) tr.classList.add("chosen");
      for (const c of table.columns) {
        const value = row.cells[c.key];
        if (c.key === "site_code") {
          tr.append(el("td", {}, el("button", { type: "button", className: "site", text: value,
            dataset: { site: value } })));
          continue;
        }
        const td = el("td", { className: "num", text: shown(c.key, value) });
        if (value == null) { td.classList.add("unknown"); td.title = row.why[c.key] || ""; }
        if (c.key === "last_success" && value) td.title = value;
        tr.append(td);
      }
      return tr;
    });
    $("sites-body").replaceChildren(...rows);
  }

  function exports(period) {
    const query = "?date_from=" + period.date_from + "&date_to=" + period.date_to;
    $("export-csv").href = "/dashboard/export.csv" + query;
    $("export-xlsx").href = "/dashboard/export.xlsx" + query;
  }

  async function load() {
    say("正在读取…");
    const today = table ? table.today : null;
    const period = today ? span(today) : {};
    try {
      table = await Staff.post("/dashboard/table", period);
    } catch (e) {
      say(e.message, true);
      return;
    }
    if (!today && form.elements.span.value !== "today") return load();
    $("span-text").textContent = table.date_from === table.date_to ? table.date_from
      : table.date_from + " 至 " + table.date_to;
    $("silent").textContent = table.silent_minutes;
    $("unavailable").textContent = table.unavailable.join("；");
    exports(table);
    head();
    body();
    say("已更新 " + new Date().toLocaleTimeString("zh-CN", { hour12: false }));
    rankings();
    if (chosen) drill(chosen);
  }

  function breakdown(target, groups, label) {
    const rows = groups.map((g) => el("tr", {}, el("td", { text: label(g.key) }),
      el("td", { className: "num", text: g.total }),
      el("td", { className: "num", text: percent(g.satisfaction_rate) }),
      el("td", { className: "num", text: g.bad })));
    $(target).replaceChildren(...(rows.length ? rows
      : [el("tr", {}, el("td", { colSpan: 4, className: "empty", text: "本期没有评价" }))]));
  }

  // A site's breakdowns over the chosen period and its 30-day trends.
  async function drill(site) {
    chosen = site;
    body();
    $("drill").hidden = false;
    $("drill-title").textContent = "站点明细 · " + site;
    const filters = { site_code: site, date_from: table.date_from, date_to: table.date_to };
    const first = addDays(table.today, -29);
    const days = Array.from({ length: 30 }, (_, i) => addDays(first, i));
    const short = (day) => day.slice(5);
    try {
      const [byWindow, byStaff, byMatter, byDept, trend, figures] = await Promise.all([
        ...["window", "staff", "matter", "department"].map((dim) =>
          Staff.call("rating", "stats", [filters, dim])),
        Staff.call("rating", "stats", [{ site_code: site, date_from: first, date_to: table.today }, "day"]),
        Staff.call("queue", "subtree_figures", [first, table.today]),
      ]);
      breakdown("by-window", byWindow.groups, (k) => k.split(":").pop() + " 号窗口");
      breakdown("by-staff", byStaff.groups, (k) => k);
      breakdown("by-matter", byMatter.groups, (k) => k);
      breakdown("by-department", byDept.groups, (k) => k);
      const perDay = Object.fromEntries(trend.groups.map((g) => [g.key, g]));
      Chart.line($("chart-evaluations"), days.map((d) => ({ label: short(d),
        value: perDay[d] ? perDay[d].total : 0 })));
      Chart.line($("chart-satisfaction"), days.map((d) => ({ label: short(d),
        value: perDay[d] ? perDay[d].satisfaction_rate : null })), { max: 1, format: percent });
      const tickets = {};
      for (const r of figures.rows) if (r.site_code === site) tickets[r.date] = r.issued;
      Chart.line($("chart-tickets"), days.map((d) => ({ label: short(d), value: tickets[d] || 0 })));
    } catch (e) {
      say(e.message, true);
    }
  }

  async function rankings() {
    const month = table.today.slice(0, 7);
    $("rank-month").textContent = month;
    for (const dim of ["window", "staff"]) {
      try {
        const ranked = await Staff.call("rating", "rankings", [month, dim, 10]);
        const rows = ranked.rows.map((r) => el("tr", {}, el("td", { text: r.rank }),
          el("td", { text: dim === "window" ? r.key.replace(":", " · ") + " 号窗口" : r.key }),
          el("td", { className: "num", text: r.total }),
          el("td", { className: "num", text: percent(r.satisfaction_rate) })));
        $("rank-" + dim).replaceChildren(...(rows.length ? rows : [el("tr", {}, el("td", {
          colSpan: 4, className: "empty",
          text: "本月还没有达到 " + ranked.min_evaluations + " 条评价的" + (dim === "window" ? "窗口" : "人员") }))]));
      } catch (e) {
        say(e.message, true);
      }
    }
  }

  $("sites-head").addEventListener("click", (event) => {
    const button = event.target.closest("button[data-key]");
    if (!button) return;
    const key = button.dataset.key;
    sort = { key, dir: sort.key === key ? -sort.dir : (key === "site_code" ? 1 : -1) };
    head();
    body();
  });
  $("sites-body").addEventListener("click", (event) => {
    const button = event.target.closest("button.site");
    if (button) drill(button.dataset.site);
  });
  form.addEventListener("submit", (event) => { event.preventDefault(); load(); });
  form.elements.span.addEventListener("change", load);
  load();
  setInterval(load, 60000); // a wall screen stays current
})();
