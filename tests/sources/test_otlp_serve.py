"""OTLP through the whole serve runtime: an SDK exports logs and metrics to `selfheal serve`
(run in-process), the controller's next tick moves them into the store, and `/healthz` and
`/metrics` describe the running agent."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import httpx
import pytest
from opentelemetry import _logs as otel_logs
from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
from opentelemetry.sdk import _logs as sdk_logs
from opentelemetry.sdk import metrics as sdk_metrics
from opentelemetry.sdk import resources
from opentelemetry.sdk._logs import export as log_export
from opentelemetry.sdk.metrics import export as metric_export

from selfheal import config
from selfheal.cli import serve_cmd
from selfheal.engine import controller as controller_mod
from selfheal.engine import serve
from selfheal.store import sql

pytestmark = pytest.mark.timeout(60)


RESOURCE = resources.Resource.create({"service.name": "cart"})
REPLICA = str(RESOURCE.attributes["service.instance.id"])  # the SDK names the instance


def _export(url: str) -> None:
    resource = RESOURCE
    logs = sdk_logs.LoggerProvider(resource=resource)
    logs.add_log_record_processor(log_export.SimpleLogRecordProcessor(
        OTLPLogExporter(endpoint=url + "/v1/logs")))
    logs.get_logger("t").emit(otel_logs.LogRecord(
        timestamp=time.time_ns(), body="redis connection refused",
        severity_number=otel_logs.SeverityNumber.ERROR))
    logs.shutdown()
    reader = metric_export.PeriodicExportingMetricReader(
        OTLPMetricExporter(endpoint=url + "/v1/metrics"), export_interval_millis=60_000)
    meters = sdk_metrics.MeterProvider(resource=resource, metric_readers=[reader])
    meters.get_meter("t").create_counter("cart_items").add(3)
    meters.force_flush()
    meters.shutdown()


def test_sdk_export_reaches_the_store_through_serve(tmp_path: Path) -> None:
    cfg = config.Config(workdir=tmp_path / "state",
                        sources=config.Sources(otlp=config.OtlpSource(enabled=True)),
                        serve=config.Serve(port=0),
                        scrape=config.Scrape(interval_s=0.2))
    events: list[controller_mod.Event] = []

    async def scenario() -> tuple[list[str], list[float], dict[str, object], str]:
        ready: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        task = asyncio.create_task(serve.run(cfg, serve.load_policy(cfg), serve_cmd.make_app,
                                             events.append, on_ready=ready.set_result))
        try:
            url = await asyncio.wait_for(ready, 20)
            await asyncio.to_thread(_export, url)
            store = sql.SqlStore(cfg.database_url())
            try:
                deadline = time.monotonic() + 10
                lines: list[str] = []
                values: list[float] = []
                while time.monotonic() < deadline and not (lines and values):
                    await asyncio.sleep(0.2)
                    now = time.time()
                    lines = [r.message for r in store.logs("cart", now - 60, now)]
                    values = [s.value for s in store.query("cart", "cart_items", now - 60,
                                                           now, replica=REPLICA)]
            finally:
                store.close()
            async with httpx.AsyncClient() as http:
                health = (await http.get(url + "/healthz")).json()
                metrics = (await http.get(url + "/metrics")).text
            return lines, values, health, metrics
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    lines, values, health, metrics = asyncio.run(scenario())
    assert lines == ["redis connection refused"]
    assert set(values) == {3.0}  # a cumulative sum: every export repeats the total
    assert health["ok"] is True
    assert health["feeds"] == ["otlp"]
    assert "selfheal_loop_latency_seconds_count" in metrics
    assert not [e for e in events if e.stage == "error"]
