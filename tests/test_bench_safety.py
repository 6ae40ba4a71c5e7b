"""`selfheal bench safety` runs and reports its contract (figures are reported, not asserted)."""

from __future__ import annotations

import json
import subprocess


def test_bench_safety_json_contract(selfheal_cmd: list[str]) -> None:
    res = subprocess.run([*selfheal_cmd, "bench", "safety", "--decisions", "300",
                          "--appends", "20", "--json"], capture_output=True, text=True,
                         timeout=120, check=False)
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout.strip().splitlines()[-1])
    assert out["gate_decisions"] == 300 and out["ledger_appends"] == 20
    assert out["gate_decisions_per_s"] > 0 and out["ledger_appends_per_s"] > 0
