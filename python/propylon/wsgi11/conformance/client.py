"""Raw HTTP/1.1 over a plain socket: the client of the conformance checks and of Propylon's tests.

The checks and the tests need what ordinary clients hide: requests pipelined
on one connection, bodies cut short on purpose, malformed heads, chunked
framing written by hand, ``Expect`` and interim responses, and responses read
byte-exactly so that an extra byte after ``Content-Length`` or an early close
is visible. :class:`RawConnection` does that and nothing more; it is not a
general HTTP client (no redirects, no TLS of its own, no connection reuse
policy). A caller may replace its ``sock`` with anything that has ``sendall``,
``recv``, ``shutdown``, ``setsockopt`` and ``close`` (the tests wrap it in TLS).

Every read waits at most ``timeout`` seconds for the next bytes: a server that
neither answers nor closes raises :class:`TimeoutError`, never hangs the run. Bytes that are not an
HTTP/1.1 response raise :class:`MalformedResponse`.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import urlsplit

__all__ = [
    "MalformedResponse",
    "RawConnection",
    "RawResponse",
    "Target",
    "chunked",
    "exchange",
    "request_bytes",
    "wait_for",
]

#: Socket timeout for every read: a server that neither answers nor closes
#: becomes a failed check after this long, never a hung run.
TIMEOUT = 20.0

#: SO_LINGER on, 0 seconds: close() sends a TCP reset.
_RESET_ON_CLOSE = b"\x01\x00\x00\x00\x00\x00\x00\x00"

T = TypeVar("T")


@dataclass
class Target:
    """Where the probe application is: ``http://HOST:PORT/PREFIX``."""

    url: str

    def __post_init__(self) -> None:
        parts = urlsplit(self.url)
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError(f"--url must be http://HOST:PORT[/PREFIX], got {self.url!r}")
        self.host = parts.hostname
        self.port = parts.port or 80
        self.prefix = parts.path.rstrip("/")

    @property
    def authority(self) -> str:
        return f"{self.host}:{self.port}"

    def path(self, path: str) -> str:
        return self.prefix + path

    def connect(self, timeout: float = TIMEOUT, rcvbuf: int | None = None) -> RawConnection:
        """A new connection to the probe, on which interim (1xx) responses are skipped."""
        return RawConnection(self.port, self.host, timeout=timeout, rcvbuf=rcvbuf, skip_interim=True)


class MalformedResponse(ValueError):
    """The server sent bytes that are not an HTTP/1.1 response head, or closed inside one."""


@dataclass
class RawResponse:
    version: str
    status: int
    reason: str
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""
    #: The connection closed before the body announced by Content-Length (or
    #: the chunked framing) was complete.
    incomplete: bool = False

    def header(self, name: str) -> str | None:
        """The field's values joined by ", " (RFC 9110 §5.3), or None; names compare case-insensitively."""
        values = [v for k, v in self.headers if k.lower() == name.lower()]
        return ", ".join(values) if values else None

    def json(self) -> Any:
        return json.loads(self.body)


def request_bytes(target: Target, method: str, path: str, headers: list[tuple[str, str]] | None = None,
                  body: bytes | None = None) -> bytes:
    """One HTTP/1.1 request; ``Content-Length`` is added for ``body`` unless a framing header is given."""
    fields = [("Host", target.authority)] + list(headers or [])
    names = {k.lower() for k, _ in fields}
    if body is not None and "content-length" not in names and "transfer-encoding" not in names:
        fields.append(("Content-Length", str(len(body))))
    head = f"{method} {target.path(path)} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in fields) + "\r\n"
    return head.encode("latin-1") + (body or b"")


def chunked(*pieces: bytes, end: bool = True) -> bytes:
    """``pieces`` in HTTP/1.1 chunked framing (RFC 9112 §7.1), with the last chunk if ``end``."""
    framed = b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in pieces if p)
    return framed + (b"0\r\n\r\n" if end else b"")


