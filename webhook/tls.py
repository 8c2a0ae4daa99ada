"""TLS for the webhook: a server context that follows certificate rotation, and dev certificates.

:class:`CertReloader` keeps one :class:`ssl.SSLContext` and rebuilds it when the certificate,
the key or the client CA file changes on disk (cert-manager and kubelet rotate Secret-mounted
files in place), checking at most once per ``check_interval`` seconds as new connections
arrive (:meth:`CertReloader.server_context` hooks it into any server that takes an
``ssl.SSLContext``). A half-written
pair (certificate and key that do not match yet) is logged and retried; the previous context
keeps serving meanwhile.

:func:`write_dev_certificates` (from :mod:`modelgate.devcerts`) makes a throwaway CA and a
server certificate signed by it (used by ``make demo`` and the tests; never for production).
"""

from __future__ import annotations

import logging
import os
import ssl
import threading
import time
from pathlib import Path

from modelgate.devcerts import DevCertificates, TLSConfigError, write_dev_certificates

__all__ = [
    "CertReloader",
    "DevCertificates",
    "TLSConfigError",
    "build_server_context",
    "write_dev_certificates",
]

log = logging.getLogger("modelgate.webhook.tls")


def _stamp(path: Path) -> tuple[int, int, int]:
    st = os.stat(path)
    return (st.st_mtime_ns, st.st_size, st.st_ino)


#: HTTP/2 first (the API server prefers it), then HTTP/1.1
ALPN_PROTOCOLS = ["h2", "http/1.1"]


def build_server_context(
    cert_file: Path, key_file: Path, client_ca: Path | None = None
) -> ssl.SSLContext:
    """A TLS 1.2+ server context; with ``client_ca`` every client must present a certificate
    that CA signed (mutual TLS)."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.set_alpn_protocols(ALPN_PROTOCOLS)
    try:
        context.load_cert_chain(certfile=str(cert_file), keyfile=str(key_file))
    except (OSError, ssl.SSLError) as e:
        raise TLSConfigError(
            f"cannot load TLS certificate {cert_file} with key {key_file}: {e}"
        ) from e
    if client_ca is not None:
        try:
            context.load_verify_locations(cafile=str(client_ca))
        except (OSError, ssl.SSLError) as e:
            raise TLSConfigError(f"cannot load the client CA bundle {client_ca}: {e}") from e
        context.verify_mode = ssl.CERT_REQUIRED
    return context


class CertReloader:
    """One server SSL context, rebuilt when the certificate files change."""

    def __init__(
        self,
        cert_file: Path,
        key_file: Path,
        *,
        check_interval: float = 1.0,
        client_ca: Path | None = None,
    ) -> None:
        self.cert_file = Path(cert_file)
        self.key_file = Path(key_file)
        self.client_ca = Path(client_ca) if client_ca is not None else None
        self.check_interval = check_interval
        self._lock = threading.Lock()
        self._stamps = self._current_stamps()
        self._context = self._build()
        self._next_check = time.monotonic() + check_interval
        self.reloads = 0

    def _build(self) -> ssl.SSLContext:
        return build_server_context(self.cert_file, self.key_file, self.client_ca)

    def _current_stamps(self) -> tuple[tuple[int, int, int], ...] | None:
        files = [self.cert_file, self.key_file]
        if self.client_ca is not None:
            files.append(self.client_ca)
        try:
            return tuple(_stamp(f) for f in files)
        except OSError:
            return None

    def context(self) -> ssl.SSLContext:
        """The context for a new connection (reloaded first if the files changed)."""
        now = time.monotonic()
        if now < self._next_check:
            return self._context
        with self._lock:
            if now >= self._next_check:
                self._next_check = now + self.check_interval
                self._maybe_reload()
        return self._context

    def _maybe_reload(self) -> None:
        stamps = self._current_stamps()
        if stamps is None or stamps == self._stamps:
            return
        try:
            context = self._build()
        except TLSConfigError as e:
            # probably mid-rotation (new cert, old key): keep serving, try again next time
            log.warning("TLS certificate changed but cannot be loaded yet: %s", e)
            return
        self._context = context
        self._stamps = stamps
        self.reloads += 1
        log.info("TLS certificate reloaded from %s", self.cert_file)

    def server_context(self) -> ssl.SSLContext:
        """The context to give a server once: for every new connection its SNI callback (which
        OpenSSL calls for every handshake, with or without a server name) switches the
        connection to :meth:`context`, so rotated files are served without a restart."""
        base = self._build()

        def switch(sock: ssl.SSLObject | ssl.SSLSocket, name: str | None, _: object) -> None:
            sock.context = self.context()

        base.sni_callback = switch
        return base
