"""False alarms: routine episodes sometimes long, sometimes short, at random times.
usage: fa.py DT SEEDS DAYS [families,comma]  -> reported episodes after day 1, lasting 0 -> 300"""
import sys, os, time, numpy as np
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import *
dt = float(sys.argv[1]); seeds = range(int(sys.argv[2])); days = float(sys.argv[3])
only = set(sys.argv[4].split(",")) if len(sys.argv) > 4 else None
n = int(days * 86400 / dt); t = np.arange(n) * dt; ph = 2 * np.pi * (t % 86400) / 86400
def T(sec): return max(1, int(round(sec / dt)))
def poisson_starts(rng, every_s):
    s, out = 0.0, []
    while True:
        s += rng.exponential(every_s)
        if s >= n * dt: return out
        out.append(int(s / dt))
def lognorm_s(rng, med, sig): return med * np.exp(sig * rng.standard_normal())
fam = {}
def F(f): fam[f.__name__] = f; return f
@F
def cpu_batch(rng):  # batch jobs at random hours, 2-90 min, + one-tick spikes of similar height
    x = 30 + ar1(rng, n, 0.9, 3.0)
    for s in poisson_starts(rng, 3 * 3600): x[s:s + T(rng.uniform(2, 90) * 60)] += rng.uniform(15, 30)
    for s in poisson_starts(rng, 1200): x[s:s + T(rng.choice([15, 30, 60]))] += rng.uniform(15, 35)
    return np.clip(x, 0, 100), "cpu"
@F
def queue_drain(rng):  # backlogs that drain slowly: jump B, drain at fixed rate
    x = rng.poisson(2, n).astype(float)
    for s in poisson_starts(rng, 2 * 3600):
        B = lognorm_s(rng, 200, 1.0); L = T(B / 0.5)  # 0.5 items/s drain
        x[s:s + L] += np.linspace(B, 0, min(L, n - s))[: len(x[s:s + L])]
    return x, "queue_depth"
@F
def jvm_heap(rng):  # sawtooth, allocation rate varies with traffic; occasional full GC pause holds
    x = np.empty(n); h = 0.3; rate = 0.002
    for i in range(n):
        if i % T(600) == 0: rate = 0.002 * np.exp(0.5 * rng.standard_normal())
        h += rate * dt / 15 * (1 + 0.2 * rng.standard_normal())
        if h > 0.85: h = 0.3 + 0.05 * rng.random()
        x[i] = h
    for s in poisson_starts(rng, 4 * 3600):  # leak-like plateau until full GC, 5-60 min
        L = T(rng.uniform(5, 60) * 60); x[s:s + L] = np.maximum(x[s:s + L], 0.9)
    return x, "heap_used_ratio"
@F
def disk_rot(rng):  # disk usage climbs, rotation at random-ish hours drops it; big temp files
    x = np.empty(n); u = 40.0; nxt = rng.uniform(6, 30) * 3600
    for i in range(n):
        u += dt / 3600 * 0.8 + 0.02 * rng.standard_normal()
        if i * dt >= nxt: u -= rng.uniform(15, 20); nxt += rng.uniform(6, 30) * 3600
        x[i] = u
    for s in poisson_starts(rng, 5 * 3600): x[s:s + T(rng.uniform(1, 60) * 60)] += rng.uniform(3, 8)
    return x, "disk_used_pct"
@F
def err_flap(rng):  # error ratio: dependency flaps 10 s - 20 min (lognormal)
    x = np.abs(rng.normal(0, 0.001, n)) * (rng.random(n) < 0.3)
    for s in poisson_starts(rng, 1800):
        L = T(np.clip(lognorm_s(rng, 60, 1.2), 10, 1200)); x[s:s + L] += rng.uniform(0.01, 0.05)
    return x, "error_ratio"
@F
def rate_ramp(rng):  # request rate, slow diurnal ramp, AR log noise, occasional promotions 10-120 min +30%
    lam = 300 * (1 + 0.5 * np.sin(ph - np.pi / 2)) * np.exp(ar1(rng, n, 0.995, 0.08))
    for s in poisson_starts(rng, 8 * 3600): lam[s:s + T(rng.uniform(10, 120) * 60)] *= rng.uniform(1.2, 1.4)
    return rng.poisson(lam * dt / 15) / (dt / 15), "request_rate"
@F
def nan_gaps(rng):  # AR + spikes; series disappears (NaN) 3-30 min, sometimes right after a spike
    x = 100 + ar1(rng, n, 0.9, 5.0)
    for s in poisson_starts(rng, 1800): x[s] += rng.uniform(40, 60)
    for s in poisson_starts(rng, 3 * 3600):
        x[s:s + T(rng.uniform(3, 30) * 60)] = np.nan
    sp = poisson_starts(rng, 4 * 3600)
    for s in sp:
        x[s] += 50; x[s + 1:s + 1 + T(rng.uniform(5, 20) * 60)] = np.nan
    return x, "m"
@F
def zero_bursts(rng):  # flat 0 between bursts of 1 tick - 40 min
    x = np.zeros(n)
    for s in poisson_starts(rng, 2 * 3600):
        L = T(np.clip(lognorm_s(rng, 120, 1.5), dt, 2400)); x[s:s + L] = rng.uniform(5, 50) * (1 + 0.1 * rng.standard_normal(min(L, n - s)))
    return x, "m"
@F
def drift_job(rng):  # daily job whose start drifts +20 min/day across hour boundaries, 30-90 min
    x = 100 + 5 * rng.standard_normal(n)
    for s in poisson_starts(rng, 1500): x[s] += 5 * rng.uniform(8, 12)
    for d in range(int(days) + 1):
        st = int((d * 86400 + 1.5 * 3600 + d * 1200) / dt)
        x[st:st + T(rng.uniform(30, 90) * 60)] += 5 * rng.uniform(6, 10)
    return x, "m"
@F
def job23h(rng):  # a job every 23 h (1 h earlier each day) 20-60 min, + routine one-tick spikes
    x = 100 + 5 * rng.standard_normal(n)
    for s in poisson_starts(rng, 1500): x[s] += 5 * rng.uniform(8, 12)
    st = 3600 * 5.0
    while st < n * dt:
        i = int(st / dt); x[i:i + T(rng.uniform(20, 60) * 60)] += 5 * rng.uniform(6, 10); st += 23 * 3600
    return x, "m"
@F
def spiky_random_jobs(rng):  # routine 1-tick spikes 8-12 sd + jobs 10-60 min at random hours, 6-10 sd
    x = 100 + 5 * rng.standard_normal(n)
    for s in poisson_starts(rng, 1500): x[s] += 5 * rng.uniform(8, 12)
    for s in poisson_starts(rng, 4 * 3600): x[s:s + T(rng.uniform(10, 60) * 60)] += 5 * rng.uniform(6, 10)
    return x, "m"
S = {}
for seed in seeds:
    for name, f in fam.items():
        if only and name not in only: continue
        x, metric = f(np.random.default_rng(7000 + 31 * seed + __import__("zlib").crc32(name.encode()) % 1000))
        S[(f"{name}#{seed}", metric)] = x
t0 = time.time()
if __name__ != "__perday__": compare(S, dt, f"dt={dt} days={days} seeds={len(seeds)}: reported episodes after day 1, lasting 0 -> {os.environ.get('LASTS','300')}")
print(f"({time.time()-t0:.0f}s)")
