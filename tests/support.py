"""Helpers shared by the end-to-end tests: the server process, raw HTTP/1.1, AF_UNIX.

- :class:`ServerProcess` runs the real ``python -m propylon`` in a subprocess,
  learns its address from the readiness line on stderr, keeps every stderr line
  (a thread drains the pipe so it never blocks) and stops it with SIGTERM.
- :class:`RawConnection` speaks HTTP/1.1 over a plain socket for what a real
  client will not send (malformed requests, pipelining, ``Expect``) and reads
  responses itself, so 1xx responses and connection closes stay visible.
- :class:`UnixHTTPConnection` is ``http.client`` over an AF_UNIX socket.

Nothing here sleeps to wait for the server: readiness and log lines are awaited
on a condition variable with a deadline, and files written by the test apps
are polled with a deadline (:func:`wait_for_file`).
"""

from __future__ import annotations

import http.client
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

#: How long to wait for the server to say it is listening.
READY_TIMEOUT = 30.0
#: How long to wait for a log line or a file written by a test app.
EVENT_TIMEOUT = 20.0
#: Socket timeout for every client: a hang becomes a clear failure, not a stuck suite.
CLIENT_TIMEOUT = 20.0
#: How long SIGTERM may take to end the server (in-flight requests drain first).
STOP_TIMEOUT = 40.0

_LISTENING = re.compile(r"Listening on (?P<address>\S+)")


class ServerProcess:
    """One ``python -m propylon APP --bind ... ARGS`` process.

    ``listeners`` are the addresses from the readiness lines, in order
    (``http://127.0.0.1:41234``, ``http://[::1]:41234`` or ``unix:/path``);
    ``port``/``url``/``host`` describe the first TCP one.
    """

    def __init__(self, app_spec: str, args: Sequence[str], binds: Sequence[str]) -> None:
        self.app_spec = app_spec
        self.command = [sys.executable, "-m", "propylon", app_spec]
        for bind in binds:
            self.command += ["--bind", bind]
        self.command += list(args)
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
        env["PYTHONUNBUFFERED"] = "1"
        self._lines: list[str] = []
        self._stdout: list[str] = []
        self._cond = threading.Condition()
        self._eof = False
        self.proc = subprocess.Popen(
            self.command,
            cwd=REPO,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        self._readers = [
            threading.Thread(target=self._drain, args=(self.proc.stderr, self._lines, True), daemon=True),
            threading.Thread(target=self._drain, args=(self.proc.stdout, self._stdout, False), daemon=True),
        ]
        for reader in self._readers:
            reader.start()
        self.listeners = self._wait_ready(len(binds))
        self.stopped = False

    # -- output ------------------------------------------------------------------

    def _drain(self, pipe, sink: list[str], is_stderr: bool) -> None:
        for raw in iter(pipe.readline, b""):
            with self._cond:
                sink.append(raw.decode("utf-8", "replace").rstrip("\r\n"))
                self._cond.notify_all()
        pipe.close()
        if is_stderr:
            with self._cond:
                self._eof = True
                self._cond.notify_all()

    def stderr_lines(self) -> list[str]:
        """A copy of every stderr line so far."""
        with self._cond:
            return list(self._lines)

    def stderr_text(self) -> str:
        return "\n".join(self.stderr_lines())

    def mark(self) -> int:
        """The number of stderr lines so far; pass it as ``start`` to only look at later lines."""
        with self._cond:
            return len(self._lines)

    def wait_for_line(self, pattern: str, start: int = 0, timeout: float = EVENT_TIMEOUT) -> re.Match[str]:
        """Wait until a stderr line at index >= ``start`` matches ``pattern`` (re.search)."""
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        index = start
        with self._cond:
            while True:
                while index < len(self._lines):
                    match = regex.search(self._lines[index])
                    if match:
                        return match
                    index += 1
                remaining = deadline - time.monotonic()
                if self._eof or remaining <= 0:
                    why = "the server's stderr closed" if self._eof else f"{timeout:g} s passed"
                    raise AssertionError(
                        f"no stderr line matching {pattern!r} ({why}); stderr since the mark:\n"
                        + "\n".join(self._lines[start:])
                    )
                self._cond.wait(remaining)

    def lines_since(self, start: int) -> list[str]:
        with self._cond:
            return self._lines[start:]

    def sync_log(self, tag: str) -> None:
        """Make every log line written so far visible in :meth:`stderr_lines`.

        Asks the test app at ``/log`` to write ``tag`` to ``wsgi.errors`` and
        waits for it: lines logged before that request was answered were
        written to the same pipe earlier, so they have been read too.
        Needs an app with the ``/log`` route (tests/apps/wsgi_app.py).
        """
        start = self.mark()
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=CLIENT_TIMEOUT)
        try:
            conn.request("GET", f"/log?msg={tag}")
            assert conn.getresponse().read() == b"logged"
        finally:
            conn.close()
        self.wait_for_line(re.escape(tag), start)

    def _wait_ready(self, count: int) -> list[str]:
        deadline = time.monotonic() + READY_TIMEOUT
        with self._cond:
            while True:
                found = [m.group("address") for m in map(_LISTENING.search, self._lines) if m]
                if len(found) >= count:
                    return found
                remaining = deadline - time.monotonic()
                if self._eof or remaining <= 0:
                    break
                self._cond.wait(remaining)
        code = self.proc.poll()
        if code is None:
            self.proc.kill()
            self.proc.wait()
        raise AssertionError(
            f"server not ready ({count} 'Listening on' line(s) expected, exit code {code}) for "
            f"{' '.join(self.command)}\nstderr:\n{self.stderr_text()}"
        )

    # -- address -----------------------------------------------------------------

    @property
    def url(self) -> str:
        for address in self.listeners:
            if address.startswith("http://"):
                return address
        raise AssertionError(f"no TCP listener among {self.listeners}")

    @property
    def host(self) -> str:
        hostport = self.url[len("http://") :]
        host = hostport.rsplit(":", 1)[0]
        return host.strip("[]")

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1])

    @property
    def unix_path(self) -> str:
        for address in self.listeners:
            if address.startswith("unix:"):
                return address[len("unix:") :]
        raise AssertionError(f"no unix listener among {self.listeners}")

    # -- lifecycle ---------------------------------------------------------------

    def terminate(self) -> None:
        """Send SIGTERM without waiting (for tests of graceful shutdown)."""
        self.proc.send_signal(signal.SIGTERM)

    def wait(self, timeout: float = STOP_TIMEOUT) -> int:
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(
                f"server did not exit within {timeout:g} s of SIGTERM; stderr:\n{self.stderr_text()}"
            ) from None
        for reader in self._readers:
            reader.join(EVENT_TIMEOUT)
        self.stopped = True
        return code

    def stop(self) -> int:
        """SIGTERM, wait for the exit, return the exit code (idempotent)."""
        if self.proc.poll() is None:
            self.terminate()
        return self.wait()


