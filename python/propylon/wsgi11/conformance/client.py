"""The client side's HTTP/1.1, over a plain socket.

The checks need what ordinary clients hide: requests pipelined on one
connection, bodies cut short on purpose, chunked framing written by hand, and
responses read byte-exactly so that an extra byte after ``Content-Length`` or
an early close is visible. :class:`Connection` does that and nothing more; it
is not a general HTTP client (no redirects, TLS, or connection reuse policy).
"""

from __future__ import annotations

import json
import socket
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

__all__ = ["Connection", "Response", "Target", "chunked", "request_bytes"]

#: Socket timeout for every read: a server that neither answers nor closes
#: becomes a failed check after this long, never a hung run.
TIMEOUT = 20.0


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


@dataclass
class Response:
    status: int
    reason: str
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""
    #: The connection closed before the body announced by Content-Length (or
    #: the chunked framing) was complete.
    incomplete: bool = False

    def header(self, name: str) -> str | None:
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


class Connection:
    """One TCP connection on which the check writes bytes and parses responses itself."""

    def __init__(self, target: Target, timeout: float = TIMEOUT, rcvbuf: int | None = None) -> None:
        self.target = target
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf is not None:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.settimeout(timeout)
        self.sock.connect((target.host, target.port))
        self.timeout = timeout
        self.buf = b""
        self.eof = False

    def __enter__(self) -> Connection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.sock.close()

    def send(self, data: bytes) -> bool:
        """Send everything; False if the server closed first (it may have answered already)."""
        try:
            self.sock.sendall(data)
            return True
        except (BrokenPipeError, ConnectionResetError):
            return False

    def abort(self) -> None:
        """Close at once, with a TCP reset (SO_LINGER 0): the client is gone."""
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        self.sock.close()

    def _fill(self) -> bool:
        if self.eof:
            return False
        try:
            chunk = self.sock.recv(65536)
        except TimeoutError:
            raise TimeoutError(f"the server neither answered nor closed the connection within "
                               f"{self.timeout:g} s") from None
        except ConnectionResetError:
            chunk = b""
        if not chunk:
            self.eof = True
            return False
        self.buf += chunk
        return True

    def _take(self, n: int) -> tuple[bytes, bool]:
        while len(self.buf) < n:
            if not self._fill():
                data, self.buf = self.buf, b""
                return data, False
        data, self.buf = self.buf[:n], self.buf[n:]
        return data, True

    def _line(self) -> bytes | None:
        while b"\r\n" not in self.buf:
            if not self._fill():
                return None
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def read_head(self) -> Response | None:
        """The next final response head (1xx skipped), or None if the connection closed first."""
        while True:
            while b"\r\n\r\n" not in self.buf:
                if not self._fill():
                    return None
            head, self.buf = self.buf.split(b"\r\n\r\n", 1)
            status_line, *lines = head.decode("latin-1").split("\r\n")
            parts = status_line.split(" ", 2)
            if len(parts) < 2 or not parts[0].startswith("HTTP/") or not parts[1].isdigit():
                raise ValueError(f"not an HTTP response: {status_line[:80]!r}")
            response = Response(int(parts[1]), parts[2] if len(parts) > 2 else "")
            for line in lines:
                name, _, value = line.partition(":")
                response.headers.append((name.strip(), value.strip()))
            if response.status >= 200 or response.status == 101:
                return response

    def read_response(self, method: str = "GET") -> Response | None:
        """The next response with its body, or None if the connection closed before it."""
        response = self.read_head()
        if response is None:
            return None
        if method == "HEAD" or response.status in (204, 304):
            return response
        if (response.header("transfer-encoding") or "").lower().endswith("chunked"):
            parts = []
            while True:
                line = self._line()
                if line is None:
                    response.incomplete = True
                    break
                size = int(line.split(b";")[0], 16)
                if size == 0:
                    while (trailer := self._line()) not in (None, b""):
                        pass
                    break
                data, complete = self._take(size)
                parts.append(data)
                if not complete or self._line() is None:
                    response.incomplete = True
                    break
            response.body = b"".join(parts)
        elif response.header("content-length") is not None:
            response.body, complete = self._take(int(response.header("content-length") or 0))
            response.incomplete = not complete
        else:
            response.body = self.read_until_close()
        return response

    def read_until_close(self) -> bytes:
        while self._fill():
            pass
        data, self.buf = self.buf, b""
        return data

    def read_some(self, n: int) -> bytes:
        data, _ = self._take(n)
        return data


def exchange(target: Target, method: str, path: str, headers: list[tuple[str, str]] | None = None,
             body: bytes | None = None, raw: bytes | None = None) -> Response | None:
    """One request on a fresh connection; ``raw`` replaces the whole request."""
    with Connection(target) as conn:
        sent = conn.send(raw if raw is not None else request_bytes(target, method, path, headers, body))
        response = conn.read_response(method)
        if response is None and not sent:
            raise ConnectionError("the server closed the connection while the request was being sent")
        return response


def wait_for(predicate: Any, timeout: float, interval: float = 0.05) -> Any:
    """Poll ``predicate()`` until it returns something truthy, or ``timeout`` passes; return its last value."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() >= deadline:
            return value
        time.sleep(interval)
