// A line chart drawn as inline SVG, without any library (the hall has no internet): one
// point per value that is known (null leaves a gap in the line), each with a <title>
// tooltip; the y axis from 0 to the largest value (or to `max`).
"use strict";
const Chart = (() => {
  const NS = "http://www.w3.org/2000/svg";
  const W = 600, H = 160, LEFT = 56, RIGHT = 8, TOP = 10, BOTTOM = 24;

  function node(tag, attrs = {}, text) {
    const n = document.createElementNS(NS, tag);
    for (const [k, v] of Object.entries(attrs)) n.setAttribute(k, String(v));
    if (text != null) n.textContent = text;
    return n;
  }

  // points: [{label, value, text}] in order; value null = unknown that day.
  function line(svg, points, { max = null, format = String } = {}) {
    const known = points.filter((p) => p.value != null);
    const top = max != null ? max : Math.max(1, ...known.map((p) => p.value));
    const x = (i) => LEFT + (points.length > 1 ? i * (W - LEFT - RIGHT) / (points.length - 1) : 0);
    const y = (v) => TOP + (H - TOP - BOTTOM) * (1 - v / top);
    const parts = [
      node("line", { class: "axis", x1: LEFT, y1: H - BOTTOM, x2: W - RIGHT, y2: H - BOTTOM }),
      node("line", { class: "axis", x1: LEFT, y1: TOP, x2: LEFT, y2: H - BOTTOM }),
      node("text", { x: LEFT - 4, y: TOP + 10, "text-anchor": "end" }, format(top)),
      node("text", { x: LEFT - 4, y: H - BOTTOM, "text-anchor": "end" }, format(0)),
    ];
    if (points.length) {
      parts.push(node("text", { x: LEFT, y: H - 6 }, points[0].label));
      parts.push(node("text", { x: W - RIGHT, y: H - 6, "text-anchor": "end" },
        points[points.length - 1].label));
    }
    let run = [];
    const flush = () => {
      if (run.length > 1) parts.push(node("polyline", { class: "line", points: run.join(" ") }));
      run = [];
    };
    points.forEach((p, i) => {
      if (p.value == null) { flush(); return; }
      run.push(x(i).toFixed(1) + "," + y(p.value).toFixed(1));
      const dot = node("circle", { class: "point", cx: x(i).toFixed(1), cy: y(p.value).toFixed(1),
        r: 3, "data-label": p.label, "data-value": p.value });
      dot.append(node("title", {}, p.label + "：" + (p.text || format(p.value))));
      parts.push(dot);
    });
    flush();
    svg.replaceChildren(...parts);
  }

  return { line };
})();
