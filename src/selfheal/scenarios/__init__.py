"""The healing scenario suite: real failures injected into the running demo shop.

`catalog` defines the ten scenarios of issue #8 and how each one breaks the shop; `slo` is the
outside probe that says whether the shop meets its objective; `reflex` is the baseline agent
(restart on a failed health check, scale on CPU) that selfheal is measured against. The bench
(`selfheal.bench.scenarios`) runs them. Part of the runtime layer: it starts the shop.
"""
