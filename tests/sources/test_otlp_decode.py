"""OTLP decoding at the trust boundary: whatever the body, the only failure is
`otlp.InvalidPayload` (a 4xx), never a crash; and the JSON and protobuf encodings of the same
request decode to the same values."""

from __future__ import annotations

import contextlib
import json

import pytest
from google.protobuf import json_format
from hypothesis import given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

from selfheal.sources import otlp

DECODERS = (otlp.decode_metrics, otlp.decode_logs, otlp.decode_traces)
KEYS = ["resourceSpans", "resourceLogs", "resourceMetrics", "scopeSpans", "spans", "traceId",
        "spanId", "name", "attributes", "value", "stringValue", "gauge", "dataPoints",
        "asInt", "timeUnixNano", "body", "status", "code", "logRecords", "scopeMetrics",
        "metrics", "histogram", "bucketCounts", "explicitBounds"]
JSONISH = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats(allow_nan=False)
    | st.text(max_size=8) | st.sampled_from(["5b8efff798038103d269b633813fc60c", "zz"]),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from(KEYS), inner,
                                                                max_size=4),
    max_leaves=20)


@settings(max_examples=150, deadline=None)
@given(JSONISH)
def test_any_json_decodes_or_is_invalid(value: object) -> None:
    body = json.dumps(value).encode()
    for decode in DECODERS:
        with contextlib.suppress(otlp.InvalidPayload):
            decode(body, "application/json")


@settings(max_examples=150, deadline=None)
@given(st.binary(max_size=200))
def test_any_bytes_decode_or_are_invalid(body: bytes) -> None:
    for decode in DECODERS:
        with contextlib.suppress(otlp.InvalidPayload):
            decode(body, "application/x-protobuf")


def test_json_and_protobuf_agree() -> None:
    doc = {"resourceSpans": [{
        "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "a"}}]},
        "scopeSpans": [{"spans": [{"traceId": "0af7651916cd43dd8448eb211c80319c",
                                   "spanId": "b7ad6b7169203331", "name": "GET /x",
                                   "startTimeUnixNano": "1000000000",
                                   "endTimeUnixNano": "1500000000"}]}]}]}
    from_json = otlp.decode_traces(json.dumps(doc).encode(), "application/json")
    msg = trace_service_pb2.ExportTraceServiceRequest()
    span = msg.resource_spans.add()
    span.resource.attributes.add(key="service.name").value.string_value = "a"
    s = span.scope_spans.add().spans.add()
    s.trace_id = bytes.fromhex("0af7651916cd43dd8448eb211c80319c")
    s.span_id = bytes.fromhex("b7ad6b7169203331")
    s.name, s.start_time_unix_nano, s.end_time_unix_nano = "GET /x", 10**9, 15 * 10**8
    from_proto = otlp.decode_traces(msg.SerializeToString(), "application/x-protobuf")
    assert from_json == from_proto
    assert from_json[0].end - from_json[0].start == pytest.approx(0.5)
    # The standard protobuf JSON mapping (base64 ids) is what OTLP/JSON must NOT be read as.
    assert json_format.MessageToDict(msg)["resourceSpans"][0]["scopeSpans"][0]["spans"][0][
        "traceId"] != "0af7651916cd43dd8448eb211c80319c"
