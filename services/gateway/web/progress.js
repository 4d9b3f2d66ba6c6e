// 办件进度查询 (/m/a): the 办件编号 and the last six characters of the applicant's ID
// number, POSTed as JSON (never in the URL); the answer shows the matter, the state, the
// dates and the notices that ask something of the citizen. A wrong pair and an unknown
// number get the same words from the gateway, which locks out an address guessing.
"use strict";
(() => {
  const el = (id) => document.getElementById(id);

  function h(tag, text) {
    const node = document.createElement(tag);
    node.textContent = text;
    return node;
  }

  function show(found) {
    for (const field of el("answer").querySelectorAll("[data-f]")) {
      field.textContent = found[field.dataset.f] || "—";
    }
    el("notices").replaceChildren(...(found.notices || []).map((n) => {
      const box = document.createElement("article");
      box.className = "notice";
      box.append(h("h3", n.title), h("p", n.text));
      if (n.items.length) {
        const list = document.createElement("ul");
        list.append(...n.items.map((item) => h("li", item)));
        box.append(list);
      }
      return box;
    }));
    el("answer").hidden = false;
  }

  el("query").onsubmit = async (event) => {
    event.preventDefault();
    el("message").textContent = "";
    el("answer").hidden = true;
    el("ask").disabled = true;
    const body = { number: el("number").value.trim(), id_suffix: el("id-suffix").value.trim() };
    try {
      const answer = await fetch("/m/a", { method: "POST", cache: "no-store",
        headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) });
      const data = await answer.json().catch(() => ({}));
      if (answer.ok) show(data);
      else el("message").textContent = answer.status === 503 ? "查询服务暂时无法连接，请稍后再试"
        : (data.message || "查询未能完成").replace(/^[\w.]+：/, "");
    } catch (e) {
      el("message").textContent = "网络不稳定，请稍后再试";
    } finally {
      el("id-suffix").value = "";  // the ID suffix does not stay on the screen
      el("ask").disabled = false;
    }
  };
})();
