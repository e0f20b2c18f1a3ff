"""Slow request bodies hold no application thread: a small body
(``--preread-body-size``) is read whole by the server before the application
is called, a body slower than ``--min-body-rate`` after
``--min-body-rate-grace`` is answered 408, and with ``--buffer-body`` every
body is read whole holding no thread at all, OS or Python.

Each test trickles request bodies one byte a second, ``THREADS * 8`` of them
with ``--threads THREADS``: were an application thread waiting for each, every
other request would wait until they end.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable
from pathlib import Path

from tests.support import (
    CLIENT_TIMEOUT,
    DATA,
    END_STREAM,
    HEADERS,
    RawConnection,
    RawH2Connection,
    assert_serving,
    chunked_framing,
    h2_frame,
    http_request,
    request_headers,
)

THREADS = 2
SLOW = THREADS * 8
#: The length each trickled body declares: at a byte a second, longer than
#: any wait of the test.
BODY = 60
#: The bound for a normal request while the bodies trickle: generous; without
#: read-ahead it waits until the trickled bodies end (BODY seconds).
PROMPT = 10.0


class Trickle:
    """Sends one byte a second to each of ``senders``, in a thread, until stopped."""

    def __init__(self, senders: list[Callable[[bytes], object]]) -> None:
        self.senders = senders
        self.rounds = 0
        self._stop = threading.Event()
        self._cond = threading.Condition()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while self.rounds < BODY - 1:
            for send in self.senders:
                send(b"x")
            with self._cond:
                self.rounds += 1
                self._cond.notify_all()
            if self._stop.wait(1.0):
                return

    def wait_rounds(self, n: int) -> None:
        with self._cond:
            assert self._cond.wait_for(lambda: self.rounds >= n, timeout=CLIENT_TIMEOUT), "the trickle stalled"

    def stop(self) -> int:
        """Stop; the bytes each sender has sent."""
        self._stop.set()
        self._thread.join(CLIENT_TIMEOUT)
        return self.rounds


def assert_prompt(port: int) -> None:
    started = time.monotonic()
    status, _, body = http_request(port, "GET", "/")
    assert (status, body) == (200, b"hello")
    assert time.monotonic() - started < PROMPT


def h2_responses(h2: RawH2Connection, streams: list[int]) -> dict[int, tuple[int | None, bytes]]:
    """Read until every stream in ``streams`` has ended: its status and body."""
    status: dict[int, int | None] = {}
    bodies: dict[int, bytes] = dict.fromkeys(streams, b"")
    ended: set[int] = set()

    def take(frame) -> bool:
        if frame.stream in bodies:
            if frame.kind == HEADERS:
                status[frame.stream] = frame.status
            elif frame.kind == DATA:
                bodies[frame.stream] += frame.payload
            if frame.kind in (HEADERS, DATA) and frame.flags & END_STREAM:
                ended.add(frame.stream)
        return ended == set(streams)

    assert h2.read_until(take) is not None, "the connection closed"
    return {s: (status.get(s), bodies[s]) for s in streams}


def test_slow_http1_bodies_hold_no_thread(start_server):
    srv = start_server("tests.apps.wsgi_app:app", "--threads", str(THREADS), "--min-body-rate", "0")
    conns = [RawConnection(srv.port) for _ in range(SLOW)]
    try:
        for conn in conns:
            conn.send(f"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: {BODY}\r\n\r\n".encode())
        trickle = Trickle([conn.send for conn in conns])
        trickle.wait_rounds(2)
        assert_prompt(srv.port)
        sent = trickle.stop()
        for conn in conns:
            conn.send(b"x" * (BODY - sent))
        for conn in conns:
            response = conn.read_response("POST")
            assert response is not None
            assert (response.status, response.body) == (200, b"x" * BODY)
    finally:
        for conn in conns:
            conn.close()


def test_slow_h2_streams_hold_no_thread(start_server):
    srv = start_server("tests.apps.wsgi_app:app", "--threads", str(THREADS), "--min-body-rate", "0")
    streams = [1 + 2 * i for i in range(SLOW)]
    with RawH2Connection(srv.port) as h2:
        for stream in streams:
            # Half of them declare their length, half do not.
            extra = [("content-length", str(BODY))] if stream % 4 == 1 else []
            h2.request(stream, request_headers("/echo", "POST", extra=extra), end_stream=False)
        trickle = Trickle([lambda data, s=s: h2.send(h2_frame(DATA, 0, s, data)) for s in streams])
        trickle.wait_rounds(2)
        assert_prompt(srv.port)
        sent = trickle.stop()
        for stream in streams:
            h2.send(h2_frame(DATA, END_STREAM, stream, b"x" * (BODY - sent)))
        for stream, (status, body) in h2_responses(h2, streams).items():
            assert (status, body) == (200, b"x" * BODY), stream


def test_bodies_below_the_minimum_rate_get_408(start_server):
    srv = start_server(
        "tests.apps.wsgi_app:app", "--threads", str(THREADS), "--min-body-rate-grace", "1"
    )  # the default rate: 240 bytes/s
    conns = [RawConnection(srv.port) for _ in range(SLOW)]
    streams = [1, 3, 5]
    h2 = RawH2Connection(srv.port)
    try:
        mark = srv.mark()
        for conn in conns:
            conn.send(f"POST /called?token=slow HTTP/1.1\r\nHost: t\r\nContent-Length: {BODY}\r\n\r\n".encode())
        for stream in streams:
            h2.request(stream, request_headers("/called?token=slow", "POST"), end_stream=False)
        trickle = Trickle(
            [conn.try_send for conn in conns] + [lambda data, s=s: h2.send(h2_frame(DATA, 0, s, data)) for s in streams]
        )
        for conn in conns:
            response = conn.read_response("POST")
            assert response is not None
            assert response.status == 408
            assert response.header("connection") == "close"
        for stream, (status, _) in h2_responses(h2, streams).items():
            assert status == 408, stream
        trickle.stop()
        assert_serving(srv.port)
        assert not [line for line in srv.lines_since(mark) if "APP-CALLED slow" in line]
    finally:
        h2.close()
        for conn in conns:
            conn.close()


def test_a_body_over_the_preread_size_streams_to_the_application(start_server):
    srv = start_server("tests.apps.wsgi_app:app", "--threads", str(THREADS), "--preread-body-size", "1024")
    first, rest = b"a" * 2048, b"b" * 2048
    expected = {"length": 4096, "sha256": hashlib.sha256(first + rest).hexdigest()}
    # HTTP/1.1 with a Content-Length: the application reads the socket.
    with RawConnection(srv.port) as conn:
        mark = srv.mark()
        conn.send(b"POST /called?token=h1 HTTP/1.1\r\nHost: t\r\nContent-Length: 4096\r\n\r\n" + first)
        srv.wait_for_line("APP-CALLED h1", mark)
        conn.send(rest)
        response = conn.read_response("POST")
        assert response is not None and response.status == 200
        assert {k: response.json()[k] for k in expected} == expected
    # HTTP/2 without a length: read up to the limit, then streamed.
    with RawH2Connection(srv.port) as h2:
        mark = srv.mark()
        h2.request(1, request_headers("/called?token=h2", "POST"), end_stream=False)
        h2.send(h2_frame(DATA, 0, 1, first))
        srv.wait_for_line("APP-CALLED h2", mark)
        h2.send(h2_frame(DATA, END_STREAM, 1, rest))
        [(status, body)] = h2_responses(h2, [1]).values()
        assert status == 200
        assert b'"length": 4096' in body and expected["sha256"].encode() in body


def test_an_application_reading_a_body_below_the_minimum_rate_gets_an_error(start_server):
    """A body over --preread-body-size that the application reads: the read
    raises RequestBodyTooSlow, a ClientDisconnected, once the body is below
    the rate, which frees the thread; let through, it is answered 408."""
    srv = start_server(
        "tests.apps.wsgi_app:app", "--threads", str(THREADS), "--preread-body-size", "1024",
        "--min-body-rate", "2000", "--min-body-rate-grace", "1",
    )  # fmt: skip
    start = b"s" * 1500  # earns 0.75 s of waiting at 2000 bytes/s: the grace period counts
    with RawConnection(srv.port) as conn:
        conn.send(b"POST /body-report HTTP/1.1\r\nHost: t\r\nContent-Length: 4096\r\n\r\n" + start)
        trickle = Trickle([conn.try_send])
        response = conn.read_response("POST")
        trickle.stop()
        assert response is not None and response.status == 200
        report = response.json()
        assert report["error"] == "RequestBodyTooSlow", report
        assert report["is_ClientDisconnected"] and report["is_RequestBodyError"], report
        assert "minimum of 2000 bytes/s" in report["message"]
    # Let through by the application (/hash reads without catching).
    with RawConnection(srv.port) as conn:
        conn.send(b"POST /hash HTTP/1.1\r\nHost: t\r\nContent-Length: 4096\r\n\r\n" + start)
        trickle = Trickle([conn.try_send])
        response = conn.read_response("POST")
        trickle.stop()
        assert response is not None
        assert (response.status, response.header("connection")) == (408, "close")
    with RawH2Connection(srv.port) as h2:
        h2.request(1, request_headers("/body-report", "POST"), end_stream=False)
        h2.send(h2_frame(DATA, 0, 1, start))
        trickle = Trickle([lambda data: h2.send(h2_frame(DATA, 0, 1, data))])
        [(status, body)] = h2_responses(h2, [1]).values()
        trickle.stop()
        assert status == 200
        assert b'"error": "RequestBodyTooSlow"' in body and b"minimum of 2000 bytes/s" in body


def threads_of(pid: int) -> int:
    """The number of threads of process ``pid`` (Linux ``/proc/PID/status``)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Threads:"):
            return int(line.split()[1])
    raise AssertionError(f"no Threads in /proc/{pid}/status")


