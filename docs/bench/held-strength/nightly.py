"""Nightly batch job for 8 days: which nights (2..8) are paged, before vs after."""
import sys, json, numpy as np
sys.path.insert(0, __import__('os').path.dirname(__import__('os').path.abspath(__file__)))
from harness import *
dt = float(sys.argv[1]); days = 8
n = int(days * 86400 / dt); t = np.arange(n) * dt
variants = {"var30-60": (30, 60, 6, 10), "fix45": (45, 45, 8, 8), "var20-90": (20, 90, 6, 10),
            "var30-60big": (30, 60, 15, 25), "fix45_jit": (45, 45, 6, 10)}
S = {}; meta = {}
for vname, (lo, hi, h0, h1) in variants.items():
    for seed in range(6):
        rng = np.random.default_rng(100 + seed)
        x = 100 + 5 * rng.standard_normal(n)
        lens = []
        for d in range(days):
            st = d * 86400 + 2 * 3600 + rng.uniform(-600, 600)
            ln = rng.uniform(lo, hi) * 60
            m = (t >= st) & (t < st + ln)
            x[m] += 5 * rng.uniform(h0, h1)
            lens.append(round(ln / 60))
        S[(f"{vname}#{seed}", "m")] = x; meta[f"{vname}#{seed}"] = lens
out = {}
for flag in (False, True):
    an, _ = run(S, dt, detect.Settings(report_held_ticks=(int(__import__("os").environ.get("HELDK", "4")) if flag else 0)))
    eps = episodes(an)
    for k in S:
        nights = sorted({int((e[1] - T0) // 86400) for e in eps if e[0] == k})
        out.setdefault(k[0], {})[flag] = nights
tot = {False: 0, True: 0}
print(f"dt={dt}: nights (0-based) with a reported episode; job minutes per night")
for k, v in out.items():
    for f in (False, True): tot[f] += len([d for d in v[f] if d >= 1])
    print(f"{k:16s} before {v[False]}  after {v[True]}  lens {meta[k]}{'  <==' if v[False]!=v[True] else ''}")
print("nights>=1 paged total:", tot[False], "->", tot[True], "of", len(out) * (days - 1))
