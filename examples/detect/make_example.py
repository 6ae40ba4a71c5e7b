"""Regenerate the example series of README's "Your own series, offline" (deterministic).

Three services over four days at a five-minute scrape: traffic with a daily rhythm, latency,
errors. `api` runs a nightly batch at 02:00 (a burst of requests every night); `auth` is
deployed on the last day at 10:00 and its latency blips for ten minutes while the replicas
restart; `cart`'s error ratio jumps on the last day at 15:00 for 20 minutes, with no change
to explain it.
"""

import csv
import math
import random

T0 = 1_764_547_200  # 2025-12-01 00:00:00 UTC
STEP = 300
DAY = 86_400
rng = random.Random(3)
rows = []
DAYS = 4
for i in range(DAYS * DAY // STEP):
    t = T0 + i * STEP
    hour = (t % DAY) / 3600.0
    daily = 1.0 + 0.6 * math.sin(2 * math.pi * (hour - 9.0) / 24.0)
    for svc, base in (("api", 120.0), ("auth", 40.0), ("cart", 25.0)):
        rate = base * daily * (1 + rng.gauss(0, 0.03))
        lat = 0.040 + 0.010 * daily + rng.gauss(0, 0.0015)
        err = max(0.0, 0.002 + rng.gauss(0, 0.0007))
        if svc == "api" and 2.0 <= hour < 2.2:
            rate *= 4.0
        if svc == "auth" and t - T0 >= (DAYS - 1) * DAY and 10.0 <= hour < 10.1:
            lat *= 6.0
        if svc == "cart" and t - T0 >= (DAYS - 1) * DAY and 15.0 <= hour < 15.34:
            err = 0.09 + rng.gauss(0, 0.005)
        rows += [[t, svc, "request_rate", f"{rate:.2f}"], [t, svc, "p99_latency_s", f"{lat:.4f}"]]
        if svc == "cart":
            rows.append([t, svc, "error_ratio", f"{err:.4f}"])
with open("metrics.csv", "w", newline="") as fh:
    w = csv.writer(fh)
    w.writerow(["timestamp", "service", "metric", "value"])
    w.writerows(rows)
with open("deploys.csv", "w", newline="") as fh:
    w = csv.writer(fh)
    w.writerow(["timestamp", "service", "kind", "to_version"])
    w.writerow([T0 + (DAYS - 1) * DAY + 10 * 3600 - 30, "auth", "deploy", "v1.4.0"])
