"""Alertmanager's webhook payload (version 4): validation, mapping to alerts, de-duplication
by fingerprint, firing and resolved, and the route's answers to bad bodies."""

from __future__ import annotations

import asyncio
import contextlib
import copy
import datetime as dt
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import prometheus_client
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from selfheal import api, model
from selfheal.sources import alertmanager

STARTS = "2026-11-22T07:00:01.5Z"


def payload(*alerts: dict[str, Any], status: str = "firing") -> dict[str, Any]:
    """A body shaped exactly as Alertmanager 0.25 sends it (extra fields included)."""
    return {
        "receiver": "selfheal", "status": status, "alerts": list(alerts),
        "groupLabels": {"alertname": "AuthMemoryHigh"},
        "commonLabels": {"alertname": "AuthMemoryHigh", "severity": "page"},
        "commonAnnotations": {"summary": "auth memory"},
        "externalURL": "http://am.example:9093", "version": "4",
        "groupKey": '{}:{alertname="AuthMemoryHigh"}', "truncatedAlerts": 0,
    }


def alert(fp: str, status: str = "firing", service: str = "auth",
          starts: str = STARTS) -> dict[str, Any]:
    return {"status": status, "labels": {"alertname": "AuthMemoryHigh", "service": service,
                                         "instance": "127.0.0.1:9100"},
            "annotations": {"description": "rss above 100MB"}, "startsAt": starts,
            "endsAt": "0001-01-01T00:00:00Z", "generatorURL": "http://prom/graph?g0.expr=x",
            "fingerprint": fp, "silenceURL": "added by a newer Alertmanager"}


def collect(feed: alertmanager.AlertFeed) -> tuple[model.Alert, ...]:
    return asyncio.run(feed.collect(0.0)).alerts


def test_payload_becomes_alerts_with_service_and_labels() -> None:
    p = alertmanager.parse(json.dumps(payload(alert("a1"), alert("b2", service=""))).encode())
    alerts = alertmanager.to_alerts(p)
    assert [a.fingerprint for a in alerts] == ["a1", "b2"]
    first = alerts[0]
    assert (first.name, first.status, first.service) == ("AuthMemoryHigh", "firing", "auth")
    assert first.starts_at == dt.datetime(2026, 11, 22, 7, 0, 1, 500000, dt.UTC).timestamp()
    assert dict(first.labels)["severity"] == "page"  # common labels merged in
    assert dict(first.annotations) == {"summary": "auth memory",
                                       "description": "rss above 100MB"}
    assert alerts[1].service == ""  # no service label and no job: no service


def test_service_falls_back_to_job_and_label_is_configurable() -> None:
    a = alert("c3")
    a["labels"] = {"alertname": "X", "job": "cart", "app": "checkout"}
    p = alertmanager.parse(json.dumps(payload(a)).encode())
    assert alertmanager.to_alerts(p)[0].service == "cart"
    assert alertmanager.to_alerts(p, service_label="app")[0].service == "checkout"


def test_redelivery_is_deduplicated_and_status_changes_pass() -> None:
    feed = alertmanager.AlertFeed()
    firing = alertmanager.parse(json.dumps(payload(alert("a1"), alert("b2"))).encode())
    assert feed.receive(firing).queued == 2
    assert feed.receive(firing).queued == 0  # group_interval re-send
    assert [a.fingerprint for a in collect(feed)] == ["a1", "b2"]
    assert feed.active() == ["a1", "b2"]
    resolved = alertmanager.parse(json.dumps(payload(
        alert("a1", "resolved"), alert("b2"), status="firing")).encode())
    got = feed.receive(resolved)
    assert (got.received, got.queued) == (2, 1)
    assert [(a.fingerprint, a.status) for a in collect(feed)] == [("a1", "resolved")]
    assert feed.active() == ["b2"]
    again = alertmanager.parse(json.dumps(payload(
        alert("a1", starts="2026-11-22T08:00:00Z"))).encode())
    assert feed.receive(again).queued == 1  # a new firing episode of the same alert
    assert collect(feed)[0].status == "firing"


