"""Run scenario series through Detector with report_held_ticks (HELDK, default 4) against 0; count reported episodes."""
import json, sys, time, math, pickle
import numpy as np
from selfheal import detect

T0 = 1_700_006_400.0  # midnight UTC aligned? 1700006400 % 86400 == 0
assert T0 % 86400 == 0

def run(series, dt, settings, t0=T0, ctx_fn=None, explained=True, hooks=None):
    """series: dict key -> np.array (same length). Returns list of anomalies (dicts)."""
    det = detect.Detector(settings)
    keys = list(series)
    n = len(series[keys[0]])
    cols = np.stack([series[k] for k in keys])
    out = []
    for i in range(n):
        t = t0 + dt * i
        if hooks and i in hooks:
            det = hooks[i](det)
        vals = {k: float(cols[j, i]) for j, k in enumerate(keys)}
        vals = {k: v for k, v in vals.items() if not (isinstance(v, float) and math.isinf(v) and v < 0)}  # -inf = absent key
        for a in det.update(t, vals):
            out.append(dict(key=(a.service, a.metric), started=a.started_at, t=a.detected_at,
                            i=i, score=a.score, det=a.detector, text=a.explanation,
                            expected=a.expected))
    return out, det

def episodes(anoms, after=0.0):
    """(key, started) -> first report dict, for reports with t >= after."""
    eps = {}
    for a in anoms:
        if a["t"] < after:
            continue
        k = (a["key"], round(a["started"], 3))
        eps.setdefault(k, a)
    return eps


def held_settings(on):
    """The held strength off (K = 0) or on (K = $HELDK, default 4; needs the patch)."""
    import os
    return detect.Settings(report_held_ticks=int(os.environ.get("HELDK", "4")) if on else 0)


def compare(series, dt, title, settings=held_settings):
    """Reported episodes after day 1, per family of `series` (the name before '#'), with
    `settings(False)` and `settings(True)`; printed under `title`."""
    res = {}
    for flag in (False, True):
        an, _ = run(series, dt, settings(flag))
        eps = episodes(an, after=T0 + 86400)
        for k in series:
            res.setdefault(k[0].split("#")[0], {}).setdefault(flag, []).append(
                sum(1 for e in eps if e[0] == k))
    print(title)
    for k, v in res.items():
        print(f"{k:10s} {v[False]} ({sum(v[False])}) -> {v[True]} ({sum(v[True])})")
