"""A shift of 4-12 sd lasting 2 h on N(100, 5) with a one-tick spike of 8-12 sd every ~2 h
(GC pauses): the ticks until it is first reported with the lasting rule (on) and without
(off), 4 seeds, 2 days. usage: shift.py DT (seconds a tick: 15, 60)"""
import sys

import numpy as np

from selfheal import detect

dt = float(sys.argv[1]) if len(sys.argv) > 1 else 60.0
n = int(2 * 86400 / dt)
key = ("api", "latency_ms")


def series(seed, mag):
    rng = np.random.default_rng(seed)
    x = 100 + 5 * rng.standard_normal(n)
    every = int(7200 / dt)
    sp = np.arange(every // 2, n, every) + rng.integers(-every // 12, every // 12, size=len(range(every // 2, n, every)))
    for s in sp:
        x[s] += 5 * rng.uniform(8, 12)
    a = int(1.5 * 86400 / dt)
    x[a:a + every] += 5 * mag
    return x, a, every


for on in (True, False):
    for seed in range(4):
        res = []
        for mag in (4, 6, 8, 12):
            x, a, every = series(seed, mag)
            det = detect.Detector(detect.Settings(report_lasting_s=300.0 if on else 0.0))
            first = None
            for i, v in enumerate(x.tolist()):
                if det.update(1_700_000_000 + i * dt, {key: v}) and a <= i < a + every and first is None:
                    first = i - a
            res.append(f"{mag}sd:{first}")
        print(f"dt={dt:g} {'on ' if on else 'off'} seed {seed}: ticks until reported {res}")