class RawConnection:
    """One TCP connection on which the caller writes bytes and parses the responses itself.

    ``rcvbuf`` is set before connecting, so the advertised TCP window is small
    from the start (a client that reads slowly). With ``skip_interim``,
    :meth:`read_head` passes over 1xx responses other than 101; without it
    they are returned like any other (a test of ``Expect: 100-continue``).
    """

    def __init__(self, port: int, host: str = "127.0.0.1", *, timeout: float = TIMEOUT,
                 rcvbuf: int | None = None, skip_interim: bool = False) -> None:
        self.sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf is not None:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.settimeout(timeout)
        self.sock.connect((host, port))
        self.timeout = timeout
        self.skip_interim = skip_interim
        #: Received and not yet parsed.
        self.buf = b""
        #: The server ended the connection (EOF or reset).
        self.eof = False

    def __enter__(self) -> RawConnection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.sock.close()

    def abort(self) -> None:
        """Close at once, with a TCP reset: the client is gone."""
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _RESET_ON_CLOSE)
        self.sock.close()

    # -- writing --------------------------------------------------------------------

    def send(self, data: bytes) -> None:
        """Send everything; raises if the server closed the connection first."""
        self.sock.sendall(data)

    def try_send(self, data: bytes) -> bool:
        """Send everything; False if the server closed first (it may have answered already)."""
        try:
            self.sock.sendall(data)
            return True
        except (BrokenPipeError, ConnectionResetError):
            return False

    # -- reading --------------------------------------------------------------------

    def _fill(self) -> bool:
        """Read more bytes into the buffer; False at the end of the stream (EOF or reset)."""
        if self.eof:
            return False
        try:
            chunk = self.sock.recv(65536)
        except TimeoutError:
            raise TimeoutError(
                f"the server neither answered nor closed the connection within {self.timeout:g} s; "
                f"received and not yet read: {self.buf[:300]!r}"
            ) from None
        except ConnectionResetError:
            chunk = b""
        if not chunk:
            self.eof = True
            return False
        self.buf += chunk
        return True

    def _take(self, n: int) -> tuple[bytes, bool]:
        """Up to ``n`` bytes, and whether all ``n`` came before the end of the stream."""
        while len(self.buf) < n:
            if not self._fill():
                data, self.buf = self.buf, b""
                return data, False
        data, self.buf = self.buf[:n], self.buf[n:]
        return data, True

    def _line(self) -> bytes | None:
        """The next CRLF-terminated line without its CRLF, or None at the end of the stream."""
        while b"\r\n" not in self.buf:
            if not self._fill():
                return None
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def read_head(self) -> RawResponse | None:
        """The next response head, or None if the connection closed before any byte of it."""
        while True:
            while b"\r\n\r\n" not in self.buf:
                if not self._fill():
                    if self.buf:
                        raise MalformedResponse(f"the connection closed inside a response head: {self.buf[:300]!r}")
                    return None
            head, self.buf = self.buf.split(b"\r\n\r\n", 1)
            status_line, *lines = head.decode("latin-1").split("\r\n")
            parts = status_line.split(" ", 2)
            if len(parts) < 2 or not parts[0].startswith("HTTP/") or not parts[1].isdigit():
                raise MalformedResponse(f"not an HTTP response: {status_line[:80]!r}")
            response = RawResponse(parts[0], int(parts[1]), parts[2] if len(parts) > 2 else "")
            for line in lines:
                name, _, value = line.partition(":")
                response.headers.append((name, value.strip()))
            if not (self.skip_interim and 100 <= response.status < 200 and response.status != 101):
                return response

    def read_response(self, method: str = "GET") -> RawResponse | None:
        """The next response with its body, or None if the connection closed before it.

        A 1xx response is returned without a body (after ``101``, the
        connection speaks another protocol); so are responses to HEAD, 204
        and 304 (RFC 9112 §6.3).
        """
        response = self.read_head()
        if response is None:
            return None
        return self.read_body(response, method)

    def read_body(self, response: RawResponse, method: str = "GET") -> RawResponse:
        """The body of ``response``, whose head :meth:`read_head` returned (see :meth:`read_response`)."""
        if method == "HEAD" or response.status < 200 or response.status in (204, 304):
            return response
        if (response.header("transfer-encoding") or "").lower().endswith("chunked"):
            self._read_chunked(response)
        elif (length := response.header("content-length")) is not None:
            response.body, complete = self._take(int(length))
            response.incomplete = not complete
        else:
            response.body = self.read_until_close()
        return response

    def _read_chunked(self, response: RawResponse) -> None:
        parts = []
        while True:
            line = self._line()
            if line is None:
                response.incomplete = True
                break
            size = int(line.split(b";")[0], 16)
            if size == 0:
                while True:  # trailer fields, up to the empty line (RFC 9112 §7.1.2)
                    trailer = self._line()
                    if trailer is None:
                        response.incomplete = True
                    if not trailer:
                        break
                break
            data, complete = self._take(size)
            parts.append(data)
            if not complete or self._line() is None:
                response.incomplete = True
                break
        response.body = b"".join(parts)

    def receive(self, n: int) -> int:
        """Receive until at least ``n`` bytes wait unparsed (fewer if the connection
        ends) without consuming them; how many wait."""
        while len(self.buf) < n and self._fill():
            pass
        return len(self.buf)

    def read_some(self, n: int) -> bytes:
        """Up to ``n`` bytes of whatever comes next (fewer if the connection ends)."""
        data, _ = self._take(n)
        return data

    def read_until_close(self) -> bytes:
        """Everything up to the end of the connection."""
        while self._fill():
            pass
        data, self.buf = self.buf, b""
        return data

    def expect_close(self) -> None:
        """Assert that the server closes the connection without sending anything more."""
        rest = self.read_until_close()
        assert rest == b"", f"expected the connection to close, got more bytes: {rest[:300]!r}"


def exchange(target: Target, method: str, path: str, headers: list[tuple[str, str]] | None = None,
             body: bytes | None = None, raw: bytes | None = None) -> RawResponse | None:
    """One request on a fresh connection; ``raw`` replaces the whole request."""
    with target.connect() as conn:
        sent = conn.try_send(raw if raw is not None else request_bytes(target, method, path, headers, body))
        response = conn.read_response(method)
        if response is None and not sent:
            raise ConnectionError("the server closed the connection while the request was being sent")
        return response


def wait_for(predicate: Callable[[], T], timeout: float, interval: float = 0.05) -> T:
    """Poll ``predicate()`` until it returns something truthy, or ``timeout`` passes; return its last value."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() >= deadline:
            return value
        time.sleep(interval)
