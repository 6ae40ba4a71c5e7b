"""The OTLP/HTTP receiver: OpenTelemetry metrics, logs and traces in, model values out.

Any OpenTelemetry SDK or collector exports to selfheal's `/v1/metrics`, `/v1/logs` and
`/v1/traces` routes (`selfheal.api.receivers`), in protobuf or in OTLP's JSON encoding, gzipped
or not. The route calls `decode_*` here, at the trust boundary: the bytes become the
opentelemetry-proto request message, then `model.Sample`, `model.LogRecord` and `model.Span`
values. An `OtlpFeed` queues them until the controller's next tick, and keeps a bounded buffer
of recent spans that a `ports.TraceSource` reader can query.

Mapping: the resource attributes `service.name`, `service.instance.id` and `service.version`
give a value's service, replica and version. A data point's attributes become part of the
metric name in Prometheus style (`http.server.duration{route="/a"}`) so distinct series stay
distinct. Histograms give `<name>_count`, `<name>_sum` and, for explicit buckets, `<name>_p99`.
"""

from __future__ import annotations

import base64
import collections
import json
import math
import zlib
from collections.abc import Iterable, Mapping
from typing import Any

from google.protobuf import json_format, message
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
from opentelemetry.proto.common.v1 import common_pb2
from opentelemetry.proto.metrics.v1 import metrics_pb2
from opentelemetry.proto.trace.v1 import trace_pb2

from selfheal import errors, model, ports
from selfheal.sources import scrape

JSON = "application/json"
PROTOBUF = "application/x-protobuf"
_ID_FIELDS = frozenset({"traceId", "spanId", "parentSpanId", "trace_id", "span_id",
                        "parent_span_id"})
_SEVERITY = ((21, "FATAL"), (17, "ERROR"), (13, "WARN"), (9, "INFO"), (5, "DEBUG"),
             (1, "TRACE"))


class InvalidPayload(errors.SelfhealError):
    """An OTLP body that cannot be accepted; `status` is the HTTP answer: 400 undecodable,
    413 too large once inflated, 415 an encoding or content type we do not speak."""

    def __init__(self, message: str, *, status: int = 400) -> None:
        self.status = status
        super().__init__(message)


# -- bytes to messages -----------------------------------------------------------------------

def inflate(body: bytes, encoding: str, limit: int) -> bytes:
    """Undo `Content-Encoding` (gzip, deflate or none) without inflating past `limit` bytes."""
    enc = encoding.strip().lower()
    if enc in ("", "identity"):
        return body
    if enc not in ("gzip", "deflate"):
        raise InvalidPayload(f"unsupported Content-Encoding {encoding!r} (use gzip or none)",
                             status=415)
    wbits = 16 + zlib.MAX_WBITS if enc == "gzip" else zlib.MAX_WBITS
    d = zlib.decompressobj(wbits)
    try:
        out = d.decompress(body, limit + 1)
    except zlib.error as exc:
        raise InvalidPayload(f"body is not valid {enc}: {exc}") from exc
    if len(out) > limit or d.unconsumed_tail:
        raise InvalidPayload(f"body inflates to more than the {limit}-byte limit",
                             status=413)
    return out


def _hex_ids_to_base64(node: Any) -> Any:
    """OTLP/JSON writes trace and span ids as hex; protobuf's JSON mapping expects base64."""
    if isinstance(node, dict):
        out = {}
        for k, v in node.items():
            if k in _ID_FIELDS and isinstance(v, str):
                try:
                    out[k] = base64.b64encode(bytes.fromhex(v)).decode("ascii")
                except ValueError as exc:
                    raise InvalidPayload(f"{k} is not a hex id: {v[:40]!r}") from exc
            else:
                out[k] = _hex_ids_to_base64(v)
        return out
    if isinstance(node, list):
        return [_hex_ids_to_base64(v) for v in node]
    return node


