"""Malformed and hostile HTTP/1.1 input on raw sockets (RFC 9112).

Each bad request must get its error status (400, or 431 for oversized heads)
and a closed connection -- never a hang, never a 200 -- and the server must
go on answering fresh connections. Where the contract allows the server to
just close (a bad chunk size found while the app reads), a close without any
response is accepted too.
"""

from __future__ import annotations

import random
import socket

import pytest

from tests.support import RawConnection, TLSOverMemory, assert_serving


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
    # RFC 9112 §3.2.3, §3.2.4: authority form only for CONNECT, "*" only for OPTIONS
    "authority-form-target": (b"GET example HTTP/1.1\r\nHost: t\r\n\r\n", {400}, False),
    "authority-form-target-with-port": (b"POST t:80 HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n", {400}, False),
    "asterisk-target-not-options": (b"GET * HTTP/1.1\r\nHost: t\r\n\r\n", {400}, False),
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
    # responding. The server rejects it (400), so the request smuggled
    # behind it ("GET /smuggled") is never answered; were it served by
    # Transfer-Encoding alone, the connection would close all the same.
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
    # The default --max-headers (100): the head parser's inline array of
    # fields, whose limit must hold all the same.
    with RawConnection(default_server.port) as raw:
        raw.send(head(*[f"X-H{i}: {i}" for i in range(count)], path="/echo"))
        response = raw.read_response()
        assert response is not None, "connection closed without a response"
        assert response.status == status
    assert_serving(default_server.port)


# Mutation fuzzing: valid requests, damaged at random (the same cases every
# run: the generator is seeded), each sent in random pieces on its own
# connection, then the client's write side shut so the server sees the end.
# Whatever the damage, the server must answer with well-formed HTTP/1.1
# responses or close, within the client's timeout, log no panic, and go on
# serving. The seeds cover the server's own HTTP/1.1 path and every reason a
# head takes its own way through the engine (body, chunked, Expect, Upgrade, HTTP/1.0,
# pipelining from one to the other).
FUZZ_SEEDS = [
    b"GET /?a=1 HTTP/1.1\r\nHost: t\r\nAccept: */*\r\n\r\n",
    b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nhello",
    POST_CHUNKED + b"5\r\nhello\r\n0\r\n\r\n",
    b"POST /echo HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\nok",
    b"GET /env HTTP/1.1\r\nHost: t\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\n"
    b"HTTP2-Settings: AAMAAABkAAQAoAAAAAIAAAAA\r\n\r\n",
    b"GET / HTTP/1.0\r\nHost: t\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: t\r\n\r\nPOST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n\r\nabc"
    b"GET /env HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
]
FUZZ_PIECES = [
    b"\r\n", b"\n", b"\r", b":", b" ", b"\t", b",", b"\r\n\r\n", b"/", b"?", b"%", b"\x00", b"\x7f",
    b"\xff", b"HTTP/1.1", b"HTTP/1.0", b"Host: t\r\n", b"Content-Length: 4\r\n",
    b"Transfer-Encoding: chunked\r\n", b"Connection: close\r\n", b"Expect: 100-continue\r\n",
    b"Upgrade: h2c\r\n", b"99999999999999999999", b"-1", b"CONNECT", b"http://t/", b"0\r\n\r\n",
]
FUZZ_CASES = 1000
# What a damaged request may be answered with: the application's answers
# (its routes: 200, 404 for an unknown one) and the refusals of RFC 9110/9112.
FUZZ_STATUSES = {100, 101, 200, 400, 404, 405, 413, 414, 417, 431, 501, 505}


def mutate(rng, seed: bytes) -> bytes:
    data = bytearray(seed)
    for _ in range(rng.randint(1, 4)):
        at = rng.randint(0, len(data))
        op = rng.randrange(5)
        if op == 0 and at < len(data):
            data[at] = rng.randrange(256)
        elif op == 1 and at < len(data):
            del data[at:at + rng.randint(1, 8)]
        elif op == 2:
            piece = rng.choice(FUZZ_PIECES)
            if piece.endswith(b"\r\n") and b"\n" in data[:at]:
                at = data.rindex(b"\n", 0, at) + 1  # a whole field at a line start
            data[at:at] = piece
        elif op == 3 and at < len(data):
            data[at:at] = data[at:at + rng.randint(1, 40)] * rng.randint(1, 200)
        else:
            del data[at:]
    return bytes(data)


