// The window console (窗口叫号): the ticket at this window and its actions (function keys
// F1–F9), the waiting counts, whether the last citizen has rated, and what to do when a
// service is down. Every action is one bridged call as the signed-in clerk; the page shows
// the reply of its own call, never what it guesses the queue did. desk.js (the guide and
// the application desk) uses the helpers exported as `Win`.
"use strict";
const Win = (() => {
  const el = (id) => document.getElementById(id);

  // A new element: `props` are set as properties (className, textContent, type, …).
  function h(tag, props = {}, ...children) {
    const node = Object.assign(document.createElement(tag), props);
    node.append(...children);
    return node;
  }

  // A refused or failed call: the service's Chinese message on the alert line.
  function failed(error) {
    el("alert").textContent = error.message;
  }

  // A service that does not answer (503, or the gateway unreachable) is shown as down
  // until one of its calls is answered again.
  const outages = new Map();
  function down(service, message) {
    outages.set(service, message);
    showHealth();
  }
  function up(service) {
    if (outages.delete(service)) showHealth();
  }
  function showHealth() {
    const line = el("health");
    line.hidden = outages.size === 0;
    line.textContent = [...outages.values()].join("；") + "（正在自动重试，其他功能可继续使用）";
  }

  // A bridged call whose outcome also says whether its service is reachable.
  async function call(service, method, kwargs) {
    try {
      const result = await Staff.call(service, method, [], kwargs);
      up(service);
      return result;
    } catch (error) {
      if (error.status === 503 || error.status === 0) down(service, error.message);
      else up(service);
      throw error;
    }
  }

  return { el, h, call, failed, desk: null };
})();