def _parse(body: bytes, content_type: str, msg: message.Message) -> None:
    kind = content_type.split(";", maxsplit=1)[0].strip().lower()
    if kind == PROTOBUF:
        try:
            msg.ParseFromString(body)
        except message.DecodeError as exc:
            raise InvalidPayload(f"body is not a valid protobuf {msg.DESCRIPTOR.name}: "
                                 f"{exc}") from exc
        return
    if kind == JSON:
        try:
            raw = json.loads(body)
        except (ValueError, RecursionError) as exc:
            raise InvalidPayload(f"body is not valid JSON: {exc}") from exc
        if not isinstance(raw, dict):
            raise InvalidPayload("the JSON body must be an object")
        try:
            json_format.ParseDict(_hex_ids_to_base64(raw), msg, ignore_unknown_fields=True)
        except (json_format.ParseError, RecursionError) as exc:
            raise InvalidPayload(f"body is not a valid OTLP/JSON {msg.DESCRIPTOR.name}: "
                                 f"{exc}") from exc
        return
    raise InvalidPayload(f"unsupported Content-Type {content_type!r}: use {PROTOBUF} or {JSON}",
                         status=415)


def encode_response(msg: message.Message, content_type: str) -> tuple[bytes, str]:
    """The export response in the request's encoding."""
    if content_type.split(";", maxsplit=1)[0].strip().lower() == JSON:
        return json_format.MessageToJson(msg).encode(), JSON
    return msg.SerializeToString(), PROTOBUF


# -- messages to values ----------------------------------------------------------------------

def _any(v: common_pb2.AnyValue) -> str:
    which = v.WhichOneof("value")
    if which is None:
        return ""
    if which == "string_value":
        return v.string_value
    if which == "bytes_value":
        return v.bytes_value.hex()
    if which == "array_value":
        return json.dumps([_any(x) for x in v.array_value.values])
    if which == "kvlist_value":
        return json.dumps({kv.key: _any(kv.value) for kv in v.kvlist_value.values})
    return str(getattr(v, which))


def _attrs(kvs: Iterable[common_pb2.KeyValue]) -> dict[str, str]:
    return {kv.key: _any(kv.value) for kv in kvs}


def _who(resource_attrs: Mapping[str, str]) -> tuple[str, str, str]:
    return (resource_attrs.get("service.name", ""), resource_attrs.get("service.instance.id", ""),
            resource_attrs.get("service.version", ""))


def _series_name(name: str, attrs: Mapping[str, str]) -> str:
    if not attrs:
        return name
    inner = ",".join(f'{k}="{v}"' for k, v in sorted(attrs.items()))
    return f"{name}{{{inner}}}"


def _number(p: metrics_pb2.NumberDataPoint) -> float:
    return float(p.as_int) if p.WhichOneof("value") == "as_int" else p.as_double


def decode_metrics(body: bytes, content_type: str) -> list[model.Sample]:
    req = metrics_service_pb2.ExportMetricsServiceRequest()
    _parse(body, content_type, req)
    out: list[model.Sample] = []
    for rm in req.resource_metrics:
        service, replica, version = _who(_attrs(rm.resource.attributes))
        for sm in rm.scope_metrics:
            for m in sm.metrics:
                out.extend(_metric_samples(m, service, replica, version))
    return out


def _metric_samples(m: metrics_pb2.Metric, service: str, replica: str,
                    version: str) -> list[model.Sample]:
    rows: list[tuple[float, str, float]] = []
    which = m.WhichOneof("data")
    if which in ("gauge", "sum"):
        points = m.gauge.data_points if which == "gauge" else m.sum.data_points
        rows = [(p.time_unix_nano / 1e9, _series_name(m.name, _attrs(p.attributes)),
                 _number(p)) for p in points]
    elif which == "histogram":
        for hp in m.histogram.data_points:
            t, base = hp.time_unix_nano / 1e9, _attrs(hp.attributes)
            rows.append((t, _series_name(m.name + "_count", base), float(hp.count)))
            if hp.HasField("sum"):
                rows.append((t, _series_name(m.name + "_sum", base), hp.sum))
            if hp.explicit_bounds and len(hp.bucket_counts) == len(hp.explicit_bounds) + 1:
                bounds = [*hp.explicit_bounds, math.inf]
                cum, buckets = 0.0, []
                for upper, n in zip(bounds, hp.bucket_counts, strict=True):
                    cum += n
                    buckets.append((upper, cum))
                rows.append((t, _series_name(m.name + "_p99", base),
                             scrape.quantile(0.99, buckets)))
    elif which == "exponential_histogram":
        for ep in m.exponential_histogram.data_points:
            t, base = ep.time_unix_nano / 1e9, _attrs(ep.attributes)
            rows.append((t, _series_name(m.name + "_count", base), float(ep.count)))
            if ep.HasField("sum"):
                rows.append((t, _series_name(m.name + "_sum", base), ep.sum))
    elif which == "summary":
        for sp in m.summary.data_points:
            t, base = sp.time_unix_nano / 1e9, _attrs(sp.attributes)
            rows.append((t, _series_name(m.name + "_count", base), float(sp.count)))
            rows.append((t, _series_name(m.name + "_sum", base), sp.sum))
            rows.extend((t, _series_name(m.name, {**base, "quantile": f"{q.quantile:g}"}),
                         q.value) for q in sp.quantile_values)
    return [model.Sample(t=t, service=service, metric=name, value=v, replica=replica,
                         version=version) for t, name, v in rows]


