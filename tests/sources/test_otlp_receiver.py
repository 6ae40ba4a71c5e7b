"""OTLP/HTTP: the OpenTelemetry SDK's own exporters post to a real selfheal receiver.

The receiver app runs under uvicorn on a loopback port in a background thread; traces,
metrics and logs are exported by opentelemetry-sdk with the OTLP/HTTP protobuf exporters
(gzip for traces), and the JSON encoding is checked with a body written as the OTLP spec
shows it (hex trace ids). Bad bodies get a 4xx and leave the feed empty.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import threading
import time
from collections.abc import Iterator

import httpx
import prometheus_client
import pytest
import sources_servers as srv
import uvicorn
from opentelemetry import _logs as otel_logs
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk import _logs as sdk_logs
from opentelemetry.sdk import metrics as sdk_metrics
from opentelemetry.sdk import resources
from opentelemetry.sdk import trace as sdk_trace
from opentelemetry.sdk._logs import export as log_export
from opentelemetry.sdk.metrics import export as metric_export
from opentelemetry.sdk.metrics import view as sdk_view
from opentelemetry.sdk.trace import export as trace_export
from opentelemetry.trace import Status, StatusCode

from selfheal import api, model, ports
from selfheal.sources import otlp

pytestmark = pytest.mark.timeout(60)

RESOURCE = resources.Resource.create({"service.name": "checkout",
                                      "service.instance.id": "checkout-1",
                                      "service.version": "0.9.2"})


@pytest.fixture
def receiver() -> Iterator[tuple[str, otlp.OtlpFeed]]:
    feed = otlp.OtlpFeed()
    app = api.create_app(api.Receivers(body_limit_bytes=64 * 1024,
                                       registry=prometheus_client.CollectorRegistry(),
                                       health=lambda: {"ok": True}, otlp=feed))
    port = srv.free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port,
                                           log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    srv.wait_until(lambda: server.started, 20, "receiver started")
    yield url, feed
    server.should_exit = True
    thread.join(timeout=10)


def _collect(feed: otlp.OtlpFeed) -> ports.Collected:
    return asyncio.run(feed.collect(time.time()))


def test_sdk_traces_reach_the_receiver(receiver: tuple[str, otlp.OtlpFeed]) -> None:
    url, feed = receiver
    provider = sdk_trace.TracerProvider(resource=RESOURCE)
    provider.add_span_processor(trace_export.SimpleSpanProcessor(
        OTLPSpanExporter(endpoint=url + "/v1/traces", compression=Compression.Gzip)))
    tracer = provider.get_tracer("test")
    with tracer.start_as_current_span("POST /checkout") as parent:
        with tracer.start_as_current_span("GET cart") as child:
            child.set_status(Status(StatusCode.ERROR, "cart down"))
        ctx = parent.get_span_context()
    provider.shutdown()
    spans = {s.name: s for s in feed.spans(0, time.time() + 1)}
    assert set(spans) == {"POST /checkout", "GET cart"}
    root, leaf = spans["POST /checkout"], spans["GET cart"]
    assert root.trace_id == f"{ctx.trace_id:032x}" == leaf.trace_id
    assert root.span_id == f"{ctx.span_id:016x}" == leaf.parent_id
    assert root.parent_id == ""
    assert (root.service, leaf.service) == ("checkout", "checkout")
    assert leaf.error and not root.error
    assert root.start <= leaf.start <= leaf.end <= root.end


def test_sdk_metrics_reach_the_receiver(receiver: tuple[str, otlp.OtlpFeed]) -> None:
    url, feed = receiver
    reader = metric_export.PeriodicExportingMetricReader(
        OTLPMetricExporter(endpoint=url + "/v1/metrics"), export_interval_millis=60_000)
    bounds = (0.005, 0.01, 0.1, 0.5, 1.0)
    view = sdk_view.View(instrument_name="latency",
                         aggregation=sdk_view.ExplicitBucketHistogramAggregation(bounds))
    provider = sdk_metrics.MeterProvider(resource=RESOURCE, metric_readers=[reader],
                                         views=[view])
    meter = provider.get_meter("test")
    counter = meter.create_counter("orders")
    hist = meter.create_histogram("latency", unit="s")
    observations = [0.004] * 98 + [0.7, 0.7]
    for v in observations:
        hist.record(v, {"route": "/buy"})
    counter.add(7, {"route": "/buy"})
    counter.add(2, {"route": "/cart"})
    provider.force_flush()
    provider.shutdown()
    got = {s.metric: s for s in _collect(feed).samples}
    assert got['orders{route="/buy"}'].value == 7
    assert got['orders{route="/cart"}'].value == 2
    assert got['latency_count{route="/buy"}'].value == len(observations)
    assert got['latency_sum{route="/buy"}'].value == pytest.approx(sum(observations))
    # 98 of 100 at 4 ms: the 99th percentile lies in the bucket holding 0.7 s.
    upper = min(b for b in bounds if b >= 0.7)
    lower = max(b for b in bounds if b < 0.7)
    assert lower < got['latency_p99{route="/buy"}'].value <= upper
    s = got['orders{route="/buy"}']
    assert (s.service, s.replica, s.version) == ("checkout", "checkout-1", "0.9.2")
    assert _collect(feed).samples == ()  # a tick drains the queue


def test_sdk_logs_reach_the_receiver(receiver: tuple[str, otlp.OtlpFeed]) -> None:
    url, feed = receiver
    provider = sdk_logs.LoggerProvider(resource=RESOURCE)
    provider.add_log_record_processor(log_export.SimpleLogRecordProcessor(
        OTLPLogExporter(endpoint=url + "/v1/logs")))
    logger = provider.get_logger("test")
    try:
        for text, severity in (("payment gateway timeout after 3 retries",
                                otel_logs.SeverityNumber.ERROR),
                               ("order placed", otel_logs.SeverityNumber.INFO)):
            logger.emit(otel_logs.LogRecord(timestamp=time.time_ns(), body=text,
                                            severity_number=severity))
    finally:
        provider.shutdown()
    logs = _collect(feed).logs
    assert [(r.level, r.message) for r in logs] == [
        ("ERROR", "payment gateway timeout after 3 retries"), ("INFO", "order placed")]
    assert {(r.service, r.replica) for r in logs} == {("checkout", "checkout-1")}
    assert all(abs(r.t - time.time()) < 60 for r in logs)


OTLP_JSON_TRACE = {"resourceSpans": [{
    "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "cart"}}]},
    "scopeSpans": [{"scope": {"name": "manual"}, "spans": [{
        "traceId": "5b8efff798038103d269b633813fc60c", "spanId": "eee19b7ec3c1b174",
        "parentSpanId": "eee19b7ec3c1b173", "name": "GET /cart", "kind": 2,
        "startTimeUnixNano": "1544712660000000000", "endTimeUnixNano": "1544712661000000000",
        "status": {"code": 2}, "futureField": "ignored"}]}]}]}


def test_json_encoding_with_hex_ids(receiver: tuple[str, otlp.OtlpFeed]) -> None:
    url, feed = receiver
    r = httpx.post(url + "/v1/traces", json=OTLP_JSON_TRACE, timeout=5)
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("application/json")
    (span,) = feed.spans(0, 2e9)
    assert span == model.Span(trace_id="5b8efff798038103d269b633813fc60c",
                              span_id="eee19b7ec3c1b174", parent_id="eee19b7ec3c1b173",
                              service="cart", name="GET /cart", start=1544712660.0,
                              end=1544712661.0, error=True)


@pytest.mark.parametrize(("path", "body", "headers", "status"), [
    ("/v1/traces", b"\x0a\xff\xff", {"content-type": "application/x-protobuf"}, 400),
    ("/v1/metrics", b"{not json", {"content-type": "application/json"}, 400),
    ("/v1/logs", b'{"resourceLogs": 3}', {"content-type": "application/json"}, 400),
    ("/v1/traces", json.dumps({"resourceSpans": [{"scopeSpans": [{"spans": [
        {"traceId": "zz"}]}]}]}).encode(), {"content-type": "application/json"}, 400),
    ("/v1/logs", b"hello", {"content-type": "text/plain"}, 415),
    ("/v1/metrics", b"\x00", {"content-type": "application/x-protobuf",
                              "content-encoding": "br"}, 415),
    ("/v1/metrics", b"not gzip", {"content-type": "application/x-protobuf",
                                  "content-encoding": "gzip"}, 400),
    ("/v1/logs", b"x" * (64 * 1024 + 1), {"content-type": "application/json"}, 413),
    # A small gzip body that inflates past the limit is refused too.
    ("/v1/logs", gzip.compress(b" " * (64 * 1024 + 10)),
     {"content-type": "application/json", "content-encoding": "gzip"}, 413),
])
def test_bad_bodies_get_a_4xx_and_store_nothing(receiver: tuple[str, otlp.OtlpFeed], path: str,
                                                body: bytes, headers: dict[str, str],
                                                status: int) -> None:
    url, feed = receiver
    r = httpx.post(url + path, content=body, headers=headers, timeout=5)
    assert r.status_code == status, r.text
    assert "nothing was stored" in r.json()["error"] or status == 413
    got = _collect(feed)
    assert (got.samples, got.logs, feed.spans(0, 2e9)) == ((), (), [])
