// Sign in: trade a token for the session cookie, then go back where we came from.
"use strict";
(function () {
  const next = new URLSearchParams(location.search).get("next") || "/";
  const safeNext = next.startsWith("/") && !next.startsWith("//") ? next : "/";
  async function signIn(token) {
    const msg = document.getElementById("msg");
    msg.textContent = "";
    try {
      await SH.api("/api/session", { method: "POST", body: { token: token.trim() }, noRedirect: true });
      location.replace(safeNext);
    } catch (e) { msg.textContent = e.message; }
  }
  document.getElementById("form").addEventListener("submit", ev => {
    ev.preventDefault();
    signIn(document.getElementById("token").value);
  });
  // `selfheal demo --open` prints /login#token=…: the fragment never reaches a server log.
  const m = location.hash.match(/token=([^&]+)/);
  if (m) { history.replaceState(null, "", location.pathname + location.search); signIn(decodeURIComponent(m[1])); }
})();
