"""Builders for the reasoner tests: an incident window, and a small OpenAI-compatible server.

The server stands in for a hosted model API we cannot reach here (the real local model is
exercised by test_reasoner_e2e.py). It behaves like the chat completions endpoint: it reads the
request, refuses a json_schema response format when told to (as servers without structured
output do, with HTTP 400), answers with the content the test scripted, counts tokens, and keeps
every request it received for the test to inspect.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import numpy as np

from selfheal import diagnose, model

T0 = 1_700_000_000.0
SERVICES = ("frontend", "auth", "catalog", "cart")
TOPOLOGY = {"frontend": ("auth", "catalog", "cart")}
DEPLOY_AT = T0 + 40.0
END = T0 + 90.0


def window(seed: int = 0, hostile: str = "") -> diagnose.Window:
    """auth deployed a leaking version at DEPLOY_AT: memory climbs, GC pauses, slower calls.

    `hostile` is a log line auth writes many times in the incident window (to test that text
    from the watched system stays data).
    """
    rng = np.random.default_rng(seed)
    metrics: dict[tuple[str, str], list[model.Sample]] = {}
    logs: list[model.LogRecord] = []
    for service in SERVICES:
        rss0 = float(rng.uniform(40e6, 80e6))
        for step in range(91):
            t = T0 + step
            bad = service == "auth" and t > DEPLOY_AT
            values = {
                "rss_bytes": rss0 + rng.normal(0, 0.3e6) + (7e6 * (t - DEPLOY_AT) if bad else 0),
                "p99_latency_s": float(rng.uniform(0.025, 0.05)) if bad
                else 0.005 + rng.normal(0, 0.0003),
                "error_ratio": abs(rng.normal(0.001, 0.0003)),
                "request_rate": 20 + rng.normal(0, 1),
            }
            for metric, value in values.items():
                metrics.setdefault((service, metric), []).append(
                    model.Sample(t=t, service=service, metric=metric, value=float(value)))
            logs.append(model.LogRecord(t + 0.2, service, "INFO",
                                        f"handled GET /items in {int(rng.integers(2, 9))} ms"))
            if bad:
                pause = int(rng.integers(30, 90))
                logs.append(model.LogRecord(t + 0.5, service, "WARNING",
                                            f"gc: full collection paused {pause} ms"))
                if hostile:
                    logs.append(model.LogRecord(t + 0.6, service, "ERROR", hostile))
    anomaly = model.Anomaly(id=model.AnomalyId("a1"), service="auth", metric="rss_bytes",
                            detector="test", started_at=DEPLOY_AT + 2, detected_at=DEPLOY_AT + 5,
                            score=10.0, baseline=60e6, observed=100e6, explanation="rss climbing")
    incident = model.Incident(id=model.IncidentId("inc-1"), service="auth",
                              opened_at=DEPLOY_AT + 5, title="auth memory", anomalies=(anomaly,))
    change = model.Change(id=model.ChangeId("c1"), t=DEPLOY_AT, service="auth", kind="deploy",
                          who="ci-bot", what="deploy auth 1.2.1", from_version="1.2.0",
                          to_version="1.2.1")
    return diagnose.Window(incident=incident, start=DEPLOY_AT - 5, end=END, baseline_start=T0,
                           baseline_end=DEPLOY_AT - 5, metrics=metrics, logs=logs,
                           changes=(change,), spans=None, topology=TOPOLOGY)


def answer(**overrides: Any) -> str:
    """A well-formed answer naming auth, as JSON text."""
    body: dict[str, Any] = {
        "hypotheses": [{"service": "auth", "fault": "memory_leak", "confidence": 0.8,
                        "reason": "rss climbs since the deploy"}],
        "plans": [{"service": "auth", "action": "rollback", "rationale": "undo 1.2.1"}],
        "narrative": "auth 1.2.1 leaks memory.",
    }
    body.update(overrides)
    return json.dumps(body)


@dataclasses.dataclass
class FakeChat:
    """What the server answers, and what it was asked."""

    answers: list[str]
    refuse_schema: bool = False
    delay_s: float = 0.0
    requests: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    url: str = ""


def _handler(chat: FakeChat) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, fmt: str, *args: Any) -> None:
            pass

        def _send(self, code: int, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            with contextlib.suppress(BrokenPipeError):  # the client gave up (timeout test)
                self.wfile.write(data)

        def do_POST(self) -> None:
            if self.path.rstrip("/") != "/v1/chat/completions":
                self._send(404, {"error": {"message": f"no route {self.path}"}})
                return
            request = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            chat.requests.append(request)
            if chat.delay_s:
                time.sleep(chat.delay_s)
            fmt = (request.get("response_format") or {}).get("type")
            if chat.refuse_schema and fmt == "json_schema":
                self._send(400, {"error": {"message": "response_format json_schema is not "
                                           "supported", "type": "invalid_request_error"}})
                return
            content = chat.answers.pop(0) if chat.answers else "{}"
            prompt_tokens = sum(len(m["content"]) for m in request["messages"]) // 4
            completion_tokens = len(content) // 4
            self._send(200, {
                "id": f"chatcmpl-{len(chat.requests)}", "object": "chat.completion",
                "created": 0, "model": "fake-model-v1", "system_fingerprint": "fp-test",
                "choices": [{"index": 0, "finish_reason": "stop",
                             "message": {"role": "assistant", "content": content}}],
                "usage": {"prompt_tokens": prompt_tokens,
                          "completion_tokens": completion_tokens,
                          "total_tokens": prompt_tokens + completion_tokens}})

    return Handler


@contextmanager
def fake_server(chat: FakeChat) -> Iterator[FakeChat]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(chat))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    chat.url = f"http://127.0.0.1:{server.server_address[1]}/v1"
    try:
        yield chat
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
