"""`selfheal serve` settings and start-up errors: the new config sections validate at the
boundary, defaults keep the demo unchanged, and a taken port or a bad key is one clear line
with exit code 2."""

from __future__ import annotations

import asyncio
import socket
import subprocess
from pathlib import Path

import pytest

from selfheal import config, errors, model
from selfheal.engine import controller as controller_mod
from selfheal.engine import serve

pytestmark = pytest.mark.timeout(60)


def test_defaults_leave_every_source_off() -> None:
    cfg = config.Config()
    assert cfg.sources.prometheus is None
    assert not cfg.sources.alertmanager.enabled
    assert not cfg.sources.otlp.enabled
    assert cfg.platform.kind == "none"


def test_prometheus_section_fills_defaults_and_keeps_custom_queries() -> None:
    cfg = config.parse("sources:\n  prometheus:\n    url: http://prom:9090\n"
                       "    queries: {rss_bytes: 'sum by (service) (x)'}\n", "t.yaml")
    assert cfg.sources.prometheus is not None
    assert cfg.sources.prometheus.queries == {"rss_bytes": "sum by (service) (x)"}
    full = config.parse("sources: {prometheus: {url: 'https://p'}}", "t.yaml")
    assert full.sources.prometheus is not None
    assert full.sources.prometheus.queries == config.DEFAULT_PROMQL


@pytest.mark.parametrize(("text", "field"), [
    ("sources: {prometheus: {url: 'prom:9090'}}", "sources.prometheus.url"),
    ("sources: {prometheus: {}}", "sources.prometheus.url"),
    ("sources: {prometheus: {url: 'http://p', rate_window: '5 minutes'}}",
     "sources.prometheus.rate_window"),
    ("sources: {alertmanager: {enabled: true, path: /x}}", "sources.alertmanager.path"),
    ("serve: {port: 70000}", "serve.port"),
    ("serve: {body_limit_bytes: 0}", "serve.body_limit_bytes"),
    ("platform: {kind: kubernetes}", "platform.kind"),
])
def test_bad_settings_name_the_field(text: str, field: str) -> None:
    with pytest.raises(errors.ConfigError) as err:
        config.parse(text, "t.yaml")
    assert err.value.field == field


def test_observe_only_platform_refuses_every_change() -> None:
    platform = serve.ObservedPlatform({"auth": []})
    assert (platform.targets(), platform.replicas("auth"), platform.changes()) == ([], [], [])
    with pytest.raises(errors.PlatformError, match="observe-only") as err:
        asyncio.run(platform.deploy("auth", "1.2.0", who="t", why="t"))
    assert err.value.retryable is False
    policy = serve.load_policy(config.Config())
    assert policy.mode("auth") == model.Mode.OBSERVE


def test_taken_port_is_a_clear_error(tmp_path: Path, selfheal_cmd: list[str]) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        cfg = tmp_path / "c.yaml"
        cfg.write_text(f"workdir: {tmp_path / 'w'}\nserve: {{port: {port}}}\n")
        r = subprocess.run([*selfheal_cmd, "serve", "--config", str(cfg)],
                           capture_output=True, text=True, timeout=30, check=False)
    assert r.returncode == 2, r.stderr
    assert f"cannot listen on 127.0.0.1:{port}" in r.stderr
    assert "Traceback" not in r.stderr


def test_unknown_key_is_exit_2(tmp_path: Path, selfheal_cmd: list[str]) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text("serve: {listen: 8080}\n")
    r = subprocess.run([*selfheal_cmd, "serve", "--config", str(cfg)], capture_output=True,
                       text=True, timeout=30, check=False)
    assert r.returncode == 2
    assert "serve.listen" in r.stderr



def test_only_an_opened_incident_counts_as_one_in_the_metrics() -> None:
    # the detect stage also says what the detectors did at a start (restored, warmed, learned
    # history) and when they drop series: none of that is an incident
    metrics = serve.ServeMetrics()
    for message in ("detectors restored from their saved state (3 series, last tick 5 s ago)",
                    "learned 4310 ticks of history (2 series, the first 72.0 h ago) in 3.1 s",
                    "2 series with no value for 14 days dropped from the detectors"):
        metrics.observe(controller_mod.Event(1.0, "detect", message))
    metrics.observe(controller_mod.Event(2.0, "detect", "auth: error_ratio", "inc-1"))
    opened = metrics.registry.get_sample_value("selfheal_incidents_total", {"event": "opened"})
    assert opened == 1.0
