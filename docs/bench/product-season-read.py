"""Reported ticks on a daily swing at fine ticks: step profile vs interpolated (product settings)."""
import math, sys, dataclasses
import numpy as np
sys.path.insert(0, sys.argv[1] if len(sys.argv) > 1 else "/work/main/src")
from selfheal import config, detect
from selfheal.engine import controller as c
extra = dict(a.split("=") for a in sys.argv[2:])
TICK = float(extra.pop("tick", 15)); DAYS = int(extra.pop("days", 10))
base = c.detector_settings(config.Detect())
s = dataclasses.replace(base, **{k: (v == "1") if k.startswith("season_interp") else float(v) for k, v in extra.items()})
tot = {}; allm = []
for seed in range(3):
    rng = np.random.default_rng(seed)
    det = detect.Detector(s)
    n = int(DAYS * 86400 / TICK)
    t0 = 1_800_000_000 - 1_800_000_000 % 86400 + seed * 3 * 3600
    rep = 0; repmin = set()
    for i in range(n):
        t = t0 + i * TICK
        rate = 60 + 40 * math.sin(2 * math.pi * (t % 86400) / 86400)
        # a 60 s rate window over Poisson counts
        x = rng.poisson(rate * 60) / 60.0
        err = rng.binomial(max(int(rate * 60), 1), 0.01) / max(rate * 60, 1)
        out = det.update(t, {("a", "request_rate"): x, ("a", "error_ratio"): err})
        if i * TICK >= 2 * 86400 and out:
            rep += len(out); repmin.add(int(t // 60))
    tot[seed] = (rep, len(repmin)); allm.extend(repmin)
print(extra, TICK, tot, "minutes", sum(v[1] for v in tot.values()))
import collections; print("minute-of-hour", sorted(collections.Counter(m % 60 for m in allm).items())); print("day,hour", sorted(collections.Counter(((m*60 - 1_800_000_000 + 1_800_000_000 % 86400)//86400, (m % 1440)//60) for m in allm).items()))
