"""Alertmanager webhook payloads for the tests that open an incident with an alert.

The engine tests (OTLP diagnosis, the reasoner workflow, Prometheus going blind) hand a firing
alert to the Alertmanager feed as the webhook route would; this builds that body once, in the
shape Alertmanager sends (version 4, one alert), through the same pydantic model the route uses.
"""

from __future__ import annotations

import datetime as dt

from selfheal.sources import alertmanager


def firing(alertname: str, service: str, starts_at: float,
           fingerprint: str = "fp-1") -> alertmanager.WebhookPayload:
    """One firing alert `alertname` on `service`, started at `starts_at` (Unix seconds)."""
    return alertmanager.WebhookPayload.model_validate({
        "version": "4", "groupKey": f'{{}}:{{alertname="{alertname}"}}', "status": "firing",
        "receiver": "selfheal", "alerts": [{
            "status": "firing", "labels": {"alertname": alertname, "service": service},
            "startsAt": dt.datetime.fromtimestamp(starts_at, dt.UTC).isoformat(),
            "fingerprint": fingerprint}]})
