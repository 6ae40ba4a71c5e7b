"""The Alertmanager receiver: webhook payloads (version 4) in, `model.Alert` signals out.

Alertmanager POSTs a group of alerts to selfheal's webhook route (`selfheal.api.receivers`);
the route validates the body here, at the trust boundary, and hands the alerts to an
`AlertFeed`, which the controller polls once a tick like any other feed. Alertmanager re-sends
a group on every `group_interval` and `repeat_interval`, so the feed de-duplicates by
fingerprint: an alert reaches the controller when it is new or when its status or start
changes (firing → resolved, or firing again), never once per delivery.
"""

from __future__ import annotations

import collections
import dataclasses
import datetime as dt
from typing import Literal

import pydantic

from selfheal import errors, model, ports


class _Payload(pydantic.BaseModel):
    # Alertmanager adds fields across releases; they are accepted but never relied on.
    model_config = pydantic.ConfigDict(extra="allow", frozen=True)


class WebhookAlert(_Payload):
    status: Literal["firing", "resolved"]
    labels: dict[str, str]
    annotations: dict[str, str] = pydantic.Field(default_factory=dict)
    startsAt: dt.datetime  # noqa: N815 — Alertmanager's field names
    endsAt: dt.datetime | None = None  # noqa: N815
    generatorURL: str = ""  # noqa: N815
    fingerprint: str = pydantic.Field(min_length=1, max_length=128)


class WebhookPayload(_Payload):
    version: Literal["4"]
    groupKey: str  # noqa: N815
    truncatedAlerts: int = pydantic.Field(default=0, ge=0)  # noqa: N815
    status: Literal["firing", "resolved"]
    receiver: str
    groupLabels: dict[str, str] = pydantic.Field(default_factory=dict)  # noqa: N815
    commonLabels: dict[str, str] = pydantic.Field(default_factory=dict)  # noqa: N815
    commonAnnotations: dict[str, str] = pydantic.Field(default_factory=dict)  # noqa: N815
    externalURL: str = ""  # noqa: N815
    alerts: list[WebhookAlert]


class InvalidPayload(errors.SelfhealError):
    """A webhook body that is not a valid Alertmanager version-4 payload (HTTP 400)."""


def parse(body: bytes) -> WebhookPayload:
    """Validate a raw webhook body; raises `InvalidPayload` naming the first bad field."""
    try:
        return WebhookPayload.model_validate_json(body)
    except pydantic.ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"]) or "(body)"
        raise InvalidPayload(f"not an Alertmanager v4 webhook payload: {field}: "
                             f"{first['msg']}") from exc


def to_alerts(payload: WebhookPayload, service_label: str = "service") -> list[model.Alert]:
    """One `model.Alert` per alert of the group; the service comes from `service_label`,
    else `job`, else it is empty (the controller records such alerts but opens nothing)."""
    out = []
    for a in payload.alerts:
        labels = {**payload.commonLabels, **a.labels}
        annotations = {**payload.commonAnnotations, **a.annotations}
        service = labels.get(service_label) or labels.get("job", "")
        out.append(model.Alert(
            fingerprint=a.fingerprint, name=labels.get("alertname", "unnamed"),
            status=a.status, service=service, starts_at=a.startsAt.timestamp(),
            labels=tuple(sorted(labels.items())),
            annotations=tuple(sorted(annotations.items()))))
    return out


@dataclasses.dataclass(frozen=True)
class Delivery:
    """What one accepted webhook call did: how many alerts it carried and how many were new."""

    group_key: str
    received: int
    queued: int


class AlertFeed:
    """The queue between the webhook route and the controller; implements `ports.Feed`.

    `receive` runs on the HTTP side, `collect` on the controller's tick; both run in the same
    event loop, so no lock is needed.
    """

    name = "alertmanager"
    kinds = frozenset({model.SignalKind.ALERTS})

    def __init__(self, service_label: str = "service", max_queue: int = 10_000) -> None:
        self.service_label = service_label
        self._queue: collections.deque[model.Alert] = collections.deque(maxlen=max_queue)
        self._last: collections.OrderedDict[str, tuple[str, float]] = collections.OrderedDict()
        self._max_known = 50_000
        self.dropped = 0

    def receive(self, payload: WebhookPayload) -> Delivery:
        queued = 0
        for alert in to_alerts(payload, self.service_label):
            state = (alert.status, alert.starts_at)
            if self._last.get(alert.fingerprint) == state:
                continue  # a re-sent group: this alert already reached the controller
            self._last[alert.fingerprint] = state
            self._last.move_to_end(alert.fingerprint)
            while len(self._last) > self._max_known:
                self._last.popitem(last=False)
            if len(self._queue) == self._queue.maxlen:
                self.dropped += 1
            self._queue.append(alert)
            queued += 1
        return Delivery(group_key=payload.groupKey, received=len(payload.alerts), queued=queued)

    def active(self) -> list[str]:
        """Fingerprints whose last known status is firing."""
        return sorted(f for f, (status, _) in self._last.items() if status == "firing")

    async def collect(self, now: float) -> ports.Collected:
        alerts = tuple(self._queue)
        self._queue.clear()
        return ports.Collected(alerts=alerts)

    async def close(self) -> None:
        self._queue.clear()
