"""`selfheal serve` serves the workspace: a real server (a subprocess of the CLI), a real
webhook alert that opens an incident, and the controller's events arriving on `/api/events`.
Stopped with SIGTERM, which must end it cleanly even with an event stream open."""

from __future__ import annotations

import datetime as dt
import json
import re
import signal
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

pytestmark = pytest.mark.timeout(120)


def _wait(check: Any, seconds: float, what: str, log: Path) -> Any:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        got = check()
        if got:
            return got
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}: {log.read_text()[-3000:]}")


def test_serve_hosts_the_workspace_and_streams_controller_events(
        no_leftovers: Path, selfheal_cmd: list[str]) -> None:
    workdir = no_leftovers / "state"
    cfg = no_leftovers / "selfheal.yaml"
    cfg.write_text(yaml.safe_dump({
        "workdir": str(workdir), "sources": {"alertmanager": {"enabled": True}},
        "serve": {"host": "127.0.0.1", "port": 0},
        "platform": {"kind": "none", "services": {"auth": []}}}))
    log = no_leftovers / "serve.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([*selfheal_cmd, "serve", "--config", str(cfg)], stdout=out,
                                stderr=subprocess.STDOUT)
    try:
        url = _wait(lambda: (m := re.search(r"listening on (http://[\d.]+:\d+)",
                                            log.read_text())) and m.group(1),
                    60, "serve to listen", log)
        made = subprocess.run([*selfheal_cmd, "token", "create", "--role", "viewer", "--name",
                               "victor", "--db", str(workdir / "selfheal.db"), "--json"],
                              capture_output=True, text=True, timeout=60, check=True)
        h = {"Authorization": f"Bearer {json.loads(made.stdout)['secret']}"}
        with httpx.Client(base_url=url, timeout=10) as http:
            assert http.get("/api/incidents").status_code == 401
            assert http.get("/api/incidents", headers=h).json()["total"] == 0
            assert "<title>selfheal" in http.get("/").text
            # an open stream must not keep the server from stopping later
            streamed: list[str] = []

            def listen() -> None:
                try:
                    with httpx.stream("GET", f"{url}/api/events", headers=h,
                                      timeout=30) as res:
                        for line in res.iter_lines():
                            streamed.append(line)
                except httpx.RemoteProtocolError:
                    streamed.append("<closed by the server>")  # serve stopping: expected

            reader = threading.Thread(target=listen, daemon=True)
            reader.start()
            now = dt.datetime.now(dt.UTC).isoformat()
            alert = {"version": "4", "groupKey": "g", "status": "firing",
                     "receiver": "selfheal", "alerts": [{
                         "status": "firing", "fingerprint": "f1", "startsAt": now,
                         "labels": {"alertname": "AuthDown", "service": "auth"}}]}
            assert http.post("/webhooks/alertmanager", json=alert).status_code == 200
            inc = _wait(lambda: http.get("/api/incidents", headers=h).json()["incidents"],
                        30, "the alert to open an incident", log)[0]
            assert inc["service"] == "auth" and "AuthDown" in inc["title"]
            frames = [json.loads(line[6:]) for line in http.get(
                f"/api/events?incident={inc['id']}&limit=1", headers=h).text.splitlines()
                if line.startswith("data: ")]
            assert frames[0]["stage"] == "detect" and frames[0]["incident_id"] == inc["id"]
            _wait(lambda: any(inc["id"] in line for line in streamed), 30,
                  "the live stream to carry the incident", log)
            streamed.clear()
            threading.Thread(target=listen, daemon=True).start()  # open while stopping
            _wait(lambda: streamed, 10, "a second stream to open", log)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
    assert proc.returncode == 0, log.read_text()[-3000:]
