"""A routine one-tick spike followed by the series going NaN / absent for G minutes: is the
episode held open by the missing values and reported as lasting? usage: nanhold.py DT"""
import os, sys, numpy as np
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import *
dt = float(sys.argv[1]); days = 3; n = int(days * 86400 / dt)
def T(s): return max(1, int(round(s / dt)))
S, ev = {}, {}
for seed in range(4):
    for mode, fill in (("nan", np.nan), ("absent", -np.inf)):
        for G in (3, 6, 10, 20, 40):
            rng = np.random.default_rng(seed)
            x = 100 + 5 * rng.standard_normal(n)
            for s in range(T(600), n, T(1500)): x[s + rng.integers(0, T(300))] += 5 * rng.uniform(8, 12)
            pts = []
            for j in range(6):  # day 1.2 .. 2.8: spike then gap
                at = int((86400 * (1.2 + j * 0.3)) / dt); x[at] = 100 + 5 * 10; x[at + 1:at + 1 + T(G * 60)] = fill
                pts.append(at)
            k = (f"{mode}/gap{G}min#{seed}", "m"); S[k] = x; ev[k] = pts
res = {}
for fl in (0.0, 300.0):
    an, _ = run(S, dt, detect.Settings(report_lasting_s=fl))
    for k, pts in ev.items():
        hit = sum(any(a["key"] == k and p - 1 <= (a["started"] - T0) / dt <= p + 1 for a in an) for p in pts)
        res.setdefault(k[0].split("#")[0], {}).setdefault(fl, []).append(hit)
    if fl > 0:
        ex = [a for a in an if "gap20" in a["key"][0] and a["t"] > T0 + 86400 * 1.2][:2]
        for a in ex: print("  e.g.", a["key"][0], f"after {(a['t']-a['started'])/60:.1f} min:", a["text"][:200])
print(f"dt={dt}: spike-then-gap events reported (of 6 per seed) lasting 0 -> 300")
for k, v in res.items(): print(f"{k:18s} {v[0.0]} ({sum(v[0.0])}) -> {v[300.0]} ({sum(v[300.0])})")
