"""Throw-away certificate chains for TLS tests: a root CA, an intermediate and a leaf for
``localhost``/``127.0.0.1``/``::1``, each with the lifetime the test asks for."""

from __future__ import annotations

import datetime as dt
import ipaddress
import ssl
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


@dataclass(frozen=True)
class CertChain:
    """Files of one chain under a directory.

    Attributes:
        ca_file: the root CA (PEM) — what a client trusts (``tls.ca_file``).
        chain_file: leaf + intermediate (PEM) — what the server presents.
        key_file: the leaf's private key (PEM).
        not_after: ``{"root", "intermediate", "leaf"}`` → Unix seconds.
    """

    ca_file: Path
    chain_file: Path
    key_file: Path
    not_after: dict[str, float]

    def server_context(self) -> ssl.SSLContext:
        """A TLS server context presenting the chain."""
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.chain_file, self.key_file)
        return context

    def client_context(self) -> ssl.SSLContext:
        """A verifying client context that trusts the root CA."""
        return ssl.create_default_context(cafile=str(self.ca_file))


def _cert(
    subject: str,
    key: ec.EllipticCurvePrivateKey,
    issuer: tuple[x509.Name, ec.EllipticCurvePrivateKey] | None,
    not_after: dt.datetime,
    ca: bool,
    names: tuple[str, ...] = (),
) -> x509.Certificate:
    now = dt.datetime.now(dt.UTC)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    issuer_name, issuer_key = issuer if issuer is not None else (name, key)
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if names:
        alt: list[x509.GeneralName] = []
        for entry in names:
            try:
                alt.append(x509.IPAddress(ipaddress.ip_address(entry)))
            except ValueError:
                alt.append(x509.DNSName(entry))
        builder = builder.add_extension(x509.SubjectAlternativeName(alt), critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


def make_chain(
    directory: Path,
    leaf_days: float = 90,
    intermediate_days: float = 365,
    names: tuple[str, ...] = ("localhost", "probe.test", "127.0.0.1", "::1"),
) -> CertChain:
    """Write root (10 years), intermediate and leaf (the given lifetimes, in days from now)."""
    directory.mkdir(parents=True, exist_ok=True)
    now = dt.datetime.now(dt.UTC)
    root_key = ec.generate_private_key(ec.SECP256R1())
    root = _cert("Test Root", root_key, None, now + dt.timedelta(days=3650), True)
    mid_key = ec.generate_private_key(ec.SECP256R1())
    mid_after = now + dt.timedelta(days=intermediate_days)
    mid = _cert("Test Intermediate", mid_key, (root.subject, root_key), mid_after, True)
    leaf_key = ec.generate_private_key(ec.SECP256R1())
    leaf_after = now + dt.timedelta(days=leaf_days)
    leaf = _cert("localhost", leaf_key, (mid.subject, mid_key), leaf_after, False, names)

    def pem(cert: x509.Certificate) -> bytes:
        return cert.public_bytes(serialization.Encoding.PEM)

    ca_file, chain_file, key_file = (
        directory / "ca.pem",
        directory / "chain.pem",
        directory / "key.pem",
    )
    ca_file.write_bytes(pem(root))
    chain_file.write_bytes(pem(leaf) + pem(mid))
    key_file.write_bytes(
        leaf_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return CertChain(
        ca_file,
        chain_file,
        key_file,
        {
            "root": root.not_valid_after_utc.timestamp(),
            "intermediate": mid.not_valid_after_utc.timestamp(),
            "leaf": leaf.not_valid_after_utc.timestamp(),
        },
    )
