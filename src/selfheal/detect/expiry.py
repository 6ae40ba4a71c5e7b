"""Expiry: certificates and credentials that run out soon, caught before they break anything.

A time-to-expiry series falls one second per second by design, so the statistical detectors
have nothing to learn from it; what matters is a fixed horizon, as in the alert rule operators
write (`x509_cert_not_after - time() < 30d`). The engine calls `expiring` each tick beside
`Detector.update` and weighs its anomalies with the rest in `fuse`. Pure.
"""

from __future__ import annotations

import dataclasses
import math
import types
from collections.abc import Mapping

from selfheal import model

DAY = 86_400.0

DEFAULT_RENEW_BEFORE: Mapping[str, float] = types.MappingProxyType(
    {"cert_ttl_s": 30 * DAY, "credential_ttl_s": 1 * DAY / 4}
)
"""metric -> how long before expiry a renewal is due (a 90-day certificate is renewed with 30
days left, as ACME clients do; a one-day database credential with six hours left)."""

WHAT = types.MappingProxyType({"cert_ttl_s": "TLS certificate", "credential_ttl_s": "credential"})


def _span(seconds: float) -> str:
    for unit, size in (("d", DAY), ("h", 3600.0), ("min", 60.0)):
        if abs(seconds) >= size:
            return f"{seconds / size:.1f} {unit}"
    return f"{seconds:.0f} s"


@dataclasses.dataclass
class Expiry:
    """Tracks when each expiring series first came within its horizon (an episode's start)."""

    renew_before: Mapping[str, float] = dataclasses.field(
        default_factory=lambda: DEFAULT_RENEW_BEFORE)
    _since: dict[tuple[str, str], float] = dataclasses.field(default_factory=dict)

    def update(self, t: float, values: Mapping[tuple[str, str], float]) -> list[model.Anomaly]:
        """The anomalies firing at `t`: one per series whose time to expiry is within its
        horizon. Score 0.9 while it is still valid (act before it bites), 1.0 once expired."""
        out = []
        for (service, metric), ttl in values.items():
            horizon = self.renew_before.get(metric)
            if horizon is None or not math.isfinite(ttl):
                continue
            key = (service, metric)
            if ttl > horizon:
                self._since.pop(key, None)
                continue
            started = self._since.setdefault(key, t)
            what = WHAT.get(metric, metric)
            if ttl > 0:
                text = (f"{service}'s {what} expires in {_span(ttl)}, inside its renewal "
                        f"window of {_span(horizon)}")
            else:
                text = f"{service}'s {what} expired {_span(-ttl)} ago"
            out.append(model.Anomaly(
                id=model.AnomalyId(f"{service}/{metric}/{started:.3f}"), service=service,
                metric=metric, detector="expiry", started_at=started, detected_at=t,
                score=1.0 if ttl <= 0 else 0.9, baseline=horizon, observed=ttl,
                explanation=text))
        return out
