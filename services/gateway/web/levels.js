// The national five levels and the reasons of a bad one (差评), shared by the rating pad
// (pad.js) and the citizen's rating page (rate.js): the buttons, which levels need a
// reason, the service's words for a refusal, and a request id for retries.
"use strict";
const Levels = (() => {
  // rating's Level codes (services/rating/domain/scale.py), best first
  const LEVELS = [["very_satisfied", "非常满意"], ["satisfied", "满意"],
    ["basically_satisfied", "基本满意"], ["dissatisfied", "不满意"],
    ["very_dissatisfied", "非常不满意"]];
  const BAD = new Set(["dissatisfied", "very_dissatisfied"]);
  const TAGS = ["服务效率", "服务水平", "服务态度"];  // the national list of 差评 reasons

  function button(className, text, onclick) {
    const b = document.createElement("button");
    b.type = "button";
    b.className = className;
    b.textContent = text;
    b.setAttribute("aria-pressed", "false");
    b.onclick = onclick;
    return b;
  }

  // The five levels into `levels` (an <ol>), pressed one at a time, then onLevel(code);
  // the reasons into `reasons` as toggles, then onTag().
  function build(levels, reasons, onLevel, onTag) {
    levels.replaceChildren(...LEVELS.map(([code, name]) => {
      const li = document.createElement("li");
      const b = button("level " + code, name, () => {
        for (const other of levels.querySelectorAll("button")) {
          other.setAttribute("aria-pressed", String(other === b));
        }
        onLevel(code);
      });
      b.dataset.level = code;
      li.appendChild(b);
      return li;
    }));
    reasons.replaceChildren(...TAGS.map((tag) => {
      const b = button("tag", tag, () => {
        b.setAttribute("aria-pressed", String(b.getAttribute("aria-pressed") !== "true"));
        onTag();
      });
      b.dataset.tag = tag;
      return b;
    }));
  }

  function tags(reasons) {
    return Array.from(reasons.querySelectorAll("button[aria-pressed=true]"), (b) => b.dataset.tag);
  }

  // The service's own words for a refusal (without a leading field path such as
  // "rater.phone：", which a citizen cannot read), with the first rule it did not say.
  function refusal(data) {
    const message = (data.message || "评价未能提交").replace(/^[\w.]+：/, "");
    const rules = Object.values(data.fields || {}).flat().filter((m) => !message.includes(m));
    return rules.length ? message + "：" + rules[0] : message;
  }

  function requestId(prefix) {
    // getRandomValues, not randomUUID: the hall's pages are served over plain http on the LAN
    const bytes = crypto.getRandomValues(new Uint8Array(16));
    return prefix + "-" + Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
  }

  return { BAD, build, tags, refusal, requestId };
})();
