"""The SQL store: telemetry, changes, incidents and the hash-chained ledger.

SQLAlchemy Core over SQLite by default (a file under `.selfheal/`) and PostgreSQL at scale: the
schema uses only portable types. The ledger append is one transaction that reads the chain's
head and writes the next entry, so an entry is durable before the caller goes on to do what it
describes (write-ahead).
"""

from __future__ import annotations

import fcntl
import json
import os
import threading
import time
import uuid
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event

from selfheal import errors, ledger, model

metadata = sa.MetaData()

samples = sa.Table(
    "samples", metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True,
              autoincrement=True),
    sa.Column("t", sa.Float, nullable=False),
    sa.Column("service", sa.String(128), nullable=False),
    sa.Column("metric", sa.String(128), nullable=False),
    sa.Column("replica", sa.String(128), nullable=False, default=""),
    sa.Column("version", sa.String(64), nullable=False, default=""),
    sa.Column("value", sa.Float, nullable=True),
    sa.Index("ix_samples_series", "service", "metric", "t"),
)

logs = sa.Table(
    "logs", metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True,
              autoincrement=True),
    sa.Column("t", sa.Float, nullable=False),
    sa.Column("service", sa.String(128), nullable=False),
    sa.Column("replica", sa.String(128), nullable=False, default=""),
    sa.Column("level", sa.String(16), nullable=False),
    sa.Column("message", sa.Text, nullable=False),
    sa.Index("ix_logs_t", "t"),
)

changes = sa.Table(
    "changes", metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("t", sa.Float, nullable=False),
    sa.Column("service", sa.String(128), nullable=False),
    sa.Column("kind", sa.String(32), nullable=False),
    sa.Column("who", sa.String(128), nullable=False),
    sa.Column("what", sa.Text, nullable=False),
    sa.Column("from_version", sa.String(64), nullable=False, default=""),
    sa.Column("to_version", sa.String(64), nullable=False, default=""),
    sa.Index("ix_changes_t", "t"),
)

incidents = sa.Table(
    "incidents", metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("service", sa.String(128), nullable=False),
    sa.Column("opened_at", sa.Float, nullable=False),
    sa.Column("updated_at", sa.Float, nullable=False),
    sa.Column("state", sa.String(32), nullable=False),
    sa.Column("title", sa.Text, nullable=False),
    sa.Column("detail", sa.Text, nullable=False),
)

ledger_table = sa.Table(
    "ledger", metadata,
    sa.Column("seq", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True,
              autoincrement=False),
    sa.Column("ts", sa.Float, nullable=False),
    sa.Column("incident_id", sa.String(64), nullable=False),
    sa.Column("kind", sa.String(64), nullable=False),
    sa.Column("payload", sa.Text, nullable=False),
    sa.Column("prev_hash", sa.String(64), nullable=False),
    sa.Column("hash", sa.String(64), nullable=False),
    # What a starting controller reads back (drains, say) is a handful of kinds among
    # every entry ever written: found by kind without a scan of the whole chain.
    sa.Index("ix_ledger_kind", "kind", "seq"),
    # One incident's story (`show`, replay, the workspace, the postmortem) is a few dozen
    # entries among every incident's: found by incident, not by a scan of the chain.
    sa.Index("ix_ledger_incident", "incident_id", "seq"),
)


