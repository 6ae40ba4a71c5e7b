"""The workspace in a real browser on the real demo: a human opens the incident that waits for
approval, clicks Approve, and watches the rollback run and verify. Slow: real processes
(the shop, `selfheal demo --open`) and Debian's chromium driven by Playwright."""

from __future__ import annotations

import getpass
import json
import re
import signal
import sqlite3
import subprocess
import threading
import time
from pathlib import Path

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]


class Lines:
    """A pipe read line by line in the background, so the child never blocks on it."""

    def __init__(self, pipe: object) -> None:
        self.lines: list[str] = []
        self._thread = threading.Thread(target=self._read, args=(pipe,), daemon=True)
        self._thread.start()

    def _read(self, pipe: object) -> None:
        for line in pipe:  # type: ignore[attr-defined]
            self.lines.append(line)

    def wait_for(self, pattern: str, timeout: float) -> re.Match[str]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in list(self.lines):
                if m := re.search(pattern, line):
                    return m
            time.sleep(0.2)
        raise AssertionError(f"no line matching {pattern!r}: {''.join(self.lines)[-3000:]}")

    def text(self) -> str:
        self._thread.join(timeout=10)
        return "".join(self.lines)


def test_approve_in_the_browser_then_see_it_executed_and_verified(
        no_leftovers: Path, selfheal_cmd: list[str]) -> None:
    sync_api = pytest.importorskip("playwright.sync_api")
    if not CHROMIUM.exists():
        pytest.skip("Debian's chromium is not installed (apt-get install chromium)")
    user = getpass.getuser()
    pol = no_leftovers / "policy.yaml"
    pol.write_text(f"version: 1\nmodes: {{default: auto}}\nroles: {{sre: [{user}]}}\n"
                   "rules:\n  - name: rollback-needs-sre\n    when: {actions: [rollback]}\n"
                   "    verdict: require_approval\n    approver_role: sre\n"
                   "    approval_timeout_s: 300\n")
    wd = no_leftovers / "wd"
    proc = subprocess.Popen([*selfheal_cmd, "demo", "--json", "--open", "--port", "0",
                             "--workdir", str(wd), "--policy", str(pol)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    err, out = Lines(proc.stderr), Lines(proc.stdout)
    shot = no_leftovers / "incident.png"
    try:
        link = err.wait_for(r"sign in: (http://\S+/login#token=\S+)", 60).group(1)
        base = link.split("/login")[0]
        with sync_api.sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
            page = browser.new_page(viewport={"width": 1440, "height": 1000})
            problems: list[str] = []
            page.on("pageerror", lambda exc: problems.append(str(exc)))
            page.goto(link)
            page.wait_for_url(base + "/")
            # the list updates live: the incident appears when the plan waits for a human
            pending = page.locator("#pending a").first
            sync_api.expect(pending).to_be_visible(timeout=240_000)
            pending.click()
            page.wait_for_url(re.compile(r".*/incidents/inc-\w+$"))
            sync_api.expect(page.locator("#approval")).to_be_visible()
            sync_api.expect(page.locator("#approval-what")).to_contain_text("rollback auth")
            sync_api.expect(page.locator("#hypotheses .hyp.top")).to_contain_text("auth")
            sync_api.expect(page.locator("#charts svg").first).to_be_visible()
            page.click("#approve")  # without a reason: refused in the page
            sync_api.expect(page.locator("#approval-msg")).to_contain_text("reason is required")
            page.fill("#reason", "memory climbs since 1.2.1; roll it back")
            page.click("#approve")
            sync_api.expect(page.locator("#approval-msg")).to_contain_text(f"approved by {user}")
            sync_api.expect(page.locator("#executions")).to_contain_text("full: rollback auth",
                                                                         timeout=120_000)
            sync_api.expect(page.locator("#verified")).to_contain_text(
                "verification passed", timeout=150_000)
            sync_api.expect(page.locator("#outcome-line")).to_contain_text("resolved",
                                                                           timeout=30_000)
            sync_api.expect(page.locator("#postmortem")).to_contain_text("# Postmortem",
                                                                         timeout=30_000)
            sync_api.expect(page.locator("#approval")).to_be_hidden()
            # the live feed heard it all through the event stream
            sync_api.expect(page.locator("#feed")).to_contain_text("recovered and verified")
            sync_api.expect(page.locator("#live")).to_have_text("live")
            page.screenshot(path=str(shot), full_page=True)
            page.evaluate("window.scrollTo(0, 0)")
            page.screenshot(path=str(no_leftovers / "incident-top.png"))  # docs/workspace.png
            browser.close()
        assert not problems, problems
        out.wait_for(r'"verified": true', 30)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)  # --open keeps serving until told to stop
        proc.wait(timeout=60)
        print(err.text()[-6000:])  # shown by pytest when the test fails
    assert proc.returncode == 0, err.text()[-3000:]
    summary = json.loads(out.text().strip().splitlines()[-1])
    assert summary["verified"] is True
    assert [a["phase"] for a in summary["actions"]] == ["canary", "full"]
    assert shot.stat().st_size > 10_000
    with sqlite3.connect(wd / "selfheal.db") as conn:
        rows = [(k, json.loads(p)) for k, p in conn.execute(
            "SELECT kind, payload FROM ledger ORDER BY seq")]
    kinds = [k for k, _ in rows]
    approved = next(p for k, p in rows if k == "approval.approved")
    assert approved["by"] == user and approved["via"] == "api:session"
    assert approved["reason"] == "memory climbs since 1.2.1; roll it back"
    assert kinds.index("approval.approved") < kinds.index("approval.granted") \
        < kinds.index("execution.intent")
