"""Hardened HTTP/2 (issue 4, point 4): each known attack is detected, its
connection gets GOAWAY with the right code and is closed, the server's memory
stays bounded, and a normal client on other connections keeps being served.

The attacks are hand-made frames (tests.support.RawH2Connection; HPACK by the
hpack package), and a valid conversation damaged at random (mutation
fuzzing, seeded: the same cases every run). Every loop is bounded in count and in time. Around each attack:

- :class:`NormalClient` runs in a thread, alternating HTTP/1.1 requests on fresh
  connections and HTTP/2 requests on one httpx connection; it must have been
  answered before the attack starts, after it was detected, and never fail.
  For the attacks that last (stalls) it must also be answered *during* them.
- :func:`bounded_memory` resets the server's peak RSS before the attack and
  checks it afterwards (``MEMORY_BOUND``).

Where the limits live: h2 itself answers rapid reset of streams not yet
accepted, CONTINUATION floods and HPACK bombs; Propylon's guard
(src/runtime/transport/guard.rs) counts SETTINGS, PING, RST_STREAM and WINDOW_UPDATE
frames per 10 s; ``--send-timeout`` closes connections whose client takes no
data (zero window, or never reading). See docs/guide/limits.md, "HTTP/2 hardening".
"""

from __future__ import annotations

import random
import socket
import struct
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import hpack
import httpx
import pytest

from tests.support import (
    ACK,
    CANCEL,
    CLIENT_TIMEOUT,
    CONTINUATION,
    DATA,
    END_HEADERS,
    END_STREAM,
    ENHANCE_YOUR_CALM,
    EVENT_TIMEOUT,
    GOAWAY,
    H2_PREFACE,
    HEADERS,
    PING,
    RST_STREAM,
    SETTINGS_INITIAL_WINDOW_SIZE,
    WINDOW_UPDATE,
    RawConnection,
    RawH2Connection,
    ServerProcess,
    TLSOverMemory,
    h2_frame,
    h2_settings,
    http_request,
    peak_memory,
    request_headers,
    reset_peak_memory,
)

APP = "tests.apps.wsgi_app:app"
MIB = 1024 * 1024
#: How much the server's resident memory may grow during one attack. The
#: attacks below would cost far more if they were not cut short: a 1 GiB
#: response, 48 MB of decoded headers per HPACK bomb, thousands of streams.
MEMORY_BOUND = 24 * MIB
#: --send-timeout for this module's server (the default is 60 s).
SEND_TIMEOUT = 2.0
#: A generous upper bound on how long detection may take.
DETECTION_BOUND = 15.0
#: A response far larger than any socket buffer.
HUGE = 1024 * MIB


@pytest.fixture(scope="module")
def target(start_module_server) -> ServerProcess:
    return start_module_server(APP, "--send-timeout", str(SEND_TIMEOUT), "--keep-alive-timeout", "30")


