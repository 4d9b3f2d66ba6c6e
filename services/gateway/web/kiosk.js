// The ticket machine (取号机): categories with their waiting count and the expected wait
// (live from the board stream), the green channel, an optional phone, booking check-in;
// the printed slip (80 mm) with a QR code to the ticket's mobile page; back to the start
// after the configured idle time.
"use strict";
(() => {
  const el = (id) => document.getElementById(id);
  const IDLE_MS = Number(document.body.dataset.idle) * 1000;
  let idleTimer = null;

  function range(estimate) {
    if (!estimate || estimate.high_minutes === 0) return "无需等候";
    return "预计 " + estimate.low_minutes + "–" + estimate.high_minutes + " 分钟";
  }

  function categories(board) {
    el("start").hidden = !el("slip").hidden;
    el("categories").replaceChildren(...board.waiting.map((c) => {
      const li = document.createElement("li");
      const button = document.createElement("button");
      button.type = "button";
      button.dataset.category = c.category;
      for (const [cls, text] of [["name", c.name], ["count", "等候 " + c.waiting + " 人"],
        ["estimate", range(c.estimate)]]) {
        const span = document.createElement("span");
        span.className = cls;
        span.textContent = text;
        button.appendChild(span);
      }
      button.onclick = () => take({ category: c.category,
        priority: el("green").checked ? el("reason").value : null,
        phone: el("phone").value.trim() || null }, c.name);
      li.appendChild(button);
      return li;
    }));
  }

  async function take(request, name) {
    el("message").textContent = "";
    try {
      const answer = await fetch("/kiosk/ticket", { method: "POST", body: JSON.stringify(request),
        headers: { ...Device.headers(), "Content-Type": "application/json" } });
      const data = await answer.json();
      if (answer.status === 401) { Device.forget(); location.reload(); return; }
      if (!answer.ok) { el("message").textContent = data.message || "取号失败，请稍后重试"; return; }
      slip(data, name);
    } catch (e) {
      el("message").textContent = "取号机与服务器的连接中断，请稍后重试或到咨询台取号";
    }
  }

  function slip(data, name) {
    const t = data.ticket;
    el("slip-number").textContent = t.number;
    el("slip-category").textContent = (name || t.category) + (t.green_channel ? "（优先）" : "");
    el("slip-ahead").textContent = "您前面还有 " + t.people_ahead + " 人";
    el("slip-estimate").textContent = range(t.estimate);
    el("slip-time").textContent = new Date(t.created_at).toLocaleString("zh-CN", { hour12: false });
    el("slip-qr").src = data.qr;
    el("start").hidden = true;
    el("slip").hidden = false;
    window.print();
    touched();
  }

  function reset() {
    el("slip").hidden = true;
    el("start").hidden = false;
    el("green").checked = false;
    el("reason-line").hidden = true;
    el("phone").value = el("booking").value = el("message").textContent = "";
  }

  function touched() {
    clearTimeout(idleTimer);
    idleTimer = setTimeout(reset, IDLE_MS);
  }

  async function follow() {
    for (;;) {
      try {
        await Device.stream("/board/stream", (name, data) => { if (name === "board") categories(data); });
      } catch (e) {
        el("message").textContent = "正在重新连接服务器…";
      }
      await new Promise((r) => setTimeout(r, 2000));
    }
  }

  el("green").onchange = () => { el("reason-line").hidden = !el("green").checked; };
  el("done").onclick = reset;
  el("checkin").onsubmit = (event) => {
    event.preventDefault();
    if (el("booking").value.trim()) take({ booking: el("booking").value.trim() }, null);
  };
  for (const kind of ["pointerdown", "keydown"]) document.addEventListener(kind, touched);
  Device.pair(() => { follow(); touched(); });
})();
