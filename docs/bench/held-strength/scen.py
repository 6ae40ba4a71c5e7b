import numpy as np
DAY_S = 86400.0

def ar1(rng, n, phi, sd):
    e = rng.standard_normal(n) * sd * np.sqrt(1 - phi * phi)
    x = np.empty(n); x[0] = rng.standard_normal() * sd
    for i in range(1, n):
        x[i] = phi * x[i - 1] + e[i]
    return x

def mm1_queue(rng, n, dt, lam=0.8, mu=1.0):
    # event simulation of M/M/1 queue length, sampled every dt seconds
    q = 0; t = 0.0; out = np.empty(n); nxt = 0
    while nxt < n:
        rate = lam + (mu if q > 0 else 0.0)
        t += rng.exponential(1 / rate)
        while nxt < n and nxt * dt <= t:
            out[nxt] = q; nxt += 1
        if rng.random() < lam / rate: q += 1
        else: q -= 1
    return out

def scenarios(seed, dt, days=3):
    rng = np.random.default_rng(seed)
    n = int(days * DAY_S / dt)
    t = np.arange(n) * dt
    ph = 2 * np.pi * (t % DAY_S) / DAY_S
    S = {}
    S[("iid", "m")] = 100 + 5 * rng.standard_normal(n)
    for phi in (0.95, 0.99, 0.995, 0.999):
        S[(f"ar{phi}", "m")] = 100 + ar1(rng, n, phi, 5.0)
    # slowly wandering level (OU, tau 6 h) + white noise
    tau = 6 * 3600 / dt
    S[("wander", "m")] = 100 + ar1(rng, n, 1 - 1 / tau, 10.0) + 2 * rng.standard_normal(n)
    # random walk level + noise
    S[("rwalk", "m")] = 100 + np.cumsum(0.3 * rng.standard_normal(n)) + 2 * rng.standard_normal(n)
    lam = 200 * (1 + 0.6 * np.sin(ph - np.pi / 2))
    S[("rate", "request_rate")] = rng.poisson(lam * dt / 15) / (dt / 15)
    S[("rate_ar", "request_rate")] = lam * np.exp(ar1(rng, n, 0.98, 0.05)) + rng.normal(0, 3, n)
    # p99 latency: lognormal around 0.2 s, AR in log space; plus one-off slow windows
    S[("p99", "p99_latency_s")] = 0.2 * np.exp(0.25 * rng.standard_normal(n))
    S[("p99_ar", "p99_latency_s")] = 0.2 * np.exp(ar1(rng, n, 0.97, 0.3))
    S[("p99_day", "p99_latency_s")] = 0.2 * (1 + 0.5 * np.sin(ph - np.pi / 2)) * np.exp(ar1(rng, n, 0.9, 0.2))
    # error ratio: mostly 0, blips
    er = np.zeros(n)
    for s in np.flatnonzero(rng.random(n) < 0.01):
        er[s:s + rng.integers(1, 4)] = rng.uniform(0.005, 0.05)
    S[("err", "error_ratio")] = er
    er2 = np.abs(rng.normal(0, 0.002, n)) * (rng.random(n) < 0.3)
    for s in np.flatnonzero(rng.random(n) < 0.002):
        er2[s:s + rng.integers(5, 40)] += rng.uniform(0.01, 0.04)
    S[("err_long", "error_ratio")] = er2
    S[("queue", "queue_depth")] = mm1_queue(rng, n, dt, 0.8 * 5, 1.0 * 5)
    S[("queue9", "queue_depth")] = mm1_queue(rng, n, dt, 0.9 * 2, 1.0 * 2)
    S[("sparse", "m")] = rng.poisson(0.05, n).astype(float)
    S[("sparse2", "m")] = rng.poisson(0.5, n).astype(float)
    # nightly batch job: 02:00 +- 10 min, 30-60 min, +6..10 sd (reported first night presumably)
    for name, lo, hi, h in (("nightly", 30, 60, (6, 10)), ("nightly_fix", 45, 45, (8, 8)),
                            ("nightly_big", 30, 60, (15, 25))):
        x = 100 + 5 * rng.standard_normal(n)
        for d in range(days):
            st = d * DAY_S + 2 * 3600 + rng.uniform(-600, 600)
            ln = rng.uniform(lo, hi) * 60
            m = (t >= st) & (t < st + ln)
            x[m] += 5 * rng.uniform(*h)
        S[(name, "m")] = x
    # AR with NaNs and scrape gaps
    x = 100 + ar1(rng, n, 0.95, 5.0)
    x[rng.random(n) < 0.1] = np.nan
    for s in rng.integers(0, n - 40, size=int(days * 6)):
        x[s:s + rng.integers(3, 30)] = np.nan
    S[("ar_nan", "m")] = x
    # gc pauses: spiky
    g = 0.01 * np.exp(0.3 * rng.standard_normal(n))
    sp = rng.random(n) < 0.02
    g[sp] *= rng.uniform(3, 10, sp.sum())
    S[("gc", "gc_pause_s")] = g
    # cpu-like: daily sine + AR noise
    S[("cpu", "m")] = 50 + 20 * np.sin(ph - np.pi / 2) + ar1(rng, n, 0.99, 4.0)
    return S