class NormalClient:
    """A well-behaved client in a thread, on its own connections, during an attack."""

    #: Upper bound on the requests one instance makes.
    MAX_REQUESTS = 20_000

    def __init__(self, server: ServerProcess) -> None:
        self.server = server
        self.answered: list[float] = []
        self.failures: list[str] = []
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        with httpx.Client(http1=False, http2=True, timeout=CLIENT_TIMEOUT) as h2_client:
            for i in range(self.MAX_REQUESTS):
                if self._stop.is_set():
                    return
                try:
                    if i % 2:
                        status, _, body = http_request(self.server.port, "GET", "/")
                    else:
                        response = h2_client.get(f"{self.server.url}/")
                        status, body = response.status_code, response.content
                    outcome = None if (status, body) == (200, b"hello") else f"request {i}: {status} {body[:100]!r}"
                except Exception as exc:  # any failure of a normal request is what the test reports
                    outcome = f"request {i}: {type(exc).__name__}: {exc}"
                with self._cond:
                    if outcome is None:
                        self.answered.append(time.monotonic())
                    else:
                        self.failures.append(outcome)
                    self._cond.notify_all()
                self._stop.wait(0.005)  # pace: leave the CPU to the attack and the server

    def wait_for_answers(self, count: int, since: float | None = None, timeout: float = EVENT_TIMEOUT) -> None:
        """Wait until ``count`` requests were answered after ``since`` (default: now)."""
        since = time.monotonic() if since is None else since
        deadline = time.monotonic() + timeout
        with self._cond:
            while sum(1 for t in self.answered if t >= since) < count:
                remaining = deadline - time.monotonic()
                assert remaining > 0 and not self.failures, (
                    f"the normal client got {sum(1 for t in self.answered if t >= since)} answers "
                    f"in {timeout:g} s; failures: {self.failures[:5]}"
                )
                self._cond.wait(remaining)

    def answered_between(self, start: float, end: float) -> int:
        with self._cond:
            return sum(1 for t in self.answered if start <= t <= end)

    def __enter__(self) -> NormalClient:
        self._thread.start()
        self.wait_for_answers(3, since=0.0)
        return self

    def __exit__(self, exc_type, *exc: object) -> None:
        try:
            if exc_type is None:
                self.wait_for_answers(3)  # still served after the attack
        finally:
            self._stop.set()
            self._thread.join(CLIENT_TIMEOUT + 5)
        if exc_type is None:
            assert not self.failures, self.failures[:5]


@contextmanager
def bounded_memory(server: ServerProcess) -> Iterator[None]:
    before = reset_peak_memory(server.worker_pid)
    yield
    grew = peak_memory(server.worker_pid) - before
    assert grew < MEMORY_BOUND, f"the server's resident memory grew by {grew / MIB:.1f} MiB during the attack"


@contextmanager
def attack(server: ServerProcess) -> Iterator[NormalClient]:
    """A normal client running and the memory watched, for the length of the block."""
    with NormalClient(server) as normal, bounded_memory(server):
        yield normal


def assert_goaway(conn: RawH2Connection, code: int = ENHANCE_YOUR_CALM) -> None:
    """The server sent GOAWAY(``code``) and then closed the connection."""
    goaway = conn.goaway(DETECTION_BOUND)
    kinds = [f.kind for f in conn.received]
    assert goaway is not None, f"the connection closed without a GOAWAY; frames received: {kinds}"
    assert goaway.error_code == code, f"GOAWAY({goaway.error_code:#x}), expected {code:#x}"
    conn.expect_closed(DETECTION_BOUND)


def send_in_batches(conn: RawH2Connection, frames: Iterator[bytes], batch: int = 500) -> int:
    """Send ``frames`` in batches until they run out or the server closes; frames sent."""
    sent = 0
    while True:
        chunk = [frame for _, frame in zip(range(batch), frames, strict=False)]
        if not chunk or not conn.send(b"".join(chunk)):
            return sent
        sent += len(chunk)


# ------------------------------------------------------------------ stream floods


def test_rapid_reset(target):
    """CVE-2023-44487: open a stream and cancel it at once, thousands of times."""
    with attack(target), RawH2Connection(target.port) as conn:
        block = conn.header_block(request_headers("/"))
        pairs = (
            h2_frame(HEADERS, END_HEADERS | END_STREAM, stream, block)
            + h2_frame(RST_STREAM, 0, stream, struct.pack(">I", CANCEL))
            for stream in range(1, 2 * 5000, 2)
        )
        send_in_batches(conn, pairs, batch=100)
        assert_goaway(conn)
        # Far fewer streams than were sent were even looked at.
        assert conn.goaway().last_stream < 2 * 5000


def test_reset_of_accepted_streams(target):
    """Streams the server accepted (the application started) and the client then
    cancels, over and over: each costs an application call. Counted by the guard."""
    with attack(target), RawH2Connection(target.port) as conn:
        for stream in range(1, 2 * 1500, 2):
            if not conn.request(stream, request_headers(f"/big?size={HUGE}")):
                break
            # Wait until the response has started: the stream was accepted.
            started = conn.read_until(lambda f: f.kind in (HEADERS, GOAWAY) and f.stream in (stream, 0))
            if started is None or started.kind != HEADERS:
                break
            if not conn.send(h2_frame(RST_STREAM, 0, stream, struct.pack(">I", CANCEL))):
                break
        assert_goaway(conn)
    target.wait_for_line(r"HTTP/2 connection from 127\.0\.0\.1:\d+ closed with GOAWAY\(ENHANCE_YOUR_CALM\): RST_STREAM flood")


