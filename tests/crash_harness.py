"""A selfheal agent on a detached local platform, for the crash test (run as a program).

`run`: start the shop detached (its processes outlive this process), deploy the bad auth and
let the controller heal it, with a failpoint that SIGKILLs this process at a chosen moment.
`recover`: adopt the shop a killed run left, let the controller resume, then stop everything
and print what happened as one JSON line.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path

from selfheal import config, policy
from selfheal.engine import controller, demo
from selfheal.platforms.local import platform as local
from selfheal.shop import spec
from selfheal.sources import logtail, scrape
from selfheal.store import sql


async def main(mode: str, workdir: Path, failpoint: str) -> int:
    cfg = config.Config(workdir=workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    store = sql.SqlStore(cfg.database_url())
    gate = policy.Gate(policy.parse(policy.default_text(), "<built-in>"))
    plat = local.LocalPlatform(workdir, demo.shop_services(2), time.time, detached=True)
    await plat.start()
    loadgen_file = workdir / "run" / "loadgen.json"
    if mode == "run":
        assert not plat.adopted
        lg = await plat.table.spawn(
            "loadgen", [sys.executable, "-m", "selfheal.shop.loadgen", "--router",
                        plat.router_url, "--rps", "20", "--duration", "400"],
            workdir / "run" / "logs" / "loadgen.out", workdir, detached=True)
        loadgen_file.write_text(json.dumps({"pid": lg.pid, "ticks": lg.ticks}))
    else:
        assert plat.adopted, "the platform of the killed run was not adopted"
        lg_state = json.loads(loadgen_file.read_text())
        plat.table.adopt("loadgen", lg_state["pid"], lg_state["ticks"],
                         workdir / "run" / "logs" / "loadgen.out")
    tailer = logtail.LogTailer(plat.rundir / "logs", lambda r: r.rsplit("-", 1)[0])
    tailer.skip_existing()
    feeds = [scrape.Scraper(plat.targets, window_s=cfg.scrape.window_s), tailer]
    ctl = controller.Controller(cfg, plat, store, gate, spec.dependencies(), time.time,
                                lambda e: print(f"{e.stage}: {e.message}", file=sys.stderr),
                                feeds=feeds, failpoint=failpoint)
    resumed = ctl.recover()
    runner = asyncio.create_task(ctl.run())
    if mode == "run":
        await asyncio.sleep(cfg.demo.baseline_s)
        await plat.deploy("auth", "1.2.1", who="ci-bot", why="bad release")
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        cases = list(ctl.cases.values())
        if cases and all(c.incident.state in controller.TERMINAL and "postmortem" in c.detail
                         for c in cases):
            break
        await asyncio.sleep(0.5)
    await ctl.stop()
    runner.cancel()
    changes = [{"kind": c.kind, "who": c.who, "to": c.to_version} for c in plat.changes()]
    replicas = [r.version for r in plat.replicas("auth")]
    await plat.stop()
    print(json.dumps({"resumed": resumed, "changes": changes, "auth_versions": replicas,
                      "states": {k: c.incident.state.value for k, c in ctl.cases.items()}}))
    return 0


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main(sys.argv[1], Path(sys.argv[2]),
                                      sys.argv[3] if len(sys.argv) > 3 else "")))
