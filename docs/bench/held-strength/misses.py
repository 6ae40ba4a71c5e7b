"""Injected real incidents on days 2-3 over bases with long routine episodes: detected before vs after."""
import sys, numpy as np
sys.path.insert(0, __import__('os').path.dirname(__import__('os').path.abspath(__file__)))
from harness import *
from scen import ar1, mm1_queue
dt = float(sys.argv[1]); days = 3
n = int(days * 86400 / dt); t = np.arange(n) * dt
def routine_shifts(rng):
    x = 100 + 5 * rng.standard_normal(n); s = 0
    while True:
        s += int(rng.uniform(2, 4) * 3600 / dt)
        if s >= n: break
        x[s:s + int(rng.uniform(20, 60) * 60 / dt)] += 5 * rng.uniform(3, 5)
    return x, 5.0
def nightly(rng):
    x = 100 + 5 * rng.standard_normal(n)
    for d in range(days):
        st = d * 86400 + 2 * 3600 + rng.uniform(-600, 600); m = (t >= st) & (t < st + rng.uniform(30, 60) * 60)
        x[m] += 5 * rng.uniform(6, 10)
    return x, 5.0
bases = {"queue9": lambda r: (mm1_queue(r, n, dt, 1.8, 2.0), 9.0),
         "ar0.99": lambda r: (100 + ar1(r, n, 0.99, 5.0), 5.0 * np.sqrt(1 - 0.99**2) ),
         "rshift": routine_shifts, "nightly": nightly}
injs = {"spike12": (1, 12), "spike20": (1, 20), "burst4x8": (4, 8), "shift6x10min": (int(600 / dt), 6)}
S = {}; where = {}
for bname, fn in bases.items():
    for iname, (L, H) in injs.items():
        for seed in range(3):
            rng = np.random.default_rng(1000 + seed)
            x, sd = fn(rng)
            x = x.copy(); pts = []
            for j in range(8):
                at = int((86400 * 1.05 + j * 86400 * 1.9 / 8 + rng.uniform(0, 3000)) / dt)
                if bname == "nightly" and 1.5 * 3600 < (at * dt) % 86400 < 3.5 * 3600: at += int(3 * 3600 / dt)
                x[at:at + L] += H * sd; pts.append(at)
            k = (f"{bname}/{iname}/{seed}", "m"); S[k] = x; where[k] = pts
res = {}
for flag in (False, True):
    an, _ = run(S, dt, detect.Settings(report_held_ticks=(int(__import__("os").environ.get("HELDK", "4")) if flag else 0)))
    for k, pts in where.items():
        hit = 0
        for at in pts:
            if any(a["key"] == k and at <= a["i"] <= at + 10 and a["started"] >= T0 + (at - 2) * dt for a in an):
                hit += 1
        res.setdefault(k[0].rsplit("/", 1)[0], {}).setdefault(flag, []).append(hit)
print(f"dt={dt}: injected incidents detected (of 8 per seed, 3 seeds) before -> after")
for k, v in res.items():
    print(f"{k:24s} {v[False]} -> {v[True]}{'  <==' if v[False] != v[True] else ''}")
