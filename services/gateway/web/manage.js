// The manager's console (大厅管理): tabs, each a panel module (overview.js, cases.js,
// deadlines.js, hallconfig.js, people.js) that registers here with how to refresh it and
// how often. Only the panel on screen is refreshed, so a hidden tab costs the services
// nothing (applications are looked up at most 30 times a minute per caller).
"use strict";
const Manage = (() => {
  const staffId = document.body.dataset.staff;
  const panels = {};
  let active = "overview";
  let timer = null;

  // A DOM element: el("td", { className: "x", text: "…" }, child, …). Text is always
  // set as textContent, never parsed as HTML.
  function el(tag, props = {}, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(props)) {
      if (key === "text") node.textContent = value == null ? "" : String(value);
      else if (key === "dataset") Object.assign(node.dataset, value);
      else node[key] = value;
    }
    node.append(...children);
    return node;
  }

  const row = (...cells) => el("tr", {}, ...cells.map((c) => (c instanceof Node ? el("td", {}, c)
    : el("td", { text: c }))));

  // A table body's rows, or one row saying there is nothing to show.
  function fill(body, rows, empty) {
    const columns = body.closest("table").querySelectorAll("th").length;
    body.replaceChildren(...(rows.length ? rows
      : [el("tr", {}, el("td", { colSpan: columns, className: "empty", text: empty }))]));
  }

  function time(iso) {
    if (!iso) return "—";
    const at = new Date(iso);
    return at.toLocaleString("zh-CN", { month: "2-digit", day: "2-digit", hour: "2-digit",
      minute: "2-digit", hour12: false });
  }

  const percent = (rate) => (rate == null ? "—（无数据）" : (rate * 100).toFixed(1) + "%");

  function status(text, bad) {
    const line = document.getElementById("status");
    line.textContent = text;
    line.classList.toggle("bad", Boolean(bad));
  }

  // The values of a form's named fields as the service expects them: data-type="bool"
  // selects become true/false, checkboxes booleans, empty optional fields are left out.
  function values(form) {
    const data = {};
    for (const field of form.elements) {
      if (!field.name) continue;
      if (field.type === "checkbox") data[field.name] = field.checked;
      else if (field.dataset.type === "bool") data[field.name] = field.value === "true";
      else if (field.value.trim() !== "") data[field.name] = field.value.trim();
    }
    return data;
  }

  // Run a form's action with its button disabled; a refusal's Chinese message shows in
  // the form's .error line (and each named field's rule after it).
  function onSubmit(form, action) {
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const error = form.querySelector(".error");
      const button = form.querySelector("button[type=submit]");
      if (error) error.textContent = "";
      button.disabled = true;
      try {
        await action(values(form), form);
      } catch (e) {
        if (!error) throw e;
        error.textContent = explain(e);
      } finally {
        button.disabled = false;
      }
    });
  }

  function explain(e) {
    const rules = Object.entries(e.fields || {})
      .map(([name, list]) => name + "：" + [].concat(list).join("，"));
    return [e.message, ...rules.filter((r) => !e.message.includes(r))].join("；");
  }

  // Register a panel: refresh() fills it; every (ms) repeats it while it is on screen.
  function panel(name, spec) { panels[name] = spec; }

  async function refresh() {
    const spec = panels[active];
    clearTimeout(timer);
    try {
      await spec.refresh();
      status("已更新 " + new Date().toLocaleTimeString("zh-CN", { hour12: false }));
    } catch (e) {
      status(e.message || "读取失败", true);
    }
    if (spec.every) timer = setTimeout(refresh, spec.every);
  }

  function show(name) {
    active = name;
    for (const button of document.querySelectorAll(".tabs button")) {
      if (button.dataset.tab === name) button.setAttribute("aria-current", "page");
      else button.removeAttribute("aria-current");
    }
    for (const section of document.querySelectorAll("main .panel")) section.hidden = section.id !== name;
    refresh();
  }

  document.addEventListener("DOMContentLoaded", () => {
    for (const button of document.querySelectorAll(".tabs button")) {
      button.addEventListener("click", () => show(button.dataset.tab));
    }
    show(active);
  });

  return { staffId, el, row, fill, time, percent, values, onSubmit, explain, panel, refresh };
})();
