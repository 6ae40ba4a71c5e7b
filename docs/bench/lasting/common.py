"""What the lasting-rule scripts share: the held-strength harness (`../held-strength`), with
`compare` run for `Settings.report_lasting_s` 0 ("before") against $LASTS (default 300)."""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "held-strength"))
from harness import T0, episodes, run  # noqa: E402,F401
from scen import ar1, mm1_queue  # noqa: E402,F401

from selfheal import detect  # noqa: E402


def compare(series, dt, title):
    """Reported episodes after day 1, per family of `series` (the name before '#'), with the
    rule off and on; printed under `title`."""
    res = {}
    for flag in (False, True):
        lasting = float(os.environ.get("LASTS", "300")) if flag else 0.0
        an, _ = run(series, dt, detect.Settings(report_lasting_s=lasting))
        eps = episodes(an, after=T0 + 86400)
        for k in series:
            res.setdefault(k[0].split("#")[0], {}).setdefault(flag, []).append(
                sum(1 for e in eps if e[0] == k))
    print(title)
    for k, v in res.items():
        print(f"{k:10s} {v[False]} ({sum(v[False])}) -> {v[True]} ({sum(v[True])})")
