"""The demo's load generator: steady, bounded traffic into the shop's entry service.

Run as its own OS process by the demo. It sends requests at a fixed rate from a few worker
threads to the router on loopback only, and stops by itself after `--duration` seconds (or on
SIGTERM), so it can never outlive the demo for long.
"""

from __future__ import annotations

import argparse
import signal
import threading
import time
import urllib.error
import urllib.request

from selfheal.shop import spec as shop_spec


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="Send steady traffic to the demo shop.")
    p.add_argument("--router", required=True, help="e.g. http://127.0.0.1:PORT")
    p.add_argument("--rps", type=float, default=20.0)
    p.add_argument("--duration", type=float, default=900.0)
    p.add_argument("--workers", type=int, default=4)
    p.add_argument("--paths", default=",".join(shop_spec.ENTRY_PATHS),
                   help="comma-separated entry paths to cycle through")
    a = p.parse_args(argv)
    paths = tuple(x for x in a.paths.split(",") if x)
    if not a.router.startswith(("http://127.", "http://localhost")):
        p.error("the load generator only targets loopback addresses")
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda s, f: stop.set())
    signal.signal(signal.SIGINT, lambda s, f: stop.set())
    end = time.monotonic() + a.duration
    interval = a.workers / a.rps

    def worker(offset: int) -> None:
        n = offset
        nxt = time.monotonic() + offset * interval / a.workers
        while not stop.is_set() and time.monotonic() < end:
            path = paths[n % len(paths)]
            n += 1
            try:
                with urllib.request.urlopen(
                    f"{a.router}/{shop_spec.ENTRY_SERVICE}{path}", timeout=10
                ) as r:
                    r.read()
            except (urllib.error.URLError, OSError):
                pass  # failures show up in the services' own metrics
            nxt += interval
            stop.wait(max(0.0, nxt - time.monotonic()))

    threads = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(a.workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