def read_responses(raw: RawConnection, sent: bytes) -> list[int]:
    """Every response on the connection up to its close; their statuses."""
    statuses = []
    while True:
        response = raw.read_response("HEAD" if sent.startswith(b"HEAD") else "GET")
        if response is None:
            return statuses
        assert response.version in ("HTTP/1.1", "HTTP/1.0"), (response, sent)
        statuses.append(response.status)
        if response.status == 101 or response.incomplete:  # 101: HTTP/2 from here on
            return statuses


def send_and_read(raw: RawConnection, data: bytes, case: int) -> list[int]:
    """Send ``data`` in random pieces, shut the sending side, and read every
    response up to the close: their statuses."""
    # Its own generator for the pieces: a send cut short by the server must
    # not change the cases after it.
    pieces = random.Random(case)
    try:
        sent = 0
        while sent < len(data):
            step = pieces.randint(1, max(1, len(data) - sent))
            raw.send(data[sent:sent + step])
            sent += step
        raw.sock.shutdown(socket.SHUT_WR)
    except OSError:
        pass  # refused and closed before the end: the answer is still to read
    try:
        return read_responses(raw, data)
    except (AssertionError, ValueError) as exc:
        raise AssertionError(f"case {case}: {data!r}: {exc}") from None


def test_mutated_requests_get_answers_or_a_close_never_a_hang(strict_server):
    rng = random.Random(5)
    mark = strict_server.mark()
    seen: dict[int, int] = {}
    for case in range(FUZZ_CASES):
        data = mutate(rng, FUZZ_SEEDS[case % len(FUZZ_SEEDS)])
        with RawConnection(strict_server.port) as raw:
            raw.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            statuses = send_and_read(raw, data, case)
        if case % 100 == 99:
            assert_serving(strict_server.port)  # other clients are served all along
        for status in statuses:
            assert status in FUZZ_STATUSES, f"case {case}: {data!r}: status {status}"
            seen[status] = seen.get(status, 0) + 1
    log = "\n".join(strict_server.lines_since(mark))
    assert "panicked" not in log, log[-3000:]
    # The damage must leave many requests served, and refuse many others,
    # or the test would exercise only one side.
    assert seen.get(200, 0) > FUZZ_CASES // 5, seen
    assert seen.get(400, 0) > FUZZ_CASES // 10, seen
    assert_serving(strict_server.port)


@pytest.fixture(scope="module")
def strict_tls_server(start_module_server, pki):
    return start_module_server("tests.apps.wsgi_app:app", *pki.ecdsa.args(), "--max-header-size", "8K",
                               "--max-headers", "20")


def test_mutated_requests_over_tls_get_answers_or_a_close(strict_tls_server, pki):
    # The same damaged requests over TLS (HTTP/1.1 by ALPN), where the
    # connection reads every body itself; the client ends with close_notify,
    # TLS's way to stop sending.
    context = pki.ecdsa.client_context(alpn=("http/1.1",))
    rng = random.Random(6)
    mark = strict_tls_server.mark()
    seen: dict[int, int] = {}
    for case in range(FUZZ_CASES // 4):
        data = mutate(rng, FUZZ_SEEDS[case % len(FUZZ_SEEDS)])
        with RawConnection(strict_tls_server.tls_port) as raw:
            raw.sock = TLSOverMemory(raw.sock, context, "localhost")
            statuses = send_and_read(raw, data, case)
        for status in statuses:
            assert status in FUZZ_STATUSES, f"case {case}: {data!r}: status {status}"
            seen[status] = seen.get(status, 0) + 1
    log = "\n".join(strict_tls_server.lines_since(mark))
    assert "panicked" not in log, log[-3000:]
    assert seen.get(200, 0) > FUZZ_CASES // 4 // 5 and seen.get(400, 0) > FUZZ_CASES // 4 // 10, seen
