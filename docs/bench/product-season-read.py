"""Minutes the product detector reports on a clean daily swing (product-season-read-notes.md).

Usage: python docs/bench/product-season-read.py SRC [tick=15] [days=10] [SETTING=VALUE ...]
SRC is the `src` folder to import selfheal from; SETTING=VALUE overrides a `detect.Settings`
field (a float). Prints the reports and reported minutes per seed from day 2 on, and the
minutes of the hour they fell in.
"""

from __future__ import annotations

import collections
import dataclasses
import math
import sys

import numpy as np

sys.path.insert(0, sys.argv[1] if len(sys.argv) > 1 else "src")
from selfheal import config, detect
from selfheal.engine import controller

extra = dict(arg.split("=", 1) for arg in sys.argv[2:])
tick = float(extra.pop("tick", "15"))
days = int(extra.pop("days", "10"))
settings = dataclasses.replace(controller.detector_settings(config.Detect()),
                               **{k: float(v) for k, v in extra.items()})
per_seed: dict[int, tuple[int, int]] = {}
minutes: list[int] = []
for seed in range(3):
    rng = np.random.default_rng(seed)
    det = detect.Detector(settings)
    t0 = 1_800_000_000 - 1_800_000_000 % 86_400 + seed * 3 * 3600
    reports, reported = 0, set()
    for i in range(int(days * 86_400 / tick)):
        t = t0 + i * tick
        rate = 60 + 40 * math.sin(2 * math.pi * (t % 86_400) / 86_400)
        requests = max(int(rate * 60), 1)
        value = rng.poisson(rate * 60) / 60.0  # a 60 s rate of Poisson counts
        errors = rng.binomial(requests, 0.01) / requests
        out = det.update(t, {("a", "request_rate"): value, ("a", "error_ratio"): errors})
        if i * tick >= 2 * 86_400 and out:
            reports += len(out)
            reported.add(int(t // 60))
    per_seed[seed] = (reports, len(reported))
    minutes.extend(reported)
print(extra, tick, per_seed, "minutes", sum(m for _, m in per_seed.values()))
print("minute of the hour", sorted(collections.Counter(m % 60 for m in minutes).items()))
