"""WebSockets served by Propylon itself (docs/spec/websocket.md): the
handlers of tests/apps/ws_server_app.py, driven by clients nobody here wrote.

- the ``websockets`` client (HTTP/1.1, cleartext and TLS, with
  permessage-deflate offered);
- ``h2`` with wsproto's ``FrameProtocol`` for RFC 8441 (extended CONNECT,
  once the server's SETTINGS_ENABLE_CONNECT_PROTOCOL is 1), over h2c with
  prior knowledge and over TLS with ALPN h2;
- raw sockets with frames built by hand (``struct``) for what a real client
  will not send: bad frames, floods, a peer that never reads or never
  answers pings.

Checked: echo in each style and on each transport; compression negotiated
or not; the connection object's attributes and its handshake answers
(accept with a subprotocol, reject, 403 on return, 500 on raise, 1011 after
accepting); close codes both ways; broadcast; ``on_close`` once; the cap on
blocking handlers; routing; graceful shutdown with 1001; each protocol error
with its close code (RFC 6455 §7.4.1) and the server serving a fresh client
afterwards; bounded memory against a ping flood and a peer that never reads;
keep-alive pings; idle event-handler connections holding no thread.

Handlers report what only the server sees as stderr lines ``WSREC <tag>
<what>`` (the tag is the handshake's query string), which the tests wait for.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import select
import socket
import ssl
import struct
import time
import uuid
import zlib
from collections import deque
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from pathlib import Path

import h2.config
import h2.connection
import h2.events
import h2.settings
import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import ClientConnection, connect
from wsproto.frame_protocol import FrameProtocol, Opcode

from tests.support import (
    CLIENT_TIMEOUT,
    EVENT_TIMEOUT,
    RawConnection,
    ServerProcess,
    http_request,
    peak_memory,
    reset_peak_memory,
)

APP = "tests.apps.ws_server_app:app"
WEBSOCKET_ONLY = "tests.apps.ws_server_app:websocket_only"

#: --websocket-max-message of the main server: above the 1 MiB echoes, small
#: enough that the over-limit inputs are quick to send.
MAX_MESSAGE = 1536 * 1024
MIB = 1024 * 1024
STYLES = ("async", "event", "blocking")
GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

# Close codes (RFC 6455 §7.4.1).
NORMAL, GOING_AWAY, PROTOCOL_ERROR, ABNORMAL, INVALID_DATA, TOO_BIG, INTERNAL_ERROR = (
    1000, 1001, 1002, 1006, 1007, 1009, 1011,
)
# Opcodes (RFC 6455 §5.2).
CONT, TEXT, BINARY, CLOSE, PING, PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA


def tag() -> str:
    return uuid.uuid4().hex[:12]


# ------------------------------------------------------------------ servers


@pytest.fixture(scope="module")
def server(start_module_server, pki) -> ServerProcess:
    """TLS on --bind, cleartext (HTTP/1.1 and h2c) on --insecure-bind."""
    return start_module_server(
        APP, *pki.ecdsa.args(), "--insecure-bind", "127.0.0.1:0",
        "--websocket-max-message", str(MAX_MESSAGE),
    )  # fmt: skip


@pytest.fixture(scope="module")
def plain_server(start_module_server) -> ServerProcess:
    """No WSGI application, no compression."""
    return start_module_server(WEBSOCKET_ONLY, "--no-websocket-compression")


@pytest.fixture(scope="module")
def small_server(start_module_server) -> ServerProcess:
    """Two Python threads, two blocking handlers at most."""
    return start_module_server(APP, "--threads", "2", "--websocket-threads", "2")


# ------------------------------------------------------------------ clients


def ws_url(srv: ServerProcess, path: str, tls: bool = False) -> str:
    return f"wss://127.0.0.1:{srv.tls_port}{path}" if tls else f"ws://127.0.0.1:{srv.port}{path}"


def open_ws(srv: ServerProcess, path: str, tls: bool = False, pki=None, **options) -> ClientConnection:
    """A ``websockets`` client; it offers permessage-deflate unless ``compression=None``."""
    if tls:
        options["ssl"] = pki.ecdsa.client_context()
    options.setdefault("open_timeout", CLIENT_TIMEOUT)
    options.setdefault("close_timeout", CLIENT_TIMEOUT)
    return connect(ws_url(srv, path, tls), max_size=None, **options)


def refusal(srv: ServerProcess, path: str, **options) -> InvalidStatus:
    with pytest.raises(InvalidStatus) as refused:
        open_ws(srv, path, **options)
    return refused.value


def closed_by_server(ws: ClientConnection) -> ConnectionClosed:
    """The close the server started: what the next ``recv`` raises."""
    with pytest.raises(ConnectionClosed) as closed:
        while True:
            ws.recv(timeout=CLIENT_TIMEOUT)
    return closed.value


@contextmanager
def killed_on_failure(srv: ServerProcess) -> Iterator[None]:
    """Kill ``srv`` when the block fails: a server left stuck by what failed
    would not stop on SIGTERM in time, and the failure is the block's."""
    try:
        yield
    except BaseException:
        srv.proc.kill()
        srv.wait()
        raise


def assert_echo_serving(srv: ServerProcess) -> None:
    """A fresh client still gets its echo (the server survived what came before)."""
    with open_ws(srv, "/echo/event") as ws:
        ws.send("still serving")
        assert ws.recv(timeout=CLIENT_TIMEOUT) == "still serving"


def wait_record(srv: ServerProcess, tag_: str, what: str, start: int = 0, timeout: float = EVENT_TIMEOUT) -> str:
    """The handler's report for ``tag_`` starting with ``what`` (waits for it)."""
    return srv.wait_for_line(rf"WSREC {re.escape(tag_)} {re.escape(what)}", start, timeout).string


def records(srv: ServerProcess, tag_: str) -> list[str]:
    return [line.split(f"WSREC {tag_} ", 1)[1] for line in srv.stderr_lines() if f"WSREC {tag_} " in line]


