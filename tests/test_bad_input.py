"""Malformed and hostile HTTP/1.1 input on raw sockets (RFC 9112).

Each bad request must get its error status (400, or 431 for oversized heads)
and a closed connection -- never a hang, never a 200 -- and the server must
go on answering fresh connections. Where the contract allows the server to
just close (a bad chunk size found while the app reads), a close without any
response is accepted too.
"""

from __future__ import annotations

import pytest

from tests.support import RawConnection, assert_serving


@pytest.fixture(scope="module")
def strict_server(start_module_server):
    return start_module_server("tests.apps.wsgi_app:app", "--max-header-size", "8K", "--max-headers", "20")


def head(*lines: str, method: str = "GET", path: str = "/") -> bytes:
    return (f"{method} {path} HTTP/1.1\r\nHost: t\r\n" + "".join(line + "\r\n" for line in lines) + "\r\n").encode()


POST_CHUNKED = b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"

BAD = {
    # RFC 9112 §3: request-line = method SP request-target SP HTTP-version
    "malformed-request-line": (b"GARBAGE\r\n\r\n", {400}, False),
    "request-line-extra-token": (b"GET / HTTP/1.1 extra\r\nHost: t\r\n\r\n", {400}, False),
    "unknown-http-version": (b"GET / HTTP/9.9\r\nHost: t\r\n\r\n", {400, 505}, False),
    # RFC 9110 §5.1: field-name = token (no spaces); RFC 9112 §5.1: no space before the colon
    "space-in-header-name": (head("Bad Header: x"), {400}, False),
    "space-before-colon": (head("X-Bad : x"), {400}, False),
    # RFC 9110 §5.5: NUL is not allowed in a field value
    "nul-in-header-value": (head("X-A: a\x00b"), {400}, False),
    # RFC 9112 §5.2: obs-fold outside message/http is rejected with 400
    "obs-fold": (head("X-A: a", " b"), {400}, False),
    # RFC 9112 §2.2: a bare CR must be rejected (or replaced by SP; we expect rejection)
    "bare-cr-in-header": (head("X-A: a\rb"), {400}, False),
    # RFC 9112 §6.3 (request smuggling); Content-Length with Transfer-Encoding has its own test
    "two-different-content-lengths": (
        head("Content-Length: 5", "Content-Length: 6", method="POST", path="/echo") + b"hello!", {400}, False),
    "non-numeric-content-length": (head("Content-Length: abc", method="POST", path="/echo"), {400}, False),
    "negative-content-length": (head("Content-Length: -5", method="POST", path="/echo"), {400}, False),
    "chunked-not-last-transfer-coding": (
        head("Transfer-Encoding: chunked, gzip", method="POST", path="/echo") + b"0\r\n\r\n", {400}, False),
    # RFC 9112 §7.1: chunk-size = 1*HEXDIG; the app's read raises InvalidRequestBody
    "invalid-chunk-size": (POST_CHUNKED + b"zz\r\nhello\r\n0\r\n\r\n", {400}, True),
    "chunk-longer-than-its-size": (POST_CHUNKED + b"3\r\nhello\r\n0\r\n\r\n", {400}, True),
    # Limits: --max-header-size 8K, --max-headers 20
    "header-section-too-large": (head("X-Big: " + "a" * 9000), {431}, False),
    "too-many-headers": (head(*[f"X-H{i}: {i}" for i in range(30)]), {431}, False),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_request_is_refused(strict_server, case):
    data, statuses, may_close_silently = BAD[case]
    with RawConnection(strict_server.port) as raw:
        try:
            raw.send(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server already refused and closed
        response = raw.read_head()
        if response is None:
            assert may_close_silently, "connection closed without the expected error response"
        else:
            assert response.status in statuses, f"got {response.status} {response.reason}, expected {statuses}"
            raw.read_until_close()  # must close (a hang fails with the socket timeout)
    assert_serving(strict_server.port)


@pytest.mark.parametrize("order", ["cl-first", "te-first"])
def test_content_length_with_transfer_encoding_cannot_smuggle(strict_server, order):
    # RFC 9112 §6.3: a server MAY reject such a request, or process it by
    # Transfer-Encoding alone; either way it MUST close the connection after
    # responding. hyper takes the second option (the Content-Length is
    # dropped), so the body is read as chunked and the connection closes: the
    # request smuggled behind it ("GET /smuggled") is never answered.
    fields = ["Content-Length: 5", "Transfer-Encoding: chunked"]
    if order == "te-first":
        fields.reverse()
    smuggled = b"GET /smuggled HTTP/1.1\r\nHost: t\r\n\r\n"
    with RawConnection(strict_server.port) as raw:
        raw.send(head(*fields, method="POST", path="/echo") + b"3\r\nabc\r\n0\r\n\r\n" + smuggled)
        response = raw.read_response(method="POST")
        assert response is not None, "connection closed without a response"
        assert response.status in (200, 400)
        if response.status == 200:
            assert response.body == b"abc", "the body must be read by Transfer-Encoding, not Content-Length"
            assert ("connection", "close") in [(k.lower(), v.lower()) for k, v in response.headers]
        assert raw.read_until_close() == b"", "nothing may be answered after this request"
    assert_serving(strict_server.port)


GOOD = {
    # RFC 9112 §7.1.1: chunk extensions are allowed (and ignored)
    "chunk-extension": (POST_CHUNKED + b"5;ext=1\r\nhello\r\n0\r\n\r\n", b"hello"),
    "chunk-extension-quoted": (POST_CHUNKED + b'5;name="a value"\r\nhello\r\n0;x=y\r\n\r\n', b"hello"),
    # RFC 9112 §7.1.2: trailer section after the last chunk
    "chunk-trailer": (POST_CHUNKED + b"5\r\nhello\r\n0\r\nX-Trailer: 1\r\n\r\n", b"hello"),
    "uppercase-hex-chunk-size": (POST_CHUNKED + b"A\r\nhellohello\r\n0\r\n\r\n", b"hellohello"),
    "header-just-under-limit": (head("X-Big: " + "a" * 4000, path="/echo"), b""),
    "headers-under-count-limit": (head(*[f"X-H{i}: {i}" for i in range(15)], path="/echo"), b""),
}


@pytest.mark.parametrize("case", list(GOOD))
def test_valid_unusual_request_is_accepted(strict_server, case):
    data, body = GOOD[case]
    with RawConnection(strict_server.port) as raw:
        raw.send(data)
        response = raw.read_response()
        assert response is not None, "connection closed without a response"
        assert (response.status, response.body) == (200, body)


def test_bare_lf_line_endings_get_an_answer(strict_server):
    # RFC 9112 §2.2: a recipient MAY accept a bare LF as a line terminator.
    # Either answer is fine; hanging is not.
    with RawConnection(strict_server.port) as raw:
        raw.send(b"GET / HTTP/1.1\nHost: t\nConnection: close\n\n")
        response = raw.read_response()
        assert response is not None, "connection closed without a response"
        assert response.status in (200, 400)
        if response.status == 200:
            assert response.body == b"hello"
    assert_serving(strict_server.port)


def test_garbage_bytes_then_close(strict_server):
    with RawConnection(strict_server.port) as raw:
        raw.send(bytes(range(256)) * 4 + b"\r\n\r\n")
        response = raw.read_head()
        if response is not None:
            assert response.status == 400
    assert_serving(strict_server.port)


@pytest.fixture(scope="module")
def default_server(start_module_server):
    return start_module_server("tests.apps.wsgi_app:app")


@pytest.mark.parametrize(("count", "status"), [(90, 200), (150, 431)])
def test_default_header_count_limit(default_server, count, status):
    # The default --max-headers (100) is hyper's own limit, which the server
    # leaves to hyper instead of setting it (a set limit costs per request):
    # it must hold all the same.
    with RawConnection(default_server.port) as raw:
        raw.send(head(*[f"X-H{i}: {i}" for i in range(count)], path="/echo"))
        response = raw.read_response()
        assert response is not None, "connection closed without a response"
        assert response.status == status
    assert_serving(default_server.port)
