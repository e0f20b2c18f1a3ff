"""Helpers shared by the end-to-end tests: the server process, the command line,
raw HTTP/1.1, raw HTTP/2, AF_UNIX, the server's memory.

- :class:`ServerProcess` runs the real ``python -m propylon`` in a subprocess,
  learns its address from the readiness line on stderr, keeps every stderr line
  (a thread drains the pipe so it never blocks) and stops it with SIGTERM.
- :func:`run_cli` runs the command to completion (start-up errors);
  :func:`assert_one_error_line` checks the one-line error contract.
- :class:`RawConnection` (from the conformance kit, which ships it:
  ``propylon.wsgi11.conformance.client``) speaks HTTP/1.1 over a plain socket
  for what a real client will not send (malformed requests, pipelining,
  ``Expect``) and reads responses itself, so 1xx responses and connection
  closes stay visible; :class:`TLSOverMemory` puts it over TLS.
- :class:`RawH2Connection` speaks HTTP/2 frame by frame (``struct.pack`` and
  ``hpack``), for what h2 itself will not send: floods, resets, stalls.
- :class:`UnixHTTPConnection` is ``http.client`` over an AF_UNIX socket.
- :func:`reset_peak_memory` / :func:`peak_memory` bound the server's memory
  around an attack (Linux ``/proc``).

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
import ssl
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import hpack

from propylon.wsgi11.conformance.client import RawConnection, RawResponse
from propylon.wsgi11.conformance.client import chunked as chunked_framing

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
    """One ``python -m propylon APP --bind ... ARGS`` process (``launcher``
    replaces ``-m propylon``: a script that takes the same arguments;
    ``executable`` replaces this Python: another environment's interpreter,
    or with ``launcher=()`` its ``propylon`` script).

    ``listeners`` are the addresses from the readiness lines, in order
    (``http://127.0.0.1:41234``, ``http://[::1]:41234``, ``unix:/path``, or
    ``https://127.0.0.1:41234`` for a TLS listener); ``port``/``url``/``host``
    describe the first cleartext TCP one, ``tls_port``/``tls_url`` the first
    TLS one. With ``--certfile`` every ``--bind`` is TLS, and ``--insecure-bind``
    options in ``args`` add cleartext listeners, whose readiness lines are
    awaited too.
    """

    def __init__(self, app_spec: str, args: Sequence[str], binds: Sequence[str],
                 launcher: Sequence[str] = ("-m", "propylon"), executable: str = sys.executable) -> None:
        self.app_spec = app_spec
        self.command = [executable, *launcher, app_spec]
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
        insecure = sum(1 for arg in args if arg == "--insecure-bind" or arg.startswith("--insecure-bind="))
        self.listeners = self._wait_ready(len(binds) + insecure)
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
        raise AssertionError(f"no cleartext TCP listener among {self.listeners}")

    @property
    def host(self) -> str:
        hostport = self.url[len("http://") :]
        host = hostport.rsplit(":", 1)[0]
        return host.strip("[]")

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1])

    @property
    def tls_url(self) -> str:
        for address in self.listeners:
            if address.startswith("https://"):
                return address
        raise AssertionError(f"no TLS listener among {self.listeners}")

    @property
    def tls_port(self) -> int:
        return int(self.tls_url.rsplit(":", 1)[1])

    @property
    def unix_path(self) -> str:
        for address in self.listeners:
            if address.startswith("unix:"):
                return address[len("unix:") :]
        raise AssertionError(f"no unix listener among {self.listeners}")

    @property
    def worker_pid(self) -> int:
        """The process id of the one worker process (``--workers 1``, the
        default): the process that serves, whose threads and memory tests
        look at. ``proc`` is its supervisor."""
        deadline = time.monotonic() + EVENT_TIMEOUT
        while True:
            text = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children").read_text()
            pids = [int(pid) for pid in text.split()]
            if len(pids) == 1:
                return pids[0]
            if time.monotonic() > deadline:
                raise AssertionError(f"the supervisor has {len(pids)} worker processes, not one")
            time.sleep(0.02)

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


# ---------------------------------------------------------------------- the command line

#: A log line (``[time] [pid] [LEVEL] logger: message``), as opposed to an error line.
LOG_LINE = re.compile(r"^\[[^\]]+\] (\[\d+\] )?\[[A-Z]+\] [\w.]+: ")


def run_cli(*args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    """Run ``python -m propylon ARGS`` to completion (for commands that must fail at start-up)."""
    env = dict(os.environ, PYTHONPATH=str(REPO))
    return subprocess.run([sys.executable, "-m", "propylon", *args], capture_output=True, text=True,
                          cwd=REPO, env=env, timeout=timeout)


def assert_one_error_line(result: subprocess.CompletedProcess[str], code: int) -> str:
    """Exit ``code`` and exactly one non-log line on stderr, ``propylon: error: ...``, no traceback."""
    assert result.returncode == code, (result.returncode, result.stderr)
    assert "Traceback" not in result.stderr, result.stderr
    assert "panicked at" not in result.stderr, result.stderr
    other = [line for line in result.stderr.splitlines() if line.strip() and not LOG_LINE.match(line)]
    assert len(other) == 1 and other[0].startswith("propylon: error: "), result.stderr
    return other[0]


# ---------------------------------------------------------------------- raw HTTP/1.1


class TLSOverMemory:
    """A TLS client socket whose ``shutdown(SHUT_WR)`` sends close_notify and
    goes on reading: TLS's half-close, which ``ssl.SSLSocket`` cannot do. Just
    what RawConnection uses of a socket."""

    def __init__(self, sock: socket.socket, context, hostname: str) -> None:
        self.sock, self.incoming, self.outgoing = sock, ssl.MemoryBIO(), ssl.MemoryBIO()
        self.tls = context.wrap_bio(self.incoming, self.outgoing, server_hostname=hostname)
        while True:
            try:
                self.tls.do_handshake()
                break
            except ssl.SSLWantReadError:
                self._flush()
                data = sock.recv(65536)
                if not data:
                    raise ConnectionResetError("closed during the handshake") from None
                self.incoming.write(data)
        self._flush()

    def _flush(self) -> None:
        if pending := self.outgoing.read():
            self.sock.sendall(pending)

    def sendall(self, data: bytes) -> None:
        self.tls.write(data)
        self._flush()

    def shutdown(self, how: int) -> None:
        try:
            self.tls.unwrap()  # close_notify out; the server's comes later
        except ssl.SSLWantReadError:
            pass
        self._flush()
        self.sock.shutdown(how)

    def recv(self, size: int) -> bytes:
        while True:
            try:
                return self.tls.read(size)
            except ssl.SSLWantReadError:
                data = self.sock.recv(65536)
                if not data:
                    return b""
                self.incoming.write(data)
            except (ssl.SSLZeroReturnError, ssl.SSLEOFError):
                return b""

    def setsockopt(self, *args) -> None:
        self.sock.setsockopt(*args)

    def close(self) -> None:
        self.sock.close()


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
        payload = chunked_framing(*chunks_of(body, chunk))
    else:
        fields["Content-Length"] = str(len(body))
        payload = body
    head = f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
    head += "".join(f"{name}: {value}\r\n" for name, value in fields.items()) + "\r\n"
    with RawConnection(port) as raw:
        raw.try_send(head.encode("latin-1") + payload)
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


#: Size of the chunked upload every Flask test makes, on Propylon
#: (tests/test_flask.py) and behind the middleware on the other servers
#: (tests/test_wsgi11_frameworks.py): the same test on both.
UPLOAD_MIB = 40


def upload_blocks(mib: int = UPLOAD_MIB) -> list[bytes]:
    """``mib`` blocks of 1 MiB, each different (its first byte is its index)."""
    block = os.urandom(1024 * 1024)
    return [bytes([i]) + block[1:] for i in range(mib)]


def chunks_of(data: bytes, size: int):
    """Yield ``data`` in pieces of ``size`` bytes (a generator body for http.client / httpx)."""
    for i in range(0, len(data), size):
        yield data[i : i + size]


# ---------------------------------------------------------------------- raw HTTP/2

#: The client connection preface (RFC 9113 §3.4).
H2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

# Frame types (RFC 9113 §6) and flags.
DATA, HEADERS, PRIORITY, RST_STREAM, SETTINGS, PUSH_PROMISE, PING, GOAWAY, WINDOW_UPDATE, CONTINUATION = range(10)
END_STREAM = 0x1
ACK = 0x1
END_HEADERS = 0x4

# Error codes (RFC 9113 §7) the tests expect.
NO_ERROR = 0x0
PROTOCOL_ERROR = 0x1
FLOW_CONTROL_ERROR = 0x3
FRAME_SIZE_ERROR = 0x6
REFUSED_STREAM = 0x7
CANCEL = 0x8
ENHANCE_YOUR_CALM = 0xB

# SETTINGS parameters (RFC 9113 §6.5.2).
SETTINGS_HEADER_TABLE_SIZE = 0x1
SETTINGS_MAX_CONCURRENT_STREAMS = 0x3
SETTINGS_INITIAL_WINDOW_SIZE = 0x4
SETTINGS_MAX_FRAME_SIZE = 0x5
SETTINGS_MAX_HEADER_LIST_SIZE = 0x6


def h2_frame(kind: int, flags: int, stream: int, payload: bytes = b"") -> bytes:
    """One HTTP/2 frame: 9-byte header (RFC 9113 §4.1) and payload."""
    return struct.pack(">I", len(payload))[1:] + bytes([kind, flags]) + struct.pack(">I", stream) + payload


def h2_settings(settings: dict[int, int] | None = None, ack: bool = False) -> bytes:
    payload = b"".join(struct.pack(">HI", key, value) for key, value in (settings or {}).items())
    return h2_frame(SETTINGS, ACK if ack else 0, 0, payload)


@dataclass
class H2Frame:
    kind: int
    flags: int
    stream: int
    payload: bytes
    #: For HEADERS: the decoded header fields, once the block is complete.
    fields: list[tuple[str, str]] | None = None

    @property
    def status(self) -> int | None:
        """A response HEADERS frame's ``:status``."""
        for name, value in self.fields or ():
            if name == ":status":
                return int(value)
        return None

    @property
    def error_code(self) -> int:
        """GOAWAY's or RST_STREAM's error code."""
        offset = 4 if self.kind == GOAWAY else 0
        return int.from_bytes(self.payload[offset : offset + 4], "big")

    @property
    def last_stream(self) -> int:
        """GOAWAY's last-stream-id."""
        return int.from_bytes(self.payload[:4], "big") & 0x7FFF_FFFF

    def settings(self) -> dict[int, int]:
        return {
            int.from_bytes(self.payload[i : i + 2], "big"): int.from_bytes(self.payload[i + 2 : i + 6], "big")
            for i in range(0, len(self.payload), 6)
        }


def request_headers(path: str = "/", method: str = "GET", authority: str = "127.0.0.1",
                    scheme: str = "http", extra: Sequence[tuple[str, str]] = ()) -> list[tuple[str, str]]:
    """Pseudo-headers (RFC 9113 §8.3.1) and ``extra`` fields, for :meth:`RawH2Connection.request`."""
    return [(":method", method), (":scheme", scheme), (":path", path), (":authority", authority), *extra]


class RawH2Connection:
    """An HTTP/2 connection whose frames the test writes and reads itself.

    Sends the client preface and a SETTINGS frame (``settings``) on connect.
    :meth:`read_frame` parses what the server sends; :meth:`read_until`
    acknowledges the server's SETTINGS and PINGs on the way (``ack=True``), as
    a live client would. Every wait has a deadline; a server that closes the
    connection (EOF or reset) ends reads with None instead of an exception, so
    tests can assert it happened. ``context`` wraps the socket in TLS with
    ALPN ``h2``.
    """

    def __init__(self, port: int, host: str = "127.0.0.1", *, settings: dict[int, int] | None = None,
                 rcvbuf: int | None = None, timeout: float = CLIENT_TIMEOUT,
                 context: ssl.SSLContext | None = None, upgraded: RawConnection | None = None) -> None:
        self.tls: ssl.SSLObject | None = None
        if upgraded is not None:
            # Go on where an HTTP/1.1 connection left off after its "101 Switching Protocols".
            self.sock, self.buf = upgraded.sock, upgraded.buf
        else:
            self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            if rcvbuf is not None:
                # Set before connect so the advertised TCP window is small from the start.
                self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
            # Frames go out as they are written (no Nagle delay between small ones).
            self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self.sock.settimeout(timeout)
            self.sock.connect((host, port))
            self.buf = b""
            if context is not None:
                self._handshake(context, host)
        self.timeout = timeout
        self.encoder = hpack.Encoder()
        # Every header block the server sends is decoded, in order (the
        # dynamic table depends on all of them).
        self.decoder = hpack.Decoder()
        self._headers: H2Frame | None = None
        self._block = b""
        self.closed = False
        #: Every frame received so far, in order.
        self.received: list[H2Frame] = []
        self.send(H2_PREFACE + h2_settings(settings))

    def _handshake(self, context: ssl.SSLContext, host: str) -> None:
        """TLS through memory buffers, not ``SSLSocket``: after a failed write
        (an attack the server cut short), an ``SSLSocket`` no longer reads what
        the server sent before closing, and that is what the tests look at."""
        self._tls_in, self._tls_out = ssl.MemoryBIO(), ssl.MemoryBIO()
        tls = context.wrap_bio(self._tls_in, self._tls_out, server_hostname=host)
        while True:
            try:
                tls.do_handshake()
                break
            except ssl.SSLWantReadError:
                self.sock.sendall(self._tls_out.read())
                data = self.sock.recv(65536)
                if not data:
                    raise ConnectionResetError("the server closed the connection during the TLS handshake") from None
                self._tls_in.write(data)
        self.sock.sendall(self._tls_out.read())
        assert tls.selected_alpn_protocol() == "h2", tls.selected_alpn_protocol()
        self.tls = tls

    def __enter__(self) -> RawH2Connection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.sock.close()

    def send(self, data: bytes) -> bool:
        """Write ``data``; False if the server has closed the connection."""
        try:
            if self.tls is not None:
                self.tls.write(data)
                data = self._tls_out.read()
            self.sock.sendall(data)
            return True
        except (BrokenPipeError, ConnectionResetError, ssl.SSLError):
            return False
        except TimeoutError:
            # The server stopped reading (it is closing the connection, or
            # it is pushing back): what it sent is read by the caller.
            return False

    def _recv(self) -> bytes:
        """The next bytes from the server (decrypted), b"" at the end of the connection."""
        while True:
            try:
                chunk = self.sock.recv(65536)
            except (ConnectionResetError, BrokenPipeError):
                chunk = b""
            if self.tls is None:
                return chunk
            if chunk:
                self._tls_in.write(chunk)
            else:
                self._tls_in.write_eof()
            plain = []
            try:
                while piece := self.tls.read(65536):
                    plain.append(piece)
            except ssl.SSLWantReadError:
                pass
            except ssl.SSLError:  # close_notify, or the end of the connection without one
                chunk = b""
            if plain or not chunk:
                return b"".join(plain)
            # Only TLS records without application data (session tickets): read on.

    def header_block(self, headers: Sequence[tuple[str, str]]) -> bytes:
        return self.encoder.encode(list(headers))

    def request(self, stream: int, headers: Sequence[tuple[str, str]], end_stream: bool = True) -> bool:
        """Send one HEADERS frame (END_HEADERS, and END_STREAM unless a body follows)."""
        flags = END_HEADERS | (END_STREAM if end_stream else 0)
        return self.send(h2_frame(HEADERS, flags, stream, self.header_block(headers)))

    def _fill(self, deadline: float) -> bool:
        if self.closed:
            return False
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError
        self.sock.settimeout(remaining)
        chunk = self._recv()
        if not chunk:
            self.closed = True
            return False
        self.buf += chunk
        return True

    def read_frame(self, timeout: float | None = None) -> H2Frame | None:
        """The next frame, or None once the server closed the connection."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        try:
            while len(self.buf) < 9 or len(self.buf) < 9 + int.from_bytes(self.buf[:3], "big"):
                if not self._fill(deadline):
                    return None
        except TimeoutError:
            raise AssertionError(
                f"no frame from the server within {timeout or self.timeout:g} s; frames so far: "
                f"{[(f.kind, f.flags, f.stream) for f in self.received][-20:]}"
            ) from None
        length = int.from_bytes(self.buf[:3], "big")
        header, payload, self.buf = self.buf[:9], self.buf[9 : 9 + length], self.buf[9 + length :]
        frame = H2Frame(header[3], header[4], int.from_bytes(header[5:9], "big") & 0x7FFF_FFFF, payload)
        self.received.append(frame)
        self._decode(frame)
        return frame

    def _decode(self, frame: H2Frame) -> None:
        if frame.kind == HEADERS:
            payload = frame.payload
            if frame.flags & 0x8:  # PADDED
                payload = payload[1 : len(payload) - payload[0]]
            if frame.flags & 0x20:  # PRIORITY
                payload = payload[5:]
            self._headers, self._block = frame, payload
        elif frame.kind == CONTINUATION and self._headers is not None:
            self._block += frame.payload
        else:
            return
        if frame.flags & END_HEADERS and self._headers is not None:
            self._headers.fields = [(k, v) for k, v in self.decoder.decode(self._block)]
            self._headers, self._block = None, b""

    def read_until(self, predicate: Callable[[H2Frame], bool], timeout: float = EVENT_TIMEOUT,
                   ack: bool = True) -> H2Frame | None:
        """Read frames until one satisfies ``predicate`` (returned) or the connection closes (None)."""
        deadline = time.monotonic() + timeout
        while True:
            frame = self.read_frame(max(deadline - time.monotonic(), 0.001))
            if frame is None:
                return None
            if ack and frame.kind == SETTINGS and not frame.flags & ACK:
                self.send(h2_settings(ack=True))
            if ack and frame.kind == PING and not frame.flags & ACK:
                self.send(h2_frame(PING, ACK, 0, frame.payload))
            if predicate(frame):
                return frame

    def goaway(self, timeout: float = EVENT_TIMEOUT) -> H2Frame | None:
        """The first GOAWAY the server sent (already received, or read now), or None if it closed without one."""
        for frame in self.received:
            if frame.kind == GOAWAY:
                return frame
        return self.read_until(lambda f: f.kind == GOAWAY, timeout)

    def expect_closed(self, timeout: float = EVENT_TIMEOUT) -> int:
        """Read and discard until the server closes the connection; the number of bytes discarded.

        Fails if it is still open after ``timeout``.
        """
        deadline = time.monotonic() + timeout
        discarded = len(self.buf)
        self.buf = b""
        try:
            while self._fill(deadline):
                discarded += len(self.buf)
                self.buf = b""
        except TimeoutError:
            raise AssertionError(f"the server kept the connection open for {timeout:g} s") from None
        return discarded


# ---------------------------------------------------------------------- the server's memory


def _status_kib(pid: int, field_name: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field_name + ":"):
            return int(line.split()[1])
    raise AssertionError(f"no {field_name} in /proc/{pid}/status")


def reset_peak_memory(pid: int) -> int:
    """Reset the process's peak resident set size to its current size (Linux
    ``clear_refs``); returns the current size in bytes."""
    Path(f"/proc/{pid}/clear_refs").write_text("5")
    return _status_kib(pid, "VmRSS") * 1024


def peak_memory(pid: int) -> int:
    """The process's peak resident set size in bytes since :func:`reset_peak_memory`."""
    return _status_kib(pid, "VmHWM") * 1024
