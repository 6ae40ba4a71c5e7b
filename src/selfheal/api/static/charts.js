// Small SVG line charts of the incident's signals, with deploys and actions marked.
"use strict";
const Charts = {};

Charts.METRICS = [
  ["rss_bytes", "memory (RSS)", v => (v / 1e6).toFixed(0) + " MB"],
  ["p99_latency_s", "p99 latency", v => (v * 1000).toFixed(v < 0.01 ? 1 : 0) + " ms"],
  ["error_ratio", "error ratio", v => (v * 100).toFixed(1) + "%"],
  ["request_rate", "request rate", v => v.toFixed(0) + "/s"],
];

Charts.NS = "http://www.w3.org/2000/svg";
Charts.svg = function (tag, attrs) {
  const e = document.createElementNS(Charts.NS, tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  return e;
};

Charts.one = function (points, start, end, marks, fmt) {
  const W = 300, H = 96, top = 6, bottom = 14;
  const svg = Charts.svg("svg", { viewBox: `0 0 ${W} ${H}`, preserveAspectRatio: "none" });
  const vals = points.map(p => p[1]).filter(v => v !== null);
  const lo = Math.min(0, ...vals), hi = Math.max(...vals, lo + 1e-9);
  const x = t => ((t - start) / Math.max(1, end - start)) * W;
  const y = v => top + (1 - (v - lo) / (hi - lo)) * (H - top - bottom);
  for (const f of [0.5]) {
    svg.appendChild(Charts.svg("line", { x1: 0, x2: W, y1: y(lo + f * (hi - lo)), y2: y(lo + f * (hi - lo)),
      stroke: "#222b35", "stroke-width": 1 }));
  }
  for (const m of marks) {
    const color = m.kind === "change" ? "#d9a54a" : m.kind === "incident" ? "#e0706a" : "#5fb98e";
    svg.appendChild(Charts.svg("line", { x1: x(m.t), x2: x(m.t), y1: 0, y2: H - bottom + 2,
      stroke: color, "stroke-width": 1.2, "stroke-dasharray": "3 2", "vector-effect": "non-scaling-stroke" }));
  }
  let d = "", pen = false;
  for (const [t, v] of points) {
    if (v === null) { pen = false; continue; }
    d += (pen ? "L" : "M") + x(t).toFixed(1) + " " + y(v).toFixed(1);
    pen = true;
  }
  svg.appendChild(Charts.svg("path", { d, fill: "none", stroke: "#8fb3e0", "stroke-width": 1.4,
    "vector-effect": "non-scaling-stroke" }));
  const label = Charts.svg("text", { x: 2, y: H - 2, fill: "#5d6977", "font-size": 9 });
  label.textContent = SH.clock(start);
  svg.appendChild(label);
  const label2 = Charts.svg("text", { x: W - 2, y: H - 2, fill: "#5d6977", "font-size": 9, "text-anchor": "end" });
  label2.textContent = SH.clock(end);
  svg.appendChild(label2);
  const peak = Charts.svg("text", { x: 2, y: top + 6, fill: "#5d6977", "font-size": 9 });
  peak.textContent = "max " + fmt(hi);
  svg.appendChild(peak);
  return svg;
};

Charts.render = function (box, data) {
  SH.clear(box);
  const marks = data.markers.slice();
  // selfheal's own changes are drawn as actions already (from its executions)
  const changes = data.changes.filter(c => !c.who.startsWith("selfheal"));
  for (const c of changes) marks.push({ t: c.t, kind: "change", label: c.who + ": " + c.what });
  let drawn = 0;
  for (const [svc, metrics] of Object.entries(data.services)) {
    for (const [name, title, fmt] of Charts.METRICS) {
      const pts = metrics[name];
      if (!pts || !pts.length) continue;
      const vals = pts.map(p => p[1]).filter(v => v !== null);
      const last = vals.length ? fmt(vals[vals.length - 1]) : "—";
      const own = marks.filter(m => m.kind !== "change" ||
        changes.some(c => c.t === m.t && c.service === svc));
      const chart = SH.el("div", { class: "chart" },
        SH.el("div", { class: "cap" }, SH.el("span", {}, SH.el("b", { text: svc }), " " + title),
          SH.el("span", { class: "mono", text: "now " + last })));
      chart.appendChild(Charts.one(pts, data.start, data.end, own, fmt));
      for (const m of own) chart.title = (chart.title ? chart.title + "\n" : "") + SH.clock(m.t) + " " + m.label;
      box.appendChild(chart);
      drawn += 1;
    }
  }
  if (!drawn) box.appendChild(SH.el("div", { class: "empty", text: "No signal data in the store for this window." }));
};
