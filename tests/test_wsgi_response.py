"""The response side of WSGI (PEP 3333 "The start_response() Callable", "Buffering and
Streaming", WSGI 1.1's Content-Length enforcement) and what the server does with
applications that get it wrong.
"""

from __future__ import annotations

import http.client

import pytest

from tests.support import CLIENT_TIMEOUT, RawConnection, assert_serving, http_request, wait_for_file

# ------------------------------------------------------------------ start_response and write()


def test_write_callable(server):
    status, _headers, body = http_request(server.port, "GET", "/write")
    assert (status, body) == (200, b"first second third")


def test_write_sends_headers_and_data_before_returning(server, tmp_path):
    # PEP 3333: write() must not return before the data is sent (or handed to the OS).
    # The app writes b"early" and then waits for the test: the client must see the
    # status and b"early" while the app is still running.
    release = tmp_path / "release"
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=CLIENT_TIMEOUT)
    try:
        conn.request("GET", f"/write-wait?release={release}")
        response = conn.getresponse()
        assert response.status == 200
        assert response.read(5) == b"early"
        release.touch()
        assert response.read() == b"late"
    finally:
        release.touch()
        conn.close()


def test_exc_info_before_anything_sent_replaces_status(server):
    status, _headers, body = http_request(server.port, "GET", "/exc-info")
    assert (status, body) == (503, b"handled")


def test_generator_with_empty_chunks(server):
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=CLIENT_TIMEOUT)
    try:
        for path in ("/empty-chunks", "/empty-chunks?cl=1", "/"):
            conn.request("GET", path)
            response = conn.getresponse()
            # An empty chunk must not be sent as the zero-length last-chunk (RFC 9112 §7.1),
            # which would end the body early and leave "cd" to garble the next response.
            assert response.read() == (b"hello" if path == "/" else b"abcd")
    finally:
        conn.close()


# ------------------------------------------------------------------ close()


def test_close_called_after_normal_response(server, tmp_path):
    record = tmp_path / "record"
    status, _, body = http_request(server.port, "GET", "/close-record?mode=normal",
                                   headers={"X-Record-Path": str(record)})
    assert (status, body) == (200, b"onetwothree")
    assert wait_for_file(record) == "closed after 3 chunks\n"


def assert_cut_short(port: int, path: str, headers: dict[str, str] | None = None) -> None:
    """The response to GET ``path`` is a 200 cut short, or the connection closes with no response.

    The app failed after its first chunk: the server may or may not have flushed
    the status line before it aborted, but it must never finish the response.
    """
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=CLIENT_TIMEOUT)
    try:
        conn.request("GET", path, headers=headers or {})
        try:
            response = conn.getresponse()
        except (http.client.RemoteDisconnected, ConnectionResetError):
            return
        assert response.status == 200
        with pytest.raises((http.client.IncompleteRead, ConnectionResetError)):
            response.read()
    finally:
        conn.close()


def test_close_called_after_error_mid_iteration(server, tmp_path):
    record = tmp_path / "record"
    start = server.mark()
    assert_cut_short(server.port, "/close-record?mode=error", {"X-Record-Path": str(record)})
    assert wait_for_file(record) == "closed after 1 chunks\n"
    server.wait_for_line("boom close-record error", start)
    assert_serving(server.port)


def test_close_called_when_client_disconnects_mid_response(server, tmp_path):
    record = tmp_path / "record"
    with RawConnection(server.port) as raw:
        raw.send(b"GET /close-record?mode=endless HTTP/1.1\r\nHost: t\r\nX-Record-Path: "
                 + str(record).encode() + b"\r\n\r\n")
        head = raw.read_head()
        assert head.status == 200
        raw.sock.recv(65536)  # read a little, then go away
    text = wait_for_file(record)
    count = int(text.split()[2])
    assert text.startswith("closed after") and count < 16 * 1024, text
    assert_serving(server.port)


# ------------------------------------------------------------------ Content-Length enforcement


def test_more_bytes_than_content_length_are_not_sent(server):
    start = server.mark()
    with RawConnection(server.port) as raw:
        raw.send(b"GET /cl-more HTTP/1.1\r\nHost: t\r\n\r\n")
        response = raw.read_response()
        assert response.status == 200
        assert response.body == b"0123456789"
        # Whatever comes next on this connection must be a response (or the close),
        # not the 10 surplus bytes.
        try:
            raw.send(b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server closed the connection: also fine
        after = raw.read_response()
        if after is not None:
            assert (after.status, after.body) == (200, b"hello")
    server.wait_for_line(r"(?i)content.length", start)


def test_fewer_bytes_than_content_length_closes_the_connection(server):
    # The client must not take 10 bytes for the whole body: either it sees the
    # declared 20 and a short read, or (if the server noticed before flushing
    # anything) the connection closes without a response.
    start = server.mark()
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=CLIENT_TIMEOUT)
    try:
        conn.request("GET", "/cl-less")
        try:
            response = conn.getresponse()
        except (http.client.RemoteDisconnected, ConnectionResetError):
            response = None
        if response is not None:
            assert response.getheader("Content-Length") == "20"
            with pytest.raises(http.client.IncompleteRead) as info:
                response.read()
            assert b"0123456789".startswith(info.value.partial)
    finally:
        conn.close()
    server.wait_for_line(r"(?i)content.length", start)
    assert_serving(server.port)