def _level(severity_text: str, severity_number: int) -> str:
    if severity_text:
        return severity_text.upper()
    return next((name for floor, name in _SEVERITY if severity_number >= floor), "INFO")


def decode_logs(body: bytes, content_type: str) -> list[model.LogRecord]:
    req = logs_service_pb2.ExportLogsServiceRequest()
    _parse(body, content_type, req)
    out = []
    for rl in req.resource_logs:
        service, replica, _ = _who(_attrs(rl.resource.attributes))
        for sl in rl.scope_logs:
            for r in sl.log_records:
                t = (r.time_unix_nano or r.observed_time_unix_nano) / 1e9
                out.append(model.LogRecord(t=t, service=service,
                                           level=_level(r.severity_text, r.severity_number),
                                           message=_any(r.body), replica=replica))
    return out


def decode_traces(body: bytes, content_type: str) -> list[model.Span]:
    req = trace_service_pb2.ExportTraceServiceRequest()
    _parse(body, content_type, req)
    out = []
    for rs in req.resource_spans:
        service, _, _ = _who(_attrs(rs.resource.attributes))
        for ss in rs.scope_spans:
            for s in ss.spans:
                out.append(model.Span(
                    trace_id=s.trace_id.hex(), span_id=s.span_id.hex(),
                    parent_id=s.parent_span_id.hex(), service=service, name=s.name,
                    start=s.start_time_unix_nano / 1e9, end=s.end_time_unix_nano / 1e9,
                    error=s.status.code == trace_pb2.Status.STATUS_CODE_ERROR))
    return out


def empty_response(signal: str) -> message.Message:
    """The (successful, empty) export response message for `signal`."""
    responses: dict[str, type[message.Message]] = {
        "metrics": metrics_service_pb2.ExportMetricsServiceResponse,
        "logs": logs_service_pb2.ExportLogsServiceResponse,
        "traces": trace_service_pb2.ExportTraceServiceResponse,
    }
    return responses[signal]()


# -- the feed --------------------------------------------------------------------------------

class OtlpFeed:
    """What OTLP exporters pushed since the last tick; implements `ports.Feed` and, over a
    bounded buffer of recent spans, `ports.TraceSource`."""

    name = "otlp"
    kinds = frozenset({model.SignalKind.METRICS, model.SignalKind.LOGS,
                       model.SignalKind.TRACES})

    def __init__(self, max_queue: int = 200_000, max_spans: int = 200_000) -> None:
        self._samples: collections.deque[model.Sample] = collections.deque(maxlen=max_queue)
        self._logs: collections.deque[model.LogRecord] = collections.deque(maxlen=max_queue)
        self._spans: collections.deque[model.Span] = collections.deque(maxlen=max_spans)
        self.received = {"metrics": 0, "logs": 0, "traces": 0}

    def add_samples(self, samples: Iterable[model.Sample]) -> None:
        before = len(self._samples)
        self._samples.extend(samples)
        self.received["metrics"] += len(self._samples) - before

    def add_logs(self, records: Iterable[model.LogRecord]) -> None:
        before = len(self._logs)
        self._logs.extend(records)
        self.received["logs"] += len(self._logs) - before

    def add_spans(self, spans: Iterable[model.Span]) -> None:
        got = list(spans)
        self._spans.extend(got)
        self.received["traces"] += len(got)

    def spans(self, start: float, end: float) -> list[model.Span]:
        return [s for s in self._spans if s.end >= start and s.start <= end]

    async def collect(self, now: float) -> ports.Collected:
        got = ports.Collected(samples=tuple(self._samples), logs=tuple(self._logs))
        self._samples.clear()
        self._logs.clear()
        return got

    async def close(self) -> None:
        self._samples.clear()
        self._logs.clear()
