// 办件时限: applications due soon and overdue (matters.list_applications by due_state).
// The service returns the applicant masked (name, ID number, phone) and never the clear
// values; the page shows only those. Every lookup is audited and limited to 30 a minute
// per caller, so this panel refreshes once a minute, or when asked.
"use strict";
(() => {
  const { el, row, fill } = Manage;

  function applicant(a) {
    const who = a.applicant || {};
    return [who.name, who.id_masked].filter(Boolean).join(" ") || "—";
  }

  async function section(dueState, bodyId, empty) {
    const body = document.getElementById(bodyId);
    try {
      const found = await Staff.call("matters", "list_applications", [{ due_state: dueState }]);
      fill(body, found.items.map((a) => {
        const tr = row(a.number, a.matter_name, applicant(a), a.state_name, a.due_date || "—");
        tr.dataset.application = a.number;
        return tr;
      }), empty);
    } catch (e) {
      body.replaceChildren(el("tr", {}, el("td", { colSpan: 5, className: "error", text: e.message })));
    }
  }

  async function refresh() {
    await Promise.all([section("due_soon", "due-soon", "没有即将到期的办件"),
      section("overdue", "overdue", "没有超期的办件")]);
  }

  document.getElementById("deadlines-refresh").addEventListener("click", () => Manage.refresh());
  Manage.panel("deadlines", { every: 60000, refresh });
})();
