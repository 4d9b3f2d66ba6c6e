// 叫号配置: the queue's current configuration (categories, windows, staff, hours, caps)
// and two ways to change it, each saved as a new version with queue.configure(config,
// by, expected_version): a form for each category's name, daily cap, hours and whether
// tickets are issued, or the whole configuration as JSON. A version changed meanwhile by
// someone else is refused by the queue (expected_version), never overwritten.
"use strict";
(() => {
  const { el, row, fill } = Manage;
  let current = null;

  function input(props) { return el("input", { autocomplete: "off", ...props }); }

  function categoryRow(c) {
    const tr = el("tr", { dataset: { prefix: c.prefix } },
      el("td", { text: c.prefix }),
      el("td", {}, input({ name: "name", value: c.name, maxLength: 20, required: true })),
      el("td", {}, input({ name: "daily_cap", type: "number", min: 1, step: 1,
        value: c.daily_cap == null ? "" : c.daily_cap, placeholder: "不限" })),
      el("td", {}, input({ name: "hours", value: (c.hours || []).join(", "), maxLength: 200,
        title: "如 08:30-12:00, 13:30-17:30" })),
      el("td", {}, input({ name: "enabled", type: "checkbox", checked: c.enabled !== false })));
    for (const field of tr.querySelectorAll("input")) field.setAttribute("aria-label", c.prefix + " " + field.name);
    return tr;
  }

  function show(found) {
    current = found;
    const config = found.config;
    document.getElementById("config-version").textContent = "第 " + found.config_version + " 版 · " +
      (found.changed_by || "") + " · " + Manage.time(found.updated_at);
    fill(document.getElementById("categories"), config.categories.map(categoryRow), "未配置业务类别");
    fill(document.getElementById("config-windows"), config.windows.map((w) => row(
      w.name || w.number + "号窗口",
      Object.entries(w.categories).map(([p, weight]) => p + "（" + weight + "）").join("、"),
      w.kind === "dedicated" ? "专窗" : "综合窗口")), "未配置窗口");
    fill(document.getElementById("config-staff"), config.staff.map((s) => row(
      s.id, s.name, (s.windows || []).join("、") || "—", (s.backup_windows || []).join("、") || "—")),
    "未配置窗口人员");
    document.querySelector("#config-json textarea").value = JSON.stringify(config, null, 2);
  }

  // The categories as the form has them, on top of the rest of the current configuration.
  function edited() {
    const rows = document.querySelectorAll("#categories tr[data-prefix]");
    const byPrefix = Object.fromEntries([...rows].map((tr) => [tr.dataset.prefix, tr]));
    const categories = current.config.categories.map((c) => {
      const tr = byPrefix[c.prefix];
      const value = (name) => tr.querySelector("input[name=" + name + "]");
      const cap = value("daily_cap").value.trim();
      return { ...c, name: value("name").value.trim(), daily_cap: cap === "" ? null : Number(cap),
        hours: value("hours").value.split(/[,，\s]+/).filter(Boolean),
        enabled: value("enabled").checked };
    });
    return { ...current.config, categories };
  }

  function parsed(text) {
    try {
      return JSON.parse(text);
    } catch (e) {
      throw new Error("配置不是有效的 JSON，请检查括号、逗号和引号是否成对、完整");
    }
  }

  async function save(config) {
    show(await Staff.call("queue", "configure", [config, Manage.staffId, current.config_version]));
  }

  async function refresh() { show(await Staff.call("queue", "configuration")); }

  Manage.onSubmit(document.getElementById("categories-form"), () => save(edited()));
  Manage.onSubmit(document.getElementById("config-json"), (data) => save(parsed(data.config || "")));
  Manage.panel("config", { refresh });
})();
