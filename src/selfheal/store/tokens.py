"""API tokens and signed-callback replay marks, beside the SQL store.

Used by `selfheal.api.auth` (to authenticate a request) and `selfheal token` (to mint one).
A token is shown once when it is created; only its SHA-256 digest is stored, so a copy of the
database does not hand out access. The second table remembers the signatures of chat-style
callbacks already accepted, so a replayed request is refused even across a restart or by a
second worker on the same database. Kept out of `store/sql.py` on purpose: a separate module
with its own tables, created on first use over the store's engine.
"""

from __future__ import annotations

import dataclasses
import hashlib
import secrets
import uuid

import sqlalchemy as sa

from selfheal import errors
from selfheal.store import sql

ROLES = ("viewer", "approver", "admin")
"""Weakest first: each role can do what the ones before it can."""

PREFIX = "shk_"

metadata = sa.MetaData()

api_tokens = sa.Table(
    "api_tokens", metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("name", sa.String(128), nullable=False),
    sa.Column("role", sa.String(16), nullable=False),
    sa.Column("sha256", sa.String(64), nullable=False, unique=True),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("created_by", sa.String(128), nullable=False),
    sa.Column("revoked_at", sa.Float, nullable=True),
)

callback_seen = sa.Table(
    "callback_seen", metadata,
    sa.Column("signature", sa.String(128), primary_key=True),
    sa.Column("at", sa.Float, nullable=False),
)


@dataclasses.dataclass(frozen=True)
class Token:
    """Who a token speaks for; never the secret itself."""

    id: str
    name: str
    role: str
    created_at: float
    created_by: str
    revoked_at: float | None = None

    def can(self, role: str) -> bool:
        return ROLES.index(self.role) >= ROLES.index(role)


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


class TokenStore:
    """The token and callback tables over an existing `SqlStore`'s engine."""

    def __init__(self, store: sql.SqlStore) -> None:
        self.engine = store.engine
        metadata.create_all(self.engine)

    def create(self, name: str, role: str, by: str, now: float) -> tuple[Token, str]:
        """A new token and its secret (the only time the secret exists outside the caller)."""
        if role not in ROLES:
            raise errors.ConfigError(role, "--role", f"must be one of {', '.join(ROLES)}")
        name = name.strip()
        if not name or len(name) > 128:
            raise errors.ConfigError(name, "--name", "a name of 1 to 128 characters is required")
        token = Token(id=f"tok-{uuid.uuid4().hex[:10]}", name=name, role=role, created_at=now,
                      created_by=by)
        secret = PREFIX + secrets.token_urlsafe(32)
        with self.engine.begin() as conn:
            conn.execute(api_tokens.insert(), [{
                "id": token.id, "name": name, "role": role, "sha256": digest(secret),
                "created_at": now, "created_by": by, "revoked_at": None}])
        return token, secret

    def lookup(self, secret: str) -> Token | None:
        """The live token whose secret this is, or None (unknown or revoked)."""
        stmt = sa.select(api_tokens).where(api_tokens.c.sha256 == digest(secret),
                                           api_tokens.c.revoked_at.is_(None))
        with self.engine.connect() as conn:
            row = conn.execute(stmt).mappings().first()
        return None if row is None else _token(row)

    def list(self) -> list[Token]:
        with self.engine.connect() as conn:
            return [_token(r) for r in conn.execute(
                sa.select(api_tokens).order_by(api_tokens.c.created_at)).mappings()]

    def revoke(self, token_id: str, now: float) -> bool:
        with self.engine.begin() as conn:
            n = conn.execute(api_tokens.update().where(api_tokens.c.id == token_id,
                                                       api_tokens.c.revoked_at.is_(None))
                             .values(revoked_at=now)).rowcount
        return bool(n)

    def first_use(self, signature: str, now: float, keep_s: float) -> bool:
        """True the first time a callback signature is seen; False for a replay. Marks older
        than `keep_s` are forgotten (their timestamps are stale by then anyway)."""
        try:
            with self.engine.begin() as conn:
                conn.execute(callback_seen.delete().where(callback_seen.c.at < now - keep_s))
                conn.execute(callback_seen.insert(), [{"signature": signature, "at": now}])
        except sa.exc.IntegrityError:
            return False
        return True


def _token(row: sa.RowMapping) -> Token:
    return Token(id=row["id"], name=row["name"], role=row["role"],
                 created_at=row["created_at"], created_by=row["created_by"],
                 revoked_at=row["revoked_at"])