def test_slow_uploads_with_buffer_body_hold_no_thread(start_server):
    """``--buffer-body`` reads every body whole before the call: trickled over
    HTTP/1.1 (with a length and chunked) and HTTP/2, they hold neither the one
    application thread nor an OS thread each, and a normal request is answered
    meanwhile."""
    srv = start_server("tests.apps.wsgi_app:app", "--threads", "1", "--buffer-body", "--min-body-rate", "0")
    assert_serving(srv.port)
    before = threads_of(srv.worker_pid)
    sized = [RawConnection(srv.port) for _ in range(SLOW // 2)]
    chunked = [RawConnection(srv.port) for _ in range(SLOW // 4)]
    streams = [1 + 2 * i for i in range(SLOW // 4)]
    h2 = RawH2Connection(srv.port)
    try:
        for conn in sized:
            conn.send(f"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: {BODY}\r\n\r\n".encode())
        for conn in chunked:
            conn.send(b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n")
        for stream in streams:
            h2.request(stream, request_headers("/echo", "POST"), end_stream=False)
        trickle = Trickle(
            [conn.send for conn in sized]
            + [lambda data, c=conn: c.send(chunked_framing(data, end=False)) for conn in chunked]
            + [lambda data, s=s: h2.send(h2_frame(DATA, 0, s, data)) for s in streams]
        )
        trickle.wait_rounds(2)
        assert_prompt(srv.port)
        during = threads_of(srv.worker_pid)
        # A thread per upload would be SLOW more.
        assert during - before < SLOW // 4, (before, during)
        sent = trickle.stop()
        for conn in sized:
            conn.send(b"x" * (BODY - sent))
        for conn in chunked:
            conn.send(chunked_framing(b"x" * (BODY - sent)))
        for stream in streams:
            h2.send(h2_frame(DATA, END_STREAM, stream, b"x" * (BODY - sent)))
        for conn in sized + chunked:
            response = conn.read_response("POST")
            assert response is not None
            assert (response.status, response.body) == (200, b"x" * BODY)
        for stream, (status, body) in h2_responses(h2, streams).items():
            assert (status, body) == (200, b"x" * BODY), stream
    finally:
        h2.close()
        for conn in sized + chunked:
            conn.close()


def test_bodies_that_come_with_their_head_count_in_the_memory_budget(start_server, tmp_path):
    """A small body that arrives with its head is held whole before the call,
    counted in ``--preread-memory-limit``: while one is held, a chunked body
    finds no room to be read ahead, and the application is called before it
    is complete (read ahead, it would be called only at its end)."""
    srv = start_server(
        "tests.apps.wsgi_app:app", "--threads", "2", "--preread-body-size", "1K", "--preread-memory-limit", "1K",
        "--min-body-rate", "0",
    )  # fmt: skip
    release = tmp_path / "release"
    with RawConnection(srv.port) as held, RawConnection(srv.port) as streamed:
        mark = srv.mark()
        held.send(
            f"POST /block?token=held&release={release} HTTP/1.1\r\nHost: t\r\nContent-Length: 1000\r\n\r\n".encode()
            + b"h" * 1000
        )
        srv.wait_for_line("BLOCK-STARTED held", mark)
        streamed.send(b"POST /called?token=streamed HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n")
        streamed.send(chunked_framing(b"s" * 16, end=False))
        srv.wait_for_line("APP-CALLED streamed", mark)
        streamed.send(chunked_framing(b"s" * 16))
        response = streamed.read_response("POST")
        assert response is not None and response.status == 200
        assert response.json()["length"] == 32
        release.touch()
        response = held.read_response("POST")
        assert response is not None and (response.status, response.body) == (200, b"released")
