// The window's work area: the matter guide look-up (事项指南, public catalog calls) and the
// application desk (受理登记) for the citizen at the window. A submission ends in one of
// four documents, each printable alone (window.css, @media print): the 受理凭证, the
// 一次性告知单 listing every missing material, the 不予受理通知书, or — for a matter this
// site only proxies (availability ``proxy_only``, 本站代办: sent with channel ``proxy``,
// never refused here) — the 代办受理单 naming the site it was forwarded to. The applicant's name
// and ID number travel only in the JSON body of the bridged call: never in a URL, never
// logged, and cleared from the form once submitted.
"use strict";
(() => {
  const { el, h, call } = Win;
  const WINDOW = document.body.dataset.window;
  const STAFF = document.body.dataset.staff;
  const SITE = document.body.dataset.site;
  const CLERK = el("staff-name") ? el("staff-name").textContent : STAFF; // as printed
  // how the ticket at the window ends when its citizen's application went this way
  // (代办: the station took the application in and forwarded it, so it counts as accepted)
  const OUTCOME = { accepted: "accepted", completed: "done", supplement_required: "consulted",
    not_accepted: "not_accepted", forwarded: "accepted" };
  const TIER_NAMES = { national: "国家级", province: "省级", city: "市级", county: "县（市、区）级",
    town: "乡镇（街道）级", village: "村（社区）级" };
  const byTicket = new Map(); // ticket id -> the application submitted for its citizen
  let matter = null; // the matter chosen for the desk

  const proxied = (m) => Boolean(m) && m.availability === "proxy_only";
  // The tiers a matter is handled at, by name ("乡镇（街道）级、县（市、区）级").
  const handledAt = (m) => ((m && m.handled_at) || []).map((t) => TIER_NAMES[t] || t).join("、");
  // A site's tier from its code, as services/common/site.py tier_of judges it.
  function tierOf(code) {
    if (code === "000000") return "national";
    if (code.length === 12) return "village";
    if (code.length === 9) return "town";
    if (code.endsWith("0000")) return "province";
    return code.endsWith("00") ? "city" : "county";
  }
  const siteText = (code) => (code ? code + "（" + TIER_NAMES[tierOf(code)] + "办理站点）" : "");
  function proxyNote(m) {
    const tiers = handledAt(m);
    return "本站代办：本站收件后转报" + (tiers ? tiers : "上级") + "办理站点受理、办理，" +
      "办理结果由本站通知申请人领取；是否受理由办理站点决定，本站不出具不予受理通知书。";
  }

  // --- tabs -----------------------------------------------------------------------------------

  function show(tab) {
    for (const name of ["guide", "desk"]) {
      const chosen = name === tab;
      el("tab-" + name).setAttribute("aria-selected", String(chosen));
      el(name + "-panel").hidden = !chosen;
    }
  }
  el("tab-guide").onclick = () => show("guide");
  el("tab-desk").onclick = () => show("desk");

  // --- the guide ------------------------------------------------------------------------------

  el("search").onsubmit = async (event) => {
    event.preventDefault();
    el("search-note").textContent = "查询中…";
    try {
      const found = await call("matters", "search_matters", { q: el("q").value.trim(), limit: 10 });
      el("search-note").textContent = "共 " + found.total + " 项" + (found.total > 10 ? "，显示前 10 项" : "");
      el("results").replaceChildren(...found.items.map(result));
    } catch (error) {
      el("search-note").textContent = error.message;
    }
  };

  function result(item) {
    const button = h("button", { type: "button", className: "plain" },
      h("b", { textContent: item.name }),
      h("span", { className: "small", textContent: " " + (item.department || "") + " · 承诺 " +
        item.promised_limit_days + " 个工作日" }));
    button.onclick = () => openGuide(item.code);
    return h("li", {}, button);
  }

  async function openGuide(code) {
    try {
      guide(await call("matters", "get_matter", { code }));
    } catch (error) {
      el("search-note").textContent = error.message;
    }
  }

  function guide(m) {
    const rows = (m.materials || []).map((x) => h("tr", {},
      h("td", { textContent: x.name }), h("td", { textContent: x.required ? "必需" : "非必需" }),
      h("td", { textContent: "原件 " + (x.originals || 0) + " / 复印件 " + (x.copies || 0) }),
      h("td", { textContent: x.acceptance_standard || "" })));
    const limits = "法定时限 " + m.legal_limit_days + " 个工作日；承诺时限 " +
      m.promised_limit_days + " 个工作日（" + (m.case_type_name || "") + "）";
    const take = h("button", { type: "button", className: "take", textContent: "按此事项受理" });
    take.onclick = () => choose(m);
    const note = h("p", { className: "proxy-note", textContent: proxied(m) ? proxyNote(m) : "" });
    note.hidden = !proxied(m);
    el("guide").replaceChildren(
      h("h3", { textContent: m.name }),
      h("p", { className: "small", textContent: "事项编码 " + m.code + " · " +
        ((m.agency || {}).name || "") + (m.availability_name ? " · " + m.availability_name : "") }),
      h("p", { className: "limits", textContent: limits }),
      note,
      take,
      h("h4", { textContent: "受理条件" }),
      h("ul", {}, ...(m.conditions || []).map((c) => h("li", { textContent: c }))),
      h("h4", { textContent: "申请材料" }),
      h("table", {}, h("thead", {}, h("tr", {}, ...["材料", "要求", "份数", "受理标准"]
        .map((t) => h("th", { textContent: t })))), h("tbody", {}, ...rows)));
    el("guide").hidden = false;
  }

  // --- the desk -------------------------------------------------------------------------------

  function choose(m) {
    matter = m;
    const proxy = proxied(m);
    el("desk-matter").textContent = (proxy ? "代办事项：" : "办理事项：") + m.name + "（" + m.code + "）";
    el("desk-proxy").textContent = proxy ? proxyNote(m) : "";
    el("desk-proxy").hidden = !proxy;
    // a 代办 matter is never refused here: the handling site decides whether to accept it
    el("refuse").checked = false;
    el("refuse").disabled = proxy;
    el("refusal-box").hidden = proxy;
    refuseChanged();
    el("materials").replaceChildren(...(m.materials || []).map(materialRow));
    el("desk-submit").disabled = false;
    el("desk-error").textContent = "";
    show("desk");
    el("applicant-name").focus();
  }

  function materialRow(x) {
    const given = h("input", { type: "checkbox", className: "given" });
    const quality = h("select", { className: "quality" },
      h("option", { value: "ok", textContent: "合格" }),
      h("option", { value: "problem", textContent: "有问题" }));
    const problem = h("input", { className: "problem", maxLength: 200, placeholder: "问题说明" });
    problem.hidden = true;
    quality.onchange = () => { problem.hidden = quality.value !== "problem"; };
    const row = h("li", {}, h("label", {}, given, " " + x.name + (x.required ? "（必需）" : "")),
      quality, problem);
    row.dataset.name = x.name;
    return row;
  }

  function refuseChanged() {
    el("refusal").hidden = !el("refuse").checked;
    el("desk-submit").textContent = el("refuse").checked ? "出具不予受理通知书"
      : proxied(matter) ? "代办转报" : "提交";
  }
  el("refuse").onchange = refuseChanged;

  function application() {
    const materials = [...el("materials").children]
      .filter((row) => row.querySelector(".given").checked)
      .map((row) => {
        const valid = row.querySelector(".quality").value === "ok";
        const problem = row.querySelector(".problem").value.trim();
        return valid ? { name: row.dataset.name, valid }
          : { name: row.dataset.name, valid, problem: problem || null };
      });
    const phone = el("applicant-phone").value.trim();
    const proxy = proxied(matter);
    const refusal = el("refuse").checked && !proxy ? { reason: el("refusal-reason").value.trim(),
      basis: el("refusal-basis").value.trim() } : null;
    return { matter_code: matter.code, channel: proxy ? "proxy" : "window", window: WINDOW,
      staff_id: STAFF,
      applicant: { kind: el("applicant-kind").value, name: el("applicant-name").value.trim(),
        id_number: el("applicant-id").value.trim(), phone: phone || null },
      materials, refusal };
  }

  el("desk").onsubmit = async (event) => {
    event.preventDefault();
    if (!matter) return;
    el("desk-error").textContent = "";
    el("desk-submit").disabled = true;
    try {
      const done = await call("matters", "submit_application", { application: application() });
      const ticket = Win.current && Win.current();
      if (ticket) byTicket.set(ticket.id, { id: done.id, matter_code: done.matter_code,
        outcome: OUTCOME[done.state] || "done" });
      clearApplicant();
      notice(done);
    } catch (error) {
      el("desk-error").textContent = refusalText(error);
    } finally {
      el("desk-submit").disabled = false;
    }
  };

  // The service's message with the fields it names ("applicant.id_number: 校验位不正确").
  function refusalText(error) {
    const fields = Object.values(error.fields || {}).flat().filter((x) => typeof x === "string");
    return fields.length ? error.message + "：" + fields.join("；") : error.message;
  }

  function clearApplicant() {
    for (const id of ["applicant-name", "applicant-id", "applicant-phone", "refusal-reason",
      "refusal-basis"]) el(id).value = "";
  }

  // --- the documents --------------------------------------------------------------------------

  function notice(app) {
    const common = { site: SITE, matter: app.matter_name, applicant: app.applicant.name,
      window: WINDOW + " 号窗口", staff: CLERK };
    let filled;
    if (app.refusal) {
      filled = fill("tpl-refused", { ...common, number: app.number,
        issued: day(app.refusal.issued_at), reason: app.refusal.reason, basis: app.refusal.basis });
    } else if (app.supplement_notice) {
      const n = app.supplement_notice;
      filled = fill("tpl-supplement", { ...common, number: n.number, issued: day(n.issued_at),
        items: n.items.map((i) => i.name + "（" + i.problem + "）") });
    } else if (app.state === "forwarded") {
      const tiers = proxied(matter) && matter.code === app.matter_code ? handledAt(matter) : "";
      filled = fill("tpl-forwarded", { ...common, number: app.number,
        id_masked: app.applicant.id_masked, received_on: app.received_on,
        handled_by: siteText(app.handled_by), handled_at: tiers,
        items: (app.materials || []).map((x) => x.name +
          (x.valid === false ? "（有问题：" + (x.problem || "未说明") + "）" : "")) });
      rateCode(filled.querySelector("[data-qr]"), app.id);
    } else {
      const r = app.receipt;
      filled = fill("tpl-accepted", { ...common, number: r.number, id_masked: app.applicant.id_masked,
        case_type: r.case_type_name, accepted_on: r.accepted_on, due_date: r.due_date,
        limit: r.promised_limit_days + " 个工作日", items: r.materials_received });
      rateCode(filled.querySelector("[data-qr]"), app.id);
    }
    el("notice-body").replaceChildren(filled);
    el("notice").hidden = false;
    el("notice-print").focus();
  }

  // The QR code of the application's rating page (一事一评, /m/r/<token>), drawn by the
  // gateway; a receipt printed without it is still a receipt.
  async function rateCode(figure, applicationId) {
    try {
      const link = await Staff.post("/desk/receipt-link", { application_id: applicationId });
      figure.querySelector("img").src = link.qr;
      figure.dataset.link = link.link;
      figure.hidden = false;
    } catch (error) { /* the receipt shows without its QR code */ }
  }

  function fill(id, values) {
    const doc = el(id).content.cloneNode(true);
    for (const field of doc.querySelectorAll("[data-f]")) {
      field.textContent = values[field.dataset.f] ?? "";
    }
    for (const list of doc.querySelectorAll("[data-list]")) {
      list.replaceChildren(...(values[list.dataset.list] || [])
        .map((text) => h("li", { textContent: text })));
    }
    return doc;
  }

  const day = (moment) => (moment ? new Date(moment).toLocaleDateString("zh-CN") : "");

  function closeNotice() {
    el("notice").hidden = true;
    el("desk-submit").focus();
  }
  el("notice-print").onclick = () => window.print();
  el("notice-close").onclick = closeNotice;
  document.addEventListener("keydown", (event) => {
    if (event.key === "Escape" && !el("notice").hidden) closeNotice();
  });

  Win.desk = { applicationFor: (ticketId) => byTicket.get(ticketId) };
})();