@pytest.mark.parametrize("with_headers", [False, True], ids=["empty", "with-headers"])
def test_continuation_flood(target, with_headers):
    """HEADERS without END_HEADERS, then CONTINUATION frames that never end the block."""
    start = target.mark()
    with attack(target), RawH2Connection(target.port) as conn:
        first = h2_frame(HEADERS, END_STREAM, 1, conn.header_block(request_headers("/")))

        def frames() -> Iterator[bytes]:
            yield first
            for i in range(100_000):
                payload = conn.header_block([(f"x-flood-{i}", "v" * 50)]) if with_headers else b""
                yield h2_frame(CONTINUATION, 0, 1, payload)

        send_in_batches(conn, frames(), batch=1000)
        assert_goaway(conn)
    target.wait_for_line(
        r"from 127\.0\.0\.1:\d+ closed with GOAWAY\(ENHANCE_YOUR_CALM\): "
        r"(CONTINUATION flood|header block past the abuse limit)", start)


def test_hpack_bomb(target):
    """A 4 KB header put in the dynamic table once, then referenced by index
    (one byte each) thousands of times: 16 KB on the wire, 48 MB decoded."""
    start = target.mark()
    with attack(target), RawH2Connection(target.port) as conn:
        # Literal with incremental indexing (RFC 7541 §6.2.1): it becomes dynamic entry 62.
        first = conn.header_block(request_headers("/") + [("x-bomb", "b" * 4000)])
        index_62 = b"\xbe"  # indexed header field (RFC 7541 §6.1), index 62
        block = first + index_62 * (16_000 - len(first))
        conn.send(h2_frame(HEADERS, END_HEADERS | END_STREAM, 1, block))
        assert_goaway(conn)
    target.wait_for_line(r"closed with GOAWAY\(ENHANCE_YOUR_CALM\): header block past the abuse limit", start)


# ------------------------------------------------------------------ control-frame floods


def test_settings_flood(target):
    start = target.mark()
    with attack(target), RawH2Connection(target.port) as conn:
        send_in_batches(conn, (h2_settings() for _ in range(2000)), batch=200)
        assert_goaway(conn)
    target.wait_for_line(r"HTTP/2 connection from 127\.0\.0\.1:\d+ closed with GOAWAY\(ENHANCE_YOUR_CALM\): SETTINGS flood", start)


def test_ping_flood(target):
    start = target.mark()
    with attack(target), RawH2Connection(target.port) as conn:
        send_in_batches(conn, (h2_frame(PING, 0, 0, struct.pack(">Q", i)) for i in range(5000)), batch=500)
        assert_goaway(conn)
    target.wait_for_line(r"HTTP/2 connection from 127\.0\.0\.1:\d+ closed with GOAWAY\(ENHANCE_YOUR_CALM\): PING flood", start)


def test_window_update_flood(target):
    start = target.mark()
    with attack(target), RawH2Connection(target.port) as conn:
        updates = (h2_frame(WINDOW_UPDATE, 0, 0, struct.pack(">I", 1)) for _ in range(20_000))
        send_in_batches(conn, updates, batch=1000)
        assert_goaway(conn)
    target.wait_for_line(r"HTTP/2 connection from 127\.0\.0\.1:\d+ closed with GOAWAY\(ENHANCE_YOUR_CALM\): WINDOW_UPDATE flood", start)


def test_settings_flood_after_an_h2c_upgrade(target):
    """Connections that became HTTP/2 by upgrade are guarded too."""
    with attack(target), RawConnection(target.port) as raw:
        raw.send(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\n"
                 b"HTTP2-Settings: \r\n\r\n")
        head = raw.read_head()
        assert head is not None and head.status == 101
        conn = RawH2Connection(target.port, upgraded=raw)
        send_in_batches(conn, (h2_settings() for _ in range(2000)), batch=200)
        assert_goaway(conn)


