// The call board (叫号屏): the current call per window, the last calls, waiting per
// category, live from the gateway's stream. Every call (and every recall: a new call id)
// is announced once: calls already on the board when the page opens are not, and a
// reconnect brings no call twice (ids already seen are skipped).
"use strict";
(() => {
  const FRESH_MS = 120000;  // a call missed during an outage is still announced if this new
  const FLASH_MS = 10000;
  const seen = new Set();
  let first = true;
  let speaking = Promise.resolve();

  const el = (id) => document.getElementById(id);
  const item = (className, parts) => {
    const li = document.createElement("li");
    li.className = className;
    for (const [cls, text] of parts) {
      const span = document.createElement("span");
      span.className = cls;
      span.textContent = text;
      li.appendChild(span);
    }
    return li;
  };

  function render(board) {
    el("screen").hidden = false;
    const newest = board.recent[0];
    const fresh = newest && Date.parse(board.updated_at) - Date.parse(newest.called_at) < FLASH_MS;
    el("windows").replaceChildren(...board.windows.map((w) => {
      const li = item("window " + w.state, [["name", w.window + " 号窗口"],
        ["number", w.number || "—"], ["state", STATES[w.state] || w.state]]);
      if (fresh && w.number === newest.number && w.window === newest.window) li.classList.add("flash");
      return li;
    }));
    el("recent").replaceChildren(...board.recent.map((c, i) =>
      item(i === 0 && fresh ? "call flash" : "call",
        [["number", c.number], ["to", "请到 " + c.window + " 号窗口"]])));
    el("waiting").replaceChildren(...board.waiting.map((w) =>
      item("category", [["name", w.name], ["count", "等候 " + w.waiting + " 人"]])));
  }
  const STATES = { open: "开放", paused: "暂停服务", closed: "未开放", serving: "办理中" };

  function announceNew(board) {
    const now = Date.parse(board.updated_at);
    const calls = [...board.recent].reverse();  // oldest first, as they were called
    for (const call of calls) {
      if (seen.has(call.call_id)) continue;
      seen.add(call.call_id);
      if (!first && now - Date.parse(call.called_at) < FRESH_MS) {
        speaking = speaking.then(() => say(call)).catch(() => {});
      }
    }
    first = false;
  }

  function chineseVoice() {
    const voices = window.speechSynthesis ? speechSynthesis.getVoices() : [];
    return voices.find((v) => /^zh[-_]CN/i.test(v.lang)) || voices.find((v) => /^zh/i.test(v.lang));
  }

  // The browser's Mandarin voice when it has one, else the server's WAV of this call.
  function say(call) {
    const voice = chineseVoice();
    if (voice) {
      return new Promise((done) => {
        const words = new SpeechSynthesisUtterance(call.spoken);
        words.voice = voice;
        words.lang = "zh-CN";
        words.onend = words.onerror = done;
        speechSynthesis.speak(words);
      });
    }
    return fetch("/board/announce/" + encodeURIComponent(call.call_id) + ".wav",
      { headers: Device.headers() })
      .then((answer) => (answer.ok ? answer.blob() : Promise.reject(answer.status)))
      .then((wav) => new Promise((done) => {
        const audio = new Audio(URL.createObjectURL(wav));
        audio.onended = audio.onerror = done;
        audio.play().catch(done);
      }));
  }

  function status(text, bad) {
    el("status").textContent = text;
    el("status").classList.toggle("bad", !!bad);
  }

  async function follow() {
    for (;;) {
      try {
        await Device.stream("/board/stream", (name, data) => {
          if (name === "board") { render(data); announceNew(data); }
          else if (name === "status") {
            status(data.status === "ok" ? "实时" : data.status, data.status !== "ok");
          }
        });
        status("正在刷新连接…");
      } catch (e) {
        status("连接中断，正在重连…", true);
      }
      await new Promise((r) => setTimeout(r, 2000));
    }
  }

  function tick() {
    el("clock").textContent = new Date().toLocaleString("zh-CN", { hour12: false });
  }
  tick();
  setInterval(tick, 1000);
  Device.pair(follow);
})();