@pytest.mark.parametrize(("mutate", "field"), [
    (lambda p: p.update(version="3"), "version"),
    (lambda p: p.pop("groupKey"), "groupKey"),
    (lambda p: p["alerts"][0].update(status="pending"), "alerts.0.status"),
    (lambda p: p["alerts"][0].pop("fingerprint"), "alerts.0.fingerprint"),
    (lambda p: p["alerts"][0].update(startsAt="yesterday"), "alerts.0.startsAt"),
    (lambda p: p["alerts"][0]["labels"].update(n=3), "alerts.0.labels.n"),
])
def test_invalid_payload_names_the_field(mutate: Any, field: str) -> None:
    body = payload(alert("a1"))
    mutate(body)
    with pytest.raises(alertmanager.InvalidPayload, match=field.replace(".", r"\.")):
        alertmanager.parse(json.dumps(body).encode())


_JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=5),
                     lambda inner: st.lists(inner, max_size=3)
                     | st.dictionaries(st.sampled_from(["version", "alerts", "status",
                                                        "groupKey", "receiver", "labels"]),
                                       inner, max_size=4), max_leaves=12)


@settings(max_examples=80, deadline=None)
@given(st.binary(max_size=300) | _JSON.map(lambda v: json.dumps(v).encode()))
def test_any_body_parses_or_is_invalid_payload(body: bytes) -> None:
    """Whatever arrives, the only failure is our InvalidPayload (a 400), never a crash."""
    with contextlib.suppress(alertmanager.InvalidPayload):
        alertmanager.parse(body)


class _Client:
    """Requests straight into the ASGI app (no socket), one event loop per call."""

    def __init__(self, app: Any) -> None:
        self.app = app

    def _call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        async def go() -> httpx.Response:
            async with httpx.AsyncClient(transport=httpx.ASGITransport(app=self.app),
                                         base_url="http://selfheal") as http:
                return await http.request(method, path, **kwargs)
        return asyncio.run(go())

    def post(self, path: str, **kwargs: Any) -> httpx.Response:
        return self._call("POST", path, **kwargs)

    def get(self, path: str) -> httpx.Response:
        return self._call("GET", path)


async def _chunks(*parts: bytes) -> AsyncIterator[bytes]:
    for part in parts:
        yield part


def _client(limit: int = 4096) -> tuple[_Client, alertmanager.AlertFeed]:
    feed = alertmanager.AlertFeed()
    app = api.create_app(api.Receivers(body_limit_bytes=limit,
                                       registry=prometheus_client.CollectorRegistry(),
                                       health=lambda: {"ok": True}, alerts=feed))
    return _Client(app), feed


def test_route_accepts_a_valid_delivery() -> None:
    client, feed = _client()
    r = client.post("/webhooks/alertmanager", json=payload(alert("a1")))
    assert r.status_code == 200
    assert r.json() == {"received": 1, "queued": 1}
    assert [a.fingerprint for a in collect(feed)] == ["a1"]


@pytest.mark.parametrize("body", [b"", b"{", b"[]", b'{"version": "4"}',
                                  json.dumps({"version": 4}).encode()])
def test_route_rejects_malformed_bodies_and_stores_nothing(body: bytes) -> None:
    client, feed = _client()
    r = client.post("/webhooks/alertmanager", content=body,
                    headers={"content-type": "application/json"})
    assert r.status_code == 400
    assert "Alertmanager v4" in r.json()["error"]
    assert collect(feed) == ()


def test_route_rejects_oversized_bodies_and_stores_nothing() -> None:
    big = payload(*[alert(f"fp{i}") for i in range(40)])
    raw = json.dumps(big).encode()
    client, feed = _client(limit=len(raw) - 1)
    r = client.post("/webhooks/alertmanager", content=raw,
                    headers={"content-type": "application/json"})
    assert r.status_code == 413
    assert str(len(raw) - 1) in r.json()["error"]
    # The same body without a Content-Length (chunked) is cut off while streaming.
    r = client.post("/webhooks/alertmanager", content=_chunks(raw[:1000], raw[1000:]),
                    headers={"content-type": "application/json"})
    assert r.status_code == 413
    assert collect(feed) == ()
    client_ok, feed_ok = _client(limit=len(raw))
    assert client_ok.post("/webhooks/alertmanager", content=copy.copy(raw)).status_code == 200
    assert len(collect(feed_ok)) == 40


def test_routes_off_when_feeds_are_not_configured() -> None:
    app = api.create_app(api.Receivers(body_limit_bytes=100,
                                       registry=prometheus_client.CollectorRegistry(),
                                       health=lambda: {"ok": False}))
    client = _Client(app)
    assert client.post("/webhooks/alertmanager", json={}).status_code == 404
    assert client.post("/v1/metrics", content=b"").status_code == 404
    assert client.get("/healthz").status_code == 503
    assert client.get("/metrics").status_code == 200
