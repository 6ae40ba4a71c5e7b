"""The HTTP face of selfheal: receivers for pushed signals, health and self-metrics.

Public surface: `create_app` and `Receivers` (see `selfheal.api.receivers`). The web workspace
adds its routes to the same application through `create_app(..., routers=[...])`.
"""

from selfheal.api.receivers import Receivers, create_app

__all__ = ["Receivers", "create_app"]
