"""The local platform's side of the shop's state folder: config revisions, a local CA, secrets.

The services read their operational state from files under `<workdir>/state` (see
`selfheal.shop.state`, the reading side, which also defines the layout both sides use). The
platform's remediation actions write here: a config revision, a certificate issued by a local
CA (`cryptography`), a rotated credential, a region choice. Every write is atomic.
"""

from __future__ import annotations

import datetime as dt
import secrets
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from selfheal.shop import state as shop_state

# The layout and the atomic file helpers are the contract between the platform and the shop's
# replicas: one definition, in the shop's own module (the shop imports nothing of selfheal).
Layout = shop_state.Layout
write_atomic = shop_state.write_atomic
write_json = shop_state.write_json
read_json = shop_state.read_json
cert_info = shop_state.cert_info


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
