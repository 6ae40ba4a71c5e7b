"""More seeds for the families that moved: queues, bursts, AR, cpu. Reported episodes after day 1."""
import sys, numpy as np
sys.path.insert(0, __import__('os').path.dirname(__import__('os').path.abspath(__file__)))
from harness import *
from scen import ar1, mm1_queue
dt = float(sys.argv[1]); days = 3; seeds = range(int(sys.argv[2]))
n = int(days * 86400 / dt); t = np.arange(n) * dt; ph = 2 * np.pi * (t % 86400) / 86400
S = {}
for seed in seeds:
    rng = np.random.default_rng(500 + seed)
    S[(f"queue9#{seed}", "queue_depth")] = mm1_queue(rng, n, dt, 1.8, 2.0)
    S[(f"queue8#{seed}", "queue_depth")] = mm1_queue(rng, n, dt, 4.0, 5.0)
    S[(f"queue95#{seed}", "queue_depth")] = mm1_queue(rng, n, dt, 0.95, 1.0)
    x = 100 + 5 * rng.standard_normal(n)
    for s in range(int(3600 / dt), n - 10, int(7200 / dt)):
        s2 = s + rng.integers(-20, 20); x[s2:s2 + rng.integers(2, 6)] += 5 * rng.uniform(6, 10)
    S[(f"bursts#{seed}", "m")] = x
    S[(f"ar0.98#{seed}", "m")] = 100 + ar1(rng, n, 0.98, 5.0)
    S[(f"cpu#{seed}", "m")] = 50 + 20 * np.sin(ph - np.pi / 2) + ar1(rng, n, 0.99, 4.0)
    S[(f"p99q#{seed}", "p99_latency_s")] = 0.05 * (1 + mm1_queue(rng, n, dt, 1.8, 2.0)) * np.exp(0.2 * rng.standard_normal(n))
compare(S, dt, f"dt={dt}: reported episodes after day 1 per seed, before -> after (sum)")