approvals = sa.Table(
    "approvals", metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("incident_id", sa.String(64), nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("expires_at", sa.Float, nullable=False),
    sa.Column("role", sa.String(64), nullable=False),
    sa.Column("state", sa.String(16), nullable=False),  # pending|approved|rejected|expired
    sa.Column("request", sa.Text, nullable=False),  # plan, diagnosis summary, risk, inverse
    sa.Column("decided_by", sa.String(128), nullable=False, default=""),
    sa.Column("reason", sa.Text, nullable=False, default=""),
    sa.Column("decided_at", sa.Float, nullable=True),
)

trust_table = sa.Table(
    "trust", metadata,
    sa.Column("agent", sa.String(128), primary_key=True),
    sa.Column("action", sa.String(64), primary_key=True),
    sa.Column("successes", sa.Integer, nullable=False),
    sa.Column("failures", sa.Integer, nullable=False),
    sa.Column("rejections", sa.Integer, nullable=False),
    sa.Column("since_bad", sa.Integer, nullable=False),
    sa.Column("demoted", sa.Boolean, nullable=False),
)

revocations = sa.Table(
    "revocations", metadata,
    sa.Column("subject", sa.String(128), primary_key=True),  # an agent or an action type
    sa.Column("at", sa.Float, nullable=False),
    sa.Column("by", sa.String(128), nullable=False),
    sa.Column("reason", sa.Text, nullable=False),
)


saved_state = sa.Table(
    "saved_state", metadata,
    sa.Column("name", sa.String(64), primary_key=True),  # "detector"
    sa.Column("t", sa.Float, nullable=False),
    sa.Column("data", sa.LargeBinary, nullable=False),
)


def sqlite_url(path: Path) -> str:
    return f"sqlite:///{path}"


class SqlStore:
    """Implements `ports.Store` over any SQLAlchemy URL (SQLite or PostgreSQL)."""

    def __init__(self, url: str, *, create: bool = True) -> None:
        self.url = url
        # A file beside a SQLite database remembers the chain's head, so that removing the
        # newest entries (which leaves a valid shorter chain) is detected too.
        self.anchor: Path | None = None
        if url.startswith("sqlite:///") and url != "sqlite:///:memory:":
            self.anchor = Path(url.removeprefix("sqlite:///") + ".head")
        try:
            self.engine = sa.create_engine(url, future=True)
        except (sa.exc.ArgumentError, ImportError) as exc:
            raise errors.ConfigError(url, "storage.url", f"cannot use this database: {exc}") \
                from exc
        if self.engine.dialect.name == "sqlite":
            event.listen(self.engine, "connect", _sqlite_pragmas)
        self._ledger_lock = threading.Lock()
        try:
            if create:
                metadata.create_all(self.engine)
                _add_missing_indexes(self.engine)
        except sa.exc.OperationalError as exc:
            raise errors.ConfigError(url, "storage.url", f"cannot open the database: {exc}") \
                from exc

    def close(self) -> None:
        self.engine.dispose()

    # -- telemetry -------------------------------------------------------------------------

    def add_samples(self, batch: Sequence[model.Sample]) -> None:
        if not batch:
            return
        rows = [{"t": s.t, "service": s.service, "metric": s.metric, "replica": s.replica,
                 "version": s.version, "value": s.value} for s in batch]
        with self.engine.begin() as conn:
            conn.execute(samples.insert(), rows)

    def query(self, service: str, metric: str, start: float, end: float,
              replica: str = "") -> list[model.Sample]:
        stmt = (sa.select(samples.c.t, samples.c.value, samples.c.replica, samples.c.version)
                .where(samples.c.service == service, samples.c.metric == metric,
                       samples.c.replica == replica, samples.c.t >= start, samples.c.t <= end)
                .order_by(samples.c.t))
        with self.engine.connect() as conn:
            # Row.t is SQLAlchemy's tuple view, so columns are unpacked by position.
            return [model.Sample(t=t, service=service, metric=metric,
                                 value=float("nan") if value is None else value,
                                 replica=rep, version=ver)
                    for t, value, rep, ver in conn.execute(stmt)]

    def series_names(self, start: float, end: float) -> list[tuple[str, str]]:
        """Service-level (service, metric) pairs with data in the window."""
        stmt = (sa.select(samples.c.service, samples.c.metric).distinct()
                .where(samples.c.replica == "", samples.c.t >= start, samples.c.t <= end))
        with self.engine.connect() as conn:
            return sorted((r.service, r.metric) for r in conn.execute(stmt))

    def add_logs(self, records: Sequence[model.LogRecord]) -> None:
        if not records:
            return
        rows = [{"t": r.t, "service": r.service, "replica": r.replica, "level": r.level,
                 "message": r.message} for r in records]
        with self.engine.begin() as conn:
            conn.execute(logs.insert(), rows)

    def logs(self, service: str | None, start: float, end: float) -> list[model.LogRecord]:
        stmt = sa.select(logs).where(logs.c.t >= start, logs.c.t <= end).order_by(logs.c.t)
        if service is not None:
            stmt = stmt.where(logs.c.service == service)
        with self.engine.connect() as conn:
            return [model.LogRecord(t=m["t"], service=m["service"], level=m["level"],
                                    message=m["message"], replica=m["replica"])
                    for m in conn.execute(stmt).mappings()]

    def add_change(self, change: model.Change) -> None:
        with self.engine.begin() as conn:
            conn.execute(changes.insert(), [{
                "id": change.id, "t": change.t, "service": change.service, "kind": change.kind,
                "who": change.who, "what": change.what, "from_version": change.from_version,
                "to_version": change.to_version}])

    def changes_between(self, start: float, end: float) -> list[model.Change]:
        stmt = sa.select(changes).where(changes.c.t >= start, changes.c.t <= end) \
            .order_by(changes.c.t)
        with self.engine.connect() as conn:
            return [model.Change(id=model.ChangeId(m["id"]), t=m["t"], service=m["service"],
                                 kind=m["kind"], who=m["who"], what=m["what"],
                                 from_version=m["from_version"], to_version=m["to_version"])
                    for m in conn.execute(stmt).mappings()]

    # -- incidents -------------------------------------------------------------------------

    def save_incident(self, incident: model.Incident, detail: dict[str, Any],
                      now: float | None = None) -> None:
        row = {"id": incident.id, "service": incident.service, "opened_at": incident.opened_at,
               "updated_at": incident.opened_at if now is None else now,
               "state": incident.state.value, "title": incident.title,
               "detail": json.dumps(model.to_jsonable(detail), sort_keys=True)}
        with self.engine.begin() as conn:
            updated = conn.execute(incidents.update().where(incidents.c.id == incident.id)
                                   .values(**row)).rowcount
            if not updated:
                conn.execute(incidents.insert(), [row])

    def incidents(self) -> list[dict[str, Any]]:
        stmt = sa.select(incidents).order_by(incidents.c.opened_at)
        with self.engine.connect() as conn:
            return [_incident_row(r) for r in conn.execute(stmt)]

    def incident(self, incident_id: str) -> dict[str, Any] | None:
        stmt = sa.select(incidents).where(incidents.c.id.startswith(incident_id, autoescape=True))
        with self.engine.connect() as conn:
            rows = list(conn.execute(stmt))
        return _incident_row(rows[0]) if len(rows) == 1 else None

    # -- approvals, trust, revocations -----------------------------------------------------

    def add_approval(self, approval_id: str, incident_id: str, created_at: float,
                     expires_at: float, role: str, request: dict[str, Any]) -> None:
        with self.engine.begin() as conn:
            conn.execute(approvals.insert(), [{
                "id": approval_id, "incident_id": incident_id, "created_at": created_at,
                "expires_at": expires_at, "role": role, "state": "pending",
                "request": json.dumps(model.to_jsonable(request), sort_keys=True),
                "decided_by": "", "reason": ""}])

    def approval(self, approval_id: str) -> dict[str, Any] | None:
        stmt = sa.select(approvals).where(approvals.c.id.startswith(approval_id,
                                                                     autoescape=True))
        with self.engine.connect() as conn:
            rows = [dict(m) for m in conn.execute(stmt).mappings()]
        if len(rows) != 1:
            return None
        rows[0]["request"] = json.loads(rows[0]["request"])
        return rows[0]

    def approvals(self, state: str | None = None) -> list[dict[str, Any]]:
        stmt = sa.select(approvals).order_by(approvals.c.created_at)
        if state is not None:
            stmt = stmt.where(approvals.c.state == state)
        with self.engine.connect() as conn:
            out = [dict(m) for m in conn.execute(stmt).mappings()]
        for row in out:
            row["request"] = json.loads(row["request"])
        return out

    def decide_approval(self, approval_id: str, state: str, by: str, reason: str,
                        at: float) -> bool:
        """Move a pending approval to `state`; False when it was no longer pending."""
        with self.engine.begin() as conn:
            n = conn.execute(approvals.update()
                             .where(approvals.c.id == approval_id,
                                    approvals.c.state == "pending")
                             .values(state=state, decided_by=by, reason=reason,
                                     decided_at=at)).rowcount
        return bool(n)

    def trust_rows(self) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            return [dict(m) for m in conn.execute(
                sa.select(trust_table).order_by(trust_table.c.agent, trust_table.c.action)
            ).mappings()]

    def put_trust(self, row: dict[str, Any]) -> None:
        with self.engine.begin() as conn:
            key = (trust_table.c.agent == row["agent"]) & (trust_table.c.action == row["action"])
            if not conn.execute(trust_table.update().where(key).values(**row)).rowcount:
                conn.execute(trust_table.insert(), [row])

    def revoke(self, subject: str, by: str, reason: str, at: float) -> bool:
        """Record a revocation and its ledger entry in one transaction; False if already."""
        if subject in self.revoked():
            return False
        self._append(at, "", "revocation", {"subject": subject, "by": by, "reason": reason},
                     also=lambda conn: conn.execute(revocations.insert(), [{
                         "subject": subject, "at": at, "by": by, "reason": reason}]))
        return True

    def restore(self, subject: str, by: str, reason: str, at: float) -> bool:
        if subject not in self.revoked():
            return False
        self._append(at, "", "restoration", {"subject": subject, "by": by, "reason": reason},
                     also=lambda conn: conn.execute(
                         revocations.delete().where(revocations.c.subject == subject)))
        return True

    def revoked(self) -> dict[str, dict[str, Any]]:
        with self.engine.connect() as conn:
            return {m["subject"]: dict(m) for m in conn.execute(sa.select(revocations)).mappings()}

    # -- what the detectors learned ----------------------------------------------------------

    def save_state(self, name: str, t: float, data: bytes) -> None:
        """Replace the saved state `name` in one transaction: a crash or a failed write
        leaves the old one (`errors.DataUnavailable` says why it failed)."""
        try:
            with self.engine.begin() as conn:
                conn.execute(saved_state.delete().where(saved_state.c.name == name))
                conn.execute(saved_state.insert(), {"name": name, "t": t, "data": data})
        except sa.exc.OperationalError as exc:
            raise errors.DataUnavailable(f"cannot write the saved state {name}: {exc}") \
                from exc

    def load_state(self, name: str) -> tuple[float, bytes] | None:
        """(when it was saved, the bytes) of the saved state `name`, if any."""
        stmt = sa.select(saved_state.c.t, saved_state.c.data).where(saved_state.c.name == name)
        with self.engine.connect() as conn:
            row = conn.execute(stmt).first()
        return None if row is None else (float(row[0]), bytes(row[1]))

    # -- the ledger ------------------------------------------------------------------------

    def append_ledger(self, ts: float, incident_id: str, kind: str,
                      payload: dict[str, Any]) -> model.LedgerEntry:
        """Append one entry; durable (committed) when this returns."""
        return self._append(ts, incident_id, kind, payload)

    def _append(self, ts: float, incident_id: str, kind: str, payload: dict[str, Any],
                also: Callable[[sa.Connection], object] | None = None) -> model.LedgerEntry:
        """Append an entry, and run `also` in the same transaction (all or nothing).

        Another process (the CLI, a second worker) may append at the same moment: the one
        that loses the race on the next sequence number retries on the new head.
        """
        body = ledger.canonical(model.to_jsonable(payload))
        for attempt in range(20):
            try:
                with self._ledger_lock, self.engine.begin() as conn:
                    if self.engine.dialect.name == "postgresql":
                        conn.execute(sa.text("LOCK TABLE ledger IN EXCLUSIVE MODE"))
                    head = conn.execute(sa.select(ledger_table.c.seq, ledger_table.c.hash)
                                        .order_by(ledger_table.c.seq.desc()).limit(1)).first()
                    seq = 1 if head is None else head.seq + 1
                    prev = ledger.GENESIS if head is None else head.hash
                    digest = ledger.entry_hash(prev, seq, ts, incident_id, kind, body)
                    conn.execute(ledger_table.insert(), [{
                        "seq": seq, "ts": ts, "incident_id": incident_id, "kind": kind,
                        "payload": body, "prev_hash": prev, "hash": digest}])
                    if also is not None:
                        also(conn)
                break
            except sa.exc.IntegrityError:
                if attempt == 19:
                    raise
                time.sleep(0.01 * (attempt + 1))
        if self.anchor is not None:  # after the commit: the anchor never runs ahead
            self._advance_anchor(seq, digest)
        return model.LedgerEntry(seq=seq, ts=ts, incident_id=incident_id, kind=kind,
                                 payload=json.loads(body), prev_hash=prev, hash=digest)

    def _advance_anchor(self, seq: int, digest: str) -> None:
        """Move the remembered head forward, never back: another process (the CLI, the
        workspace) may have appended a later entry and written its anchor first."""
        assert self.anchor is not None
        with open(self.anchor.with_suffix(".head.lock"), "a", encoding="utf-8") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                current = int(self.anchor.read_text(encoding="utf-8").split()[0])
            except (OSError, ValueError, IndexError):
                current = 0
            if seq > current:
                tmp = self.anchor.with_suffix(f".head.{uuid.uuid4().hex}.tmp")
                tmp.write_text(f"{seq} {digest}\n", encoding="utf-8")
                os.replace(tmp, self.anchor)

    def verify_ledger(self) -> int:
        """Verify the chain and its remembered head; raise `LedgerCorrupt` at the first problem."""
        count = ledger.verify(self.ledger_rows())
        if self.anchor is not None and self.anchor.exists():
            seq_text, _, digest = self.anchor.read_text(encoding="utf-8").strip().partition(" ")
            head = next(iter(reversed(list(self.ledger_rows()))), None)
            if head is None or str(head.seq) != seq_text or head.hash != digest:
                raise errors.LedgerCorrupt(
                    count + 1 if head is None or head.seq < int(seq_text) else int(seq_text),
                    f"the ledger should end at entry {seq_text}; newer entries were removed "
                    "or the head was rewritten")
        return count

    def ledger_rows(self) -> Iterator[ledger.RawEntry]:
        """Entries exactly as stored (payload text unparsed), in physical seq order."""
        stmt = sa.select(ledger_table).order_by(ledger_table.c.seq)
        with self.engine.connect() as conn:
            for r in conn.execute(stmt):
                yield _raw_entry(r)

    def ledger_of_kinds(self, kinds: Collection[str]) -> list[ledger.RawEntry]:
        """The entries of these kinds only, exactly as stored, in ledger (seq) order; read
        through the kind index, not by walking the chain."""
        if not kinds:
            return []
        return self._ledger_where(ledger_table.c.kind.in_(sorted(set(kinds))))

    def _ledger_where(self, condition: sa.ColumnElement[bool]) -> list[ledger.RawEntry]:
        """The entries exactly as stored that meet `condition`, in seq order (through an
        index on the condition's column)."""
        stmt = sa.select(ledger_table).where(condition).order_by(ledger_table.c.seq)
        with self.engine.connect() as conn:
            return [_raw_entry(r) for r in conn.execute(stmt)]

    def ledger(self, incident_id: str | None = None) -> list[model.LedgerEntry]:
        """Every entry, or one incident's (through the incident index), in seq order, with
        payloads parsed (an unreadable one kept as text: `ledger verify` reports it)."""
        rows: Iterable[ledger.RawEntry] = (
            self.ledger_rows() if incident_id is None
            else self._ledger_where(ledger_table.c.incident_id == incident_id))
        out = []
        for r in rows:
            try:
                payload = json.loads(r.payload)
            except ValueError:
                payload = {"unreadable": r.payload}
            out.append(model.LedgerEntry(seq=r.seq, ts=r.ts, incident_id=r.incident_id,
                                         kind=r.kind, payload=payload, prev_hash=r.prev_hash,
                                         hash=r.hash))
        return out


def _raw_entry(r: Any) -> ledger.RawEntry:
    """A ledger row exactly as stored (payload text unparsed)."""
    return ledger.RawEntry(seq=r.seq, ts=r.ts, incident_id=r.incident_id, kind=r.kind,
                           payload=r.payload, prev_hash=r.prev_hash, hash=r.hash)


def _add_missing_indexes(engine: sa.Engine) -> None:
    """The schema migration path: `create_all` creates a missing table with its indexes but
    leaves a table that exists untouched, so an index added to an existing table (the
    ledger's kind and incident indexes) is created here on a database an older selfheal made.
    Idempotent, and safe when two processes open the same database at once (IF NOT EXISTS)."""
    inspector = sa.inspect(engine)
    missing = [index for table in metadata.sorted_tables for index in table.indexes
               if index.name not in {i["name"] for i in inspector.get_indexes(table.name)}]
    if not missing:
        return  # the usual case: no DDL, so no write lock on a database in use
    with engine.begin() as conn:
        for index in missing:
            conn.execute(sa.schema.CreateIndex(index, if_not_exists=True))


def _incident_row(r: Any) -> dict[str, Any]:
    return {"id": r.id, "service": r.service, "opened_at": r.opened_at,
            "updated_at": r.updated_at, "state": r.state, "title": r.title,
            "detail": json.loads(r.detail)}


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=FULL")  # the ledger must survive a crash of the machine
    cur.execute("PRAGMA busy_timeout=5000")
    cur.close()
