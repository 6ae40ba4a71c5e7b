"""After an hour at X times the level, how soon the product detector sees a new anomaly.

Usage: python docs/bench/extreme-hour.py SRC WARM XS KS [incident] [SETTING=VALUE ...]

SRC is the `src` folder to import selfheal from. One series of N(100, 1) at a 15 s tick
(`p99_latency_s` of `api`, product defaults) runs WARM ticks (3000: 12.5 h; 11520: 2 days),
then an hour (240 ticks) at each X of XS (comma-separated), then k ticks back at 100 for each
k of KS, then a tripling. Prints, per X, one (tick of the tripling at which it was reported,
reports before the tripling) pair per k; None: not reported in 100 ticks. `incident`: the
hour runs under an open incident of `api` (excused, as the agent would). SETTING=VALUE
overrides a `detect.Settings` field (`quick_fall=0 profile_rise_s=0`: the core before
2026-12-04). About 5 s per cell for 12.5 h, 15 s for 2 days.
"""

from __future__ import annotations

import dataclasses
import sys

import numpy as np

sys.path.insert(0, sys.argv[1] if len(sys.argv) > 1 else "src")
from selfheal import config, detect
from selfheal.engine import controller

warm, xs, ks = int(sys.argv[2]), sys.argv[3], sys.argv[4]
rest = sys.argv[5:]
incident = detect.Context(incidents=frozenset({"api"})) if "incident" in rest else None
extra = dict(arg.split("=", 1) for arg in rest if "=" in arg)
settings = dataclasses.replace(controller.detector_settings(config.Detect()),
                               **{k: float(v) for k, v in extra.items()})
KEY = ("api", "p99_latency_s")


def run(bad: float, after: int) -> tuple[int | None, int]:
    det = detect.Detector(settings)
    rng = np.random.default_rng(1)
    t, i, told = 1.7e9, 0, 0
    for i in range(warm):
        told += bool(det.update(t + 15 * i, {KEY: float(100 + rng.normal())}))
    for _ in range(240):
        i += 1
        det.update(t + 15 * i, {KEY: bad}, incident)
    for _ in range(after):
        i += 1
        told += bool(det.update(t + 15 * i, {KEY: float(100 + rng.normal())}))
    for k in range(100):
        i += 1
        if det.update(t + 15 * i, {KEY: float(300 + rng.normal())}):
            return k, told
    return None, told


for x in (float(v) for v in xs.split(",")):
    print(warm, x, [run(x, int(k)) for k in ks.split(",")], flush=True)
