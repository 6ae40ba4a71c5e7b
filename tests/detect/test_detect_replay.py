"""Replays of recorded real demo runs (service-level samples the engine fed the detector).

The recordings are input only: `demo_replay.json` (the default demo, 25 s of baseline) and
`demo_baseline_10min.json.gz` and `demo_baseline_10min_b.json.gz` (two runs with
`demo.baseline_s: 600` on a busy shared host: ten minutes of noisy but healthy p99 latencies,
then the same bad deploy; the second was recorded after the detector was changed, and checked
as held out before it joined the test). The assertions are the demo's
detection requirements: quiet before the deploy, the leak reported soon after the settle
window, auth's latency regression reported before the rollback, nothing unexpected on the other
services, and the shared-host settle rule the engine applies.
"""

from __future__ import annotations

import dataclasses
import gzip
import json
from pathlib import Path
from typing import Any

import pytest

from selfheal import detect, model

SETTLE = 15.0
DATA = Path(__file__).parent / "data"
RECORDINGS = ["demo_replay.json", "demo_baseline_10min.json.gz", "demo_baseline_10min_b.json.gz"]


def _load(name: str) -> dict[str, Any]:
    path = DATA / name
    raw = gzip.decompress(path.read_bytes()) if name.endswith(".gz") else path.read_bytes()
    doc: dict[str, Any] = json.loads(raw)
    return doc


def _replay(name: str) -> tuple[list[model.Change], list[tuple[float, list[model.Anomaly]]]]:
    doc = _load(name)
    changes = [model.Change(model.ChangeId(c["id"]), c["t"], c["service"], c["kind"], c["who"],
                            c["what"], c["from_version"], c["to_version"])
               for c in doc["changes"]]
    detector = detect.Detector(detect.Settings())
    out = []
    for t, flat in doc["ticks"]:
        values = {tuple(k.split("/", 1)): v for k, v in flat.items()}
        recent = tuple(c for c in changes if c.t <= t)
        if doc["shared_host"]:  # as the engine does: every change settles the whole host
            recent += tuple(dataclasses.replace(c, service="*") for c in recent)
        ctx = detect.Context(changes=recent, settle_s=SETTLE)
        out.append((t, detector.update(t, values, ctx)))
    return changes, out


@pytest.mark.timeout(60)
@pytest.mark.parametrize("name", RECORDINGS)
def test_recorded_demo_run(name: str) -> None:
    changes, ticks = _replay(name)
    deploy = next(c for c in changes if c.kind == "deploy")
    rollback = next(c for c in changes if c.kind == "rollback")
    settle_end = deploy.t + SETTLE

    quiet = [a for t, found in ticks if t < deploy.t for a in found]
    assert quiet == [], f"fired on the healthy baseline: {[a.explanation for a in quiet[:3]]}"

    leak = [(t, a) for t, found in ticks for a in found
            if a.service == "auth" and a.metric == "rss_bytes" and not a.expected]
    assert leak, "the leak was never reported"
    first_t, first = leak[0]
    assert settle_end <= first_t <= settle_end + 10
    assert first.detector == "trend" and "limit" in first.explanation

    opened = [(t, f) for t, found in ticks for f in detect.fuse(found) if f.open_incident]
    assert opened and opened[0][1].service == "auth"
    assert settle_end <= opened[0][0] < rollback.t
    assert {f.service for _, f in opened} == {"auth"}

    others = [a for _, found in ticks for a in found if a.service != "auth" and not a.expected]
    assert others == []

    # auth's p99 regression (5-10 ms -> 20-60 ms) is reported with the leak, before the rollback
    slow = [t for t, found in ticks for a in found
            if a.service == "auth" and a.metric == "p99_latency_s" and not a.expected]
    assert slow and settle_end <= slow[0] < rollback.t
