// The rating pad (评价器), bound to one window: idle, it shows the window and who serves
// there; it asks rating for the window's open invitation every 1.5 s and, when one is
// there, offers the five national levels. A bad rating needs a reason; a phone makes it a
// real-name rating the unit calls back. One request_id per invitation, kept across retries
// (and a reload), so a reply lost on the way never stores a second rating.
"use strict";
(() => {
  const POLL_MS = 1500;
  // GATEWAY.pad_thanks_seconds and pad_idle_seconds: a rating screen nobody touches this
  // long is left unrated
  const THANKS_MS = Number(document.body.dataset.thanks) * 1000;
  const IDLE_MS = Number(document.body.dataset.idle) * 1000;
  const RETRY_MS = [500, 1500, 3000];  // waits before re-sending when no reply came back
  const KEY = "hall.pad.request";  // {invitation, request}: survives a reload mid-retry
  const BAD = Levels.BAD;  // the levels, reasons and refusals: levels.js
  const UNREACHABLE = "评价服务暂时无法连接，正在自动重试，请稍候";
  const OFFLINE = "评价器与服务器的连接中断，正在重新连接…";

  const el = (id) => document.getElementById(id);
  const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
  const finished = new Set();  // invitations rated here, already rated, or left unrated
  let me = null;  // this device: {id, window}
  let state = "idle";  // idle | rate | thanks
  let shown = null;  // the invitation on screen
  let level = null;
  let requestId = null;
  let sending = false;
  let idleTimer = null;

  // A refusal from the gateway or the service (status and its {code, message, fields});
  // a lost connection has no status.
  class Refused extends Error {
    constructor(status, data) { super(data.message || "HTTP " + status); this.status = status; this.data = data; }
  }

  async function call(service, method, args) {
    const answer = await fetch("/rpc/" + service + "/" + method, { method: "POST",
      headers: { ...Device.headers(), "Content-Type": "application/json" },
      body: JSON.stringify({ args, kwargs: {} }) });
    if (answer.status === 401) return unpaired();
    const data = await answer.json().catch(() => ({}));
    if (!answer.ok) throw new Refused(answer.status, data);
    return data.result;
  }

  function unpaired() {
    Device.forget();
    location.reload();
    return new Promise(() => {});  // the page is going away
  }

  async function whoAmI() {
    for (;;) {
      try {
        const answer = await fetch("/me", { headers: Device.headers(), cache: "no-store" });
        if (answer.status === 401) return unpaired();
        if (answer.ok) return answer.json();
      } catch (e) { /* the gateway is not reachable yet */ }
      status(OFFLINE);
      await sleep(POLL_MS);
    }
  }

  function status(text) {
    el("status").textContent = text || "";
    el("status").hidden = !text;
  }

  const refusal = Levels.refusal;

  function requestFor(invitation) {
    const kept = JSON.parse(localStorage.getItem(KEY) || "null");
    if (kept && kept.invitation === invitation) return kept.request;
    const request = Levels.requestId("pad");
    localStorage.setItem(KEY, JSON.stringify({ invitation, request }));
    return request;
  }

  function show(name) {
    state = name;
    for (const id of ["idle", "rate", "thanks"]) el(id).hidden = id !== name;
  }

  function clearForm() {
    level = null;
    for (const b of document.querySelectorAll("#levels button, #reasons button")) b.setAttribute("aria-pressed", "false");
    el("reason-text").value = el("phone").value = el("message").textContent = "";
    el("details").hidden = el("reasons-box").hidden = true;
    refresh();
  }

  function idle() {
    clearTimeout(idleTimer);
    shown = null;
    clearForm();
    show("idle");
  }

  function rate(invitation) {
    shown = invitation;
    requestId = requestFor(invitation.id);
    clearForm();
    el("clerk").textContent = invitation.staff_id ? "服务人员 工号 " + invitation.staff_id : "";
    show("rate");
    touched();
  }

  // Done with this invitation (rated, or rated before): a few seconds' note, then idle.
  function finish(title, note) {
    finished.add(shown.id);
    localStorage.removeItem(KEY);
    clearTimeout(idleTimer);
    shown = null;
    clearForm();  // the phone typed in leaves the screen with the rating
    el("thanks").querySelector(".big").textContent = title;
    el("thanks-note").textContent = note;
    show("thanks");
    setTimeout(() => { if (state === "thanks") idle(); }, THANKS_MS);
  }

  function offer(invitation) {
    const open = invitation && !finished.has(invitation.id) ? invitation : null;
    if (state === "thanks" || sending || (shown && open && shown.id === open.id)) return;
    if (open) rate(open);
    else if (shown) idle();  // rated elsewhere, or gone
  }

  const tags = () => Levels.tags(el("reasons"));

  function refresh() {
    el("submit").disabled = sending || !level || (BAD.has(level) && tags().length === 0);
  }

  function choose(code) {
    level = code;
    el("details").hidden = false;
    el("reasons-box").hidden = !BAD.has(code);
    el("message").textContent = "";
    refresh();
  }

  function evaluation() {
    const bad = BAD.has(level);
    const phone = bad ? el("phone").value.trim() : "";  // a call-back is for a 差评 only
    const text = el("reason-text").value.trim();
    const body = { service_ref: shown.service_ref, invitation_id: shown.id, window: me.window,
      channel: "pad", level, request_id: requestId,
      rater: phone ? { real_name: true, phone, device_id: me.id } : { real_name: false, device_id: me.id } };
    if (bad) body.reasons = text ? { tags: tags(), text } : { tags: tags() };
    return body;
  }

  async function submit(event) {
    event.preventDefault();
    if (el("submit").disabled) return;
    const body = evaluation();
    sending = true;
    refresh();
    el("message").textContent = "正在提交…";
    for (let attempt = 0; ; attempt += 1) {
      try {
        await call("rating", "submit_evaluation", [body]);
        sending = false;
        return finish("感谢您的评价", "您的意见将帮助我们改进服务");
      } catch (e) {
        // No reply at all: the rating may be stored; the same request_id makes a re-send safe.
        if (!e.status && attempt < RETRY_MS.length) { await sleep(RETRY_MS[attempt]); continue; }
        sending = false;
        if (e.status === 409) return finish("本次服务已评价过，无需重复评价", "感谢您的参与，祝您办事顺利");
        el("message").textContent = !e.status ? "网络不稳定，评价尚未确认，请再点一次“提交评价”"
          : e.status === 503 ? "评价服务暂时无法连接，请稍候再点“提交评价”" : refusal(e.data);
        return refresh();
      }
    }
  }

  function touched() {
    clearTimeout(idleTimer);
    if (state !== "rate") return;
    idleTimer = setTimeout(() => {
      if (state !== "rate" || sending) return;
      finished.add(shown.id);  // the citizen has gone: do not offer it again
      idle();
    }, IDLE_MS);
  }

  async function clerk() {
    try {
      const windows = await call("queue", "windows", []);
      const mine = windows.find((w) => w.number === me.window);
      if (!mine) return;
      el("idle-clerk").textContent = mine.staff_id ? "服务人员 工号 " + mine.staff_id
        : mine.state === "closed" ? "本窗口暂未开放" : "";
      if (state === "idle") el("clerk").textContent = el("idle-clerk").textContent;
    } catch (e) { /* the clerk line keeps what it showed */ }
  }

  async function poll() {
    for (;;) {
      try {
        offer(await call("rating", "pending_for_window", [me.window]));
        status("");
      } catch (e) {
        status(!e.status ? OFFLINE : e.status === 503 ? UNREACHABLE : refusal(e.data));
      }
      if (state === "idle") await clerk();
      await sleep(POLL_MS);
    }
  }

  function build() {
    Levels.build(el("levels"), el("reasons"), choose, refresh);
    el("details").onsubmit = submit;
    for (const kind of ["pointerdown", "keydown"]) document.addEventListener(kind, touched);
  }

  build();
  Device.pair(async () => {
    me = await whoAmI();
    status("");
    el("window-name").textContent = el("idle-window").textContent = me.window + " 号窗口";
    el("bar").hidden = false;
    idle();
    poll();
  });
})();
