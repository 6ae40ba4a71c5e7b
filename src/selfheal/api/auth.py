"""Who is calling the workspace API, and may they: tokens, roles, CSRF, signed callbacks.

Used by the workspace routes (`selfheal.api.workspace`) as FastAPI dependencies. A caller
proves who they are with an API token, sent either as `Authorization: Bearer <token>` (scripts)
or in the `selfheal_session` cookie the login page sets (the browser). Tokens carry one role of
viewer < approver < admin. A cookie is sent by the browser on its own, so every state-changing
request that rides on the cookie must also echo the `selfheal_csrf` cookie in the
`X-CSRF-Token` header (double submit; both cookies are `SameSite=Strict`). Chat-style callbacks
carry no token: they are signed with HMAC-SHA256 over `v1:<timestamp>:<body>`, refused when
the timestamp is more than five minutes off or the signature was seen before.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import math
import secrets
import urllib.parse
from collections.abc import Callable
from typing import Any

import fastapi

from selfheal.store import tokens as tokens_mod

SESSION_COOKIE = "selfheal_session"
CSRF_COOKIE = "selfheal_csrf"
CSRF_HEADER = "X-CSRF-Token"
SIGNATURE_HEADER = "X-Selfheal-Signature"
TIMESTAMP_HEADER = "X-Selfheal-Timestamp"
CALLBACK_WINDOW_S = 300.0
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


@dataclasses.dataclass(frozen=True)
class Caller:
    """An authenticated caller: the token's identity and how it came (bearer or cookie)."""

    token: tokens_mod.Token
    via: str

    @property
    def name(self) -> str:
        return self.token.name

    def ledger_fields(self) -> dict[str, Any]:
        """What every ledger entry made through the API says about who made it."""
        return {"by": self.token.name, "via": f"api:{self.via}", "token": self.token.id,
                "token_role": self.token.role}


def _refuse(status: int, message: str, **headers: str) -> fastapi.HTTPException:
    return fastapi.HTTPException(status_code=status, detail=message, headers=headers or None)


def authenticate(request: fastapi.Request, store: tokens_mod.TokenStore) -> Caller:
    """The caller, or 401 (no or unknown token) / 403 (cookie without its CSRF echo)."""
    header = request.headers.get("authorization", "")
    if header:
        scheme, _, secret = header.partition(" ")
        if scheme.lower() != "bearer" or not secret.strip():
            raise _refuse(401, "malformed Authorization header: expected 'Bearer <token>'",
                          **{"WWW-Authenticate": "Bearer"})
        token = store.lookup(secret.strip())
        if token is None:
            raise _refuse(401, "unknown or revoked API token", **{"WWW-Authenticate": "Bearer"})
        return Caller(token, "token")
    cookie = request.cookies.get(SESSION_COOKIE, "")
    if not cookie:
        raise _refuse(401, "authentication required: send 'Authorization: Bearer <token>' "
                      "(create one with `selfheal token create`) or sign in at /login",
                      **{"WWW-Authenticate": "Bearer"})
    token = store.lookup(cookie)
    if token is None:
        raise _refuse(401, "your session's token is unknown or was revoked: sign in again at "
                      "/login", **{"WWW-Authenticate": "Bearer"})
    if request.method not in SAFE_METHODS:
        check_origin(request)
        check_csrf(request)
    return Caller(token, "session")


def check_origin(request: fastapi.Request) -> None:
    """A browser names the page that sent a request in `Origin`: it must be this server."""
    origin = request.headers.get("origin", "")
    if origin and urllib.parse.urlsplit(origin).netloc != request.headers.get("host", ""):
        raise _refuse(403, f"cross-origin request refused (Origin {origin})")


def check_csrf(request: fastapi.Request) -> None:
    cookie = request.cookies.get(CSRF_COOKIE, "")
    sent = request.headers.get(CSRF_HEADER, "")
    if not cookie or not sent or not hmac.compare_digest(cookie, sent):
        raise _refuse(403, f"CSRF check failed: a change made with the session cookie must "
                      f"echo the {CSRF_COOKIE} cookie in the {CSRF_HEADER} header")


def require(store: tokens_mod.TokenStore, role: str) -> Callable[[fastapi.Request], Caller]:
    """A dependency: the caller, who must hold at least `role` (403 otherwise)."""

    def dependency(request: fastapi.Request) -> Caller:
        caller = authenticate(request, store)
        if not caller.token.can(role):
            raise _refuse(403, f"this needs the role '{role}'; token '{caller.token.name}' "
                          f"({caller.token.id}) has the role '{caller.token.role}'")
        return caller

    return dependency


def new_csrf() -> str:
    return secrets.token_urlsafe(24)


def set_session(response: fastapi.Response, secret: str, secure: bool) -> None:
    """The session cookie (HttpOnly: scripts cannot read it) and the CSRF cookie (readable by
    the page's script, which echoes it)."""
    response.set_cookie(SESSION_COOKIE, secret, httponly=True, samesite="strict",
                        secure=secure, path="/", max_age=12 * 3600)
    response.set_cookie(CSRF_COOKIE, new_csrf(), httponly=False, samesite="strict",
                        secure=secure, path="/", max_age=12 * 3600)


def clear_session(response: fastapi.Response) -> None:
    response.delete_cookie(SESSION_COOKIE, path="/")
    response.delete_cookie(CSRF_COOKIE, path="/")


# -- signed callbacks ----------------------------------------------------------------------


def sign(secret: bytes, timestamp: str, body: bytes) -> str:
    """The signature a chat integration sends: `v1=` + hex HMAC-SHA256 of `v1:<ts>:<body>`."""
    mac = hmac.new(secret, b"v1:" + timestamp.encode("ascii") + b":" + body, hashlib.sha256)
    return "v1=" + mac.hexdigest()


def verify_callback(secret: bytes | None, headers: Any, body: bytes, now: float,
                    store: tokens_mod.TokenStore) -> None:
    """Accept a signed callback once: 401 when unsigned, badly signed, stale or replayed;
    404 when callbacks are not configured."""
    if secret is None:
        raise _refuse(404, "signed callbacks are off: create a secret with "
                      "`selfheal token callback-secret`")
    timestamp = headers.get(TIMESTAMP_HEADER, "")
    signature = headers.get(SIGNATURE_HEADER, "")
    if not timestamp or not signature:
        raise _refuse(401, f"unsigned callback: {TIMESTAMP_HEADER} and {SIGNATURE_HEADER} "
                      "headers are required")
    try:
        ts = float(timestamp)
    except ValueError:
        raise _refuse(401, f"{TIMESTAMP_HEADER} must be Unix seconds") from None
    if not math.isfinite(ts) or abs(now - ts) > CALLBACK_WINDOW_S:
        raise _refuse(401, f"stale callback: its timestamp is more than "
                      f"{CALLBACK_WINDOW_S:.0f} s from the server's clock")
    expected = sign(secret, timestamp, body)
    if not hmac.compare_digest(expected.encode("ascii"),
                               signature.encode("ascii", errors="replace")):
        raise _refuse(401, "bad callback signature")
    if not store.first_use(expected, now, keep_s=2 * CALLBACK_WINDOW_S):
        raise _refuse(401, "replayed callback: this signature was already accepted")
