// The citizen's rating page (/m/r/<token>, the QR code of a ticket's slip or of an
// application's 受理凭证): the five levels once the service has ended, a reason for a bad
// one, an optional phone for a call-back. The gateway knows from the link what is rated;
// the page sends only the citizen's choices, with one request_id per page load kept across
// re-sends, so a reply lost on the way never stores a second rating.
"use strict";
(() => {
  const RETRY_MS = [500, 1500, 3000];  // waits before re-sending when no reply came back
  const el = (id) => document.getElementById(id);
  const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
  const requestId = Levels.requestId("qr");
  let level = null;
  let sending = false;

  function show(name) {
    for (const id of ["closed", "rate", "thanks"]) el(id).hidden = id !== name;
  }

  function close(text) {
    el("closed-text").textContent = text;
    el("phone").value = "";  // a typed phone leaves the screen with the form
    show("closed");
  }

  function bad() { return Levels.BAD.has(level); }

  function refresh() {
    el("submit").disabled = sending || !level || (bad() && Levels.tags(el("reasons")).length === 0);
  }

  function choose(code) {
    level = code;
    el("details").hidden = false;
    el("reasons-box").hidden = !bad();
    el("message").textContent = "";
    refresh();
  }

  function choices() {
    const text = el("reason-text").value.trim();
    const phone = el("phone").value.trim();  // a call-back is for a 差评 only
    return { level, request_id: requestId, tags: bad() ? Levels.tags(el("reasons")) : [],
      text: bad() && text ? text : null, phone: bad() && phone ? phone : null };
  }

  async function send(body) {
    const answer = await fetch(location.pathname, { method: "POST",
      headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) });
    const data = await answer.json().catch(() => ({}));
    if (!answer.ok) throw Object.assign(new Error(data.message || "HTTP " + answer.status), { status: answer.status, data });
    return data;
  }

  async function submit(event) {
    event.preventDefault();
    if (el("submit").disabled) return;
    const body = choices();
    sending = true;
    refresh();
    el("message").textContent = "正在提交…";
    for (let attempt = 0; ; attempt += 1) {
      try {
        await send(body);
        el("phone").value = "";
        return show("thanks");
      } catch (e) {
        // No reply at all: the rating may be stored; the same request_id makes a re-send safe.
        if (!e.status && attempt < RETRY_MS.length) { await sleep(RETRY_MS[attempt]); continue; }
        sending = false;
        if (e.status === 409) return close(e.data.message);  // rated already, or not yet ended
        el("message").textContent = !e.status ? "网络不稳定，评价尚未确认，请再点一次“提交评价”"
          : e.status === 503 ? "评价服务暂时无法连接，请稍候再点“提交评价”" : Levels.refusal(e.data);
        return refresh();
      }
    }
  }

  Levels.build(el("levels"), el("reasons"), choose, refresh);
  el("details").onsubmit = submit;
  show(document.body.dataset.state === "open" ? "rate" : "closed");
})();
