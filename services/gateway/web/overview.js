// 大厅概况: every window (state, who is signed in, the ticket it called last and where
// that ticket is now), waiting per category, and today's figures that the services
// compute and a manager may read (the board's waiting counts, queue.today_figures,
// rating.stats). Every 3 s.
"use strict";
(() => {
  const { el, row, fill, percent } = Manage;
  const CALL_STATE = { called: "已叫号", serving: "办理中", completed: "已办结", no_show: "未到",
    held: "暂挂", cancelled: "已取消", expired: "已作废", waiting: "已转回等候" };
  const STATE_CLASS = { open: "open", paused: "paused", closed: "closed" };
  let names = null; // staff id → name, from the queue's configuration (read once)

  async function staffNames() {
    if (!names) {
      const current = await Staff.call("queue", "configuration");
      names = Object.fromEntries(current.config.staff.map((s) => [s.id, s.name]));
    }
    return names;
  }

  function windowCard(w, board, who) {
    const call = board.recent.find((c) => c.window === w.number && c.number === w.last_number);
    const clerk = w.staff_id ? (who[w.staff_id] || w.staff_id) + "（" + w.staff_id + "）" : "无人签到";
    const ticket = w.last_number
      ? w.last_number + (call ? " · " + (CALL_STATE[call.state] || call.state) : "") : "—";
    return el("li", { className: "window-card " + (STATE_CLASS[w.state] || ""), dataset: { window: w.number } },
      el("span", { className: "name", text: w.name || w.number + "号窗口" }),
      el("span", { className: "state", text: w.state_name + (w.backup ? "（B岗）" : "") }),
      el("span", { className: "clerk", text: clerk }),
      el("span", { className: "ticket", text: "当前号：" + ticket }),
      w.pause_reason ? el("span", { className: "small", text: "暂停原因：" + w.pause_reason }) : "");
  }

  function waiting(board) {
    fill(document.getElementById("hall-waiting"), board.waiting.map((c) => {
      const tr = row(c.category + " " + c.name, String(c.waiting), range(c.estimate));
      tr.dataset.category = c.category;
      tr.children[1].className = "count";
      return tr;
    }), "未配置业务类别");
  }

  function range(e) {
    if (!e || e.high_minutes === 0) return "无需等候";
    return e.low_minutes + "–" + e.high_minutes + " 分钟";
  }

  // Counts summed over the categories; the share called within target stays per category,
  // as the queue computes it (an average of shares would be a figure nobody computed).
  function queueFigures(day) {
    const sum = (key) => day.reduce((n, c) => n + c[key], 0);
    const within = day.filter((c) => c.within_target_share !== null)
      .map((c) => c.category + " " + percent(c.within_target_share)).join("，");
    return [
      ["issued", "今日取号", sum("issued") + " 张"],
      ["served", "今日已办结", sum("served") + " 人"],
      ["no-show", "今日过号未到", sum("no_show") + " 人"],
      ["within-target", "按时叫号率（等候不超过目标时间）", within || "今日尚无叫号"],
    ];
  }

  function figures(board, windows, stats, day) {
    const t = stats.total;
    const open = windows.filter((w) => w.state === "open").length;
    const shown = [
      ["waiting-now", "正在等候", board.waiting.reduce((n, c) => n + c.waiting, 0) + " 人"],
      ["windows-open", "开放窗口", open + " / " + windows.length],
      ...queueFigures(day),
      ["evaluations", "今日计入统计的评价", t.total + " 条"],
      ["satisfaction", "满意率（非常满意、满意、基本满意）", percent(t.satisfaction_rate)],
      ["good", "好评率（非常满意、满意）", percent(t.good_rate)],
      ["bad", "差评（不满意、非常不满意）", t.bad + " 条"],
      ["held", "待复核的评价", t.held + " 条"],
      ["cases", "今日评价产生的差评案件 / 已办结", t.cases + " / " + t.cases_closed],
    ];
    document.getElementById("figures").replaceChildren(...shown.flatMap(([key, label, value]) => [
      el("dt", { text: label }), el("dd", { text: value, dataset: { figure: key } })]));
  }

  Manage.panel("overview", {
    every: 3000,
    async refresh() {
      const [windows, board, who, queueDay] = await Promise.all([Staff.call("queue", "windows"),
        Staff.call("queue", "board"), staffNames(), Staff.call("queue", "today_figures")]);
      const day = { date_from: board.date, date_to: board.date };
      const stats = await Staff.call("rating", "stats", [day]);
      document.getElementById("today").textContent = board.date;
      document.getElementById("hall-windows").replaceChildren(...windows.map((w) => windowCard(w, board, who)));
      waiting(board);
      figures(board, windows, stats, queueDay);
    },
  });
})();
