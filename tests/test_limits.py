"""Server limits: a full thread pool and queue answer 503; ``--max-body-size`` answers 413;
idle, slow-head and stalled-body connections are ended by their timeouts."""

from __future__ import annotations

import http.client
import json
import queue
import select
import socket
import threading
import time
import uuid

import httpx
import pytest

from tests.support import (
    CANCEL,
    CLIENT_TIMEOUT,
    GOAWAY,
    RST_STREAM,
    RawConnection,
    RawH2Connection,
    assert_serving,
    chunks_of,
    h2_frame,
    http_request,
    request_headers,
    send_refusable,
    wait_for_file,
)

# ------------------------------------------------------------------ pool and queue


@pytest.fixture
def tiny_pool_server(start_server):
    return start_server("tests.apps.wsgi_app:app", "--threads", "1", "--queue-size", "1")


def test_full_pool_and_queue_answer_503_then_recover(tiny_pool_server, tmp_path):
    srv = tiny_pool_server
    release = tmp_path / "release"
    results: queue.Queue[tuple[str, int, bytes]] = queue.Queue()

    def call(name: str, path: str) -> None:
        try:
            status, _, body = http_request(srv.port, "GET", path)
        except Exception as exc:  # reported through the queue, so the test fails clearly
            status, body = -1, repr(exc).encode()
        results.put((name, status, body))

    def start(name: str, path: str) -> threading.Thread:
        thread = threading.Thread(target=call, args=(name, path), daemon=True)
        thread.start()
        return thread

    token = uuid.uuid4().hex
    start_mark = srv.mark()
    threads = [start("running", f"/block?release={release}&token={token}")]
    try:
        # The one thread is now inside the app.
        srv.wait_for_line(f"BLOCK-STARTED {token}", start_mark)
        # One of the next two waits in the queue (size 1); the other finds pool and
        # queue full and must be answered 503 at once -- while the first still blocks.
        # Which of the two is refused depends on which the server sees first.
        threads.append(start("second", f"/block?release={release}&token={token}-2"))
        threads.append(start("third", f"/block?release={release}&token={token}-3"))
        name, status, body = results.get(timeout=CLIENT_TIMEOUT)
        assert status == 503, f"first answer was {status} {body!r} from {name}, expected 503"
        assert name in ("second", "third")
    finally:
        release.touch()
    for thread in threads:
        thread.join(CLIENT_TIMEOUT)
    rest = sorted((results.get_nowait() for _ in range(2)), key=lambda r: r[0])
    assert [(status, body) for _, status, body in rest] == [(200, b"released")] * 2, rest
    assert_serving(srv.port)


def test_a_request_queued_past_the_queue_timeout_gets_503_and_never_reaches_the_app(start_server, tmp_path):
    srv = start_server("tests.apps.wsgi_app:app", "--threads", "1", "--queue-timeout", "1")
    release = tmp_path / "release"
    token = uuid.uuid4().hex
    mark = srv.mark()
    held: queue.Queue[tuple[int, bytes]] = queue.Queue()

    def hold() -> None:
        status, _, body = http_request(srv.port, "GET", f"/block?release={release}&token={token}")
        held.put((status, body))

    holder = threading.Thread(target=hold, daemon=True)
    holder.start()
    try:
        # The only thread is now inside the app: the next request queues.
        srv.wait_for_line(f"BLOCK-STARTED {token}", mark)
        began = time.monotonic()
        status, _, body = http_request(srv.port, "GET", f"/called?token={token}-late")
        waited = time.monotonic() - began
        assert status == 503, (status, body)
        assert 0.5 < waited < CLIENT_TIMEOUT, waited
    finally:
        release.touch()
    holder.join(CLIENT_TIMEOUT)
    assert held.get(timeout=CLIENT_TIMEOUT) == (200, b"released")
    # The thread, free again, drops the abandoned call unrun, then serves on
    # (in queue order: the late request's line would come before this one).
    status, _, _ = http_request(srv.port, "GET", f"/called?token={token}-after")
    assert status == 200
    srv.sync_log(f"sync-{token}")
    log = srv.lines_since(mark)
    assert not [line for line in log if f"APP-CALLED {token}-late" in line], "the app was called"
    assert [line for line in log if f"APP-CALLED {token}-after" in line]