def test_control_frames_below_the_limits_are_fine(target):
    """No false alarm: a client that sends a few dozen SETTINGS and hundreds of PINGs is served."""
    with RawH2Connection(target.port) as conn:
        assert conn.send(b"".join(h2_settings() for _ in range(50)))
        assert conn.send(b"".join(h2_frame(PING, 0, 0, struct.pack(">Q", i)) for i in range(500)))
        conn.request(1, request_headers("/"))
        frame = conn.read_until(lambda f: (f.kind == DATA and f.stream == 1) or f.kind == GOAWAY)
        assert frame is not None and frame.kind == DATA and frame.payload == b"hello"
        acks = [f for f in conn.received if f.kind == PING and f.flags & ACK]
        assert len(acks) == 500


# ------------------------------------------------------------------ clients that take no data


def test_zero_window_stall(target):
    """The client sets its stream window to 0, asks for 1 MiB, answers SETTINGS and
    PINGs like a live peer, and never sends WINDOW_UPDATE."""
    with attack(target) as normal:
        with RawH2Connection(target.port, settings={SETTINGS_INITIAL_WINDOW_SIZE: 0}) as conn:
            began = time.monotonic()
            conn.request(1, request_headers(f"/big?size={MIB}"))
            assert_goaway(conn)  # read_until acknowledges SETTINGS and PINGs meanwhile
            detected = time.monotonic()
            assert SEND_TIMEOUT <= detected - began < DETECTION_BOUND, detected - began
            assert not [f for f in conn.received if f.kind == DATA and f.payload]
        assert normal.answered_between(began, detected) > 0


def test_http2_client_that_never_reads(target):
    """Asks for a huge response, grants it every window, and never reads its
    socket (a small receive buffer). The server cannot even get a GOAWAY through:
    it closes the connection."""
    start = target.mark()
    with attack(target) as normal:
        conn = RawH2Connection(target.port, rcvbuf=4096, settings={SETTINGS_INITIAL_WINDOW_SIZE: 2**31 - 1})
        with conn:
            conn.send(h2_frame(WINDOW_UPDATE, 0, 0, struct.pack(">I", 2**31 - 1 - 65_535)))
            began = time.monotonic()
            conn.request(1, request_headers(f"/big?size={HUGE}"))
            target.wait_for_line(r"a response stalled: the client takes no data", start, timeout=DETECTION_BOUND)
            detected = time.monotonic()
            assert detected - began >= SEND_TIMEOUT
            # Now read: what was in flight, then the end of the connection.
            drained = conn.expect_closed(DETECTION_BOUND)
            assert drained < 64 * MIB, f"{drained} bytes reached the client: the response was not cut off"
        assert normal.answered_between(began, detected) > 0


