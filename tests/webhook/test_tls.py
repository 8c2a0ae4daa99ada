"""CertReloader and the dev certificates, over real TLS sockets (no gunicorn)."""

from __future__ import annotations

import socket
import ssl
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.x509.oid import NameOID

from webhook.tls import CertReloader, DevCertificates, TLSConfigError, write_dev_certificates


def served_common_name(port: int, ca: Path) -> str:
    ctx = ssl.create_default_context(cafile=str(ca))
    with (
        socket.create_connection(("127.0.0.1", port), timeout=5) as raw,
        ctx.wrap_socket(raw, server_hostname="localhost") as tls,
    ):
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    cert = x509.load_der_x509_certificate(der)
    return str(cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value)


@pytest.fixture
def tls_server(tmp_path: Path) -> Iterator[tuple[int, CertReloader, DevCertificates]]:
    certs = write_dev_certificates(tmp_path, common_name="first")
    reloader = CertReloader(certs.cert, certs.key, check_interval=0.1)
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    stop = threading.Event()

    def serve() -> None:
        listener.settimeout(0.1)
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            try:
                with reloader.context().wrap_socket(conn, server_side=True) as tls:
                    tls.recv(1)
            except (ssl.SSLError, OSError):
                pass

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield port, reloader, certs
    stop.set()
    thread.join(timeout=2)
    listener.close()


def test_rotated_certificate_is_served_without_restart(
    tls_server: tuple[int, CertReloader, DevCertificates], tmp_path: Path
) -> None:
    port, reloader, certs = tls_server
    assert served_common_name(port, certs.ca_cert) == "first"
    write_dev_certificates(tmp_path, common_name="rotated", ca=certs)
    deadline = time.monotonic() + 5
    name = "first"
    while name != "rotated" and time.monotonic() < deadline:
        time.sleep(0.15)
        name = served_common_name(port, certs.ca_cert)
    assert name == "rotated"
    assert reloader.reloads == 1


def test_half_rotated_pair_keeps_the_old_certificate(
    tls_server: tuple[int, CertReloader, DevCertificates], tmp_path: Path
) -> None:
    port, reloader, certs = tls_server
    other = write_dev_certificates(tmp_path / "other", common_name="other", ca=certs)
    certs.cert.write_bytes(other.cert.read_bytes())  # new cert, old key: mismatched
    time.sleep(0.3)
    assert served_common_name(port, certs.ca_cert) == "first"
    assert reloader.reloads == 0
    certs.key.write_bytes(other.key.read_bytes())  # the key arrives: now it loads
    deadline = time.monotonic() + 5
    while reloader.reloads == 0 and time.monotonic() < deadline:
        time.sleep(0.15)
        served_common_name(port, certs.ca_cert)
    assert served_common_name(port, certs.ca_cert) == "other"


def test_unloadable_certificate_is_a_clear_error(tmp_path: Path) -> None:
    bad = tmp_path / "tls.crt"
    bad.write_text("not a certificate")
    with pytest.raises(TLSConfigError, match="cannot load TLS certificate"):
        CertReloader(bad, bad)


def test_dev_certificate_covers_localhost_and_loopback(tmp_path: Path) -> None:
    certs = write_dev_certificates(tmp_path)
    cert = x509.load_pem_x509_certificate(certs.cert.read_bytes())
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["localhost"]
    assert [str(ip) for ip in san.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]
    assert oct(certs.key.stat().st_mode & 0o777) == "0o600"