def test_a_request_that_gets_a_thread_within_the_queue_timeout_is_served(start_server, tmp_path):
    # One thread, a queue of one: of the two requests sent while the thread
    # is held, one is answered 503 at once (the queue is full), which shows
    # that the other is waiting in the queue; released within its queue
    # timeout, it is served as usual.
    srv = start_server("tests.apps.wsgi_app:app", "--threads", "1", "--queue-size", "1", "--queue-timeout", "10")
    release = tmp_path / "release"
    token = uuid.uuid4().hex
    mark = srv.mark()
    results: queue.Queue[tuple[str, int, bytes]] = queue.Queue()

    def call(name: str, path: str) -> None:
        try:
            status, _, body = http_request(srv.port, "GET", path)
        except Exception as exc:  # reported through the queue, so the test fails clearly
            status, body = -1, repr(exc).encode()
        results.put((name, status, body))

    threads = [threading.Thread(target=call, args=("held", f"/block?release={release}&token={token}"), daemon=True)]
    threads[0].start()
    try:
        srv.wait_for_line(f"BLOCK-STARTED {token}", mark)
        for name in ("second", "third"):
            threads.append(threading.Thread(target=call, args=(name, f"/called?token={token}-{name}"), daemon=True))
            threads[-1].start()
        name, status, body = results.get(timeout=CLIENT_TIMEOUT)
        assert (name in ("second", "third"), status) == (True, 503), (name, status, body)
    finally:
        release.touch()
    for thread in threads:
        thread.join(CLIENT_TIMEOUT)
    rest = {n: status for n, status, _ in (results.get_nowait() for _ in range(2))}
    queued = "third" if name == "second" else "second"
    assert rest == {"held": 200, queued: 200}, rest


# ------------------------------------------------------------------ --max-body-size


@pytest.fixture(scope="module")
def small_body_server(start_module_server):
    return start_module_server("tests.apps.wsgi_app:app", "--max-body-size", "1000")


def test_declared_content_length_too_large_is_413_without_calling_the_app(small_body_server):
    srv = small_body_server
    token = uuid.uuid4().hex
    with RawConnection(srv.port) as raw:
        # Only the head: a 413 must come before the body is even sent.
        raw.send(f"POST /called?token={token} HTTP/1.1\r\nHost: t\r\nContent-Length: 2000\r\n\r\n".encode())
        response = raw.read_head()
    assert response is not None and response.status == 413
    srv.sync_log(f"sync-{token}")
    assert not [line for line in srv.stderr_lines() if f"APP-CALLED {token}" in line], "the app was called"
    assert_serving(srv.port)


def test_content_length_at_the_limit_is_accepted(small_body_server):
    status, _, _body = http_request(small_body_server.port, "POST", "/hash", body=b"x" * 1000)
    assert status == 200


def test_chunked_body_crossing_the_limit_is_413(small_body_server):
    response = send_refusable(small_body_server.port, "POST", "/hash", b"x" * 5000, chunked=True, chunk=500)
    assert response is not None, "connection closed without a response"
    assert response.status == 413
    assert_serving(small_body_server.port)


def test_a_chunked_body_over_the_limit_is_not_waited_for(small_body_server):
    # A body the server refused (413) is not drained to keep the connection,
    # as one the application left unread is: the connection closes after the
    # response, without waiting for the rest.
    chunk = b"7d0\r\n" + b"x" * 2000 + b"\r\n"
    with RawConnection(small_body_server.port) as raw:
        raw.send(b"POST /hash HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n" + chunk)
        response = raw.read_response()
        assert response is not None and response.status == 413
        began = time.monotonic()
        raw.expect_close()
        assert time.monotonic() - began < 2.5, "closed at once, not after the 5 s drain"


