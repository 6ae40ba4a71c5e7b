"""What the lasting-rule scripts share: the held-strength harness (`../held-strength`), with
`compare` run for `Settings.report_lasting_s` 0 ("before") against $LASTS (default 300)."""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "held-strength"))
import harness  # noqa: E402
from harness import T0, episodes, run  # noqa: E402,F401
from scen import ar1, mm1_queue  # noqa: E402,F401

from selfheal import detect  # noqa: E402


def lasting_settings(on):
    return detect.Settings(report_lasting_s=float(os.environ.get("LASTS", "300")) if on else 0.0)


def compare(series, dt, title):
    """Reported episodes after day 1, per family, with the lasting rule off and on."""
    harness.compare(series, dt, title, lasting_settings)
