"""p99 at a 10 s scrape with routine slow-request bursts; error_ratio with routine multi-minute blips."""
import sys, numpy as np
sys.path.insert(0, __import__('os').path.dirname(__import__('os').path.abspath(__file__)))
from harness import *
dt = 10.0; days = 2; n = int(days * 86400 / dt)
S = {}
for seed in range(5):
    rng = np.random.default_rng(900 + seed)
    p = 0.2 * np.exp(0.15 * rng.standard_normal(n))
    for s in np.flatnonzero(rng.random(n) < 1 / 90):  # a burst every ~15 min
        L = rng.choice([1, 2, 2, 3, 4, 6]); p[s:s + L] *= rng.uniform(3, 10)
    S[(f"p99burst#{seed}", "p99_latency_s")] = p
    e = np.abs(rng.normal(0, 0.001, n))
    for s in np.flatnonzero(rng.random(n) < 1 / 360):  # an error blip every ~hour, 1-10 min
        e[s:s + rng.integers(6, 60)] += rng.uniform(0.02, 0.08)
    S[(f"errblip#{seed}", "error_ratio")] = e
    r = 300 + 30 * rng.standard_normal(n)
    for s in np.flatnonzero(rng.random(n) < 1 / 720):  # a client retry storm every ~2 h, 2-8 min, +50-100%
        r[s:s + rng.integers(12, 48)] *= rng.uniform(1.5, 2.0)
    S[(f"retry#{seed}", "request_rate")] = r
compare(S, dt, "dt=10 s, 2 days: reported episodes on day 2 per seed, before -> after (sum)")
