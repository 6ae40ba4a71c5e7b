"""The web workspace's pages: plain HTML, CSS and JavaScript from `api/static/`, served as-is.

No build step and no CDN: the files ship in the package. The pages hold no data; their script
reads the JSON API with the session cookie and listens to `/api/events`. A strict Content
Security Policy allows only this origin's scripts and styles.
"""

from __future__ import annotations

from pathlib import Path

import fastapi
from fastapi import responses

STATIC = Path(__file__).resolve().parent / "static"
_TYPES = {".html": "text/html; charset=utf-8", ".css": "text/css; charset=utf-8",
          ".js": "text/javascript; charset=utf-8", ".svg": "image/svg+xml",
          ".png": "image/png"}
_CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'")
HEADERS = {"Content-Security-Policy": _CSP, "X-Content-Type-Options": "nosniff",
           "Referrer-Policy": "no-referrer", "Cache-Control": "no-cache"}


def _file(name: str) -> responses.Response:
    path = (STATIC / name).resolve()
    if path.parent != STATIC or path.suffix not in _TYPES or not path.is_file():
        raise fastapi.HTTPException(404, f"no static file {name!r}")
    return responses.Response(path.read_bytes(), media_type=_TYPES[path.suffix],
                              headers=HEADERS)


def router() -> fastapi.APIRouter:
    r = fastapi.APIRouter(include_in_schema=False)

    @r.get("/")
    def index() -> responses.Response:
        return _file("index.html")

    @r.get("/incidents/{incident_id}")
    def incident(incident_id: str) -> responses.Response:
        return _file("incident.html")

    @r.get("/login")
    def login() -> responses.Response:
        return _file("login.html")

    @r.get("/static/{name}")
    def static(name: str) -> responses.Response:
        return _file(name)

    return r
