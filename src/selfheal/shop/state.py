"""The shop's operational state on disk: config revisions, certificates, secrets, regions, faults.

A real service reads its config file, its TLS certificate and its database credential from
somewhere an operator (or selfheal) can change them; here that somewhere is one folder,
`<workdir>/state`. The local platform writes it (its remediation actions, with its own copy of
this layout in `selfheal.platforms.local.state`: the layout is the contract between the two
programs), the shop's replicas read it (`selfheal.shop.service`), and the scenario suite
injects faults into it. Kept free of selfheal
imports, like the rest of the shop. Every write is atomic (a temp file and a rename), so a
replica never reads half a file.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from cryptography import x509

DEFAULT_CONFIG: dict[str, Any] = {"pool_size": 0, "log_level": "INFO"}
"""pool_size 0 keeps the version's own pool; a negative or zero-when-set value is invalid."""


class Layout:
    """Where each kind of state lives under one root."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def config(self, service: str) -> Path:
        return self.root / "config" / f"{service}.json"

    def config_revision(self, service: str, revision: str) -> Path:
        return self.root / "config" / service / f"{revision}.json"

    def cert(self, service: str) -> Path:
        return self.root / "tls" / f"{service}.pem"

    def cert_key(self, service: str) -> Path:
        return self.root / "tls" / f"{service}.key"

    @property
    def ca_cert(self) -> Path:
        return self.root / "tls" / "ca.pem"

    @property
    def ca_key(self) -> Path:
        return self.root / "tls" / "ca.key"

    def secret(self, name: str) -> Path:
        return self.root / "secrets" / f"{name}.json"

    def regions(self, service: str) -> Path:
        return self.root / "regions" / f"{service}.json"

    def faults(self, service: str) -> Path:
        return self.root / "faults" / f"{service}.json"

    def snapshot(self, snapshot_id: str) -> Path:
        return self.root / "snapshots" / f"{snapshot_id}.json"


def write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def write_json(path: Path, value: Any) -> None:
    write_atomic(path, json.dumps(value, sort_keys=True).encode())


def read_json(path: Path) -> Any:
    """The file's JSON value, or None when it does not exist."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None


def config_problem(config: dict[str, Any]) -> str | None:
    """Why a service config is invalid (the replica refuses to work with it), or None."""
    pool = config.get("pool_size", 0)
    if not isinstance(pool, int) or pool < 0:
        return f"pool_size must be a non-negative integer, got {pool!r}"
    if config.get("log_level", "INFO") not in ("DEBUG", "INFO", "WARNING", "ERROR"):
        return f"log_level {config.get('log_level')!r} is not a level"
    return None


def cert_info(path: Path) -> tuple[int, float] | None:
    """(serial, not-after as Unix seconds) of the certificate at `path`, None if absent."""
    try:
        cert = x509.load_pem_x509_certificate(path.read_bytes())
    except FileNotFoundError:
        return None
    return cert.serial_number, cert.not_valid_after_utc.timestamp()


SECRETS: dict[str, str] = {"cart": "cart-db"}
"""Which service consumes which credential (its database login)."""

CERTS: tuple[str, ...] = ("auth",)
"""Services that serve TLS with a certificate of the local CA."""
