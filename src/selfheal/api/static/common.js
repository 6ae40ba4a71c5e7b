// selfheal workspace: shared helpers (API calls with the CSRF echo, formatting, live stream).
"use strict";

const SH = {};

SH.cookie = function (name) {
  const m = document.cookie.split("; ").find(c => c.startsWith(name + "="));
  return m ? decodeURIComponent(m.slice(name.length + 1)) : "";
};

SH.api = async function (path, opts) {
  opts = opts || {};
  const headers = { "Accept": "application/json" };
  if (opts.body !== undefined) headers["Content-Type"] = "application/json";
  if (opts.method && opts.method !== "GET") headers["X-CSRF-Token"] = SH.cookie("selfheal_csrf");
  const res = await fetch(path, {
    method: opts.method || "GET", headers, credentials: "same-origin",
    body: opts.body === undefined ? undefined : JSON.stringify(opts.body),
  });
  if (res.status === 401 && !opts.noRedirect) {
    location.href = "/login?next=" + encodeURIComponent(location.pathname);
    throw new Error("sign in needed");
  }
  const type = res.headers.get("content-type") || "";
  const data = type.includes("json") ? await res.json() : await res.text();
  if (!res.ok) {
    let msg = typeof data === "string" ? data : data.detail;
    if (Array.isArray(msg)) msg = msg.map(e => (e.loc || []).slice(1).join(".") + ": " + e.msg).join("; ");
    const err = new Error(msg || res.statusText);
    err.status = res.status;
    throw err;
  }
  return data;
};

SH.el = function (tag, attrs, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "class") e.className = v;
    else if (k === "text") e.textContent = v;
    else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v);
  }
  for (const kid of kids.flat()) {
    if (kid === null || kid === undefined || kid === false) continue;
    e.appendChild(typeof kid === "string" || typeof kid === "number"
      ? document.createTextNode(String(kid)) : kid);
  }
  return e;
};

SH.clear = function (node) { while (node.firstChild) node.removeChild(node.firstChild); return node; };

SH.pad = n => String(n).padStart(2, "0");
SH.clock = function (t) {
  if (t === null || t === undefined) return "—";
  const d = new Date(t * 1000);
  return SH.pad(d.getUTCHours()) + ":" + SH.pad(d.getUTCMinutes()) + ":" + SH.pad(d.getUTCSeconds());
};
SH.date = function (t) {
  if (!t) return "—";
  const d = new Date(t * 1000);
  return d.getUTCFullYear() + "-" + SH.pad(d.getUTCMonth() + 1) + "-" + SH.pad(d.getUTCDate()) +
    " " + SH.clock(t) + " UTC";
};
SH.ago = function (t) {
  const s = Math.max(0, Date.now() / 1000 - t);
  if (s < 90) return Math.round(s) + " s ago";
  if (s < 5400) return Math.round(s / 60) + " min ago";
  if (s < 129600) return Math.round(s / 3600) + " h ago";
  return Math.round(s / 86400) + " d ago";
};
SH.dur = function (s) {
  if (s === null || s === undefined) return "—";
  if (s < 120) return s.toFixed(0) + " s";
  return (s / 60).toFixed(1) + " min";
};
SH.state = function (state) {
  return SH.el("span", { class: "badge st-" + state, text: state.replace("_", " ") });
};
SH.pct = p => (p * 100).toFixed(0) + "%";
SH.bar = function (frac, cls) {
  const b = SH.el("div", { class: "bar" + (cls ? " " + cls : "") }, SH.el("i"));
  b.firstChild.style.width = Math.max(0, Math.min(1, frac)) * 100 + "%";
  return b;
};

SH.header = async function () {
  const live = document.getElementById("live");
  try {
    const me = await SH.api("/api/me");
    document.getElementById("who").textContent = me.name + " · " + me.role +
      (me.policy_roles.length ? " (policy: " + me.policy_roles.join(", ") + ")" : "");
    SH.me = me;
  } catch (e) { if (live) live.textContent = String(e.message); }
  const out = document.getElementById("signout");
  if (out) out.addEventListener("click", async ev => {
    ev.preventDefault();
    await SH.api("/api/session", { method: "DELETE", noRedirect: true });
    location.href = "/login";
  });
};

// The live stream: calls onEvent for each event; shows connected / reconnecting.
SH.listen = function (query, onEvent) {
  const live = document.getElementById("live");
  const src = new EventSource("/api/events" + (query ? "?" + query : ""));
  // Each response is short (the server ends it after a few seconds and the browser reconnects
  // with Last-Event-ID), so only a connection that stays down is worth showing.
  let down = null;
  src.onopen = () => {
    clearTimeout(down); down = null;
    if (live) { live.className = "live on"; live.textContent = "live"; }
  };
  src.onerror = () => {
    if (down === null) down = setTimeout(() => {
      if (live && src.readyState !== EventSource.OPEN) { live.className = "live off"; live.textContent = "reconnecting"; }
    }, 5000);
  };
  src.onmessage = ev => onEvent(JSON.parse(ev.data));
  return src;
};
