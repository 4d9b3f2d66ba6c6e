// A paired device (取号机, 叫号屏, 评价器): its bearer token lives in this browser's
// localStorage, is sent only in the Authorization header, and is asked for again (the
// pairing form) when the gateway no longer knows it.
"use strict";
const Device = (() => {
  const KEY = "hall.device.token";
  const token = () => localStorage.getItem(KEY);
  const headers = () => ({ Authorization: "Bearer " + token() });

  function forget() { localStorage.removeItem(KEY); }

  // Show the pairing form until a valid code gives a token, then call ready().
  function pair(ready) {
    if (token()) { ready(); return; }
    const form = document.getElementById("pairing");
    const error = form.querySelector(".error");
    form.hidden = false;
    form.onsubmit = async (event) => {
      event.preventDefault();
      error.textContent = "";
      const body = { code: form.code.value.trim(), name: form.name.value.trim() };
      try {
        const answer = await fetch("/pair", { method: "POST", body: JSON.stringify(body),
          headers: { "Content-Type": "application/json" } });
        const data = await answer.json();
        if (!answer.ok) { error.textContent = data.message || "配对失败"; return; }
        localStorage.setItem(KEY, data.token);
        form.hidden = true;
        ready();
      } catch (e) {
        error.textContent = "无法连接本站点网关，请检查网络后重试";
      }
    };
  }

  // Read a server-sent-event stream with fetch (EventSource cannot send the token):
  // onEvent(name, data) for each event; resolves when the stream ends.
  async function stream(url, onEvent) {
    const answer = await fetch(url, { headers: headers(), cache: "no-store" });
    if (answer.status === 401) { forget(); location.reload(); return; }
    if (!answer.ok) throw new Error("HTTP " + answer.status);
    const reader = answer.body.getReader();
    const decoder = new TextDecoder();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buffer += decoder.decode(value, { stream: true });
      let end;
      while ((end = buffer.indexOf("\n\n")) >= 0) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        let name = "message", data = "";
        for (const line of block.split("\n")) {
          if (line.startsWith("event: ")) name = line.slice(7);
          else if (line.startsWith("data: ")) data += line.slice(6);
        }
        if (data) onEvent(name, JSON.parse(data));
      }
    }
  }

  return { token, headers, forget, pair, stream };
})();
