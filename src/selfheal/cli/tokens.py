"""`selfheal token …`: API tokens for the workspace, and the secret of signed callbacks.

A token's secret is printed once, when it is created; the database keeps only its SHA-256.
The token's name is who the API says made a change (and the user the policy's roles are
checked against when it approves). Creating and revoking tokens is recorded in the ledger.
"""

from __future__ import annotations

import getpass
import os
import secrets
import time
from collections.abc import Callable
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from selfheal import errors
from selfheal.cli import records, render
from selfheal.store import sql
from selfheal.store import tokens as tokens_mod


def _open(db: records.DbOption, create: bool) -> sql.SqlStore:
    if create:
        db.parent.mkdir(parents=True, exist_ok=True)
        return sql.SqlStore(sql.sqlite_url(db))
    return records.open_store(db)


def create(role: Annotated[str, typer.Option("--role", help="viewer, approver or admin.")],
           name: Annotated[str, typer.Option("--name", help="Who the token speaks for (the "
                                             "user the policy's roles name).")],
           db: records.DbOption = records.DEFAULT_DB,
           json_out: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Create an API token and print it once (only its hash is stored)."""
    if role not in tokens_mod.ROLES:
        raise errors.ConfigError(role, "--role", f"must be one of {', '.join(tokens_mod.ROLES)}")
    store = _open(db, create=True)
    try:
        who = getpass.getuser()
        now = time.time()
        token, secret = tokens_mod.TokenStore(store).create(name, role, who, now)
        store.append_ledger(now, "", "token.created", {
            "token_id": token.id, "name": token.name, "role": token.role, "by": who,
            "via": "cli"})
    finally:
        store.close()
    if json_out:
        render.print_json({"id": token.id, "name": token.name, "role": token.role,
                           "secret": secret})
        return
    c = Console(highlight=False, soft_wrap=True)
    c.print(f"token {token.id} for {token.name} (role {token.role}) — shown once, keep it:")
    c.print(secret, markup=False)


def list_tokens(db: records.DbOption = records.DEFAULT_DB,
                json_out: Annotated[bool, typer.Option("--json")] = False) -> None:
    """List tokens (never their secrets)."""
    store = records.open_store(db)
    try:
        rows = tokens_mod.TokenStore(store).list()
    finally:
        store.close()
    if json_out:
        render.print_json([{"id": t.id, "name": t.name, "role": t.role,
                            "created_at": t.created_at, "created_by": t.created_by,
                            "revoked_at": t.revoked_at} for t in rows])
        return
    table = Table("id", "name", "role", "created (UTC)", "by", "revoked")
    for t in rows:
        table.add_row(t.id, t.name, t.role, render.clock(t.created_at), t.created_by,
                      render.clock(t.revoked_at) if t.revoked_at else "")
    Console().print(table)


def revoke(token_id: Annotated[str, typer.Argument(help="The token's id (tok-…).")],
           db: records.DbOption = records.DEFAULT_DB) -> None:
    """Revoke a token at once."""
    store = records.open_store(db)
    try:
        now = time.time()
        if not tokens_mod.TokenStore(store).revoke(token_id, now):
            raise errors.SelfhealError(f"no live token {token_id!r}")
        store.append_ledger(now, "", "token.revoked", {"token_id": token_id,
                                                       "by": getpass.getuser(), "via": "cli"})
    finally:
        store.close()
    Console(highlight=False).print(f"{token_id}: revoked")


def callback_secret(db: records.DbOption = records.DEFAULT_DB) -> None:
    """Create the HMAC secret that signs chat-style approval callbacks, in
    `callback.secret` beside the database (mode 0600), and print it once."""
    path = db.parent / "callback.secret"
    path.parent.mkdir(parents=True, exist_ok=True)
    secret = secrets.token_hex(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(secret + "\n")
    c = Console(highlight=False, soft_wrap=True)
    c.print(f"callback secret written to {path} (restart selfheal serve to use it):")
    c.print(secret, markup=False)


def build(guard: Callable[[Callable[..., Any]], Callable[..., Any]]) -> typer.Typer:
    """The `token` sub-application, each command wrapped by the CLI's error guard."""
    app = typer.Typer(help="API tokens for the web workspace and its API.",
                      no_args_is_help=True)
    app.command("create")(guard(create))
    app.command("list")(guard(list_tokens))
    app.command("revoke")(guard(revoke))
    app.command("callback-secret")(guard(callback_secret))
    return app