def frame(opcode: int, payload: bytes = b"", *, fin: bool = True, rsv: int = 0, masked: bool = True,
          length: int | None = None) -> bytes:
    """One client frame (RFC 6455 §5.2), masked unless ``masked`` is False;
    ``length`` overrides the payload length in the header (a header alone)."""
    size = len(payload) if length is None else length
    head = bytes([(0x80 if fin else 0) | (rsv << 4) | opcode])
    mask_bit = 0x80 if masked else 0
    if size < 126:
        head += bytes([mask_bit | size])
    elif size < 65536:
        head += bytes([mask_bit | 126]) + struct.pack(">H", size)
    else:
        head += bytes([mask_bit | 127]) + struct.pack(">Q", size)
    if not masked:
        return head + payload
    key = os.urandom(4)
    n = len(payload)
    keystream = (key * (n // 4 + 1))[:n]
    body = (int.from_bytes(payload, "big") ^ int.from_bytes(keystream, "big")).to_bytes(n, "big") if n else b""
    return head + key + body


def close_payload(code: int, reason: str = "") -> bytes:
    return struct.pack(">H", code) + reason.encode()


def deflated(data: bytes) -> bytes:
    """``data`` as a permessage-deflate payload (RFC 7692 §7.2.1)."""
    deflate = zlib.compressobj(wbits=-15)
    return (deflate.compress(data) + deflate.flush(zlib.Z_SYNC_FLUSH))[:-4]


#: The field that offers permessage-deflate (RFC 7692 §5).
DEFLATE = [("Sec-WebSocket-Extensions", "permessage-deflate")]


class RawWebSocket:
    """A WebSocket client on a plain socket: the handshake by hand, frames
    from :func:`frame`, the server's frames parsed here (unmasked, RFC 6455
    §5.1). Every read has a deadline; the end of the connection reads as None."""

    def __init__(self, port: int, path: str, *, fields: Sequence[tuple[str, str]] = (),
                 rcvbuf: int | None = None) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf is not None:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock.settimeout(CLIENT_TIMEOUT)
        self.sock.connect(("127.0.0.1", port))
        self.buf = bytearray()
        self.eof = False
        key = base64.b64encode(os.urandom(16)).decode()
        head = (f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n")
        head += "".join(f"{name}: {value}\r\n" for name, value in fields) + "\r\n"
        self.sock.sendall(head.encode("latin-1"))
        while b"\r\n\r\n" not in self.buf:
            assert self._fill(time.monotonic() + CLIENT_TIMEOUT), f"closed during the handshake: {bytes(self.buf)!r}"
        end = self.buf.index(b"\r\n\r\n")
        lines = self.buf[:end].decode("latin-1").split("\r\n")
        del self.buf[: end + 4]
        self.status = int(lines[0].split(" ")[1])
        self.headers = {name.strip().lower(): value.strip() for name, _, value in (x.partition(":") for x in lines[1:])}
        if self.status == 101:
            accept = base64.b64encode(hashlib.sha1((key + GUID).encode()).digest()).decode()
            assert self.headers["sec-websocket-accept"] == accept

    def __enter__(self) -> RawWebSocket:
        return self

    def __exit__(self, *exc: object) -> None:
        self.sock.close()

    def send(self, data: bytes) -> bool:
        """False when the server has closed the connection."""
        try:
            self.sock.sendall(data)
            return True
        except (BrokenPipeError, ConnectionResetError):
            return False

    def _fill(self, deadline: float) -> bool:
        if self.eof:
            return False
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise AssertionError(f"nothing from the server in time; buffered: {bytes(self.buf[:100])!r}")
        self.sock.settimeout(remaining)
        try:
            chunk = self.sock.recv(262144)
        except TimeoutError:
            raise AssertionError(f"nothing from the server in time; buffered: {bytes(self.buf[:100])!r}") from None
        except ConnectionResetError:
            chunk = b""
        if not chunk:
            self.eof = True
            return False
        self.buf += chunk
        return True

    def read_frame(self, timeout: float = CLIENT_TIMEOUT) -> tuple[int, bool, int, bytes] | None:
        """The server's next frame (opcode, fin, rsv bits, payload), or None at the end."""
        deadline = time.monotonic() + timeout
        while True:
            if len(self.buf) >= 2:
                assert not self.buf[1] & 0x80, "a server frame is never masked (RFC 6455 §5.1)"
                size, start = self.buf[1] & 0x7F, 2
                if size == 126 and len(self.buf) >= 4:
                    size, start = struct.unpack(">H", self.buf[2:4])[0], 4
                elif size == 127 and len(self.buf) >= 10:
                    size, start = struct.unpack(">Q", self.buf[2:10])[0], 10
                if (size < 126 or start > 2) and len(self.buf) >= start + size:
                    first = self.buf[0]
                    payload = bytes(self.buf[start : start + size])
                    del self.buf[: start + size]
                    return first & 0x0F, bool(first & 0x80), (first >> 4) & 0x7, payload
            if not self._fill(deadline):
                return None

    def expect_close(self, timeout: float = CLIENT_TIMEOUT) -> tuple[int, str]:
        """Read past data frames to the server's close frame: (code, reason)."""
        while True:
            got = self.read_frame(timeout)
            assert got is not None, "the server closed the connection without a close frame"
            opcode, _, _, payload = got
            if opcode == CLOSE:
                assert len(payload) >= 2, payload
                return struct.unpack(">H", payload[:2])[0], payload[2:].decode()

    def expect_end(self, timeout: float = CLIENT_TIMEOUT) -> None:
        """The server closes the TCP connection (RFC 6455 §7.1.1: the server first)."""
        deadline = time.monotonic() + timeout
        while self._fill(deadline):
            pass


def fail_code(srv: ServerProcess, *frames: bytes, style: str = "blocking",
              fields: Sequence[tuple[str, str]] = ()) -> tuple[int, str]:
    """Open ``/iterate/<style>``, send ``frames``, return the server's close
    code and the tag (for the handler's record)."""
    name = tag()
    with RawWebSocket(srv.port, f"/iterate/{style}?{name}", fields=fields) as raw:
        assert raw.status == 101
        for data in frames:
            if not raw.send(data):
                break
        code, _ = raw.expect_close(timeout=10)
        raw.expect_end()
    return code, name


class DrainingH2Connection(h2.connection.H2Connection):
    """h2 takes a GOAWAY for the end of the whole connection; RFC 9113 §6.8
    lets the streams up to its last-stream-id go on (a graceful shutdown's
    drain, where an open WebSocket keeps running). After a GOAWAY with
    NO_ERROR this one stays open for them."""

    def _receive_goaway_frame(self, frame):
        frames, events = super()._receive_goaway_frame(frame)
        if frame.error_code == 0:
            self.state_machine.state = h2.connection.ConnectionState.CLIENT_OPEN
        return frames, events


class H2WebSocket:
    """A WebSocket over HTTP/2 (RFC 8441): ``h2`` for the connection, the
    extended CONNECT sent only after the server's
    SETTINGS_ENABLE_CONNECT_PROTOCOL=1, wsproto's ``FrameProtocol`` for the
    frames in the stream's DATA."""

    def __init__(self, port: int, path: str, *, context: ssl.SSLContext | None = None,
                 fields: Sequence[tuple[str, str]] = ()) -> None:
        sock = socket.create_connection(("127.0.0.1", port), timeout=CLIENT_TIMEOUT)
        if context is not None:
            sock = context.wrap_socket(sock, server_hostname="127.0.0.1")
            assert sock.selected_alpn_protocol() == "h2"
        self.sock = sock
        self.h2 = DrainingH2Connection(h2.config.H2Configuration(client_side=True, header_encoding="utf-8"))
        self.h2.initiate_connection()
        self._flush()
        self.frames = FrameProtocol(client=True, extensions=[])
        self.connect_protocol: int | None = None
        self.response: dict[str, str] | None = None
        self.body = b""
        self.ended = False
        self.messages: deque[str | bytes] = deque()
        self.partial: list[str | bytes] = []
        self.close: tuple[int, str] | None = None
        self.closing = False
        self.eof = False
        self._pump_until(lambda: self.connect_protocol is not None)
        assert self.connect_protocol == 1, "SETTINGS_ENABLE_CONNECT_PROTOCOL is not 1 (RFC 8441 §3)"
        self.stream = self.h2.get_next_available_stream_id()
        self.h2.send_headers(self.stream, [
            (":method", "CONNECT"), (":protocol", "websocket"),
            (":scheme", "https" if context is not None else "http"), (":path", path),
            (":authority", f"127.0.0.1:{port}"), ("sec-websocket-version", "13"), *fields,
        ])  # fmt: skip
        self._flush()
        self._pump_until(lambda: self.response is not None)
        self.status = int(self.response[":status"])
        if self.status != 200:
            self._pump_until(lambda: self.ended)

    def __enter__(self) -> H2WebSocket:
        return self

    def __exit__(self, *exc: object) -> None:
        # A client that leaves properly: the close handshake (RFC 6455
        # §7.1.2), then the connection's end.
        try:
            if self.status_ok() and self.close is None and not self.eof:
                self.close_with(NORMAL)
        finally:
            self.sock.close()

    def drop(self) -> None:
        """Close the TCP connection without a close frame or RST_STREAM."""
        self.sock.close()

    def _flush(self) -> None:
        if data := self.h2.data_to_send():
            self.sock.sendall(data)

    def _pump(self, deadline: float) -> None:
        assert not self.eof, "the server closed the HTTP/2 connection"
        self.sock.settimeout(max(deadline - time.monotonic(), 0.001))
        try:
            data = self.sock.recv(262144)
        except TimeoutError:
            raise AssertionError("nothing from the server in time") from None
        if not data:
            self.eof = True
            return
        for event in self.h2.receive_data(data):
            if isinstance(event, h2.events.RemoteSettingsChanged) and self.connect_protocol is None:
                setting = event.changed_settings.get(h2.settings.SettingCodes.ENABLE_CONNECT_PROTOCOL)
                self.connect_protocol = 0 if setting is None else setting.new_value
            elif isinstance(event, h2.events.ResponseReceived):
                self.response = dict(event.headers)
            elif isinstance(event, h2.events.DataReceived):
                self.h2.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
                if self.response is not None and self.status_ok():
                    self._frames_in(event.data)
                else:
                    self.body += event.data
            elif isinstance(event, (h2.events.StreamEnded, h2.events.StreamReset)):
                self.ended = True
        self._flush()

    def status_ok(self) -> bool:
        return self.response is not None and self.response.get(":status") == "200"

    def _frames_in(self, data: bytes) -> None:
        self.frames.receive_bytes(data)
        for got in self.frames.received_frames():
            if got.opcode in (Opcode.TEXT, Opcode.BINARY, Opcode.CONTINUATION):
                self.partial.append(got.payload)
                if got.message_finished:
                    first = self.partial[0]
                    joined = "".join(self.partial) if isinstance(first, str) else b"".join(self.partial)
                    self.messages.append(joined)
                    self.partial = []
            elif got.opcode == Opcode.PING:
                self._send_stream(bytes(self.frames.pong(got.payload)))
            elif got.opcode == Opcode.CLOSE:
                self.close = (int(got.payload[0]), got.payload[1] or "")
                if not self.closing:  # the server's close: answered with its code (RFC 6455 §5.5.1)
                    self.closing = True
                    self._send_stream(bytes(self.frames.close(self.close[0])))

    def _pump_until(self, predicate, timeout: float = CLIENT_TIMEOUT) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            self._pump(deadline)
            assert not (self.eof and not predicate()), "the server closed the HTTP/2 connection"

    def _send_stream(self, data: bytes, end_stream: bool = False) -> None:
        view = memoryview(data)
        while view:
            window = min(self.h2.local_flow_control_window(self.stream), self.h2.max_outbound_frame_size)
            if window <= 0:
                self._pump(time.monotonic() + CLIENT_TIMEOUT)
                continue
            self.h2.send_data(self.stream, bytes(view[:window]))
            view = view[window:]
            self._flush()
        if end_stream:
            self.h2.end_stream(self.stream)
            self._flush()

    def send(self, message: str | bytes) -> None:
        self._send_stream(bytes(self.frames.send_data(message)))

    def recv(self, timeout: float = CLIENT_TIMEOUT) -> str | bytes:
        self._pump_until(lambda: self.messages or self.close is not None, timeout)
        assert self.messages, f"closed instead: {self.close}"
        return self.messages.popleft()

    def close_with(self, code: int, reason: str = "") -> tuple[int, str]:
        """Send a close frame; the server's answer (code, reason), and the stream's end."""
        self.closing = True
        self._send_stream(bytes(self.frames.close(code, reason)))
        self._pump_until(lambda: self.close is not None)
        self._pump_until(lambda: self.ended)
        return self.close


TRANSPORTS = ("http/1.1", "wss", "h2c", "h2-tls")


class AnyClient:
    """One echo session over a transport: the websockets client on HTTP/1.1
    (cleartext or TLS), H2WebSocket on HTTP/2 (h2c prior knowledge or TLS ALPN h2)."""

    def __init__(self, srv: ServerProcess, pki, transport: str, path: str, **options) -> None:
        self.transport = transport
        if transport in ("http/1.1", "wss"):
            self.ws = open_ws(srv, path, tls=transport == "wss", pki=pki, **options).__enter__()
            self.response_headers = {k.lower(): v for k, v in self.ws.response.headers.raw_items()}
            self.status = self.ws.response.status_code
        else:
            context = pki.ecdsa.client_context(alpn=("h2",)) if transport == "h2-tls" else None
            port = srv.tls_port if context is not None else srv.port
            self.ws = H2WebSocket(port, path, context=context)
            self.response_headers = dict(self.ws.response)
            self.status = self.ws.status
        self.local = self.ws.socket.getsockname() if transport in ("http/1.1", "wss") else self.ws.sock.getsockname()

    def send(self, message: str | bytes) -> None:
        self.ws.send(message)

    def recv(self) -> str | bytes:
        return self.ws.recv(timeout=CLIENT_TIMEOUT)

    def close(self) -> None:
        if isinstance(self.ws, H2WebSocket):
            if not self.ws.closing:
                assert self.ws.close_with(NORMAL)[0] == NORMAL
            self.ws.sock.close()
        else:
            self.ws.close()


@pytest.fixture()
def client(server, pki) -> Iterator:
    opened: list[AnyClient] = []

    def make(transport: str, path: str, **options) -> AnyClient:
        opened.append(AnyClient(server, pki, transport, path, **options))
        return opened[-1]

    yield make
    for one in opened:
        try:
            one.close()
        except Exception:
            pass


# ------------------------------------------------------------------ 1. echo


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("style", STYLES)
def test_echo_in_each_style_on_each_transport(client, transport: str, style: str) -> None:
    ws = client(transport, f"/echo/{style}")
    if transport.startswith("h2"):
        assert ws.status == 200  # RFC 8441 §5
        assert "sec-websocket-accept" not in ws.response_headers
    else:
        assert ws.status == 101
    for message in ("hello", "é" * 1000, b"\x00\xff" * 5000):
        ws.send(message)
        assert ws.recv() == message
    big = os.urandom(MIB)
    ws.send(big)
    assert ws.recv() == big
    for number in range(100):
        ws.send(f"message {number}")
    assert [ws.recv() for _ in range(100)] == [f"message {number}" for number in range(100)]
    ws.close()


@pytest.mark.parametrize("compression", ["deflate", None])
def test_empty_messages_echo(start_server, compression: str | None) -> None:
    # On a server of its own: a server that fails here may have a thread stuck.
    srv = start_server(APP)
    with killed_on_failure(srv), open_ws(srv, "/echo/blocking", compression=compression, close_timeout=2) as ws:
        for message in ("", b"", "hello", "", b"", b"data", b"", ""):
            ws.send(message)
            assert ws.recv(timeout=5) == message, f"no echo of {message!r}"


def test_permessage_deflate_is_negotiated_when_offered(server) -> None:
    with open_ws(server, "/echo/async") as ws:  # websockets offers permessage-deflate
        assert ws.response.headers["Sec-WebSocket-Extensions"].startswith("permessage-deflate")
        compressible = ("propylon " * (MIB // 9 + 1))[:MIB]
        ws.send(compressible)
        assert ws.recv(timeout=CLIENT_TIMEOUT) == compressible


def test_permessage_deflate_on_the_wire(server) -> None:
    # Raw: a compressed frame (RSV1, RFC 7692 §7.2.1) is inflated by the
    # server, and the echo comes back compressed.
    message = b"abcdefgh" * (MIB // 8)
    with RawWebSocket(server.port, "/echo/blocking", fields=DEFLATE) as raw:
        assert raw.status == 101
        assert raw.headers["sec-websocket-extensions"].startswith("permessage-deflate")
        raw.send(frame(BINARY, deflated(message), rsv=0b100))
        opcode, fin, rsv, payload = raw.read_frame()
        assert (opcode, fin, rsv) == (BINARY, True, 0b100)
        assert len(payload) < len(message) // 10
        assert zlib.decompressobj(wbits=-15).decompress(payload + b"\x00\x00\xff\xff") == message


@pytest.mark.parametrize(("frames", "expected"), [
    # The limit counts the message after decompression (a deflate bomb: 1.5 MiB from 1.5 KiB).
    pytest.param([frame(BINARY, deflated(bytes(MAX_MESSAGE + 1)), rsv=0b100)], TOO_BIG, id="inflates-over-the-limit"),
    pytest.param([frame(BINARY, deflated(b"a" * 1000)[:5], rsv=0b100, fin=False),
                  frame(CONT, deflated(b"b"), rsv=0b100)], PROTOCOL_ERROR, id="rsv1-on-a-continuation"),  # RFC 7692 §6.1
    pytest.param([frame(PING, b"x", rsv=0b100)], PROTOCOL_ERROR, id="rsv1-on-a-ping"),  # RFC 7692 §6.1
    pytest.param([frame(TEXT, deflated(b"ok \xff"), rsv=0b100)], INVALID_DATA, id="inflates-to-invalid-utf8"),
])  # fmt: skip
def test_permessage_deflate_input_errors(server, frames: list[bytes], expected: int) -> None:
    code, name = fail_code(server, *frames, fields=DEFLATE)
    assert code == expected
    wait_record(server, name, f"raised {expected}")
    assert_echo_serving(server)


def test_no_permessage_deflate_when_switched_off(plain_server) -> None:
    with open_ws(plain_server, "/echo/async") as ws:
        assert "Sec-WebSocket-Extensions" not in ws.response.headers
        compressible = "x" * MIB
        ws.send(compressible)
        assert ws.recv(timeout=CLIENT_TIMEOUT) == compressible
    # RSV1 then means nothing: a protocol error (RFC 6455 §5.2).
    name = tag()
    with RawWebSocket(plain_server.port, f"/iterate/blocking?{name}", fields=DEFLATE) as raw:
        assert raw.status == 101 and "sec-websocket-extensions" not in raw.headers
        raw.send(frame(TEXT, b"abc", rsv=0b100))
        assert raw.expect_close()[0] == PROTOCOL_ERROR
    wait_record(plain_server, name, f"raised {PROTOCOL_ERROR}")


# ------------------------------------------------------------------ 2. the API


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("style", STYLES)
def test_connection_attributes(client, server, transport: str, style: str) -> None:
    options = {}
    if transport in ("http/1.1", "wss"):
        options = {"subprotocols": ["a", "b"], "additional_headers": {"Origin": "https://example.test"}}
    ws = client(transport, f"/info/{style}/caf%C3%A9?x=%41&y", **options)
    info = json.loads(ws.recv())
    tls = transport in ("wss", "h2-tls")
    port = server.tls_port if tls else server.port
    assert info["path"] == f"/info/{style}/café"
    assert info["query_string"] == "x=%41&y"
    assert all(name == name.lower() for name, _ in info["headers"])
    assert ["host", f"127.0.0.1:{port}"] in info["headers"]  # from :authority on HTTP/2
    assert info["client"] == [ws.local[0], ws.local[1]]
    assert info["scheme"] == ("wss" if tls else "ws")
    assert info["subprotocol"] is None
    if options:
        assert info["http_version"] == "1.1"
        assert ["origin", "https://example.test"] in info["headers"]
        assert ["upgrade", "websocket"] in info["headers"]
        assert info["subprotocols"] == ["a", "b"]
        assert info["extensions"] == ["permessage-deflate"]
    else:
        assert info["http_version"] == "2"
        assert not any(name.startswith(":") for name, _ in info["headers"])
        assert (info["subprotocols"], info["extensions"]) == ([], [])
    ws.send("after the attributes")
    assert ws.recv() == "after the attributes"


def test_h2_offered_subprotocols_and_extensions(server) -> None:
    with H2WebSocket(server.port, "/info/blocking", fields=[
        ("sec-websocket-protocol", "x.v1, x.v2"), ("sec-websocket-extensions", "x-none; a=1, x-other"),
    ]) as ws:  # fmt: skip
        info = json.loads(ws.recv())
    assert (info["subprotocols"], info["extensions"]) == (["x.v1", "x.v2"], ["x-none", "x-other"])


def test_accept_with_a_subprotocol(server) -> None:
    with open_ws(server, "/subprotocol", subprotocols=["chat.v1", "chat.v2"]) as ws:
        assert ws.subprotocol == "chat.v2"
        assert ws.response.headers["Sec-WebSocket-Protocol"] == "chat.v2"
        answer = json.loads(ws.recv(timeout=CLIENT_TIMEOUT))
    # The unoffered one raised ValueError and left the handshake unanswered.
    assert answer["unoffered"].startswith("ValueError"), answer
    assert answer["subprotocol"] == "chat.v2"
    with open_ws(server, "/subprotocol", subprotocols=["chat.v1"]) as ws:
        assert ws.subprotocol is None
        assert json.loads(ws.recv(timeout=CLIENT_TIMEOUT))["subprotocol"] is None
    with H2WebSocket(server.port, "/subprotocol", fields=[("sec-websocket-protocol", "chat.v2")]) as ws:
        assert ws.response["sec-websocket-protocol"] == "chat.v2"
        assert json.loads(ws.recv())["subprotocol"] == "chat.v2"


@pytest.mark.parametrize(("path", "status", "body"), [
    ("/reject", 401, b"who are you?\n"),
    ("/reject/event", 429, b"slow down\n"),
    ("/refuse", 403, None),
    ("/raise-early", 500, None),
])  # fmt: skip
def test_handshake_refused_on_http1(server, path: str, status: int, body: bytes | None) -> None:
    name = tag()
    refused = refusal(server, f"{path}?{name}").response
    assert refused.status_code == status
    if body is not None:
        assert bytes(refused.body) == body
        assert refused.headers["Content-Length"] == str(len(body))
    if path == "/reject":
        assert refused.headers["WWW-Authenticate"] == "Bearer"
        assert refused.headers["X-Why"] == "no token"
    if path == "/raise-early":
        server.wait_for_line("the handler failed before accepting")
    if path == "/reject/event":  # a rejected connection never opened: no on_close
        assert_echo_serving(server)
        with open_ws(server, f"/lifecycle?{name}-sync") as ws:
            ws.close()
        wait_record(server, f"{name}-sync", "on_close")
        assert records(server, name) == []


@pytest.mark.parametrize(("path", "status", "body"), [
    ("/reject", 401, b"who are you?\n"), ("/refuse", 403, None), ("/raise-early", 500, None),
])  # fmt: skip
def test_handshake_refused_on_http2(server, pki, path: str, status: int, body: bytes | None) -> None:
    with H2WebSocket(server.tls_port, path, context=pki.ecdsa.client_context(alpn=("h2",))) as ws:
        assert ws.status == status
        if body is not None:
            assert ws.body == body
            assert ws.response["www-authenticate"] == "Bearer"


@pytest.mark.parametrize("style", ["async", "event", "blocking"])
def test_raising_after_accept_closes_with_1011_and_logs_the_traceback(server, style: str) -> None:
    name = tag()
    start = server.mark()
    with open_ws(server, f"/raise-late/{style}?{name}") as ws:
        ws.send("go")
        closed = closed_by_server(ws)
    assert closed.rcvd is not None and closed.rcvd.code == INTERNAL_ERROR
    server.wait_for_line(f"RuntimeError: the handler failed after accepting {name}", start)
    logged = "\n".join(server.lines_since(start))
    assert "propylon.error" in logged and "Traceback" in logged, logged
    if style == "event":
        wait_record(server, name, f"on_close {INTERNAL_ERROR}")


def test_server_close_code_and_reason(server) -> None:
    with open_ws(server, "/close") as ws:
        ws.send("close me")
        closed = closed_by_server(ws)
    assert closed.rcvd is not None
    assert (closed.rcvd.code, closed.rcvd.reason) == (4001, "go away")


@pytest.mark.parametrize("style", STYLES)
def test_iteration_ends_at_a_normal_close(server, style: str) -> None:
    name = tag()
    with open_ws(server, f"/iterate/{style}?{name}") as ws:
        for number in range(3):
            ws.send(str(number))
            assert ws.recv(timeout=CLIENT_TIMEOUT) == str(number)
    # The client closed with 1000.
    wait_record(server, name, "on_close 1000" if style == "event" else "ended 3")


@pytest.mark.parametrize("style", STYLES)
def test_handler_sees_the_clients_close_code(server, style: str) -> None:
    name = tag()
    with open_ws(server, f"/iterate/{style}?{name}") as ws:
        ws.send("x")
        assert ws.recv(timeout=CLIENT_TIMEOUT) == "x"
        ws.close(4321, "custom reason")
    wait_record(server, name, f"{'on_close' if style == 'event' else 'raised'} 4321 custom reason")


@pytest.mark.parametrize("transport", ["h2c", "h2-tls"])
def test_close_codes_over_http2(server, pki, transport: str) -> None:
    context = pki.ecdsa.client_context(alpn=("h2",)) if transport == "h2-tls" else None
    port = server.tls_port if context else server.port
    name = tag()
    with H2WebSocket(port, f"/iterate/blocking?{name}", context=context) as ws:
        ws.send("x")
        assert ws.recv() == "x"
        assert ws.close_with(4321, "over h2")[0] == 4321  # echoed (RFC 6455 §5.5.1), then the stream ends
    wait_record(server, name, "raised 4321 over h2")
    with H2WebSocket(port, "/close", context=context) as ws:
        ws.send("close me")
        ws._pump_until(lambda: ws.close is not None)
        assert ws.close == (4001, "go away")


def test_broadcast_to_the_other_connections(server) -> None:
    with ExitStack() as stack:
        members = []
        for number in range(1, 4):
            ws = stack.enter_context(open_ws(server, "/chat"))
            assert ws.recv(timeout=CLIENT_TIMEOUT) == f"joined {number}"
            members.append(ws)
        members[0].send("from the first")
        assert members[1].recv(timeout=CLIENT_TIMEOUT) == "from the first"
        assert members[2].recv(timeout=CLIENT_TIMEOUT) == "from the first"
        members[2].send("from the third")
        # The first never got its own message: the next it gets is the third's.
        assert members[0].recv(timeout=CLIENT_TIMEOUT) == "from the third"
        assert members[1].recv(timeout=CLIENT_TIMEOUT) == "from the third"


@pytest.mark.parametrize("transport", ["http/1.1", "h2c"])
@pytest.mark.parametrize("style", STYLES)
def test_a_dropped_connection_ends_the_handler_with_1006(start_server, transport: str, style: str) -> None:
    # On a server of its own: a server that fails here may have a thread stuck.
    srv = start_server(APP)
    name = tag()
    with killed_on_failure(srv):
        if transport == "h2c":
            ws = H2WebSocket(srv.port, f"/iterate/{style}?{name}")
            ws.send("x")
            assert ws.recv() == "x"
            ws.drop()
        else:
            with RawWebSocket(srv.port, f"/iterate/{style}?{name}") as raw:
                raw.send(frame(TEXT, b"x"))
                assert raw.read_frame() == (TEXT, True, 0, b"x")
        wait_record(srv, name, f"{'on_close' if style == 'event' else 'raised'} {ABNORMAL}", timeout=5)
        for path in ("/echo/async", "/echo/event", "/echo/blocking"):
            with open_ws(srv, path, open_timeout=5) as ws:  # the server still serves each style
                ws.send("still serving")
                assert ws.recv(timeout=5) == "still serving"
        # ... and does not spin: the runtime's threads are idle.
        busy = busy_threads(srv.worker_pid)
        assert not busy, f"threads still busy after the connection dropped: {busy}"


def busy_threads(pid: int, window: float = 0.5) -> list[str]:
    """Threads of ``pid`` that used more than half of a CPU over ``window`` seconds."""
    def cpu() -> dict[str, int]:
        ticks = {}
        for task in os.listdir(f"/proc/{pid}/task"):
            try:
                stat = Path(f"/proc/{pid}/task/{task}/stat").read_text()
            except FileNotFoundError:
                continue
            name = stat[stat.index("(") + 1 : stat.rindex(")")]
            fields = stat[stat.rindex(")") + 2 :].split()
            ticks[f"{task} {name}"] = int(fields[11]) + int(fields[12])  # utime + stime
        return ticks

    before = cpu()
    time.sleep(window)  # a measurement window, not a wait for an event
    after = cpu()
    hz = os.sysconf("SC_CLK_TCK")
    return [task for task, used in after.items() if (used - before.get(task, used)) / hz > window / 2]


def test_on_close_runs_once_with_the_code(server) -> None:
    name = tag()
    with open_ws(server, f"/lifecycle?{name}") as ws:
        wait_record(server, name, "on_connect")
        ws.send("x")
        assert ws.recv(timeout=CLIENT_TIMEOUT) == "x"
        ws.close(4100, "leaving")
    wait_record(server, name, "on_close 4100 leaving call 1")
    # Another connection's on_close after it: the first connection's has
    # had its chance to run twice.
    with open_ws(server, f"/lifecycle?{name}-after") as ws:
        ws.close()
    wait_record(server, f"{name}-after", "on_close 1000")
    assert records(server, name) == ["on_connect", "on_close 4100 leaving call 1"]


def test_blocking_handlers_are_capped(small_server) -> None:
    with ExitStack() as stack:
        names = [tag(), tag()]
        held = [stack.enter_context(open_ws(small_server, f"/iterate/blocking?{name}")) for name in names]
        for ws in held:  # both handlers hold their thread now
            ws.send("busy")
            assert ws.recv(timeout=CLIENT_TIMEOUT) == "busy"
        assert refusal(small_server, "/iterate/blocking").response.status_code == 503
        small_server.wait_for_line(r"WebSocket refused: all 2 --websocket-threads")
        with open_ws(small_server, "/echo/event") as ws:  # other styles hold no thread
            ws.send("x")
            assert ws.recv(timeout=CLIENT_TIMEOUT) == "x"
        held[0].close()
        wait_record(small_server, names[0], "ended 1")
        # The thread is counted free once its handler's call has returned,
        # just after the record: retry a refusal until then.
        deadline = time.monotonic() + CLIENT_TIMEOUT
        while True:
            try:
                with open_ws(small_server, "/echo/blocking") as ws:
                    ws.send("free")
                    assert ws.recv(timeout=CLIENT_TIMEOUT) == "free"
                break
            except InvalidStatus as refused:
                assert refused.response.status_code == 503
                assert time.monotonic() < deadline, "the blocking handler's thread never came back"


# ------------------------------------------------------------------ 3. routing


def test_handshake_without_a_handler_is_not_found(server, plain_server) -> None:
    for srv in (server, plain_server):
        for path in ("/nowhere", "/echo/asyncx", "/"):
            assert refusal(srv, path).response.status_code == 404, path
            with H2WebSocket(srv.port, path) as ws:
                assert ws.status == 404, path


def test_plain_requests_to_a_websocket_prefix(server, plain_server) -> None:
    status, _, body = http_request(server.port, "GET", "/echo/async")
    assert (status, body) == (200, b"wsgi /echo/async")
    status, _, body = http_request(server.port, "GET", "/echo/async/sub")
    assert (status, body) == (200, b"wsgi /echo/async/sub")
    assert http_request(plain_server.port, "GET", "/echo/async")[0] == 404


# ------------------------------------------------------------------ 4. shutdown


def test_graceful_shutdown_closes_open_websockets_with_1001(start_server) -> None:
    srv = start_server(APP, "--graceful-timeout", "2")
    names = {style: tag() for style in STYLES}
    with ExitStack() as stack:
        clients = {style: stack.enter_context(open_ws(srv, f"/iterate/{style}?{name}"))
                   for style, name in names.items()}
        h2ws = stack.enter_context(H2WebSocket(srv.port, f"/iterate/async?{names['async']}-h2"))
        for ws in (*clients.values(), h2ws):
            ws.send("before")
            assert ws.recv(timeout=CLIENT_TIMEOUT) == "before"
        start = srv.mark()
        signalled = time.monotonic()
        srv.terminate()
        srv.wait_for_line("Shutting down", start)
        for ws in (*clients.values(), h2ws):  # undisturbed while the drain lasts
            ws.send("during")
            assert ws.recv(timeout=CLIENT_TIMEOUT) == "during"
        for ws in clients.values():
            closed = closed_by_server(ws)
            assert closed.rcvd is not None and closed.rcvd.code == GOING_AWAY
        assert time.monotonic() - signalled < 2 + 2
        h2ws._pump_until(lambda: h2ws.close is not None or h2ws.eof)
        assert h2ws.close is not None and h2ws.close[0] == GOING_AWAY
        assert srv.wait(timeout=2 + 3) == 0
    assert time.monotonic() - signalled < 2 + 3
    wait_record(srv, names["async"], "ended 2")
    wait_record(srv, names["blocking"], "ended 2")
    wait_record(srv, names["event"], "on_close 1001")
    wait_record(srv, names["async"] + "-h2", "ended 2")
    assert "panicked" not in srv.stderr_text()


def test_graceful_shutdown_with_a_client_that_never_answers_the_close(start_server) -> None:
    # The server's 1001 goes out; the client never sends its close frame. The
    # handler still sees the close before the process exits.
    srv = start_server(APP, "--graceful-timeout", "2")
    name = tag()
    with RawWebSocket(srv.port, f"/iterate/blocking?{name}") as raw:
        raw.send(frame(TEXT, b"before"))
        assert raw.read_frame() == (TEXT, True, 0, b"before")
        signalled = time.monotonic()
        srv.terminate()
        assert raw.expect_close()[0] == GOING_AWAY
        raw.expect_end()
        assert srv.wait(timeout=2 + 3) == 0
    assert time.monotonic() - signalled < 2 + 3
    wait_record(srv, name, "ended 1")


# ------------------------------------------------------------------ 5. bad input


def test_a_frame_over_the_limit_closes_with_1009(server) -> None:
    code, name = fail_code(server, frame(BINARY, length=MAX_MESSAGE + 1))  # the header is enough
    assert code == TOO_BIG
    wait_record(server, name, f"raised {TOO_BIG}")
    assert_echo_serving(server)


def test_a_frame_at_the_limit_is_a_message(server) -> None:
    with RawWebSocket(server.port, "/echo/blocking") as raw:
        data = os.urandom(MAX_MESSAGE)
        raw.send(frame(BINARY, data))
        assert raw.read_frame() == (BINARY, True, 0, data)


def test_a_fragmented_message_over_the_limit_closes_with_1009(server) -> None:
    # No final fragment is sent: the limit is enforced as fragments arrive.
    piece = os.urandom(64 * 1024)
    fragments = [frame(BINARY, piece, fin=False)]
    fragments += [frame(CONT, piece, fin=False)] * (MAX_MESSAGE // len(piece) - 1)
    fragments.append(frame(CONT, b"!", fin=False))
    code, name = fail_code(server, *fragments)
    assert code == TOO_BIG
    wait_record(server, name, f"raised {TOO_BIG}")
    assert_echo_serving(server)


@pytest.mark.parametrize("frames", [
    pytest.param([frame(TEXT, b"abc\xff")], id="one-frame"),
    pytest.param([frame(TEXT, b"abc\xe2\x82", fin=False), frame(CONT, b"\x28rest", fin=False)], id="split"),
    pytest.param([frame(TEXT, b"ok", fin=False), frame(CONT, b"\xc0\xaf", fin=False)], id="overlong"),
])  # fmt: skip
def test_invalid_utf8_closes_with_1007_before_the_final_fragment(server, frames: list[bytes]) -> None:
    code, name = fail_code(server, *frames)
    assert code == INVALID_DATA
    wait_record(server, name, f"raised {INVALID_DATA}")
    assert_echo_serving(server)


def test_a_close_reason_not_utf8_closes_with_1007(server) -> None:
    # RFC 6455 §8.1 (and Autobahn 7.5.1): text that is not UTF-8, here a close
    # frame's reason, fails the connection; 1007 names why (§7.4.1).
    code, _ = fail_code(server, frame(CLOSE, close_payload(1000) + b"\xff"))
    assert code == INVALID_DATA
    assert_echo_serving(server)


def test_utf8_split_across_fragments_is_a_message(server) -> None:
    with RawWebSocket(server.port, "/echo/async") as raw:
        raw.send(frame(TEXT, b"price \xe2\x82", fin=False) + frame(CONT, b"\xac", fin=True))
        assert raw.read_frame() == (TEXT, True, 0, "price €".encode())


@pytest.mark.parametrize(("frames", "expected"), [
    pytest.param([frame(TEXT, b"unmasked", masked=False)], PROTOCOL_ERROR, id="unmasked"),
    pytest.param([frame(TEXT, b"abc", rsv=0b010)], PROTOCOL_ERROR, id="rsv2"),
    pytest.param([frame(TEXT, b"abc", rsv=0b001)], PROTOCOL_ERROR, id="rsv3"),
    pytest.param([frame(PING, b"x", rsv=0b100)], PROTOCOL_ERROR, id="rsv1-on-a-control-frame"),
    pytest.param([frame(CONT, b"nothing to continue")], PROTOCOL_ERROR, id="continuation-without-start"),
    pytest.param([frame(TEXT, b"a", fin=False), frame(TEXT, b"b")], PROTOCOL_ERROR, id="data-inside-a-message"),
    pytest.param([frame(PING, b"x", fin=False)], PROTOCOL_ERROR, id="fragmented-control-frame"),
    pytest.param([frame(PING, b"x" * 126)], PROTOCOL_ERROR, id="control-frame-too-long"),
    pytest.param([frame(CLOSE, b"\x03")], PROTOCOL_ERROR, id="close-payload-of-one-byte"),
    pytest.param([frame(CLOSE, close_payload(1005))], PROTOCOL_ERROR, id="close-code-1005"),
    pytest.param([frame(0x3, b"reserved")], PROTOCOL_ERROR, id="reserved-data-opcode"),
    pytest.param([frame(0xB, b"reserved")], PROTOCOL_ERROR, id="reserved-control-opcode"),
])  # fmt: skip
def test_protocol_errors_close_with_1002(server, frames: list[bytes], expected: int) -> None:
    code, name = fail_code(server, *frames)
    assert code == expected
    closing_frame = frames[-1][0] & 0x0F == CLOSE
    if not closing_frame:  # an invalid close frame is not the client's close: the handler sees 1002 too
        wait_record(server, name, f"raised {expected}")
    assert_echo_serving(server)


@pytest.mark.parametrize(("fields", "status"), [
    pytest.param({"Sec-WebSocket-Key": "c2hvcnQ="}, 400, id="key-of-5-bytes"),
    pytest.param({"Sec-WebSocket-Key": "not base64 at all!!!!!=="}, 400, id="key-not-base64"),
    pytest.param({"Sec-WebSocket-Key": None}, 400, id="no-key"),
    pytest.param({"Sec-WebSocket-Version": "8"}, 426, id="version-8"),
    pytest.param({"Connection": "keep-alive"}, 400, id="connection-without-upgrade"),
])  # fmt: skip
def test_bad_handshakes(server, fields: dict[str, str | None], status: int) -> None:
    base = {"Host": "127.0.0.1", "Upgrade": "websocket", "Connection": "Upgrade",
            "Sec-WebSocket-Key": base64.b64encode(os.urandom(16)).decode(), "Sec-WebSocket-Version": "13"}
    base.update(fields)
    head = "GET /echo/async HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in base.items() if v is not None)
    with RawConnection(server.port, timeout=CLIENT_TIMEOUT) as raw:
        raw.send((head + "\r\n").encode())
        response = raw.read_response()
    assert response is not None and response.status == status, response
    assert response.header("sec-websocket-accept") is None
    if status == 426:
        assert response.header("sec-websocket-version") == "13"
    assert_echo_serving(server)


def send_or_pushed_back(sock: socket.socket, data: bytes, patience: float = 2.0) -> bool:
    """Send ``data``; False when the server stops taking it (the socket stays
    unwritable for ``patience`` seconds, a generous bound): it pushes back."""
    sock.setblocking(False)
    view = memoryview(data)
    try:
        while view:
            try:
                view = view[sock.send(view) :]
            except BlockingIOError:
                if not select.select([], [sock], [], patience)[1]:
                    return False
    finally:
        sock.settimeout(CLIENT_TIMEOUT)
    return True


def test_a_ping_flood_keeps_memory_bounded(server) -> None:
    # 200,000 pings (26 MB) that the client never reads the pongs of. A
    # server that queues a pong for each grows by some 50 MiB; 10,000 pings
    # would cost it under 2 MiB, too little to tell. The server may answer
    # every ping, answer some (RFC 6455 §5.5.2 lets it skip pongs), or stop
    # reading while it cannot write: what it may not do is grow.
    pid = server.worker_pid
    with RawWebSocket(server.port, "/echo/blocking", rcvbuf=4096) as raw:
        before = reset_peak_memory(pid)
        flood = frame(PING, b"p" * 125) * 200_000
        if send_or_pushed_back(raw.sock, flood + frame(TEXT, b"after the flood")):
            # The server read the whole flood: the message after it is
            # echoed (read through the pongs the server chose to send).
            while True:
                got = raw.read_frame()
                assert got is not None, "the connection closed"
                if got[0] == TEXT:
                    assert got[3] == b"after the flood"
                    break
                assert got[0] == PONG
        grown = peak_memory(pid) - before
        assert_echo_serving(server)
    assert grown < 24 * MIB, f"the server grew by {grown / MIB:.1f} MiB during the flood"


@pytest.mark.parametrize("style", ["async", "blocking"])
def test_a_peer_that_never_reads_makes_send_wait(server, style: str) -> None:
    pid = server.worker_pid
    name = tag()
    count, size = 1024, 64 * 1024  # 64 MiB, far more than socket buffers and the send queue
    with RawWebSocket(server.port, f"/sender/{style}?n={count}&size={size}&{name}", rcvbuf=16384) as raw:
        before = reset_peak_memory(pid)
        found = wait_record(server, f"n={count}&size={size}&{name}", "send waited at", timeout=10)
        waited_at = int(found.rsplit(" ", 1)[1])
        assert waited_at * size < 32 * MIB, found
        assert_echo_serving(server)
        grown = peak_memory(pid) - before
        assert grown < 32 * MIB, f"the server grew by {grown / MIB:.1f} MiB"
        # Now read: every message comes, in order.
        for index in range(count):
            got = raw.read_frame()
            assert got is not None and got[0] == BINARY and len(got[3]) == size, index
            assert int.from_bytes(got[3][:8], "big") == index
    wait_record(server, f"n={count}&size={size}&{name}", "sent all")


def test_unanswered_pings_drop_the_connection(start_server) -> None:
    srv = start_server(APP, "--websocket-ping-interval", "0.2", "--websocket-ping-timeout", "0.3")
    # A client that answers (by hand) stays past several intervals.
    with RawWebSocket(srv.port, "/echo/blocking") as raw:
        for _ in range(4):
            opcode, _, _, payload = raw.read_frame()
            assert opcode == PING
            raw.send(frame(PONG, payload))
        raw.send(frame(TEXT, b"still here"))
        while (got := raw.read_frame()) is not None and got[0] == PING:
            raw.send(frame(PONG, got[3]))
        assert got == (TEXT, True, 0, b"still here")
    # One that never answers is dropped; the handler sees 1006.
    name = tag()
    started = time.monotonic()
    with RawWebSocket(srv.port, f"/iterate/blocking?{name}") as raw:
        pings = 0
        while (got := raw.read_frame()) is not None:
            assert got[0] in (PING, CLOSE), got
            pings += got[0] == PING
        assert pings >= 1
    assert time.monotonic() - started < 10
    wait_record(srv, name, f"raised {ABNORMAL}")
    with open_ws(srv, "/echo/event") as ws:  # the websockets client answers pings itself
        ws.send("served")
        assert ws.recv(timeout=CLIENT_TIMEOUT) == "served"


# ------------------------------------------------------------------ 6. idle connections


def test_idle_event_connections_hold_no_thread(small_server) -> None:
    # 200 open connections on --threads 2: if a connection held a thread
    # between messages, the third could not be served.
    with ExitStack() as stack:
        connections = [stack.enter_context(RawWebSocket(small_server.port, "/echo/event")) for _ in range(200)]
        assert all(raw.status == 101 for raw in connections)
        for number, raw in enumerate(connections):
            raw.send(frame(TEXT, f"from {number}".encode()))
        for number, raw in enumerate(connections):
            assert raw.read_frame() == (TEXT, True, 0, f"from {number}".encode())
        for number, raw in reversed(list(enumerate(connections))):
            raw.send(frame(BINARY, b"again %d" % number))
            assert raw.read_frame() == (BINARY, True, 0, b"again %d" % number)
