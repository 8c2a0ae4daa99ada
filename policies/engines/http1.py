"""One keep-alive HTTP/1.1 connection, for the OPA engine's queries.

The webhook asks OPA one question per review, so the client is on the hot path: ``http.client``
spends ~0.4 ms of CPU (holding the GIL) per exchange building headers and parsing the answer
through :mod:`email`, about as much as the rest of the review. This client writes the request
in one ``sendall`` (headers and body together: nothing for Nagle's algorithm to hold back) and
reads the status line, the few headers it needs, and a body framed by ``Content-Length`` or
chunked. Anything else it does not understand is a :class:`ProtocolError`, and the caller drops
the connection. The timeout of :meth:`Connection.request` bounds the whole exchange, not each
read: a peer that trickles its answer a byte at a time is cut off at the deadline too.
"""

from __future__ import annotations

import io
import socket
import ssl
import time
from typing import BinaryIO

#: the most an answer may hold (OPA's answers are a few KB; a bundle push echoes nothing)
MAX_RESPONSE_BYTES = 64 * 1024 * 1024
#: the most a status line or header line may hold
MAX_LINE_BYTES = 64 * 1024
MAX_HEADERS = 100


class ProtocolError(OSError):
    """The server's answer is not HTTP/1.x this client reads; the connection is unusable."""


class Response:
    __slots__ = ("body", "status", "will_close")

    def __init__(self, status: int, body: bytes, will_close: bool) -> None:
        self.status = status
        self.body = body
        self.will_close = will_close


class _DeadlineReader(io.RawIOBase):
    """The socket as a raw stream whose reads all end by ``deadline`` (``time.monotonic()``):
    each ``recv`` gets what is left of it, and none is left is a :class:`TimeoutError`."""

    def __init__(self, sock: socket.socket) -> None:
        super().__init__()
        self.sock = sock
        self.deadline = 0.0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        remaining = self.deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("the answer did not arrive in time")
        self.sock.settimeout(remaining)
        return self.sock.recv_into(buffer)


class Connection:
    """A persistent connection to ``host:port`` (TLS with ``tls``), opened on first use."""

    def __init__(self, host: str, port: int, *, tls: bool) -> None:
        self.host = host
        self.port = port
        self.tls = tls
        self.sock: socket.socket | None = None
        self._file: BinaryIO | None = None
        self._reader: _DeadlineReader | None = None
        authority = host if ":" not in host else f"[{host}]"
        self._host_header = f"Host: {authority}:{port}\r\n".encode("ascii")

    def connect(self, timeout: float) -> None:
        sock = socket.create_connection((self.host, self.port), timeout=timeout)
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if self.tls:
                sock = ssl.create_default_context().wrap_socket(sock, server_hostname=self.host)
        except BaseException:
            sock.close()
            raise
        self.sock = sock
        self._reader = _DeadlineReader(sock)
        self._file = io.BufferedReader(self._reader)

    def close(self) -> None:
        file, sock = self._file, self.sock
        self._file = self.sock = self._reader = None
        if file is not None:
            file.close()
        if sock is not None:
            sock.close()

    def request(
        self, method: str, path: str, body: bytes | None, content_type: str, timeout: float
    ) -> Response:
        """One exchange, done within ``timeout`` seconds or a :class:`TimeoutError` (the
        deadline bounds the whole exchange, however the answer trickles in). Raises
        :class:`OSError` (and :class:`ProtocolError`) when the connection broke; the caller
        closes it then."""
        if self.sock is None:
            self.connect(timeout)
        sock, file, reader = self.sock, self._file, self._reader
        assert sock is not None and file is not None and reader is not None
        reader.deadline = time.monotonic() + timeout
        sock.settimeout(timeout)  # sendall: the whole send within it
        head = [f"{method} {path} HTTP/1.1\r\n".encode("ascii"), self._host_header]
        if body is not None:
            head.append(f"Content-Type: {content_type}\r\n".encode("ascii"))
        head.append(b"Content-Length: %d\r\n\r\n" % (len(body) if body is not None else 0))
        sock.sendall(b"".join(head) + (body or b""))
        return _read_response(file, method)


def _line(file: BinaryIO) -> bytes:
    line = file.readline(MAX_LINE_BYTES + 1)
    if not line:
        raise ProtocolError("the server closed the connection")
    if len(line) > MAX_LINE_BYTES:
        raise ProtocolError("a response line is too long")
    return line


def _read_response(file: BinaryIO, method: str) -> Response:
    status_line = _line(file)
    parts = status_line.split(None, 2)
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/1.") or not parts[1].isdigit():
        raise ProtocolError(f"not an HTTP/1.x status line: {status_line[:80]!r}")
    version, status = parts[0], int(parts[1])
    length: int | None = None
    chunked = False
    will_close = version == b"HTTP/1.0"
    for _ in range(MAX_HEADERS + 1):
        line = _line(file)
        if line in (b"\r\n", b"\n"):
            break
        name, sep, value = line.partition(b":")
        if not sep:
            raise ProtocolError(f"not a header line: {line[:80]!r}")
        name = name.strip().lower()
        value = value.strip()
        if name == b"content-length":
            if not value.isdigit():
                raise ProtocolError(f"bad Content-Length: {value[:40]!r}")
            length = int(value)
        elif name == b"transfer-encoding":
            chunked = value.lower().endswith(b"chunked")
        elif name == b"connection":
            tokens = {t.strip() for t in value.lower().split(b",")}
            will_close = b"close" in tokens or (will_close and b"keep-alive" not in tokens)
    else:
        raise ProtocolError("too many response headers")
    if method == "HEAD" or status in (204, 304) or 100 <= status < 200:
        return Response(status, b"", will_close)
    if chunked:
        return Response(status, _read_chunked(file), will_close)
    if length is None:  # delimited by the end of the connection
        body = file.read(MAX_RESPONSE_BYTES + 1)
        if len(body) > MAX_RESPONSE_BYTES:
            raise ProtocolError("the response is too large")
        return Response(status, body, True)
    if length > MAX_RESPONSE_BYTES:
        raise ProtocolError("the response is too large")
    return Response(status, _exactly(file, length), will_close)


def _exactly(file: BinaryIO, n: int) -> bytes:
    data = file.read(n)
    if len(data) != n:
        raise ProtocolError("the server closed the connection in the middle of the response")
    return data


def _read_chunked(file: BinaryIO) -> bytes:
    out = bytearray()
    while True:
        size_line = _line(file).split(b";", 1)[0].strip()
        try:
            size = int(size_line, 16)
        except ValueError as e:
            raise ProtocolError(f"bad chunk size: {size_line[:40]!r}") from e
        if size == 0:
            while _line(file) not in (b"\r\n", b"\n"):  # trailers
                pass
            return bytes(out)
        if len(out) + size > MAX_RESPONSE_BYTES:
            raise ProtocolError("the response is too large")
        out += _exactly(file, size)
        if _line(file) not in (b"\r\n", b"\n"):
            raise ProtocolError("a chunk does not end with CRLF")
