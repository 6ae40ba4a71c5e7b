"""`selfheal demo --prometheus` end to end, as a user runs it: the shop, a real Prometheus and
Alertmanager, the bad deploy, and the memory alert delivered to selfheal and recorded on the
incident. Slow (about two minutes); everything it started must be gone afterwards.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
from pathlib import Path

import pytest
import sources_servers as srv
from tests.conftest import processes_mentioning

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]


def test_demo_with_prometheus_delivers_the_alert(tmp_path: Path,
                                                 selfheal_cmd: list[str]) -> None:
    srv.binary(srv.PROMETHEUS, "prometheus")
    srv.binary(srv.ALERTMANAGER, "prometheus-alertmanager")
    workdir = tmp_path / "wd"
    res = subprocess.run([*selfheal_cmd, "demo", "--prometheus", "--json", "--workdir",
                          str(workdir)], capture_output=True, text=True, timeout=480,
                         check=False)
    assert res.returncode == 0, res.stderr[-3000:]
    out = json.loads(res.stdout.strip().splitlines()[-1])
    assert "Prometheus http://127.0.0.1:" in res.stderr
    assert out["incident"], res.stderr[-3000:]
    con = sqlite3.connect(f"file:{workdir / 'selfheal.db'}?mode=ro", uri=True)
    try:
        alerts = [json.loads(p)["alert"] for (p,) in con.execute(
            "select payload from ledger where kind = 'signal.alert'")]
        opened = [json.loads(p)["incident"] for (p,) in con.execute(
            "select payload from ledger where kind = 'incident.opened'")]
    finally:
        con.close()
    # The alert came from Prometheus through Alertmanager, either joining the incident that
    # detection opened or opening the incident itself.
    fired = [a for a in alerts if a["name"] == "AuthMemoryGrowing" and a["status"] == "firing"]
    fired += [a for inc in opened for a in inc.get("alerts", [])
              if a["name"] == "AuthMemoryGrowing"]
    assert fired, res.stderr[-3000:]
    assert {a["service"] for a in fired} == {"auth"}
    folder = workdir / "prometheus-demo"
    assert (folder / "targets.json").exists()
    assert not (folder / "pids.json").exists()
    assert processes_mentioning(str(folder)) == []
