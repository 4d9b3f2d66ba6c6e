// 差评整改: the site's bad-rating cases with their deadlines and overdue marks; a case
// opens in a dialog with every step so far and one small form per action. Each action is
// rating.<method>({case_id, by: this manager, …}); the service refuses what the state or
// the role does not allow (a review needs a supervisor) and its message is shown. A
// revealed phone lives only in the dialog and is wiped when the dialog closes.
"use strict";
(() => {
  const { el, row, fill, time } = Manage;
  const LEVEL = { dissatisfied: "不满意", very_dissatisfied: "非常不满意" };
  const OVERDUE = { callback: "回访超期", close: "办结超期" };
  const STEP = { opened: "立案", assigned: "指派", callback: "回访核实", classified: "定性",
    rectified: "整改", feedback: "反馈", appealed: "申诉", appeal_reviewed: "申诉复核",
    escalated: "督办" };
  const APPEAL = { pending: "待复核", upheld: "申诉成立", rejected: "申诉不成立" };
  const dialog = document.getElementById("case");
  const phone = document.getElementById("phone");
  let openCase = null;

  const overdueText = (c) => (c.overdue || []).map((s) => OVERDUE[s] || s).join("、");

  function caseRow(c) {
    const button = el("button", { type: "button", text: "办理" });
    button.addEventListener("click", () => open(c.id));
    const tr = row(c.day, c.window ? c.window + "号窗口" : "—", LEVEL[c.level] || c.level,
      c.state_zh, c.handler || "未指派", c.callback_due || "—", c.close_due || "—",
      overdueText(c) || "—", button);
    tr.dataset.case = c.id;
    tr.classList.toggle("late", Boolean((c.overdue || []).length));
    return tr;
  }

  async function list() {
    const filter = Manage.values(document.getElementById("case-filter"));
    if (!filter.overdue) delete filter.overdue;
    const cases = await Staff.call("rating", "list_cases", [filter]);
    fill(document.getElementById("case-list"), cases.map(caseRow), "没有符合条件的差评案件");
  }

  function facts(c) {
    const ev = c.evaluation || {};
    const reasons = ev.reasons ? [...(ev.reasons.tags || []), ev.reasons.text].filter(Boolean).join("；") : "";
    const shown = [
      ["状态", c.state_zh], ["定性", c.classification_zh || "—"], ["责任单位", c.unit],
      ["经办人", c.handler || "未指派"], ["窗口 / 工作人员", (c.window || "—") + " / " + (c.staff_id || "—")],
      ["评价", (ev.level_zh || LEVEL[c.level] || c.level) + (ev.channel ? "（" + ev.channel + "）" : "")],
      ["差评原因", reasons || "—"], ["评价人", c.real_name ? "实名 " + ((ev.rater || {}).phone_masked || "") : "匿名"],
      ["回访期限", (c.callback_due || "未定") + (c.callback_on_time == null ? "" : c.callback_on_time ? "（按时）" : "（超期）")],
      ["申诉期限", c.appeal_due || "未定"], ["办结期限", c.close_due || "定性后确定"],
      ["超期", overdueText(c) || "无"], ["申诉", c.appeal ? c.appeal.unit + " " + (APPEAL[c.appeal.state] || c.appeal.state) : "无"],
    ];
    document.getElementById("case-facts").replaceChildren(...shown.flatMap(([k, v]) =>
      [el("dt", { text: k }), el("dd", { text: v, dataset: { fact: k } })]));
    document.getElementById("case-steps").replaceChildren(...c.steps.map((s) =>
      el("li", { text: time(s.at) + " " + (STEP[s.step] || s.step) + " · " + s.by + detail(s) })));
  }

  function detail(s) {
    const text = s.handler || s.note || s.measures || s.content || s.reason || s.classification;
    return text ? "：" + text : "";
  }

  async function open(caseId) {
    const c = await Staff.call("rating", "get_case", [caseId]);
    openCase = c;
    document.getElementById("case-title").textContent = "差评案件 · " + c.state_zh;
    dialog.dataset.state = c.state;
    const handler = dialog.querySelector("input[name=handler]");
    if (!handler.value) handler.value = Manage.staffId;
    const unit = dialog.querySelector("input[name=unit]");
    if (!unit.value) unit.value = c.unit;
    facts(c);
    if (!dialog.open) dialog.showModal();
  }

  function wipePhone() {
    phone.textContent = "";
    dialog.querySelector(".reveal .error").textContent = "";
  }

  for (const form of dialog.querySelectorAll("form[data-method]")) {
    Manage.onSubmit(form, async (data) => {
      const actor = form.dataset.actor || "by";
      await Staff.call("rating", form.dataset.method,
        [{ ...data, case_id: openCase.id, [actor]: Manage.staffId }]);
      form.reset();
      await Promise.all([open(openCase.id), list()]);
    });
  }

  document.getElementById("reveal").addEventListener("click", async () => {
    wipePhone();
    try {
      const shown = await Staff.call("rating", "reveal_phone", [openCase.id, Manage.staffId]);
      phone.textContent = "评价人电话：" + shown.phone + "（本次查看已记录）";
    } catch (e) {
      dialog.querySelector(".reveal .error").textContent = Manage.explain(e);
    }
  });
  document.getElementById("case-close").addEventListener("click", () => dialog.close());
  dialog.addEventListener("close", () => { wipePhone(); openCase = null; });
  Manage.onSubmit(document.getElementById("case-filter"), () => list());
  Manage.panel("cases", { every: 10000, refresh: list });
})();
