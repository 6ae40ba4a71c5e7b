"""The `demo --prometheus` stack on its own: real Prometheus and Alertmanager started from the
platform's targets, the auth memory rule firing, the alert delivered to the demo's webhook, and
both servers stopped by PID with nothing left behind."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
import sources_servers as srv

from selfheal import errors, ports
from selfheal.cli import serve_cmd
from selfheal.engine import prometheus_demo

pytestmark = pytest.mark.timeout(120)


def _leak(e: srv.Exporter, stop: threading.Event, bytes_per_s: float) -> None:
    rss = 40_000_000.0
    while not stop.is_set():
        rss += bytes_per_s / 10
        e.rss.set(rss)
        stop.wait(0.1)


def test_stack_scrapes_the_targets_and_delivers_the_memory_alert(
        tmp_path: Path, exporter: Callable[[], srv.Exporter]) -> None:
    srv.binary(srv.PROMETHEUS, "prometheus")
    srv.binary(srv.ALERTMANAGER, "prometheus-alertmanager")
    auth, cart = exporter(), exporter()
    cart.rss.set(30_000_000)
    targets = [ports.Target("auth", "auth-0", "1.2.1", f"http://{auth.url}/metrics"),
               ports.Target("cart", "cart-0", "1.0.4", f"http://{cart.url}/metrics")]
    current = targets[1:]  # auth's replica appears later, as after a deploy
    stack = prometheus_demo.Stack(tmp_path, lambda: current,
                                  prometheus_demo.Options(make_app=serve_cmd.make_app,
                                                          alert_for="2s"))
    stop = threading.Event()
    leaker = threading.Thread(target=_leak, args=(auth, stop, 1_500_000.0), daemon=True)

    async def scenario() -> list[str]:
        got: list[str] = []
        await stack.start()
        try:
            nonlocal current
            current = targets
            await stack.targets.collect(time.time())  # the tick rewrites file_sd
            leaker.start()
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and not got:
                got = [f"{a.name}:{a.service}:{a.status}"
                       for a in (await stack.alerts.collect(time.time())).alerts]
                await asyncio.sleep(0.5)
            async with httpx.AsyncClient() as http:
                r = await http.get(stack.prometheus_url + "/api/v1/targets")
            scraped = {(t["labels"]["service"], t["labels"]["replica"],
                        t["labels"]["version"]) for t in r.json()["data"]["activeTargets"]}
            assert scraped == {("auth", "auth-0", "1.2.1"), ("cart", "cart-0", "1.0.4")}
        finally:
            stop.set()
            await stack.stop()
        return got

    got = asyncio.run(scenario())
    assert got == [f"{prometheus_demo.ALERT}:auth:firing"]
    assert all(p.poll() is not None for p in stack.procs)
    assert len(stack.procs) == 2


def test_missing_binaries_give_a_clear_message(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(errors.ConfigError, match="apt-get install -y prometheus "
                       "prometheus-alertmanager"):
        prometheus_demo.find_binaries()


def test_next_run_reaps_servers_a_killed_run_left(tmp_path: Path) -> None:
    srv.binary(srv.PROMETHEUS, "prometheus")
    srv.binary(srv.ALERTMANAGER, "prometheus-alertmanager")
    options = prometheus_demo.Options(make_app=serve_cmd.make_app)
    killed_run = prometheus_demo.Stack(tmp_path, list, options)

    async def start_and_vanish() -> None:
        await killed_run.start()  # ... and never stop: as if SIGKILLed

    asyncio.run(start_and_vanish())
    left = [p.pid for p in killed_run.procs]
    assert all(p.poll() is None for p in killed_run.procs)
    assert set(json.loads(killed_run.pidfile.read_text())) == set(left)
    next_run = prometheus_demo.Stack(tmp_path, list, options)
    assert sorted(next_run.reap_leftovers()) == sorted(left)
    for p in killed_run.procs:
        p.wait(timeout=10)
    assert not next_run.pidfile.exists()
    assert next_run.reap_leftovers() == []
    killed_run.kill_now()  # nothing left to kill; must not raise
