"""Throwaway development certificates: a CA and a server certificate signed by it, for
``make demo`` and the tests (the webhook's TLS, the dashboard's). Never for production:
the chart uses cert-manager, a generated Secret or your own certificates."""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path


class TLSConfigError(ValueError):
    """A certificate or key cannot be loaded or used."""


@dataclass(frozen=True)
class DevCertificates:
    ca_cert: Path
    ca_key: Path
    cert: Path
    key: Path


def write_dev_certificates(
    directory: Path,
    hosts: Sequence[str] = ("localhost", "127.0.0.1"),
    *,
    common_name: str = "modelgate-webhook",
    ca: DevCertificates | None = None,
    days: int = 30,
    client: bool = False,
) -> DevCertificates:
    """A self-signed dev CA (or the given one) and a server certificate for ``hosts`` (a
    client certificate with ``client=True``, e.g. the API server's for mutual TLS)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    directory.mkdir(parents=True, exist_ok=True)
    now = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)
    until = now + dt.timedelta(days=days)

    def pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
        return key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )

    if ca is None:
        ca_key = ec.generate_private_key(ec.SECP256R1())
        ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "modelgate dev CA")])
        ca_cert = (
            x509.CertificateBuilder()
            .subject_name(ca_name)
            .issuer_name(ca_name)
            .public_key(ca_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now)
            .not_valid_after(until)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(
                x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False
            )
            .sign(ca_key, hashes.SHA256())
        )
        ca = DevCertificates(
            ca_cert=directory / "ca.crt",
            ca_key=directory / "ca.key",
            cert=directory / "tls.crt",
            key=directory / "tls.key",
        )
        ca.ca_cert.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
        ca.ca_key.write_bytes(pem_key(ca_key))
        os.chmod(ca.ca_key, 0o600)
    loaded_ca_cert = x509.load_pem_x509_certificate(ca.ca_cert.read_bytes())
    loaded_ca_key = serialization.load_pem_private_key(ca.ca_key.read_bytes(), password=None)
    if not isinstance(loaded_ca_key, ec.EllipticCurvePrivateKey):
        raise TLSConfigError(f"{ca.ca_key} is not an EC private key")

    sans: list[x509.GeneralName] = []
    for host in hosts:
        try:
            sans.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            sans.append(x509.DNSName(host))
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
        .issuer_name(loaded_ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(until)
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.CLIENT_AUTH if client else ExtendedKeyUsageOID.SERVER_AUTH]
            ),
            critical=False,
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(loaded_ca_key.public_key()),
            critical=False,
        )
        .sign(loaded_ca_key, hashes.SHA256())
    )
    out = DevCertificates(
        ca_cert=ca.ca_cert,
        ca_key=ca.ca_key,
        cert=directory / "tls.crt",
        key=directory / "tls.key",
    )
    # write to temporary names and rename, so a reader never sees a half-written file
    for target, data in (
        (out.key, pem_key(key)),
        (out.cert, cert.public_bytes(serialization.Encoding.PEM)),
    ):
        tmp = target.with_name(f".{target.name}.tmp")
        tmp.write_bytes(data)
        os.chmod(tmp, 0o600)
        os.replace(tmp, target)
    return out
