"""The local platform's side of the shop's state folder: config revisions, a local CA, secrets.

The services read their operational state from files under `<workdir>/state` (see
`selfheal.shop.state`, the reading side; this module keeps its own copy of the layout because
the shop is a separate program that imports nothing of selfheal). The platform's remediation
actions write here: a config revision, a certificate issued by a local CA (`cryptography`), a
rotated credential, a region choice. Every write is atomic.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import secrets
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


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


# -- certificates: a local CA --------------------------------------------------------------

def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn),
                      x509.NameAttribute(NameOID.ORGANIZATION_NAME, "selfheal demo shop")])


def ensure_ca(layout: Layout, now: float) -> None:
    """Create the local certificate authority once (ten years, EC P-256)."""
    if layout.ca_cert.exists() and layout.ca_key.exists():
        return
    key = ec.generate_private_key(ec.SECP256R1())
    start = dt.datetime.fromtimestamp(now - 60, dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(_name("selfheal local CA"))
            .issuer_name(_name("selfheal local CA")).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(start)
            .not_valid_after(start + dt.timedelta(days=3650))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .sign(key, hashes.SHA256()))
    write_atomic(layout.ca_key, key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    write_atomic(layout.ca_cert, cert.public_bytes(serialization.Encoding.PEM))


def issue_cert(layout: Layout, service: str, now: float, valid_s: float) -> x509.Certificate:
    """Issue (and install) a certificate for `service` signed by the local CA."""
    ensure_ca(layout, now)
    ca_key = serialization.load_pem_private_key(layout.ca_key.read_bytes(), password=None)
    if not isinstance(ca_key, ec.EllipticCurvePrivateKey):
        raise TypeError("the local CA key is not an EC key")
    ca = x509.load_pem_x509_certificate(layout.ca_cert.read_bytes())
    key = ec.generate_private_key(ec.SECP256R1())
    start = dt.datetime.fromtimestamp(now - 60, dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(_name(service)).issuer_name(ca.subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(start)
            .not_valid_after(dt.datetime.fromtimestamp(now + valid_s, dt.UTC))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(service)]),
                           critical=False)
            .sign(ca_key, hashes.SHA256()))
    write_atomic(layout.cert_key(service), key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    write_atomic(layout.cert(service), cert.public_bytes(serialization.Encoding.PEM))
    return cert


def verify_cert(layout: Layout, service: str) -> bool:
    """True when the installed certificate was signed by the local CA."""
    ca = x509.load_pem_x509_certificate(layout.ca_cert.read_bytes())
    cert = x509.load_pem_x509_certificate(layout.cert(service).read_bytes())
    try:
        cert.verify_directly_issued_by(ca)
    except (ValueError, TypeError):
        return False
    return True


# -- credentials: a local secret store -----------------------------------------------------

def issue_secret(layout: Layout, name: str, now: float, valid_s: float) -> dict[str, Any]:
    """Write a fresh credential `name` valid for `valid_s` seconds; returns it."""
    old = read_json(layout.secret(name)) or {}
    version = int(old.get("version", 0)) + 1
    value = {"version": version, "value": secrets.token_hex(16), "issued_at": now,
             "expires_at": now + valid_s}
    write_json(layout.secret(name), value)
    return value


def cert_info(path: Path) -> tuple[int, float] | None:
    """(serial, not-after as Unix seconds) of the certificate at `path`, None if absent."""
    try:
        cert = x509.load_pem_x509_certificate(path.read_bytes())
    except FileNotFoundError:
        return None
    return cert.serial_number, cert.not_valid_after_utc.timestamp()
