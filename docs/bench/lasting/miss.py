"""Misses: a shift of H sd lasting 2 h on a series whose routine is one-tick 8-12 sd spikes
(every ~25 min), 3 shifts on days 1.3-2.7; detected? and delay. usage: miss.py DT DAYS"""
import os, sys, numpy as np
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import *
dt = float(sys.argv[1]); days = float(sys.argv[2]); n = int(days * 86400 / dt)
def T(s): return max(1, int(round(s / dt)))
S, ev = {}, {}
for seed in range(3):
    for H in (4, 8, 12):
        rng = np.random.default_rng(100 + seed)
        x = 100 + 5 * rng.standard_normal(n)
        for s in range(T(600), n, T(1500)): x[min(n - 1, s + rng.integers(0, T(300)))] += 5 * rng.uniform(8, 12)
        pts = []
        for j in range(3):
            at = int(86400 * (1.3 + j * 0.45 * (days - 1.3) / 1.7) / dt); x[at:at + T(7200)] += 5 * H; pts.append(at)
        k = (f"shift{H}sd#{seed}", "m"); S[k] = x; ev[k] = pts
for fl in (0.0, 300.0):
    an, _ = run(S, dt, detect.Settings(report_lasting_s=fl))
    res = {}
    for k, pts in ev.items():
        for p in pts:
            hits = [a for a in an if a["key"] == k and p <= (a["t"] - T0) / dt <= p + T(7200)]
            res.setdefault(k[0].split("#")[0], []).append(None if not hits else round((hits[0]["t"] - T0 - p * dt) / 60))
    print(f"dt={dt} lasting={fl}: delay in min per injected 2 h shift (None = missed)")
    for k, v in res.items(): print(f"  {k:10s} {v}  detected {sum(x is not None for x in v)}/{len(v)}")