def check_stopped_cleanly(server: ServerProcess, code: int) -> list[str]:
    """What is wrong with how a server ended, as a list of complaints (empty when fine)."""
    problems = []
    text = server.stderr_text()
    if code != 0:
        problems.append(f"exit code {code} after SIGTERM, expected 0 (graceful shutdown)")
    if "panicked at" in text:
        problems.append("a Rust panic was logged")
    if "garbage collected without being closed" in text:
        # wsgiref.validate's IteratorWrapper says this when the server never
        # called close() on the application's iterable (PEP 3333).
        problems.append("an application iterable was never closed (wsgiref.validate)")
    if problems:
        problems.append(f"command: {' '.join(server.command)}\nstderr:\n{text}")
    return problems


# ---------------------------------------------------------------------- raw HTTP/1.1


@dataclass
class RawResponse:
    version: str
    status: int
    reason: str
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""
    #: True when the body was cut short by the connection closing.
    incomplete: bool = False

    def header(self, name: str) -> str | None:
        values = [v for k, v in self.headers if k.lower() == name.lower()]
        return ", ".join(values) if values else None


class RawConnection:
    """A TCP connection on which the test writes bytes and parses responses itself."""

    def __init__(self, port: int, host: str = "127.0.0.1", timeout: float = CLIENT_TIMEOUT,
                 rcvbuf: int | None = None) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf is not None:
            # Set before connect so the advertised window is small from the start.
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.settimeout(timeout)
        self.sock.connect((host, port))
        self.timeout = timeout
        self.buf = b""
        self.eof = False

    def __enter__(self) -> RawConnection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.sock.close()

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def _fill(self) -> bool:
        """Read more bytes into the buffer; False at end of stream (EOF or reset)."""
        if self.eof:
            return False
        try:
            chunk = self.sock.recv(65536)
        except socket.timeout:
            raise AssertionError(
                f"the server neither answered nor closed the connection within {self.timeout:g} s; "
                f"received so far: {self.buf[:300]!r}"
            ) from None
        except ConnectionResetError:
            chunk = b""
        if not chunk:
            self.eof = True
            return False
        self.buf += chunk
        return True

    def _take_line(self) -> bytes | None:
        while b"\r\n" not in self.buf:
            if not self._fill():
                return None
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def _take(self, n: int) -> tuple[bytes, bool]:
        while len(self.buf) < n:
            if not self._fill():
                data, self.buf = self.buf, b""
                return data, False
        data, self.buf = self.buf[:n], self.buf[n:]
        return data, True

    def read_head(self) -> RawResponse | None:
        """The next response head, or None if the connection closed before any byte of it."""
        while b"\r\n\r\n" not in self.buf:
            if not self._fill():
                if self.buf:
                    raise AssertionError(f"connection closed inside a response head: {self.buf!r}")
                return None
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        status_line, *header_lines = head.decode("latin-1").split("\r\n")
        version, status, *reason = status_line.split(" ", 2)
        headers = []
        for line in header_lines:
            name, _, value = line.partition(":")
            headers.append((name, value.strip()))
        return RawResponse(version, int(status), reason[0] if reason else "", headers)

    def read_response(self, method: str = "GET") -> RawResponse | None:
        """The next final response with its body (1xx responses are returned as they come)."""
        response = self.read_head()
        if response is None:
            return None
        if method == "HEAD" or response.status < 200 or response.status in (204, 304):
            return response
        if (response.header("transfer-encoding") or "").lower().endswith("chunked"):
            self._read_chunked(response)
        elif response.header("content-length") is not None:
            length = int(response.header("content-length"))
            response.body, complete = self._take(length)
            response.incomplete = not complete
        else:
            response.body = self.read_until_close()
        return response

    def _read_chunked(self, response: RawResponse) -> None:
        parts = []
        while True:
            line = self._take_line()
            if line is None:
                response.incomplete = True
                break
            size = int(line.split(b";")[0], 16)
            if size == 0:
                while True:  # trailers, up to the empty line
                    trailer = self._take_line()
                    if trailer is None:
                        response.incomplete = True
                    if not trailer:
                        break
                break
            data, complete = self._take(size)
            parts.append(data)
            if not complete or self._take_line() is None:
                response.incomplete = True
                break
        response.body = b"".join(parts)

    def read_until_close(self) -> bytes:
        while self._fill():
            pass
        data, self.buf = self.buf, b""
        return data

    def expect_close(self) -> None:
        """Assert the server closes the connection without sending anything more."""
        rest = self.read_until_close()
        assert rest == b"", f"expected the connection to close, got more bytes: {rest[:300]!r}"