# ------------------------------------------------------------------ slow clients


@pytest.fixture(scope="module")
def one_thread_server(start_module_server):
    return start_module_server("tests.apps.wsgi_app:app", "--threads", "1")


def test_slow_reader_does_not_hold_the_only_thread(one_thread_server):
    # The app streams 64 MiB to a client that reads nothing: far more than socket
    # buffers hold, so the response is stuck on backpressure. With --threads 1,
    # another request can only be answered if the server gives the thread back
    # between chunks instead of blocking it on the socket.
    port = one_thread_server.port
    with RawConnection(port, rcvbuf=4096) as slow:
        slow.send(b"GET /big?size=67108864 HTTP/1.1\r\nHost: t\r\n\r\n")
        head = slow.read_head()  # the app is running: headers (and some data) are out
        assert head.status == 200
        for _ in range(2):
            status, _, body = http_request(port, "GET", "/")
            assert (status, body) == (200, b"hello")


# ------------------------------------------------------------------ application errors


@pytest.fixture(scope="module")
def error_server(start_module_server):
    return start_module_server("tests.apps.error_app:app")


def get(port: int, path: str) -> tuple[int, bytes]:
    status, _, body = http_request(port, "GET", path)
    return status, body


def assert_logged_error(server, start: int, marker: str | None) -> None:
    """An ERROR on propylon.error after ``start``; with ``marker``, a traceback showing it."""
    server.wait_for_line(r"\[ERROR\] propylon\.error: ", start)
    if marker is not None:
        server.wait_for_line(r"Traceback \(most recent call last\)", start)
        server.wait_for_line(marker, start)


@pytest.mark.parametrize("path, marker", [
    ("/raise-before-start", "boom raise-before-start"),
    ("/raise-after-start", "boom raise-after-start"),
    ("/start-twice", None),
    ("/non-iterable", None),
    ("/yield-str", None),
    ("/status-no-reason", None),
    ("/status-no-code", None),
    ("/status-four-digits", None),
    ("/header-newline", None),
    ("/header-not-latin1", None),
    ("/header-bad-name", None),
    ("/header-surrogate", None),
    ("/header-name-bytes", None),
    ("/header-value-int", None),
])
def test_app_error_before_headers_is_500(error_server, path, marker):
    start = error_server.mark()
    status, body = get(error_server.port, path)
    assert status == 500
    assert b"should not be sent" not in body
    assert_logged_error(error_server, start, marker)
    assert get(error_server.port, "/ok") == (200, b"hello")


@pytest.mark.parametrize("path", ["/header-newline", "/header-bad-name", "/status-four-digits"])
def test_a_bad_header_or_status_is_refused_every_time(error_server, path):
    # The server remembers statuses and headers it has checked, by the str
    # object; one it refused must be checked (and refused) again each time.
    for _ in range(3):
        start = error_server.mark()
        assert get(error_server.port, path)[0] == 500
        assert_logged_error(error_server, start, None)
    assert get(error_server.port, "/ok") == (200, b"hello")


def test_latin1_header_value_goes_out_one_byte_per_char(error_server):
    # PEP 3333: header values are latin-1 str; U+00E9 is the byte 0xE9 on the
    # wire (obs-text, RFC 9110 §5.5), which http.client decodes as latin-1.
    conn = http.client.HTTPConnection("127.0.0.1", error_server.port, timeout=CLIENT_TIMEOUT)
    try:
        conn.request("GET", "/header-latin1")
        resp = conn.getresponse()
        resp.read()
        assert resp.status == 200
        assert resp.getheader("X-Name") == "caf\u00e9 \u00ff"
    finally:
        conn.close()


@pytest.mark.parametrize("name", ["Connection", "Keep-Alive", "Proxy-Authenticate", "Proxy-Authorization",
                                  "TE", "Trailer", "Transfer-Encoding", "Upgrade"])
def test_hop_by_hop_header_from_app_is_500(error_server, name):
    # PEP 3333: applications must not send hop-by-hop headers (RFC 9110 §7.6.1).
    start = error_server.mark()
    status, _body = get(error_server.port, f"/hop-by-hop?name={name}")
    assert status == 500
    assert_logged_error(error_server, start, None)
    assert get(error_server.port, "/ok") == (200, b"hello")


@pytest.mark.parametrize("path, marker", [
    ("/raise-after-first-chunk", "boom raise-after-first-chunk"),
    ("/exc-info-after-send", "boom exc-info-after-send"),
])
def test_app_error_after_headers_aborts_the_response(error_server, path, marker):
    # Once the status line is out, the only honest signal left is to cut the
    # response short: the chunked body never gets its last-chunk.
    # (Whether the head itself left before the abort is a race the client cannot see.)
    start = error_server.mark()
    assert_cut_short(error_server.port, path)
    assert_logged_error(error_server, start, marker)
    assert get(error_server.port, "/ok") == (200, b"hello")