def test_http1_client_that_never_reads(target):
    start = target.mark()
    with attack(target) as normal:
        with RawConnection(target.port, rcvbuf=4096) as raw:
            began = time.monotonic()
            raw.send(f"GET /big?size={HUGE} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
            target.wait_for_line(r"a response stalled: the client takes no data", start, timeout=DETECTION_BOUND)
            detected = time.monotonic()
            assert detected - began >= SEND_TIMEOUT
            drained = raw.read_until_close()  # ends at EOF or reset; fails after CLIENT_TIMEOUT
            assert raw.eof
            assert len(drained) < 64 * MIB
        assert normal.answered_between(began, detected) > 0


def test_an_idle_client_that_answers_nothing_is_closed(start_server):
    """A connection that sends its preface and then nothing (no requests, no
    PING acknowledgements) is idle: --keep-alive-timeout closes it, as for HTTP/1.1."""
    srv = start_server(APP, "--keep-alive-timeout", "1", "--h2-keep-alive-interval", "0")
    with RawH2Connection(srv.port) as conn:
        began = time.monotonic()
        assert conn.read_until(lambda f: f.kind == GOAWAY, timeout=10, ack=False) is not None
        conn.expect_closed(timeout=8)
        assert time.monotonic() - began < 10


def test_a_slow_reader_that_keeps_reading_is_not_cut_off(target):
    """The send timeout is for clients that take nothing: one that reads a
    1 MiB response slowly, for longer than the timeout in all, gets all of it."""
    with RawConnection(target.port, rcvbuf=4096) as raw:
        raw.send(f"GET /big?size={MIB} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        began = time.monotonic()
        received = 0
        while received < MIB and time.monotonic() - began < 30:
            chunk = raw.sock.recv(4096)
            if not chunk:
                break
            received += len(chunk)
            time.sleep(0.01)  # the client's pace: at most 400 KB/s
        elapsed = time.monotonic() - began
    assert received >= MIB, f"cut off after {received} bytes and {elapsed:.1f} s"
    assert elapsed > SEND_TIMEOUT


# ------------------------------------------------------------------ the same over TLS


@pytest.fixture(scope="module")
def tls_target(start_module_server, pki) -> ServerProcess:
    return start_module_server(APP, *pki.ecdsa.args(), "--insecure-bind", "127.0.0.1:0",
                               "--send-timeout", str(SEND_TIMEOUT), "--keep-alive-timeout", "30")


def test_ping_flood_over_tls(tls_target, pki):
    with attack(tls_target), RawH2Connection(tls_target.tls_port, context=pki.ecdsa.client_context(("h2",))) as conn:
        send_in_batches(conn, (h2_frame(PING, 0, 0, struct.pack(">Q", i)) for i in range(5000)), batch=500)
        assert_goaway(conn)


def test_rapid_reset_over_tls(tls_target, pki):
    with attack(tls_target), RawH2Connection(tls_target.tls_port, context=pki.ecdsa.client_context(("h2",))) as conn:
        block = conn.header_block(request_headers("/", scheme="https"))
        pairs = (
            h2_frame(HEADERS, END_HEADERS | END_STREAM, stream, block)
            + h2_frame(RST_STREAM, 0, stream, struct.pack(">I", CANCEL))
            for stream in range(1, 2 * 5000, 2)
        )
        send_in_batches(conn, pairs, batch=100)
        assert_goaway(conn)


def test_zero_window_stall_over_tls(tls_target, pki):
    with attack(tls_target) as normal:
        with RawH2Connection(tls_target.tls_port, context=pki.ecdsa.client_context(("h2",)),
                             settings={SETTINGS_INITIAL_WINDOW_SIZE: 0}) as conn:
            began = time.monotonic()
            conn.request(1, request_headers(f"/big?size={MIB}", scheme="https"))
            assert_goaway(conn)
            detected = time.monotonic()
            assert SEND_TIMEOUT <= detected - began < DETECTION_BOUND, detected - began
        assert normal.answered_between(began, detected) > 0


def test_http2_client_that_never_reads_over_tls(tls_target, pki):
    start = tls_target.mark()
    with attack(tls_target) as normal:
        conn = RawH2Connection(tls_target.tls_port, rcvbuf=4096, context=pki.ecdsa.client_context(("h2",)),
                               settings={SETTINGS_INITIAL_WINDOW_SIZE: 2**31 - 1})
        with conn:
            conn.send(h2_frame(WINDOW_UPDATE, 0, 0, struct.pack(">I", 2**31 - 1 - 65_535)))
            began = time.monotonic()
            conn.request(1, request_headers(f"/big?size={HUGE}", scheme="https"))
            tls_target.wait_for_line(r"a response stalled: the client takes no data", start, timeout=DETECTION_BOUND)
            detected = time.monotonic()
            drained = conn.expect_closed(DETECTION_BOUND)
            assert drained < 64 * MIB
        assert normal.answered_between(began, detected) > 0


# ------------------------------------------------------------------ mutation fuzzing

#: Mutated HTTP/2 conversations, each on its own connection (seeded: the
#: same cases every run).
H2_FUZZ_CASES = 1000


def h2_conversation() -> bytes:
    """A valid client conversation touching every frame type the server reads."""
    encoder = hpack.Encoder()  # blocks encoded in the order they are sent
    first = encoder.encode(request_headers("/"))
    post = encoder.encode(request_headers("/echo", method="POST", extra=[("content-length", "5")]))
    big = encoder.encode(request_headers("/env", extra=[("x-pad", "p" * 60)]))
    last = encoder.encode(request_headers("/"))
    return b"".join([
        H2_PREFACE,
        h2_settings({SETTINGS_INITIAL_WINDOW_SIZE: 65535, 0x3: 50}),
        h2_frame(HEADERS, END_HEADERS | END_STREAM, 1, first),
        h2_frame(HEADERS, END_HEADERS, 3, post),
        h2_frame(DATA, 0, 3, b"hel"),
        h2_frame(WINDOW_UPDATE, 0, 0, struct.pack(">I", 1 << 20)),
        h2_frame(DATA, END_STREAM, 3, b"lo"),
        h2_frame(PING, 0, 0, b"12345678"),
        h2_frame(HEADERS, END_STREAM, 5, big[:20]),
        h2_frame(CONTINUATION, END_HEADERS, 5, big[20:]),
        h2_frame(HEADERS, END_HEADERS, 7, last),
        h2_frame(RST_STREAM, 0, 7, struct.pack(">I", CANCEL)),
    ])


def mutate_h2(rng, data: bytes) -> bytes:
    data = bytearray(data)
    start = len(H2_PREFACE)  # damage after the preface: HTTP/2 is what is fuzzed
    for _ in range(rng.randint(1, 4)):
        at = rng.randint(start, len(data))
        op = rng.randrange(5)
        if op == 0 and at < len(data):
            data[at] = rng.randrange(256)
        elif op == 1 and at < len(data):
            data[at] ^= 1 << rng.randrange(8)
        elif op == 2 and at < len(data):
            del data[at:at + rng.randint(1, 12)]
        elif op == 3 and at < len(data):
            data[at:at] = data[at:at + rng.randint(1, 30)] * rng.randint(1, 50)
        else:
            del data[at:]
    return bytes(data)


@pytest.mark.parametrize("over", ["cleartext", "tls"])
def test_mutated_http2_conversations_get_frames_or_a_close(request, pki, over):
    # Whatever the damage: the server answers with frames and closes once the
    # client has shut its side (HTTP/2 ends the connection there, streams
    # still in the application included: h2 and hyper's rule, as in Go's
    # server), within the client's timeout; it logs no panic, keeps its
    # memory bounded, and serves a normal client on other connections all
    # along. Over TLS (ALPN h2) the client ends with close_notify.
    server = request.getfixturevalue("target" if over == "cleartext" else "tls_target")
    context = pki.ecdsa.client_context(("h2",)) if over == "tls" else None
    cases = H2_FUZZ_CASES if over == "cleartext" else H2_FUZZ_CASES // 4
    rng = random.Random(4)
    seed = h2_conversation()
    mark = server.mark()
    goaways = processed = 0
    with attack(server):
        for case in range(cases):
            data = mutate_h2(rng, seed)
            with RawConnection(server.port if context is None else server.tls_port) as raw:
                if context is not None:
                    raw.sock = TLSOverMemory(raw.sock, context, "localhost")
                try:
                    raw.send(data)
                    raw.sock.shutdown(socket.SHUT_WR)
                except OSError:
                    pass  # closed by the server before the end: read what it said
                try:
                    received = raw.read_until_close()
                except TimeoutError as exc:
                    raise AssertionError(f"case {case}: {data!r}: {exc}") from None
            # Frames, from the server's SETTINGS on (a reset may cut the last).
            at, kinds = 0, []
            while at + 9 <= len(received):
                kinds.append(received[at + 3])
                at += 9 + int.from_bytes(received[at:at + 3], "big")
            assert kinds and kinds[0] == 0x4, f"case {case}: {received[:100]!r}"
            goaways += GOAWAY in kinds
            processed += PING in kinds  # the acknowledgement: read up to there
    log = "\n".join(server.lines_since(mark))
    assert "panicked" not in log, log[-3000:]
    # Both sides exercised: damage the server refused, and conversations it
    # read far enough to answer the PING after the requests.
    assert goaways > cases // 10 and processed > cases // 10, (goaways, processed)