(() => {
  const { el, h, call, failed } = Win;
  const WINDOW = document.body.dataset.window;
  const STAFF = document.body.dataset.staff;
  const REFRESH_MS = 3000;
  const HELD_KEY = "hall.window.held." + WINDOW;
  const view = { ticket: null, window: "closed", noShowAfter: 3, setup: null };
  let busy = false;
  let epoch = 0; // bumped by every action, so a refresh begun before it does not overwrite it

  // The ticket is in one of `states` and this window's (called, served, held or missed here).
  const at = (t, ...states) => Boolean(t) && states.includes(t.state)
    && (t.window === WINDOW || t.held_from_window === WINDOW);
  const ticketKw = (t, more = {}) => ({ ticket_id: t.id, ...more });

  // Each button: its key, its label, when it applies and the call it makes; `window` marks
  // a reply that is the window, not a ticket.
  const ACTIONS = [
    { key: "F1", name: "叫下一位", when: (t, w) => w === "open" && !at(t, "called", "serving"),
      run: () => call("queue", "call_next", { window: WINDOW, staff_id: STAFF }) },
    { key: "F2", name: "重呼", when: (t) => at(t, "called") && t.calls < view.noShowAfter,
      run: (t) => call("queue", "recall", ticketKw(t, { window: WINDOW })) },
    { key: "F3", name: "开始办理", when: (t) => at(t, "called"),
      run: (t) => call("queue", "start_service", ticketKw(t, { window: WINDOW })) },
    { key: "F4", name: "办结", when: (t) => at(t, "called", "serving"), run: complete },
    { key: "F5", name: "过号", when: (t) => at(t, "called") && t.calls >= view.noShowAfter,
      run: (t) => call("queue", "no_show", ticketKw(t, { window: WINDOW })) },
    { key: "F6", name: "过号重排", when: (t) => at(t, "no_show") && !t.requeued,
      run: (t) => call("queue", "requeue", ticketKw(t)) },
    { key: "F7", name: "转移", when: (t) => at(t, "called", "serving", "held"),
      run: openTransfer },
    { key: "F8", name: (t) => (t && t.state === "held" ? "恢复" : "暂挂"),
      when: (t) => at(t, "called", "serving", "held"), run: holdOrResume },
    { key: "F9", name: (t, w) => (w === "open" ? "暂停窗口" : "开放窗口"), when: () => true,
      run: pauseOrOpen, window: true },
  ];

  function complete(t) {
    const application = Win.desk && Win.desk.applicationFor(t.id);
    const outcome = application ? application.outcome : "done";
    return call("queue", "complete", ticketKw(t, { outcome, window: WINDOW,
      application_id: application ? application.id : null,
      matter_code: application ? application.matter_code : null }));
  }

  function holdOrResume(t) {
    return call("queue", t.state === "held" ? "resume" : "hold", ticketKw(t));
  }

  function pauseOrOpen() {
    if (view.window === "open") return call("queue", "pause_window", { window: WINDOW });
    return call("queue", "open_window", { window: WINDOW, staff_id: STAFF });
  }

  // --- the buttons and the keys -----------------------------------------------------------

  const buttons = ACTIONS.map((action) => {
    const label = h("span", { className: "label" });
    const button = h("button", { type: "button", className: "action" },
      h("kbd", { textContent: action.key }), label);
    button.setAttribute("aria-keyshortcuts", action.key);
    button.onclick = () => act(action);
    el("actions").append(button);
    return { action, button, label };
  });

  function applies(action) {
    return !busy && action.when(view.ticket, view.window);
  }

  document.addEventListener("keydown", (event) => {
    if (event.key === "Escape") { closeTransfer(); return; }
    const found = ACTIONS.find((a) => a.key === event.key);
    if (!found || event.altKey || event.ctrlKey || event.metaKey) return;
    event.preventDefault(); // F1 help, F3 find, F5 reload, F6 address bar: the clerk's keys here
    if (!el("notice").hidden) return; // a document is being read or printed
    act(found);
  });

  async function act(action) {
    if (!applies(action)) return;
    busy = true;
    epoch += 1;
    el("alert").textContent = el("info").textContent = "";
    render();
    try {
      const reply = await action.run(view.ticket);
      if (reply !== undefined) took(action, reply);
    } catch (error) {
      failed(error);
    } finally {
      busy = false;
      render();
    }
  }

  // The reply of this page's own call is what it shows.
  function took(action, reply) {
    if (action.window) {
      view.window = reply.state;
    } else if (reply === null) {
      el("info").textContent = "当前没有等候的号";
    } else {
      view.ticket = reply;
      remember(reply.id, reply.state === "held");
      if (reply.announcement) el("info").textContent = reply.announcement;
    }
  }

  // --- what is shown -------------------------------------------------------------------------

  function render() {
    const t = view.ticket;
    el("ticket").className = "ticket " + (t ? t.state : "idle");
    el("ticket-number").textContent = t ? t.number : "—";
    el("ticket-category").textContent = t ? t.category_name : "暂无办理中的号";
    el("ticket-state").textContent = t ? t.state_name : "";
    el("ticket-green").hidden = !(t && t.green_channel);
    el("ticket-calls").textContent = t && t.calls ? "已呼叫 " + t.calls + " 次" : "";
    el("window-state").textContent = { open: "开放", paused: "暂停", closed: "关闭" }[view.window];
    el("window-state").className = "window-" + view.window;
    for (const { action, button, label } of buttons) {
      const name = action.name;
      label.textContent = typeof name === "function" ? name(t, view.window) : name;
      button.disabled = !applies(action);
    }
  }

  // The queue's own count of today's tickets at this window, not this browser's.
  function showToday(today) {
    const shown = [["叫号", today.called], ["办结", today.completed], ["过号", today.no_show]];
    el("today").replaceChildren(...shown.map(([what, n]) =>
      h("li", {}, what + " ", h("b", { textContent: String(n) }))));
  }

  // --- transfer ------------------------------------------------------------------------------

  function openTransfer() {
    const setup = view.setup;
    if (!setup) { el("alert").textContent = "尚未取得排队配置，请稍后再试"; return undefined; }
    const options = [
      ...setup.categories.map((c) => h("option", { value: "c:" + c.prefix,
        textContent: c.prefix + " " + c.name })),
      ...setup.windows.filter((w) => String(w.number) !== WINDOW).map((w) => h("option",
        { value: "w:" + w.number, textContent: w.number + " 号窗口" })),
    ];
    el("transfer-to").replaceChildren(...options);
    el("transfer").hidden = false;
    el("transfer-to").focus();
    return undefined;
  }

  function closeTransfer() {
    el("transfer").hidden = true;
  }

  el("transfer-cancel").onclick = closeTransfer;
  el("transfer").onsubmit = (event) => {
    event.preventDefault();
    const [kind, target] = el("transfer-to").value.split(":");
    const to = kind === "c" ? { category: target } : { window: target };
    closeTransfer();
    act({ key: "F7", when: ACTIONS[6].when,
      run: (t) => call("queue", "transfer", ticketKw(t, to)) });
  };

  // --- held tickets (kept in this browser: the queue lists none per window) -----------------

  function heldIds() {
    return JSON.parse(sessionStorage.getItem(HELD_KEY) || "[]");
  }

  function remember(id, held) {
    const ids = heldIds().filter((x) => x !== id);
    sessionStorage.setItem(HELD_KEY, JSON.stringify(held ? [...ids, id] : ids));
  }

  async function showHeld() {
    const ids = heldIds();
    const read = await Promise.all(ids.map((id) =>
      call("queue", "ticket", { ticket_id: id }).catch(() => null)));
    // forget a ticket once it is no longer held; one that could not be read is kept
    sessionStorage.setItem(HELD_KEY, JSON.stringify(ids.filter((id, n) =>
      !read[n] || read[n].state === "held")));
    const tickets = read.filter((t) => t && t.state === "held");
    el("held-box").hidden = tickets.length === 0;
    el("held").replaceChildren(...tickets.map((t) => {
      const resume = h("button", { type: "button", className: "plain",
        textContent: "恢复 " + t.number });
      resume.onclick = () => act({ key: "", when: () => true, window: false,
        run: () => call("queue", "resume", ticketKw(t)) });
      return h("li", {}, resume);
    }));
  }

  // --- the periodic refresh ------------------------------------------------------------------

  let refreshing = false;
  async function refresh() {
    if (refreshing) return; // a slow service: the next round starts after this one ends
    refreshing = true;
    const started = epoch;
    await Promise.all([refreshQueue(started), refreshRating(), showHeld().catch(() => null)]);
    refreshing = false;
    render();
  }

  async function refreshQueue(started) {
    try {
      if (!view.setup) await loadSetup();
      const [windows, board, today] = await Promise.all([call("queue", "windows", {}),
        call("queue", "board", {}), call("queue", "window_today", { window: WINDOW })]);
      showToday(today);
      showWaiting(board);
      const mine = windows.find((w) => String(w.number) === WINDOW);
      const last = mine && mine.last_ticket;
      const ticket = last ? await call("queue", "ticket", { ticket_id: last }) : null;
      if (started !== epoch || busy) return; // an action of this page answered meanwhile
      view.window = mine ? mine.state : "closed";
      view.ticket = ticket;
    } catch (error) {
      if (error.status === 503 || error.status === 0) return; // shown on the health line
      el("alert").textContent = error.message;
    }
  }

  async function loadSetup() {
    const current = await call("queue", "configuration", {});
    view.setup = current.config;
    view.noShowAfter = current.config.no_show_after_calls || 3;
  }

  function showWaiting(board) {
    el("queue-waiting").replaceChildren(...board.waiting.map((c) => h("li", {},
      c.category + " " + c.name + " 等候 ", h("b", { textContent: String(c.waiting) }), " 人")));
  }

  async function refreshRating() {
    try {
      const pending = await call("rating", "pending_for_window", { window: WINDOW });
      const shown = el("rating");
      shown.className = pending ? "pending" : "rated";
      shown.textContent = pending ? "等待评价（" + rated(pending) + "）" : "已评价/无待评价";
    } catch (error) {
      el("rating").className = "unknown";
      el("rating").textContent = "评价状态暂不可知";
    }
  }

  function rated(invitation) {
    const ref = invitation.service_ref;
    return ref.kind === "ticket" ? ref.id.split(":").pop() + " 号" : "办件";
  }

  render();
  refresh();
  setInterval(refresh, REFRESH_MS);
  Win.current = () => view.ticket;
})();