def test_http2_body_crossing_the_limit_is_413(small_body_server):
    with httpx.Client(http1=False, http2=True, timeout=CLIENT_TIMEOUT) as client:
        response = client.post(f"{small_body_server.url}/hash", content=chunks_of(b"x" * 5000, 500))
        assert response.status_code == 413
        # The connection (only the stream failed) still serves.
        assert client.get(f"{small_body_server.url}/").content == b"hello"


def test_http2_declared_length_too_large_is_413(small_body_server):
    with httpx.Client(http1=False, http2=True, timeout=CLIENT_TIMEOUT) as client:
        response = client.post(f"{small_body_server.url}/hash", content=b"x" * 5000)
    assert response.status_code == 413


# ------------------------------------------------------------------ lingering close
#
# A client that sends its whole body before reading the response (Python's
# http.client) must get the response even when the server answers without
# reading the body: the server closes after the response, and a close with
# the client's bytes still coming is a reset, which destroys the response in
# the client's kernel. 40 MB is far more than the loopback socket buffers
# hold, so the client is still sending when the response is written.

BIG = 40 * 1024 * 1024


def _post_whole_body_then_read(port: int, path: str, *, chunked: bool) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=CLIENT_TIMEOUT)
    try:
        if chunked:
            body = (b"x" * (1024 * 1024) for _ in range(BIG // (1024 * 1024)))
            conn.request("POST", path, body=body, encode_chunked=True)
        else:
            conn.request("POST", path, body=b"x" * BIG)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


@pytest.fixture(scope="module")
def unread_body_server(start_module_server):
    return start_module_server("tests.apps.wsgi_app:app")


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_a_body_the_app_does_not_read_does_not_cost_the_client_its_response(unread_body_server, chunked):
    assert _post_whole_body_then_read(unread_body_server.port, "/expect-noread", chunked=chunked) == (200, b"unread")
    assert_serving(unread_body_server.port)


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_a_413_reaches_a_client_that_sends_its_whole_body_first(small_body_server, chunked):
    status, _ = _post_whole_body_then_read(small_body_server.port, "/hash", chunked=chunked)
    assert status == 413
    assert_serving(small_body_server.port)


def test_a_431_reaches_a_client_still_sending_its_head(unread_body_server):
    # A head far over --max-header-size (64 KiB): refused with 431
    # while http.client is still writing it.
    conn = http.client.HTTPConnection("127.0.0.1", unread_body_server.port, timeout=CLIENT_TIMEOUT)
    try:
        conn.request("GET", "/", headers={"X-Huge": "x" * BIG})
        assert conn.getresponse().status == 431
    finally:
        conn.close()
    assert_serving(unread_body_server.port)


# ------------------------------------------------------------------ timeouts
#
# These wait for the server to act on its own timeouts (set to 1 s here) and
# only assert *that* it acts, within the client's generous socket timeout --
# never how fast.


@pytest.fixture(scope="module")
def impatient_server(start_module_server):
    return start_module_server("tests.apps.wsgi_app:app", "--keep-alive-timeout", "1", "--header-timeout", "1",
                               "--body-timeout", "1")


def test_idle_keep_alive_connection_is_closed(impatient_server):
    with RawConnection(impatient_server.port) as raw:
        raw.send(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
        assert raw.read_response().body == b"hello"
        raw.expect_close()


def test_an_http2_connection_whose_streams_were_reset_goes_idle(impatient_server, tmp_path):
    # A stream the client resets while the application runs ends its request
    # as a finished one does: once it is gone, the connection is idle and the
    # keep-alive timeout closes it (GOAWAY). A reset request that stayed "in
    # flight" would keep the connection open for ever.
    release = tmp_path / "release"
    token = uuid.uuid4().hex
    start = impatient_server.mark()
    with RawH2Connection(impatient_server.port) as conn:
        conn.request(1, request_headers(f"/block?token={token}&release={release}"))
        impatient_server.wait_for_line(f"BLOCK-STARTED {token}", start)
        conn.send(h2_frame(RST_STREAM, 0, 1, CANCEL.to_bytes(4, "big")))
        release.touch()
        goaway = conn.read_until(lambda f: f.kind == GOAWAY)
        assert goaway is not None or conn.closed, "the connection was neither sent GOAWAY nor closed"


def test_slow_request_head_is_cut_off(impatient_server):
    # Slowloris: a head that never completes must not hold the connection forever.
    with RawConnection(impatient_server.port) as raw:
        raw.send(b"GET / HTTP/1.1\r\nHost: t\r\nX-Slow: ")
        response = raw.read_head()
        if response is not None:
            assert response.status == 408
        raw.read_until_close()
    assert_serving(impatient_server.port)


@pytest.fixture(scope="module")
def patient_keep_alive_server(start_module_server):
    # A keep-alive timeout far longer than the header timeout (as deployments
    # behind a proxy that reuses connections set it).
    return start_module_server("tests.apps.wsgi_app:app", "--keep-alive-timeout", "60", "--header-timeout", "1")


def test_an_idle_keep_alive_connection_outlives_the_header_timeout(patient_keep_alive_server):
    # The header timeout counts from a head's first byte, not from the end of
    # the previous response: an idle connection is the keep-alive timeout's.
    with RawConnection(patient_keep_alive_server.port) as raw:
        raw.send(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
        assert raw.read_response().body == b"hello"
        # Three header timeouts of silence: the server must neither close nor send.
        raw.sock.settimeout(3)
        with pytest.raises(socket.timeout):
            raw.sock.recv(1)
        raw.sock.settimeout(raw.timeout)
        raw.send(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
        response = raw.read_response()
        assert response is not None and response.body == b"hello"


def test_a_trickled_head_is_cut_by_the_header_timeout(patient_keep_alive_server):
    # Slowloris proper: a byte every 0.2 s keeps the connection busy but never
    # completes the head. With a 60 s keep-alive timeout, only the 1 s header
    # timeout (from the first byte) can end it, long before 40 bytes are out.
    with RawConnection(patient_keep_alive_server.port) as raw:
        head = b"GET / HTTP/1.1\r\nHost: t\r\nX-Slow: " + b"a" * 40
        closed = False
        for byte in head:
            try:
                raw.send(bytes([byte]))
            except (BrokenPipeError, ConnectionResetError):
                closed = True
                break
            readable, _, _ = select.select([raw.sock], [], [], 0.2)
            if readable:
                closed = True
                break
        assert closed, "a head trickled for 8 s was not cut off by a 1 s header timeout"
        response = raw.read_head()
        if response is not None:
            assert response.status == 408
        raw.read_until_close()
    assert_serving(patient_keep_alive_server.port)


def test_stalled_body_raises_client_disconnected(impatient_server, tmp_path):
    # The client sends part of the body and then nothing, without closing:
    # after --body-timeout the app's read raises ClientDisconnected.
    record = tmp_path / "record.json"
    with RawConnection(impatient_server.port) as raw:
        # Over --preread-body-size: the application reads it as it comes.
        raw.send(b"POST /body-report HTTP/1.1\r\nHost: t\r\nContent-Length: 100000\r\nX-Record-Path: "
                 + str(record).encode() + b"\r\n\r\n" + b"a" * 10)
        lines = wait_for_file(record, lambda text: len(text.splitlines()) >= 2).splitlines()
    seen = json.loads(lines[1])
    assert seen["error"] == "ClientDisconnected" and seen["is_oserror"], seen
    assert seen["bytes_read"] <= 10, seen  # read(4096) waits for a full block or the end