def send_refusable(port: int, method: str, path: str, body: bytes, headers: dict[str, str] | None = None,
                   chunked: bool = False, chunk: int = 16384) -> RawResponse | None:
    """Send a whole request at once on a raw socket and read the response, for requests the
    server may refuse before reading all of the body (413, 400).

    Such a server may answer and close while the body is still being sent, so a
    client that writes piece by piece (http.client does) can fail on a send with
    EPIPE before it gets to read the answer. Here a failed send is ignored and
    the answer, already in the receive queue, is read anyway.
    """
    fields = dict(headers or {})
    if chunked:
        fields["Transfer-Encoding"] = "chunked"
        payload = b"".join(b"%x\r\n%s\r\n" % (len(part), part) for part in chunks_of(body, chunk)) + b"0\r\n\r\n"
    else:
        fields["Content-Length"] = str(len(body))
        payload = body
    head = f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
    head += "".join(f"{name}: {value}\r\n" for name, value in fields.items()) + "\r\n"
    with RawConnection(port) as raw:
        try:
            raw.send(head.encode("latin-1") + payload)
        except (BrokenPipeError, ConnectionResetError):
            pass
        return raw.read_response(method)


def http_request(port: int, method: str, path: str, body: bytes | None = None,
                 headers: dict[str, str] | None = None, host: str = "127.0.0.1") -> tuple[int, dict[str, str], bytes]:
    """One request on a fresh http.client connection: (status, headers, body)."""
    conn = http.client.HTTPConnection(host, port, timeout=CLIENT_TIMEOUT)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        response = conn.getresponse()
        data = response.read()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, data
    finally:
        conn.close()


def assert_serving(port: int) -> None:
    """A fresh connection still gets a normal answer (the server survived what came before)."""
    status, _, body = http_request(port, "GET", "/")
    assert (status, body) == (200, b"hello"), (status, body)


class UnixHTTPConnection(http.client.HTTPConnection):
    """http.client over an AF_UNIX stream socket."""

    def __init__(self, path: str, timeout: float = CLIENT_TIMEOUT) -> None:
        super().__init__("localhost", timeout=timeout)
        self.unix_path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        sock.connect(self.unix_path)
        self.sock = sock


def wait_for_file(path: Path, predicate: Callable[[str], bool] = bool,
                  timeout: float = EVENT_TIMEOUT) -> str:
    """Poll ``path`` until its text satisfies ``predicate``; return the text.

    The test apps record what they saw (e.g. that ``close()`` was called) into
    files; the server may do that after the client has its response, so the
    test waits for the record with a deadline.
    """
    deadline = time.monotonic() + timeout
    text = ""
    while True:
        try:
            text = path.read_text()
        except FileNotFoundError:
            text = ""
        if text and predicate(text):
            return text
        if time.monotonic() > deadline:
            raise AssertionError(f"{path} never satisfied the check within {timeout:g} s; content: {text!r}")
        time.sleep(0.02)


def chunks_of(data: bytes, size: int):
    """Yield ``data`` in pieces of ``size`` bytes (a generator body for http.client / httpx)."""
    for i in range(0, len(data), size):
        yield data[i : i + size]
